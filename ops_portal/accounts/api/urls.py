from django.urls import path

from ops_portal.core.api.router import router

from . import views

router.register("environments", views.EnvironmentViewSet)
router.register("teams", views.TeamViewSet)
router.register("role-bindings", views.RoleBindingViewSet)
router.register("users", views.UserViewSet)
router.register("tokens", views.APITokenViewSet)

urlpatterns = [
    path("me/", views.MeView.as_view(), name="me"),
    path("me/password/", views.ChangePasswordView.as_view(), name="change-password"),
]
