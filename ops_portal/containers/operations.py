"""Container operations as job actions: lifecycle, logs (tail and follow), stats (stored into the
metric series of the container), the engine's periodic stats of its running containers,
non-interactive exec, and creating a container from a spec.

Each run(ctx) acts on one container target (ctx.obj, a Container row) or, for create, on an engine
target; the outcome is stored through the writer thread as the watcher would store it.
"""
import json
import statistics
import threading
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor

from ops_portal.monitoring import metrics as monitoring
from ops_portal.monitoring import tasks as monitoring_tasks
from ops_portal.monitoring.choices import COUNTER_RATES, ServiceMetric
from ops_portal.monitoring.models import Sample, Series
from schedulers import container as backend
from schedulers.base import BackendError, CommandResult
from schedulers.container import containers as ops
from schedulers.container.validate import SpecError

from . import safety
from .choices import ContainerMetric, ContainerState
from .models import Container, Engine, Service, metric_key, series_host, service_metric_key, service_series
from .runtime import child_token, client_for, refused, store_container
from .sync import EngineSync


def _lifecycle(operation, describe):
    def run(ctx):
        client = client_for(ctx)
        docker_id = ctx.obj.docker_id
        try:
            info = operation(client, docker_id, ctx.params)
        except SpecError as exc:
            return refused(exc)
        store_container(ctx, info, describe)
        ctx.output("stdout", f"{ctx.obj.name}: {info.state} ({info.status})")
        return CommandResult(exit_code=0, changed=True, data={"state": info.state, "status": info.status,
                                                              "exit_code": info.exit_code})
    return run


start = _lifecycle(lambda c, i, p: ops.start(c, i), "start")
stop = _lifecycle(lambda c, i, p: ops.stop(c, i, timeout=p.get("timeout", 10)), "stop")
restart = _lifecycle(lambda c, i, p: ops.restart(c, i, timeout=p.get("timeout", 10)), "restart")
pause = _lifecycle(lambda c, i, p: ops.pause(c, i), "pause")
unpause = _lifecycle(lambda c, i, p: ops.unpause(c, i), "unpause")
kill = _lifecycle(lambda c, i, p: ops.kill(c, i, signal=p.get("signal") or "SIGKILL"), "kill")


def recreate(ctx):
    """A new container in place of the old one: same name and configuration, a fresh filesystem."""
    client = client_for(ctx)
    old_id = ctx.obj.docker_id
    info = ops.recreate(client, old_id, timeout=ctx.params.get("timeout", 10))
    engine_id = ctx.obj.engine_id

    def write():
        stored = EngineSync(engine_id)
        stored.store(None, old_id, "destroy")
        stored.store(info, info.id, "create")
    ctx.after(write)
    ctx.output("stdout", f"{ctx.obj.name}: recreated as {info.id[:12]}, {info.state} ({info.status})")
    return CommandResult(exit_code=0, changed=True, data={"state": info.state, "status": info.status,
                                                          "container": info.id, "replaced": old_id})


def remove(ctx):
    client = client_for(ctx)
    ops.remove(client, ctx.obj.docker_id, force=ctx.params.get("force", False),
               volumes=ctx.params.get("volumes", False))
    store_container(ctx, None, "destroy")
    ctx.output("stdout", f"{ctx.obj.name}: removed")
    return CommandResult(exit_code=0, changed=True)


def logs(ctx):
    """The last lines; with follow, new lines until canceled, the duration passes or the container stops."""
    client = client_for(ctx)
    params = ctx.params
    follow = params.get("follow", False)
    token = child_token(ctx.cancel, params.get("duration", 0)) if follow else ctx.cancel
    count = [0]

    def line(stream, text):
        count[0] += 1
        ctx.output(stream, text)

    ops.logs(client, ctx.obj.docker_id, tail=params.get("tail", 100), follow=follow,
             timestamps=params.get("timestamps", False), on_line=line, cancel=token)
    if ctx.cancel.is_set():
        return CommandResult(canceled=True, data={"lines": count[0]})
    if follow:
        token.cancel("done")  # ends the child token's watcher thread (never the job's own token)
    return CommandResult(exit_code=0, changed=False, data={"lines": count[0]})


