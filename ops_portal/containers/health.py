"""The watcher's readiness check (/readyz "watcher"): not ready while enabled engines exist and no
container watcher has a current heartbeat. A watcher writes its heartbeat only while every
engine's event-stream thread is running (watcher.Supervisor.beat), so a dead or stuck stream shows
here, not only a dead process; the payload tells each engine's stream."""
from ops_portal.core import health, heartbeat

from .models import Engine

KIND = "watcher"


def check_watcher():
    payloads = heartbeat.payloads(KIND)
    engines = Engine.objects.filter(enabled=True).count()
    streams = {name: payload.get("streams", {}) for name, payload in payloads.items()}
    return {"ok": bool(payloads) or not engines, "alive": sorted(payloads), "engines": engines, "streams": streams}


health.register_check(KIND, check_watcher)
