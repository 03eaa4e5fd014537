from django.urls import path

from ops_portal.core.api.router import router

from . import views

router.register("alert-rules", views.AlertRuleViewSet)
router.register("alerts", views.AlertViewSet)

urlpatterns = [path("metrics/", views.MetricsView.as_view(), name="metrics")]