def sample_rows(sample):
    return [(ContainerMetric.CPU_PERCENT.value, sample.cpu_percent),
            (ContainerMetric.MEM_BYTES.value, float(sample.memory_usage)),
            (ContainerMetric.MEM_PERCENT.value, sample.memory_percent),
            (ContainerMetric.NET_RX.value, float(sample.net_rx)), (ContainerMetric.NET_TX.value, float(sample.net_tx)),
            (ContainerMetric.BLOCK_READ.value, float(sample.block_read)),
            (ContainerMetric.BLOCK_WRITE.value, float(sample.block_write))]


def keyed_rows(key, sample):
    """A sample's rows for monitoring.store: (metric, mount = the container's key, value)."""
    return [(metric, key, value) for metric, value in sample_rows(sample)]


RATE_WINDOW = 180  # seconds: a rate is taken against a counter sampled at most this long before


def last_counters(pairs, now):
    """{(host id, series key): {counter metric: (unix seconds, value)}}: the latest sample of each
    counter of these containers' series from the last RATE_WINDOW seconds (two queries)."""
    if not pairs:
        return {}
    series = (Series.objects.filter(host_id__in={host_id for host_id, _ in pairs},
                                    mount__in={key for _, key in pairs}, metric__in=[m.value for m in COUNTER_RATES])
              .values_list("pk", "host_id", "mount", "metric"))
    ids = {pk: ((host_id, mount), metric) for pk, host_id, mount, metric in series if (host_id, mount) in pairs}
    found = defaultdict(dict)
    rows = Sample.objects.filter(series_id__in=ids, time__gte=now - RATE_WINDOW).values_list("series_id", "time",
                                                                                              "value")
    for series_id, at, value in rows:
        pair, metric = ids[series_id]
        held = found[pair].get(metric)
        if held is None or at > held[0]:
            found[pair][metric] = (at, value)
    return found


def rate_rows(key, sample, at, previous):
    """(rate metric, key, bytes a second) of each counter with an earlier sample in `previous`
    ({counter: (time, value)}); none across a restart (the counter went back) or within a second."""
    current = dict(sample_rows(sample))
    rows = []
    for counter, rate in COUNTER_RATES.items():
        held = previous.get(counter.value)
        value = current[counter.value]
        if held is not None and at > held[0] and value >= held[1]:
            rows.append((rate.value, key, round((value - held[1]) / (at - held[0]), 3)))
    return rows


def store_samples(host_id, key, samples):
    """[(unix seconds, StatsSample)] into the container's series (monitoring.Series of its host,
    `mount` = the container's key)."""
    return monitoring.store([(host_id, at, keyed_rows(key, sample)) for at, sample in samples])


def stats(ctx):
    """Sample CPU, memory, network and block I/O (the engine measures about a second per sample)."""
    client = client_for(ctx)
    container = ctx.obj
    samples = []
    for _ in range(ctx.params.get("samples", 1)):
        if ctx.cancel.is_set():
            break
        sample = ops.stats(client, container.docker_id)
        if not sample.running:
            ctx.output("stderr", f"{container.name} is not running: no figures")
            break
        at = int(time.time())
        samples.append((at, sample))
        ctx.output("stdout", f"cpu {sample.cpu_percent:.1f}% of {sample.online_cpus} CPUs, memory "
                             f"{sample.memory_usage / 2**20:.1f} MiB ({sample.memory_percent:.1f}% of the limit), "
                             f"net rx {sample.net_rx} B tx {sample.net_tx} B, block read {sample.block_read} B "
                             f"written {sample.block_write} B, {sample.pids} processes")
    host_id = container.host_id or ctx.resources.get("engine_hosts", {}).get(container.engine_id)
    key = container.metric_key
    if samples and host_id:
        ctx.after(lambda: store_samples(host_id, key, samples))
    elif samples:
        ctx.output("stderr", "the engine is tied to no inventory host: the samples are not stored")
    if not samples:
        return CommandResult(exit_code=1, error=f"{container.name} is not running", data={"samples": 0})
    last = samples[-1][1]
    return CommandResult(exit_code=0, changed=False, data={
        "samples": len(samples), "cpu_percent": last.cpu_percent, "memory_usage": last.memory_usage,
        "memory_percent": last.memory_percent, "net_rx": last.net_rx, "net_tx": last.net_tx,
        "block_read": last.block_read, "block_write": last.block_write, "pids": last.pids})


