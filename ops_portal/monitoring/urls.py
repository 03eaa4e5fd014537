from django.urls import path

from . import manage_views, views

app_name = "monitoring"
urlpatterns = [
    path("monitoring/", views.home, name="home"),
    path("monitoring/alerts/<int:pk>/acknowledge/", views.acknowledge, name="acknowledge"),
    path("monitoring/rules/new/", manage_views.rule_new, name="rule_new"),
    path("monitoring/rules/<int:pk>/edit/", manage_views.rule_edit, name="rule_edit"),
    path("monitoring/rules/<int:pk>/delete/", manage_views.rule_delete, name="rule_delete"),
]
