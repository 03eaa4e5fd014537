from django.contrib.auth import get_user_model
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status
from rest_framework.decorators import action
from rest_framework.exceptions import PermissionDenied
from rest_framework.response import Response
from rest_framework.views import APIView

from ops_portal.core.api.viewsets import PortalViewSet, ServiceModelViewSet, defer_unique_checks
from ops_portal.core.context import Actor

from .. import services
from ..choices import Action
from ..filtersets import (
    APITokenFilterSet,
    EnvironmentFilterSet,
    RoleBindingFilterSet,
    TeamFilterSet,
    UserFilterSet,
)
from ..models import APIToken, Environment, RoleBinding, Team
from ..permissions import scope_for
from . import serializers as s

User = get_user_model()


class EnvironmentViewSet(ServiceModelViewSet):
    queryset = Environment.objects.all()
    create_needs_everywhere = True
    serializer_class = s.EnvironmentSerializer
    filterset_class = EnvironmentFilterSet
    ordering_fields = ["name", "created"]

    def perform_create(self, serializer):
        return services.create_environment(self.actor, **serializer.validated_data)

    def perform_update(self, serializer):
        return services.update_environment(self.actor, serializer.instance, **serializer.validated_data)

    def perform_destroy(self, instance):
        services.delete_environment(self.actor, instance)


class TeamViewSet(ServiceModelViewSet):
    queryset = Team.objects.prefetch_related("members")
    create_needs_everywhere = True
    serializer_class = s.TeamSerializer
    filterset_class = TeamFilterSet
    ordering_fields = ["name", "created"]

    def perform_create(self, serializer):
        return services.create_team(self.actor, **serializer.validated_data)

    def perform_update(self, serializer):
        return services.update_team(self.actor, serializer.instance, **serializer.validated_data)

    def perform_destroy(self, instance):
        services.delete_team(self.actor, instance)


class RoleBindingViewSet(ServiceModelViewSet):
    queryset = RoleBinding.objects.select_related("user", "team", "environment")
    serializer_class = s.RoleBindingSerializer
    filterset_class = RoleBindingFilterSet
    ordering_fields = ["created", "role"]
    http_method_names = ["get", "post", "put", "patch", "delete", "head", "options"]

    def perform_create(self, serializer):
        return services.create_binding(self.actor, **serializer.validated_data)

    def perform_update(self, serializer):
        return services.update_binding(self.actor, serializer.instance, **serializer.validated_data)

    def perform_destroy(self, instance):
        services.delete_binding(self.actor, instance)


class UserViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin,
                  mixins.UpdateModelMixin, PortalViewSet):
    """Users. Administrators of all environments see and manage everyone; others see themselves.
    Users are deactivated, not deleted, so the audit log keeps its references."""

    queryset = User.objects.all().order_by("username")
    serializer_class = s.UserSerializer
    filterset_class = UserFilterSet
    ordering_fields = ["username", "date_joined", "last_login"]
    create_needs_everywhere = True

    def get_queryset(self):
        queryset = User.objects.all().order_by("username")
        if scope_for(self.request.user, Action.MANAGE).everywhere:
            return queryset
        return queryset.filter(pk=self.request.user.pk)

    def create(self, request, *args, **kwargs):
        serializer = defer_unique_checks(self.get_serializer(data=request.data))
        serializer.is_valid(raise_exception=True)
        user = services.create_user(self.actor, **serializer.validated_data)
        return Response(self.get_serializer(user).data, status=status.HTTP_201_CREATED)

    def update(self, request, *args, **kwargs):
        partial = kwargs.pop("partial", False)
        instance = self.get_object()
        if not scope_for(request.user, Action.MANAGE).everywhere:  # before the payload: no name oracle
            raise PermissionDenied("Only administrators of all environments change users.")
        serializer = defer_unique_checks(self.get_serializer(instance, data=request.data, partial=partial))
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        password = data.pop("password", None)
        user = services.update_user(self.actor, instance, **data)
        if password:
            services.set_password(self.actor, user, password)
        return Response(self.get_serializer(user).data)

    @extend_schema(request=s.SetPasswordSerializer, responses={204: None})
    @action(detail=True, methods=["post"], url_path="set-password")
    def set_password(self, request, pk=None):
        serializer = s.SetPasswordSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        services.set_password(self.actor, self.get_object(), serializer.validated_data["password"])
        return Response(status=status.HTTP_204_NO_CONTENT)


class APITokenViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin,
                      mixins.DestroyModelMixin, PortalViewSet):
    """Your own API tokens. The key is returned once, at creation; delete revokes."""

    queryset = APIToken.objects.all()
    serializer_class = s.APITokenSerializer
    write_action = None  # everyone manages their own
    filterset_class = APITokenFilterSet
    ordering_fields = ["created", "name"]

    def get_queryset(self):
        return APIToken.objects.filter(user=self.request.user)

    @extend_schema(request=s.APITokenSerializer, responses={201: s.NewAPITokenSerializer})
    def create(self, request, *args, **kwargs):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        token, key = services.create_token(self.actor, **serializer.validated_data)
        data = s.NewAPITokenSerializer(token).data
        data["key"] = key
        return Response(data, status=status.HTTP_201_CREATED)

    def perform_destroy(self, instance):
        services.revoke_token(self.actor, instance)


def permissions_summary(user):
    names = dict(Environment.objects.values_list("pk", "name"))
    summary = {}
    for act in Action.values:
        scope = scope_for(user, act)
        summary[act] = ["*"] if scope.everywhere else sorted(names[i] for i in scope.environment_ids if i in names)
    return summary


class MeView(APIView):
    """The signed-in user and where each action is allowed."""

    @extend_schema(responses=s.MeSerializer)
    def get(self, request):
        user = request.user
        return Response({"id": user.pk, "username": user.get_username(), "is_superuser": user.is_superuser,
                         "permissions": permissions_summary(user)})


class ChangePasswordView(APIView):
    @extend_schema(request=s.ChangePasswordSerializer, responses={204: None})
    def post(self, request):
        serializer = s.ChangePasswordSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        services.change_own_password(Actor.from_request(request), request.user, **serializer.validated_data)
        return Response(status=status.HTTP_204_NO_CONTENT)
