from django.contrib import admin
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from ops_portal.core import health
from ops_portal.core.api.errors import api_not_found
from ops_portal.core.api.router import router
from ops_portal.core.api.status import PingView
from ops_portal.dashboard.api import SearchView

# Each app's api/urls.py registers its viewsets on the shared router when imported.
api_modules = [
    "ops_portal.accounts.api.urls",
    "ops_portal.audit.api.urls",
    "ops_portal.inventory.api.urls",
    "ops_portal.approvals.api.urls",
    "ops_portal.jobs.api.urls",
    "ops_portal.notifications.api.urls",
    "ops_portal.monitoring.api.urls",
    "ops_portal.configs.api.urls",
    "ops_portal.containers.api.urls",
    "ops_portal.autoscaling.api.urls",
    "ops_portal.programs.api.urls",
    "ops_portal.processes.api.urls",
    "ops_portal.healing.api.urls",
    "ops_portal.projects.api.urls",
]
api_patterns = [path("", include(module)) for module in api_modules]

urlpatterns = [
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("metrics", health.metrics_view, name="metrics"),
    path("api/", include((api_patterns + [path("status/ping/", PingView.as_view(), name="status-ping"),
                                          path("search/", SearchView.as_view(), name="search")]
                          + router.urls, "api"))),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="schema"), name="swagger-ui"),
    re_path(r"^api/", api_not_found),  # after every API route: unknown API paths answer in JSON
    path("admin/", admin.site.urls),
    path("", include("ops_portal.accounts.urls")),
    path("", include("ops_portal.audit.urls")),
    path("", include("ops_portal.inventory.urls")),
    path("", include("ops_portal.jobs.urls")),
    path("", include("ops_portal.approvals.urls")),
    path("", include("ops_portal.configs.urls")),
    path("", include("ops_portal.autoscaling.urls")),
    path("", include("ops_portal.healing.urls")),
    path("", include("ops_portal.containers.urls")),
    path("", include("ops_portal.programs.urls")),
    path("", include("ops_portal.processes.urls")),
    path("", include("ops_portal.projects.urls")),
    path("", include("ops_portal.monitoring.urls")),
    path("", include("ops_portal.dashboard.urls")),
]
