"""What container-level job actions share: one engine client per engine per job, engine errors as
failed targets in plain words, and following a service until it converged, task by task.

Target threads talk only to engines; database writes go through the job's writer thread
(ctx.after), as for every job.
"""
import threading
import time

from ops_portal.jobs.choices import EventKind
from ops_portal.jobs.models import JobTarget
from schedulers import container as backend
from schedulers.base import BackendError, CancelToken, CommandResult

from . import engines as engine_rows
from . import sync
from .models import Engine

FOLLOW_TIMEOUT = 600
TASK_ROWS = 200


class EnginePool:
    """Clients of the job's engines, opened on first use and closed when the job ends. Engine specs
    are read in the task thread (prepare); clients are opened by target threads."""

    def __init__(self, engine_ids):
        rows = Engine.objects.select_related("host__credential").in_bulk(list(engine_ids))
        self.specs = {pk: engine_rows.engine_spec(row) for pk, row in rows.items()}
        self.enabled = {pk: row.enabled for pk, row in rows.items()}
        self.clients = {}
        self.lock = threading.Lock()

    def client(self, engine_id):
        with self.lock:
            if engine_id in self.clients:
                return self.clients[engine_id]
            spec = self.specs.get(engine_id)
            if spec is None:
                raise BackendError("the engine is no longer in the inventory")
            if not self.enabled[engine_id]:
                raise BackendError(f"engine {spec.name} is disabled")
            client = backend.connect(spec, timeout=engine_rows.CONNECT_TIMEOUT)
            self.clients[engine_id] = client
            return client

    def close(self):
        with self.lock:
            clients, self.clients = list(self.clients.values()), {}
        for client in clients:
            client.close()


def engine_of(obj):
    return obj.pk if isinstance(obj, Engine) else obj.engine_id


def prepare_engines(runner):
    """The job's EnginePool (resources["engines"])."""
    runner.resources["engines"] = EnginePool({engine_of(obj) for obj in runner.objects.values()})


def client_for(ctx):
    if ctx.obj is None:
        raise BackendError(f"{ctx.target.name} is no longer in the inventory")
    return ctx.resources["engines"].client(engine_of(ctx.obj))


def refused(exc):
    """A spec refused before anything was sent, as a failed target."""
    return CommandResult(exit_code=1, error=f"refused before anything was sent: {exc}",
                         data={"field_errors": getattr(exc, "errors", {})})


def store_container(ctx, info, action):
    """Write what an operation left (a ContainerInfo) through the writer thread, as the watcher would."""
    engine_id = ctx.obj.engine_id

    def write():
        sync.EngineSync(engine_id).store(info, ctx.obj.docker_id, action)

    ctx.after(write)


def refresh_service(ctx, client, service_id):
    """Read a service and its tasks again and store them (the watcher does too; this is at once)."""
    engine_id = engine_of(ctx.obj)
    try:
        info = backend.inventory.service(client, service_id)
        tasks = backend.inventory.tasks(client, service_id=service_id) if info is not None else []
    except BackendError:
        return
    ctx.after(lambda: sync.EngineSync(engine_id).store_service(service_id, info, tasks))


def _task_row(change):
    return {"task": change.task_id[:12], "slot": change.slot, "node": change.node_id[:12], "state": change.state,
            "desired": change.desired_state, "error": change.error or "", "current": change.current,
            "container": change.container_id[:12], "exit_code": change.exit_code}


class Follower:
    """wait_converged's on_event: each task state change is an output line and a row of the target's
    task grid (the target's data, kept current through the writer thread)."""

    def __init__(self, ctx, label):
        self.ctx, self.label = ctx, label
        self.tasks = {}
        self.last_store = 0.0

    def __call__(self, change):
        ctx = self.ctx
        if change.kind == "update":
            words = f": {change.message}" if change.message else ""
            ctx.output("stdout", f"{self.label}: update {change.state}{words}")
            return
        row = _task_row(change)
        self.tasks[change.task_id] = row
        where = f"slot {change.slot}" if change.slot else f"node {change.node_id[:12]}"
        words = f" — {change.error}" if change.error else (f" — {change.message}" if change.message
                                                            and change.state in ("rejected", "failed") else "")
        ctx.output("stdout", f"{self.label}: task {change.task_id[:12]} ({where}) {change.state}"
                             f" (desired {change.desired_state}){words}")
        ctx.writer.emit(EventKind.INFO, "", target=ctx.target.index, data={"task": row})
        if time.monotonic() - self.last_store > 0.5:
            self.store()

    def rows(self):
        rows = sorted(self.tasks.values(), key=lambda r: (r["slot"] or 0, not r["current"], r["task"]))
        return rows[-TASK_ROWS:]

    def store(self):
        self.last_store = time.monotonic()
        job_id, index, rows = self.ctx.job.pk, self.ctx.target.index, self.rows()

        self.ctx.after(lambda: JobTarget.objects.filter(job_id=job_id, index=index).update(data={"tasks": rows}))


def follow(ctx, client, change, label, *, timeout=None):
    """Follow a ServiceChange until converged; the result as a CommandResult with the task rows."""
    follower = Follower(ctx, label)
    result = backend.wait_converged(client, change, follower, cancel=ctx.cancel,
                                    timeout=timeout or ctx.timeout or FOLLOW_TIMEOUT)
    follower.store()
    data = {"outcome": result.outcome, "running": result.running, "desired": result.desired,
            "seconds": round(result.seconds, 2), "tasks": follower.rows(), "service_id": change.service_id,
            "version": change.version}
    ctx.output("stdout" if result.ok else "stderr", result.message)
    if result.ok:
        return CommandResult(exit_code=0, changed=True, data=data)
    if result.outcome == "canceled":
        return CommandResult(canceled=True, error=result.message, data=data)
    return CommandResult(exit_code=1, error=result.message, data=data)


def child_token(parent, seconds):
    """A CancelToken set when `parent` is, or after `seconds` (0: only with the parent)."""
    token = CancelToken()

    def watch():
        deadline = time.monotonic() + seconds if seconds else None
        while not token.is_set():
            if parent.wait(0.2):
                token.cancel(parent.reason)
                return
            if deadline is not None and time.monotonic() >= deadline:
                token.cancel("duration")
                return

    threading.Thread(target=watch, daemon=True).start()
    return token
