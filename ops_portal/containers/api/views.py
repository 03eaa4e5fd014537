"""The container level's API. Observed rows (containers, services, images, networks, volumes, nodes)
are read-only; what changes them is a job, launched by the POST actions here and returned (201)
for the caller to follow at /api/jobs/{id}/. Engines, stacks and allowed host paths are managed
objects (audited)."""
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status
from rest_framework.decorators import action
from rest_framework.exceptions import PermissionDenied, ValidationError
from rest_framework.response import Response

from ops_portal.accounts.choices import Action
from ops_portal.accounts.permissions import can_on, restrict, scope_for
from ops_portal.core.api.viewsets import PortalViewSet, RowsListMixin, ServiceModelViewSet

from .. import services
from ..choices import CONTAINER_ACTIONS
from ..filtersets import (
    AllowedHostPathFilterSet,
    ContainerFilterSet,
    EngineFilterSet,
    ImageFilterSet,
    NetworkFilterSet,
    NodeFilterSet,
    ServiceFilterSet,
    StackFilterSet,
    VolumeFilterSet,
)
from ..models import AllowedHostPath, Container, Engine, Image, Network, Node, Service, Stack, Volume
from . import serializers as s


def launched(job):
    return Response(s.ContainerJobSerializer(job).data, status=status.HTTP_201_CREATED)


class OperateMixin:
    """Job-launching actions: refused with 403 before their payload is read when the user may not
    operate on the object (or anywhere, for creates)."""

    def require_operate(self, obj=None):
        user = self.request.user
        if obj is None:
            if scope_for(user, Action.OPERATE).empty:
                raise PermissionDenied("You may not operate anything here.")
        elif not can_on(user, Action.OPERATE, obj):
            raise PermissionDenied(f"You may not operate {obj}.")

    def payload(self, serializer_class):
        serializer = serializer_class(data=self.request.data, context=self.get_serializer_context())
        serializer.is_valid(raise_exception=True)
        return serializer.validated_data


class EngineViewSet(ServiceModelViewSet):
    """Docker engines: unix socket (the portal's machine: administrators of all environments only),
    SSH through their inventory host, or TCP with TLS. Administrators manage them; the client key is
    write-only."""

    queryset = Engine.objects.select_related("environment", "host")
    serializer_class = s.EngineSerializer
    filterset_class = EngineFilterSet
    ordering_fields = ["name", "created", "state", "last_seen"]

    def perform_create(self, serializer):
        return services.create_engine(self.actor, **serializer.validated_data)

    def perform_update(self, serializer):
        return services.update_engine(self.actor, serializer.instance, **serializer.validated_data)

    def perform_destroy(self, instance):
        services.delete_engine(self.actor, instance)

    @extend_schema(request=None, responses=s.EngineCheckSerializer)
    @action(detail=True, methods=["post"])
    def test(self, request, pk=None):
        """Connect now (5 s at most), probe, store and return the engine's state in plain words."""
        engine = self.get_object()
        self.require_write_on(engine)
        result = services.test_engine(self.actor, engine)
        engine.refresh_from_db()
        return Response({"state": engine.state, "message": result.message, "engine": s.EngineSerializer(engine).data})


