from ops_portal.core.api.router import router

from . import views

router.register("healing-policies", views.HealingPolicyViewSet)
router.register("healing-events", views.HealingEventViewSet)

urlpatterns = []