def prepare_engine_stats(runner):
    """The running containers of the job's engines, read once in the task thread: {engine id:
    [(name, docker id, series host id, series key, Swarm service id)]}, containers without an
    inventory host to hold their series left out (counted in `unplaced`); and the environment's
    Swarm services, whose tasks' figures the job averages when it ends (ServiceRollup)."""
    engine_ids = [obj.pk for obj in runner.objects.values() if isinstance(obj, Engine)]
    running, unplaced = {pk: [] for pk in engine_ids}, {pk: 0 for pk in engine_ids}
    rows = (Container.objects.filter(engine_id__in=engine_ids, state=ContainerState.RUNNING)
            .annotate(series_host=series_host()).order_by("engine_id", "name")
            .values_list("engine_id", "name", "docker_id", "series_host", "service_id"))
    for engine_id, name, docker_id, host_id, service_id in rows:
        if host_id is None:
            unplaced[engine_id] += 1
        else:
            running[engine_id].append((name, docker_id, host_id, metric_key(engine_id, docker_id), service_id))
    runner.resources["running_containers"] = running
    runner.resources["unplaced_containers"] = unplaced
    pairs = {(host_id, key) for items in running.values() for _, _, host_id, key, _ in items}
    runner.resources["last_counters"] = last_counters(pairs, int(time.time()))  # for the I/O rates
    services = service_series(Service.objects.filter(engine__environment_id=runner.job.environment_id))
    runner.resources["service_rollup"] = ServiceRollup(runner, services)  # closed before evaluate_after
    runner.resources["evaluate_after"] = monitoring_tasks.EvaluateAfter(runner)


class ServiceRollup:
    """A sampling job's resource: the figures of the Swarm tasks' containers its targets sampled,
    averaged per service when the job closes its resources, into the service's series (its manager
    engine's inventory host's, mount "svc:<service row id>"), before EvaluateAfter asks for an
    evaluation. A service's tasks on engines of another site's job are averaged by that job."""

    def __init__(self, runner, services):
        self.writer, self.services = runner.writer, services
        self._lock = threading.Lock()
        self._figures = defaultdict(list)  # (host id, key) -> [(cpu %, memory % of the limit)]

    def add(self, service_id, sample):
        found = self.services.get(service_id) if service_id else None
        if found is None:
            return
        pk, host_id = found
        with self._lock:
            self._figures[(host_id, service_metric_key(pk))].append((sample.cpu_percent, sample.memory_percent))

    def rows(self, at):
        """The entries for monitoring.store: each service's averages at `at` (unix seconds)."""
        with self._lock:
            figures = dict(self._figures)
        return [(host_id, at, [(ServiceMetric.CPU_PERCENT.value, key, round(statistics.fmean(c for c, _ in tasks), 3)),
                               (ServiceMetric.MEM_PERCENT.value, key, round(statistics.fmean(m for _, m in tasks), 3))])
                for (host_id, key), tasks in figures.items()]

    def close(self):
        batch = self.rows(int(time.time()))
        if batch:
            self.writer.call(lambda: monitoring.store(batch))


