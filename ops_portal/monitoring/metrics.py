"""Metric time series: store samples from collection jobs, roll them up, keep them bounded, read
them back for charts.

Telemetry is not audited row by row: the collection job that produced it is.
"""
import logging
import time

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import Avg, F, Max, Q

from ops_portal.inventory.models import Host

from .choices import FIVE_MINUTES, HOURLY, RAW, Metric
from .models import EnvironmentRollup, Rollup, RollupState, Sample, Series

log = logging.getLogger(__name__)

# Buckets are closed this long after they end: a job stores its samples when its targets finish.
ROLLUP_GRACE_SECONDS = 120
# Each run recomputes buckets this far back, so samples of a slow job that arrive late still count.
RECOMPUTE_SECONDS = {FIVE_MINUTES: 900, HOURLY: HOURLY}
RETENTION_DEFAULTS = {"raw_hours": 48, "five_minute_days": 30, "hourly_days": 365}
PROBE_METRICS = (Metric.CPU_PERCENT, Metric.MEM_PERCENT, Metric.LOAD1)


def now_seconds():
    return int(time.time())


def _number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value == value  # not NaN


def probe_rows(metrics):
    """[(metric, mount, value)] from schedulers' collect_metrics() output, reachability included."""
    rows = [(Metric.REACHABLE.value, "", 1.0)]
    for name in PROBE_METRICS:
        if _number(metrics.get(name)):
            rows.append((name.value, "", float(metrics[name])))
    disks = metrics.get("disks") or {}
    for mount, percent in sorted(disks.items() if isinstance(disks, dict) else []):
        if isinstance(mount, str) and mount.startswith("/") and len(mount) <= 255 and _number(percent):
            rows.append((Metric.DISK_PERCENT.value, mount, float(percent)))
    return rows


def unreachable_rows():
    return [(Metric.REACHABLE.value, "", 0.0)]


def _load_series(cache, host_ids):
    for pk, host_id, metric, mount in Series.objects.filter(host_id__in=host_ids).values_list(
            "id", "host_id", "metric", "mount"):
        cache[(host_id, metric, mount)] = pk


def store(entries, *, series_cache=None):
    """Store samples. `entries` are (host id, unix seconds, [(metric, mount, value)]); hosts that
    were removed meanwhile are skipped. `series_cache` ({(host, metric, mount): id}) can be kept by
    a caller that stores often. Returns the number of samples written."""
    cache = {} if series_cache is None else series_cache
    for attempt in (1, 2):
        try:
            with transaction.atomic():
                return _store(entries, cache)
        except IntegrityError:
            if attempt == 2:
                raise
            # A host was deleted between reading and writing: forget it and try once more.
            cache.clear()
            alive = set(Host.objects.filter(pk__in={e[0] for e in entries}).values_list("pk", flat=True))
            entries = [e for e in entries if e[0] in alive]
    return 0


def _store(entries, cache):
    keys = {(host_id, metric, mount) for host_id, _, rows in entries for metric, mount, _ in rows}
    if keys - cache.keys():
        _load_series(cache, {key[0] for key in keys - cache.keys()})
    missing = keys - cache.keys()
    if missing:
        alive = set(Host.objects.filter(pk__in={key[0] for key in missing}).values_list("pk", flat=True))
        Series.objects.bulk_create([Series(host_id=h, metric=m, mount=mt) for h, m, mt in sorted(missing)
                                    if h in alive], ignore_conflicts=True)
        _load_series(cache, {key[0] for key in missing})
    samples = [Sample(series_id=cache[(host_id, metric, mount)], time=int(at), value=value)
               for host_id, at, rows in entries for metric, mount, value in rows if (host_id, metric, mount) in cache]
    Sample.objects.bulk_create(samples, ignore_conflicts=True, batch_size=5000)
    return len(samples)


# Rollups and retention --------------------------------------------------------------------

def _q(name):
    return connection.ops.quote_name(name)


def _upsert_sql(step, source_sql):
    table = _q(Rollup._meta.db_table)
    return (f"INSERT INTO {table} ({_q('series_id')}, {_q('step')}, {_q('time')}, {_q('avg')}, {_q('max')}, "
            f"{_q('count')}) {source_sql} ON CONFLICT ({_q('series_id')}, {_q('step')}, {_q('time')}) DO UPDATE "
            f"SET {_q('avg')} = excluded.{_q('avg')}, {_q('max')} = excluded.{_q('max')}, "
            f"{_q('count')} = excluded.{_q('count')}")


