from ops_portal.core.api.router import router

from . import views

router.register("engines", views.EngineViewSet)
router.register("containers", views.ContainerViewSet)
router.register("services", views.ServiceViewSet)
router.register("images", views.ImageViewSet)
router.register("networks", views.NetworkViewSet)
router.register("volumes", views.VolumeViewSet)
router.register("nodes", views.NodeViewSet)
router.register("stacks", views.StackViewSet)
router.register("allowed-host-paths", views.AllowedHostPathViewSet)

urlpatterns = []
