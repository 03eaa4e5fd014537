"""The watcher's readiness check (/readyz "watcher"): not ready while enabled engines exist and no
container watcher has a current heartbeat."""
from ops_portal.core import health, heartbeat

from .models import Engine

KIND = "watcher"


def check_watcher():
    names = heartbeat.alive(KIND)
    engines = Engine.objects.filter(enabled=True).count()
    return {"ok": bool(names) or not engines, "alive": names, "engines": engines}


health.register_check(KIND, check_watcher)
