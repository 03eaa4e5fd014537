from ops_portal.core.api.router import router

from . import views

router.register("approval-policies", views.ApprovalPolicyViewSet)
router.register("approvals", views.ApprovalRequestViewSet)

urlpatterns = []
