"""ASGI entry point: HTTP through Django, websockets through Channels (session or token auth)."""
import os

from django.core.asgi import get_asgi_application

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
