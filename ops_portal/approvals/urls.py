from django.urls import path

from . import views

app_name = "approvals"
urlpatterns = [
    path("approvals/", views.inbox, name="inbox"),
    path("approvals/waiting/", views.waiting, name="waiting"),
    path("approvals/<int:pk>/", views.detail, name="detail"),
    path("approvals/link/<str:token>/", views.link, name="link"),
]
