from django.urls import path

from . import manage_views, views

app_name = "approvals"
urlpatterns = [
    path("approvals/", views.inbox, name="inbox"),
    path("approvals/waiting/", views.waiting, name="waiting"),
    path("approvals/<int:pk>/", views.detail, name="detail"),
    path("approvals/policies/", manage_views.policies, name="policies"),
    path("approvals/policies/new/", manage_views.policy_new, name="policy_new"),
    path("approvals/policies/<int:pk>/edit/", manage_views.policy_edit, name="policy_edit"),
    path("approvals/policies/<int:pk>/delete/", manage_views.policy_delete, name="policy_delete"),
    path("approvals/link/<str:token>/", views.link, name="link"),
]