class ContainerViewSet(OperateMixin, RowsListMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, PortalViewSet):
    """Containers as the engines report them (kept current by the watcher). POST actions launch jobs:
    start, stop, restart, pause, unpause, kill, remove, logs, stats, exec; bulk on many at once;
    create (on an engine)."""

    queryset = Container.objects.select_related("engine__environment", "host")
    serializer_class = s.ContainerSerializer
    filterset_class = ContainerFilterSet
    ordering_fields = ["name", "state", "created_at", "started_at", "restart_count"]
    write_action = Action.OPERATE

    @extend_schema(request=s.CreateContainerSerializer, responses={201: s.ContainerJobSerializer})
    def create(self, request, *args, **kwargs):
        """Launch container.create on an engine from a spec (checked now; privileged: administrators)."""
        data = self.payload(s.CreateContainerSerializer)
        return launched(services.create_container(self.actor, data["engine"], data["spec"]))

    def _launch(self, request, name):
        container = self.get_object()
        self.require_operate(container)
        data = self.payload(s.ContainerActionSerializer)
        return launched(services.launch_containers(self.actor, f"container.{name}", [container], data["params"],
                                                   strategy=data["strategy"]))

    @extend_schema(request=s.BulkContainerSerializer, responses={201: s.ContainerJobSerializer})
    @action(detail=False, methods=["post"])
    def bulk(self, request):
        """One job of one action on many containers (ids), with the usual strategies."""
        self.require_operate()
        data = self.payload(s.BulkContainerSerializer)
        found = list(restrict(Container.objects.select_related("engine__environment"), request.user, Action.VIEW)
                     .filter(pk__in=data["ids"]))
        missing = sorted(set(data["ids"]) - {c.pk for c in found})
        if missing:
            raise ValidationError({"ids": [f"No container with id {', '.join(map(str, missing[:20]))}."]})
        return launched(services.launch_containers(self.actor, f"container.{data['operation']}", found, data["params"],
                                                   strategy=data["strategy"]))


def _container_action(name):
    def view(self, request, pk=None):
        return self._launch(request, name)

    view.__name__ = name
    # @action first, then the schema (as when both decorate a method: extend_schema outermost).
    return extend_schema(request=s.ContainerActionSerializer, responses={201: s.ContainerJobSerializer},
                         description=f"Launch container.{name} on this container.")(
        action(detail=True, methods=["post"])(view))


for _name in (a.split(".")[1] for a in CONTAINER_ACTIONS):
    setattr(ContainerViewSet, _name, _container_action(_name))


class ServiceViewSet(OperateMixin, RowsListMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, PortalViewSet):
    """Swarm services as the engines report them, with publish mode and endpoints and whether the
    image tag moved. POST launches jobs (create, scale, update, rollback, remove, check-balance) and
    returns the job; it succeeds only once the service converged."""

    queryset = Service.objects.select_related("engine__environment")
    serializer_class = s.ServiceSerializer
    filterset_class = ServiceFilterSet
    ordering_fields = ["name", "created_at", "updated_at", "replicas_running"]
    write_action = Action.OPERATE

    @extend_schema(request=s.CreateServiceSerializer, responses={201: s.ContainerJobSerializer})
    def create(self, request, *args, **kwargs):
        """Launch service.create from a spec written here (checked now: 400 with field errors)."""
        data = self.payload(s.CreateServiceSerializer)
        return launched(services.create_service(self.actor, data["engine"], data["spec"]))

    @extend_schema(responses=s.TaskSerializer(many=True))
    @action(detail=True, methods=["get"], pagination_class=None, filterset_class=None)
    def tasks(self, request, pk=None):
        """The service's tasks (current and recent), slot by slot."""
        service = self.get_object()
        rows = service.tasks.order_by("slot", "-timestamp")[:500]
        return Response(s.TaskSerializer(rows, many=True).data)

    def _service(self):
        service = self.get_object()
        self.require_operate(service)
        return service

    @extend_schema(request=s.ScaleSerializer, responses={201: s.ContainerJobSerializer})
    @action(detail=True, methods=["post"])
    def scale(self, request, pk=None):
        service = self._service()
        return launched(services.scale_service(self.actor, service, self.payload(s.ScaleSerializer)["replicas"]))

    @extend_schema(request=s.UpdateServiceSerializer, responses={201: s.ContainerJobSerializer})
    @action(detail=True, methods=["post"], url_path="update", url_name="update")
    def update_service(self, request, pk=None):
        """A rolling update to a new image or spec, with the update policy's fields."""
        service = self._service()
        return launched(services.update_service(self.actor, service, dict(self.payload(s.UpdateServiceSerializer))))

    @extend_schema(request=None, responses={201: s.ContainerJobSerializer})
    @action(detail=True, methods=["post"])
    def rollback(self, request, pk=None):
        return launched(services.rollback_service(self.actor, self._service()))

    @extend_schema(request=None, responses={201: s.ContainerJobSerializer})
    @action(detail=True, methods=["post"])
    def remove(self, request, pk=None):
        return launched(services.remove_service(self.actor, self._service()))

    @extend_schema(request=s.BalanceSerializer, responses={201: s.ContainerJobSerializer})
    @action(detail=True, methods=["post"], url_path="check-balance")
    def check_balance(self, request, pk=None):
        """A read-only job: requests to the published endpoints on 127.0.0.1; which replicas answered."""
        service = self._service()
        data = self.payload(s.BalanceSerializer)
        return launched(services.check_balance(self.actor, service, data["requests"], data["path"]))


