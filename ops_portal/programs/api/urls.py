from ops_portal.core.api.router import router

from . import views

router.register("programs", views.ProgramViewSet)
router.register("host-managers", views.HostManagerViewSet)

urlpatterns = []
