"""Liveness, readiness and metrics endpoints for load balancers, compose and Prometheus.

/healthz is open. /metrics and the details of /readyz (which name workers and quote errors) answer
clients on this machine freely while no token is set; everyone else, or everyone once a token is
set, must send `Authorization: Bearer <token>` (METRICS_TOKEN; HEALTH_TOKEN, which defaults to it).
/readyz always answers its status code and `status`, so load balancers need no token.
"""
import hmac

from django.conf import settings
from django.db import connection
from django.http import HttpResponse, HttpResponseForbidden, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from prometheus_client.core import GaugeMetricFamily

from . import heartbeat, metrics, proxy
from . import redis as portal_redis


def _authorised(request, token):
    if not token:
        return proxy.is_local(request)
    header = request.META.get("HTTP_AUTHORIZATION", "")
    given = header[7:].strip() if header[:7].lower() == "bearer " else ""
    return hmac.compare_digest(given.encode(), token.encode())


@never_cache
@require_GET
def healthz(request):
    """The process answers."""
    return JsonResponse({"status": "ok"})


def _check_database():
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return {"ok": True, "vendor": connection.vendor}


def _check_redis():
    portal_redis.client().ping()
    return {"ok": True}


def _check_workers():
    names = heartbeat.alive("worker")
    return {"ok": bool(names), "alive": names}


def _check_beat():
    names = heartbeat.alive("beat")
    return {"ok": bool(names), "alive": names}


CHECKS = {"database": _check_database, "redis": _check_redis, "worker": _check_workers, "beat": _check_beat}


def register_check(name, check):
    """Add a readiness check of a higher app (the container watcher's): check() -> {"ok": bool, ...}."""
    CHECKS[name] = check


def run_checks(names):
    results = {}
    for name in names:
        try:
            results[name] = CHECKS[name]()
        except Exception as exc:  # a failing dependency is the answer, not an error
            results[name] = {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:300]}
    return results


@never_cache
@require_GET
def readyz(request):
    """Ready to serve: database and Redis answer, a worker and beat are alive.

    ?check=database,redis limits the checks (the web container's own healthcheck uses that, so a
    stopped worker does not take the web tier out of the load balancer).
    """
    wanted = [c for c in request.GET.get("check", "").split(",") if c] or list(CHECKS)
    unknown = [c for c in wanted if c not in CHECKS]
    if unknown:
        return JsonResponse({"status": "error", "error": f"unknown checks: {', '.join(unknown)}"}, status=400)
    results = run_checks(wanted)
    ok = all(r["ok"] for r in results.values())
    body = {"status": "ok" if ok else "unavailable"}
    if _authorised(request, settings.HEALTH_TOKEN or settings.METRICS_TOKEN):
        body["checks"] = results
    return JsonResponse(body, status=200 if ok else 503)


@never_cache
@require_GET
def metrics_view(request):
    """Prometheus text format, for this machine or holders of METRICS_TOKEN."""
    if not _authorised(request, settings.METRICS_TOKEN):
        return HttpResponseForbidden("metrics token required\n", content_type="text/plain")
    return HttpResponse(metrics.render(), content_type=metrics.CONTENT_TYPE)


class HealthCollector:
    """Workers and beats with a current heartbeat, read at scrape time."""

    def collect(self):
        results = run_checks(["worker", "beat"])
        yield GaugeMetricFamily("opsportal_workers_alive", "Celery workers with a current heartbeat.",
                                value=len(results["worker"].get("alive", [])))
        yield GaugeMetricFamily("opsportal_beat_alive", "Beat schedulers with a current heartbeat.",
                                value=len(results["beat"].get("alive", [])))


metrics.register_collector(HealthCollector())
