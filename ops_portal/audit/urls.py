from django.urls import path

from . import views

app_name = "audit"
urlpatterns = [
    path("audit/", views.audit_list, name="list"),
    path("audit/<int:pk>/", views.audit_detail, name="detail"),
]
