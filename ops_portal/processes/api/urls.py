from ops_portal.core.api.router import router

from . import views

router.register("processes", views.ProcessViewSet)
router.register("process-scans", views.ProcessScanViewSet)

urlpatterns = []
