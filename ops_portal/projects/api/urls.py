from ops_portal.core.api.router import router

from . import views

router.register("projects", views.ProjectViewSet)

urlpatterns = []
