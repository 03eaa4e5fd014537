"""ASGI entry point: HTTP through Django, websockets through Channels (session or token auth)."""
import gc
import os

from django.core.asgi import get_asgi_application
from django.urls import get_resolver

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ops_portal.settings")
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from ops_portal.core.ws_auth import OriginValidator, PortalAuthMiddlewareStack  # noqa: E402
from ops_portal.routing import websocket_urlpatterns  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": OriginValidator(PortalAuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
    }
)


def _settle():
    """Import every view now, then take what start-up made out of the garbage collector's sight.

    The collector's full pass walks every tracked object of the process, 200,000 of them once
    Django, DRF and the views are loaded: about 180 ms here, landing on whichever request
    allocated enough to start it (a 1,000-row list page: p95 three to four times its median).
    Frozen, start-up's objects are never walked again (they live as long as the process anyway),
    and a full pass costs what the requests' own objects cost."""
    get_resolver().url_patterns  # noqa: B018 (loading the URLconf imports the views)
    gc.collect()
    gc.freeze()


_settle()
