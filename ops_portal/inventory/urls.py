from django.urls import path

from . import views

app_name = "inventory"
urlpatterns = [
    path("hosts/", views.hosts, name="hosts"),
    path("hosts/<int:pk>/", views.host_detail, name="host"),
    path("hosts/<int:pk>/edit/", views.host_edit, name="host_edit"),
    path("sites/", views.sites, name="sites"),
    path("sites/<int:pk>/edit/", views.site_edit, name="site_edit"),
    path("sites/<int:pk>/delete/", views.site_delete, name="site_delete"),
    path("hosts/<int:pk>/accept-host-key/", views.accept_host_key, name="accept_host_key"),
    path("compliance/", views.compliance, name="compliance"),
    path("credentials/", views.credentials, name="credentials"),
    path("credentials/<int:pk>/rotate/", views.credential_rotate, name="credential_rotate"),
    path("credentials/<int:pk>/edit/", views.credential_edit, name="credential_edit"),
    path("credentials/<int:pk>/delete/", views.credential_delete, name="credential_delete"),
]
