from ops_portal.core.api.router import router

from . import views

router.register("scaling-policies", views.ScalingPolicyViewSet)
router.register("scaling-evaluations", views.EvaluationViewSet)

urlpatterns = []
