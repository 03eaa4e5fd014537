from ops_portal.core.api.router import router

from . import views

router.register("credentials", views.CredentialViewSet)
router.register("host-groups", views.HostGroupViewSet)
router.register("hosts", views.HostViewSet)
router.register("artifacts", views.ArtifactViewSet)

urlpatterns = []