class _ReadOnly(mixins.ListModelMixin, mixins.RetrieveModelMixin, PortalViewSet):
    pass


class ImageViewSet(_ReadOnly):
    queryset = Image.objects.select_related("engine__environment")
    serializer_class = s.ImageSerializer
    filterset_class = ImageFilterSet
    ordering_fields = ["created_at", "size"]


class NetworkViewSet(_ReadOnly):
    queryset = Network.objects.select_related("engine__environment")
    serializer_class = s.NetworkSerializer
    filterset_class = NetworkFilterSet
    ordering_fields = ["name"]


class VolumeViewSet(_ReadOnly):
    queryset = Volume.objects.select_related("engine__environment")
    serializer_class = s.VolumeSerializer
    filterset_class = VolumeFilterSet
    ordering_fields = ["name"]


class NodeViewSet(_ReadOnly):
    queryset = Node.objects.select_related("engine__environment")
    serializer_class = s.NodeSerializer
    filterset_class = NodeFilterSet
    ordering_fields = ["hostname"]


class StackViewSet(OperateMixin, ServiceModelViewSet):
    """Compose files deployed as Swarm stacks. Operators write and deploy them; the file is checked
    against the Compose specification when saved (400 with field errors), and a privileged one
    (host paths outside the allowed list, capabilities) is written and deployed by administrators
    only."""

    queryset = Stack.objects.select_related("engine__environment")
    serializer_class = s.StackSerializer
    filterset_class = StackFilterSet
    ordering_fields = ["name", "created", "updated", "deployed_at"]
    write_action = Action.OPERATE

    def perform_create(self, serializer):
        return services.create_stack(self.actor, **serializer.validated_data)

    def perform_update(self, serializer):
        return services.update_stack(self.actor, serializer.instance, **serializer.validated_data)

    def perform_destroy(self, instance):
        services.delete_stack(self.actor, instance)

    @extend_schema(responses=s.StackDiffSerializer)
    @action(detail=True, methods=["get"])
    def diff(self, request, pk=None):
        """What a deploy would change, against the services the watcher last saw (no engine call)."""
        return Response(services.stack_diff(self.get_object()))

    @extend_schema(request=s.DeploySerializer, responses={201: s.ContainerJobSerializer})
    @action(detail=True, methods=["post"])
    def deploy(self, request, pk=None):
        """Launch stack.deploy of the file as it is now (approval policies see its diff on the stack)."""
        stack = self.get_object()
        self.require_operate(stack)
        return launched(services.deploy_stack(self.actor, stack, prune=self.payload(s.DeploySerializer)["prune"]))

    @extend_schema(request=None, responses={201: s.ContainerJobSerializer})
    @action(detail=True, methods=["post"])
    def remove(self, request, pk=None):
        """Launch stack.remove: the stack's services and networks go (volumes stay)."""
        stack = self.get_object()
        self.require_operate(stack)
        return launched(services.remove_stack(self.actor, stack))


class AllowedHostPathViewSet(ServiceModelViewSet):
    """Host directories operators may bind-mount in an environment (administrators of it set them)."""

    queryset = AllowedHostPath.objects.select_related("environment")
    serializer_class = s.AllowedHostPathSerializer
    filterset_class = AllowedHostPathFilterSet
    ordering_fields = ["path", "created"]

    def perform_create(self, serializer):
        return services.create_allowed_path(self.actor, **serializer.validated_data)

    def perform_update(self, serializer):
        return services.update_allowed_path(self.actor, serializer.instance, **serializer.validated_data)

    def perform_destroy(self, instance):
        services.delete_allowed_path(self.actor, instance)
