from django.contrib.auth import views as auth_views
from django.urls import path

from . import views

urlpatterns = [
    path("login/", views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("account/password/", views.PasswordChangeView.as_view(), name="password_change"),
    path("account/tokens/", views.tokens, name="tokens"),
    path("account/tokens/<int:pk>/revoke/", views.revoke_token, name="revoke_token"),
    path("access/", views.access, name="access"),
    path("access/bindings/<int:pk>/edit/", views.edit_binding, name="edit_binding"),
    path("access/bindings/<int:pk>/delete/", views.delete_binding, name="delete_binding"),
    path("access/users/<int:pk>/toggle/", views.toggle_user, name="toggle_user"),
    path("access/teams/new/", views.team_new, name="team_new"),
    path("access/teams/<int:pk>/edit/", views.team_edit, name="team_edit"),
    path("access/teams/<int:pk>/delete/", views.team_delete, name="team_delete"),
]
