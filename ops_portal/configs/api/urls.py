from ops_portal.core.api.router import router

from . import views

router.register("config-templates", views.ConfigTemplateViewSet)
router.register("drift-reports", views.DriftReportViewSet)

urlpatterns = []
