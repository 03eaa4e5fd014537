from ops_portal.core.api.router import router

from . import views

router.register("notification-channels", views.NotificationChannelViewSet)
router.register("deliveries", views.DeliveryViewSet)

urlpatterns = []