def _from_raw_sql(step):
    t = _q("time")
    return (f"SELECT {_q('series_id')}, {step}, ({t} / {step}) * {step}, AVG({_q('value')}), MAX({_q('value')}), "
            f"COUNT(*) FROM {_q(Sample._meta.db_table)} WHERE {t} >= %s AND {t} < %s "
            f"GROUP BY {_q('series_id')}, ({t} / {step})")


def _from_rollups_sql(step, source_step):
    t, count = _q("time"), _q("count")
    return (f"SELECT {_q('series_id')}, {step}, ({t} / {step}) * {step}, SUM({_q('avg')} * {count}) / SUM({count}), "
            f"MAX({_q('max')}), SUM({count}) FROM {_q(Rollup._meta.db_table)} "
            f"WHERE {_q('step')} = {source_step} AND {t} >= %s AND {t} < %s "
            f"GROUP BY {_q('series_id')}, ({t} / {step})")


def _environments_sql():
    r, s, h = "r", "s", "h"
    t = f"{r}.{_q('time')}"
    return (f"INSERT INTO {_q(EnvironmentRollup._meta.db_table)} ({_q('environment_id')}, {_q('metric')}, "
            f"{_q('step')}, {_q('time')}, {_q('total')}, {_q('series')}, {_q('max')}) "
            f"SELECT {h}.{_q('environment_id')}, {s}.{_q('metric')}, {r}.{_q('step')}, {t}, "
            f"SUM(CAST({r}.{_q('avg')} AS DOUBLE PRECISION)), COUNT(*), MAX({r}.{_q('max')}) "
            f"FROM {_q(Rollup._meta.db_table)} {r} "
            f"JOIN {_q(Series._meta.db_table)} {s} ON {s}.{_q('id')} = {r}.{_q('series_id')} "
            f"JOIN {_q(Host._meta.db_table)} {h} ON {h}.{_q('id')} = {s}.{_q('host_id')} "
            f"WHERE {r}.{_q('step')} = %s AND {t} >= %s AND {t} < %s AND {s}.{_q('mount')} NOT LIKE 'ctr:%%' "
            f"GROUP BY {h}.{_q('environment_id')}, {s}.{_q('metric')}, {r}.{_q('step')}, {t}")


def roll_environments(step, start, until):
    """(Re)write the per-environment rows of `step` for the buckets in [start, until) from the
    rollups of the same step: the old rows of that range go first, so a host that moved or went
    away leaves no stale one."""
    with transaction.atomic():
        EnvironmentRollup.objects.filter(step=step, time__gte=start, time__lt=until).delete()
        with connection.cursor() as cursor:
            cursor.execute(_environments_sql(), [step, start, until])


def _roll(step, until, source_sql, first_time):
    """Compute buckets of `step` up to `until` (exclusive, a bucket boundary), and their
    per-environment rows (all of them, the first time: a portal upgraded with rollups already
    stored). Returns the new watermark."""
    state = RollupState.objects.filter(step=step).first()
    if state is not None:
        start = max(0, state.done_until - RECOMPUTE_SECONDS[step])
    else:
        first = first_time()
        if first is None:
            return None
        start = first
    start -= start % step
    if start >= until:
        return state.done_until if state else None
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(_upsert_sql(step, source_sql), [start, until])
        backfill = not EnvironmentRollup.objects.filter(step=step).exists()
        roll_environments(step, 0 if backfill else start, until)
        RollupState.objects.update_or_create(step=step, defaults={"done_until": until})
    return until


def rollup(now=None):
    """Roll raw samples up into 5-minute buckets and those into hourly ones (idempotent)."""
    now = int(now if now is not None else now_seconds()) - ROLLUP_GRACE_SECONDS
    until_5m = now - now % FIVE_MINUTES
    done_5m = _roll(FIVE_MINUTES, until_5m, _from_raw_sql(FIVE_MINUTES),
                    lambda: Sample.objects.order_by("time").values_list("time", flat=True).first())
    if done_5m is None:
        return {"5m": None, "1h": None}
    until_1h = done_5m - done_5m % HOURLY
    done_1h = _roll(HOURLY, until_1h, _from_rollups_sql(HOURLY, FIVE_MINUTES),
                    lambda: Rollup.objects.filter(step=FIVE_MINUTES).order_by("time")
                    .values_list("time", flat=True).first())
    return {"5m": done_5m, "1h": done_1h}