def engine_stats(ctx):
    """Sample every running container of the engine, `parallel` at a time, into the containers'
    metric series (container metric rules read them), with the network and block I/O rates since
    each one's previous sample (prepare read the counters once: last_counters). The engine answers
    each after two of its once-a-second readings, about 2 s, whatever else it is asked meanwhile:
    the calls wait, side by side, so many at a time cost little more than one."""
    client = client_for(ctx)
    engine = ctx.obj
    running = ctx.resources["running_containers"].get(engine.pk, [])
    limit = ctx.params.get("max_containers", 500)
    chosen, skipped = running[:limit], max(len(running) - limit, 0)
    unplaced = ctx.resources["unplaced_containers"].get(engine.pk, 0)
    started = time.monotonic()

    def sample(item):
        if ctx.cancel.is_set():
            return item, None, "canceled"
        try:
            return item, ops.stats(client, item[1]), None
        except BackendError as exc:
            return item, None, str(exc)

    batch, failed = [], []
    rollup = ctx.resources.get("service_rollup")
    counters = ctx.resources.get("last_counters", {})
    with ThreadPoolExecutor(max_workers=max(1, min(ctx.params.get("parallel", 100), len(chosen) or 1)),
                            thread_name_prefix="container-stats") as pool:
        for (name, _, host_id, key, service_id), figures, error in pool.map(sample, chosen):
            if error is not None:
                failed.append(f"{name}: {error}")
            elif figures.running:  # it stopped meanwhile: no figures
                at = int(time.time())
                rates = rate_rows(key, figures, at, counters.get((host_id, key), {}))
                batch.append((host_id, at, keyed_rows(key, figures) + rates))
                if rollup is not None:
                    rollup.add(service_id, figures)
    if batch:
        ctx.after(lambda: monitoring.store(batch))
    for line in failed[:20]:
        ctx.output("stderr", line)
    if len(failed) > 20:
        ctx.output("stderr", f"... and {len(failed) - 20} more failed")
    notes = []
    if skipped:
        notes.append(f"{skipped} more running containers not sampled (at most {limit} a pass)")
    if unplaced:
        notes.append(f"{unplaced} running containers skipped: the engine is tied to no inventory host")
    ctx.output("stdout", f"sampled {len(batch)} of {len(running) + unplaced} running containers on {engine.name} in "
                         f"{time.monotonic() - started:.1f} s" + "".join(f"; {note}" for note in notes))
    data = {"sampled": len(batch), "failed": len(failed), "skipped": skipped, "unplaced": unplaced}
    if failed and not batch:
        return CommandResult(exit_code=1, error=f"no container of {engine.name} could be sampled", data=data)
    return CommandResult(exit_code=0, changed=False, data=data)


def exec_command(ctx):
    """Run an argument vector in the container; output streams, its exit code is the result."""
    client = client_for(ctx)
    argv = json.loads(ctx.params["argv"])
    try:
        result = ops.exec_run(client, ctx.obj.docker_id, argv, on_line=ctx.output, cancel=ctx.cancel,
                              timeout=ctx.timeout, user=ctx.params.get("user") or "",
                              workdir=ctx.params.get("workdir") or None)
    except SpecError as exc:
        return refused(exc)
    result.changed = None
    return result


def create(ctx):
    """Create and start a container on the engine target from a checked ContainerSpec."""
    client = client_for(ctx)
    try:
        spec = backend.check_container(backend.ContainerSpec.from_dict(json.loads(ctx.params["spec"])))
    except SpecError as exc:
        return refused(exc)
    safety.recheck(ctx, spec)
    info = ops.run(client, spec)
    ctx.output("stdout", f"container {info.name} ({info.id[:12]}) {info.state}")
    engine_id = ctx.obj.pk

    ctx.after(lambda: EngineSync(engine_id).store(info, info.id, "create"))
    return CommandResult(exit_code=0, changed=True, data={"container": info.id, "name": info.name,
                                                          "state": info.state})


def guard(run):
    """Backend errors other than BackendError (a spec refused as ValueError) fail the target in words."""
    def guarded(ctx):
        try:
            return run(ctx)
        except SpecError as exc:
            return refused(exc)
        except ValueError as exc:
            raise BackendError(str(exc)) from None
    guarded.__name__ = getattr(run, "__name__", "run")
    return guarded