def retention(*, raw_hours=None, five_minute_days=None, hourly_days=None, now=None):
    """Remove samples and rollups past their retention. Returns how many rows each lost."""
    conf = {**RETENTION_DEFAULTS, **getattr(settings, "MONITORING_RETENTION", {})}
    raw_hours = raw_hours or conf["raw_hours"]
    five_minute_days = five_minute_days or conf["five_minute_days"]
    hourly_days = hourly_days or conf["hourly_days"]
    now = int(now if now is not None else now_seconds())
    five_before, hour_before = now - five_minute_days * 86400, now - hourly_days * 86400
    # Nothing refers to samples or rollups: each delete is one DELETE ... WHERE statement.
    return {
        "raw": Sample.objects.filter(time__lt=now - raw_hours * 3600).delete()[0],
        "5m": Rollup.objects.filter(step=FIVE_MINUTES, time__lt=five_before).delete()[0],
        "1h": Rollup.objects.filter(step=HOURLY, time__lt=hour_before).delete()[0],
        "environments": EnvironmentRollup.objects.filter(Q(step=FIVE_MINUTES, time__lt=five_before)
                                                         | Q(step=HOURLY, time__lt=hour_before)).delete()[0],
    }


# Reading ----------------------------------------------------------------------------------

def watermark(step):
    state = RollupState.objects.filter(step=step).first()
    return state.done_until if state else 0


def object_series(host_id, key, metrics, since, until):
    """{metric: {"times", "values"}} of one object's raw samples between since and until (unix
    seconds): the series of host `host_id` whose mount is the object's key (a container's, a Swarm
    service's or a program's), read by that key alone (not every object of the host)."""
    ids = dict(Series.objects.filter(host_id=host_id, mount=key, metric__in=metrics).values_list("pk", "metric"))
    found = {}
    rows = (Sample.objects.filter(series_id__in=ids, time__gte=since, time__lt=until).order_by("series_id", "time")
            .values_list("series_id", "time", "value"))
    for series_id, at, value in rows:
        series = found.setdefault(ids[series_id], {"times": [], "values": []})
        series["times"].append(at)
        series["values"].append(value)
    return found


def read(host, metric, since, until, step):
    """Series of one host's metric between since and until (unix seconds), at `step` (RAW or a
    rollup step), as [{"mount", "times", "values"[, "max"]}] ordered by mount.

    Rolled-up reads fill the buckets after the rollup watermark from raw samples, so a chart
    reaches up to the last collection."""
    series = dict(Series.objects.filter(host=host, metric=metric).values_list("id", "mount"))
    out = {pk: {"mount": mount, "times": [], "values": []} for pk, mount in series.items()}
    if not series:
        return []
    if step == RAW:
        rows = (Sample.objects.filter(series_id__in=series, time__gte=since, time__lt=until)
                .order_by("series_id", "time").values_list("series_id", "time", "value"))
        for pk, at, value in rows.iterator(chunk_size=5000):
            out[pk]["times"].append(at)
            out[pk]["values"].append(round(value, 3))
    else:
        for item in out.values():
            item["max"] = []
        mark = max(since, watermark(step))
        rolled = (Rollup.objects.filter(series_id__in=series, step=step, time__gte=since, time__lt=min(until, mark))
                  .order_by("series_id", "time").values_list("series_id", "time", "avg", "max"))
        tail = (Sample.objects.filter(series_id__in=series, time__gte=mark - mark % step, time__lt=until)
                .annotate(bucket=F("time") / step * step).values("series_id", "bucket")
                .annotate(avg=Avg("value"), top=Max("value")).order_by("series_id", "bucket")
                .values_list("series_id", "bucket", "avg", "top"))
        # Rolled-up buckets end at the watermark, where the raw tail begins: no overlap.
        for pk, at, avg, top in list(rolled.iterator(chunk_size=5000)) + list(tail):
            if at < since:
                continue
            out[pk]["times"].append(at)
            out[pk]["values"].append(round(avg, 3))
            out[pk]["max"].append(round(top, 3))
    return sorted(out.values(), key=lambda item: item["mount"])


# Choosing a resolution ---------------------------------------------------------------------

# Raw samples come about once a minute (the collection schedule's default).
RAW_INTERVAL_SECONDS = 60
# Automatic choice: the finest step whose data is still kept and that gives at most this many
# points per series; an explicit step may give up to MAX_POINTS.
TARGET_POINTS = 2500
MAX_POINTS = 20000


def retained_since(step, now):
    conf = {**RETENTION_DEFAULTS, **getattr(settings, "MONITORING_RETENTION", {})}
    keep = {RAW: conf["raw_hours"] * 3600, FIVE_MINUTES: conf["five_minute_days"] * 86400,
            HOURLY: conf["hourly_days"] * 86400}[step]
    return now - keep


def points(since, until, step):
    return (until - since) // (step or RAW_INTERVAL_SECONDS)


def choose_step(since, until, now):
    """The finest resolution that still holds `since` and keeps a chart readable."""
    for step in (RAW, FIVE_MINUTES, HOURLY):
        if since >= retained_since(step, now) and points(since, until, step) <= TARGET_POINTS:
            return step
    return HOURLY
