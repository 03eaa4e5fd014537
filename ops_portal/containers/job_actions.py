"""The container level's job actions, on the same path as the host level's: approval policies,
leases (mutating actions), risk tags ("mutating", "destructive"), audit and live output.

Containers: container.start/stop/restart/pause/unpause/kill/remove/logs/stats/exec (on container
targets; bulk = many targets, the usual strategies) and container.create (on an engine).
Services: service.scale/update/rollback/remove/check_balance (on service targets) and
service.create (on an engine). Stacks: stack.deploy and stack.remove (on the stack's engine).
"""
from ops_portal.jobs.actions import ActionSpec, register
from ops_portal.monitoring.choices import CONTAINER_STATS_ACTION

from . import operations, safety, swarm
from .models import Engine
from .runtime import prepare_engines
from .targets import CONTAINERS, ENGINES, SERVICES

SIGNAL = r"(SIG)?[A-Z0-9+-]{2,12}|[0-9]{1,2}"
DURATION = r"[0-9]{1,9}(\.[0-9]{1,9})?|([0-9]{1,9}(\.[0-9]{1,9})?(ns|us|ms|s|m|h)){1,4}"
HTTP_PATH = r"/[A-Za-z0-9._~!$&'()*+,;=:@%/?-]{0,500}"
POSIX_PATH = r"/[A-Za-z0-9._/-]{0,500}"
USER = r"[A-Za-z0-9_.-]{1,32}(:[A-Za-z0-9_.-]{1,32})?"


def destructive(params, count):
    return ["destructive"]


def _prepare(*steps):
    def prepare(runner):
        prepare_engines(runner)
        for step in steps:
            step(runner)
    return prepare


def _engine_hosts(runner):
    """Where an engine's containers' samples go: the engine's inventory host."""
    ids = {obj.engine_id for obj in runner.objects.values()}
    runner.resources["engine_hosts"] = dict(Engine.objects.filter(pk__in=ids).values_list("pk", "host_id"))


def container_action(name, label, run, *, parameters=(), mutating=True, risks=None, description="", prepare=()):
    register(ActionSpec(name=name, label=label, target_kind=CONTAINERS.name, parameters=list(parameters),
                        run=operations.guard(run), mutating=mutating, description=description,
                        risks=risks or (lambda params, count: []), prepare=_prepare(*prepare)))


STOP_TIMEOUT = {"name": "timeout", "type": "int", "default": 10, "min": 0, "max": 3600,
                "label": "Seconds before SIGKILL"}

container_action("container.start", "Start containers", operations.start)
container_action("container.stop", "Stop containers", operations.stop, parameters=[STOP_TIMEOUT],
                 description="SIGTERM, then SIGKILL after the timeout.")
container_action("container.restart", "Restart containers", operations.restart, parameters=[STOP_TIMEOUT])
container_action("container.recreate", "Recreate containers", operations.recreate, parameters=[STOP_TIMEOUT],
                 description="Stop, then replace by a new container with the same name and configuration (a fresh "
                             "filesystem, the image its tag names now; anonymous volumes are new).")
container_action("container.pause", "Pause containers", operations.pause)
container_action("container.unpause", "Unpause containers", operations.unpause)
container_action("container.kill", "Send a signal to containers", operations.kill, parameters=[
    {"name": "signal", "type": "string", "default": "SIGKILL", "pattern": SIGNAL, "label": "Signal"}])
container_action("container.remove", "Remove containers", operations.remove, risks=destructive, parameters=[
    {"name": "force", "type": "bool", "default": False, "label": "Even when running"},
    {"name": "volumes", "type": "bool", "default": False, "label": "With their anonymous volumes"}])
container_action("container.logs", "Container logs", operations.logs, mutating=False, parameters=[
    {"name": "tail", "type": "int", "default": 100, "min": 0, "max": 100000, "label": "Last lines"},
    {"name": "follow", "type": "bool", "default": False, "label": "Follow new lines"},
    {"name": "duration", "type": "int", "default": 0, "min": 0, "max": 86400,
     "label": "Follow for seconds (0: until canceled)"},
    {"name": "timestamps", "type": "bool", "default": False}],
    description="The last lines; with follow, new lines live until canceled or the duration passed.")
container_action("container.stats", "Container stats", operations.stats, mutating=False, prepare=[_engine_hosts],
                 parameters=[{"name": "samples", "type": "int", "default": 1, "min": 1, "max": 120,
                              "label": "Samples (about a second each)"}],
                 description="CPU %, memory, network and block I/O, stored into the container's metric series.")
container_action("container.exec", "Run a command in containers", operations.exec_command, parameters=[
    {"name": "argv", "type": "text", "required": True, "max_length": 16384, "label": "Command",
     "help": 'An argument vector as JSON: ["ls", "-l", "/"]. No shell unless you name one.'},
    {"name": "user", "type": "string", "pattern": USER},
    {"name": "workdir", "type": "string", "pattern": POSIX_PATH}],
    description="Non-interactive: output streams, the command's exit code is the result.")

register(ActionSpec(
    name="container.create", label="Create a container", target_kind=ENGINES.name,
    parameters=[{"name": "spec", "type": "text", "required": True, "max_length": 65536, "label": "Container spec"}],
    run=operations.guard(operations.create), prepare=_prepare(safety.prepare),
    description="Create and start a container from a spec written in the portal.",
))

register(ActionSpec(
    name=CONTAINER_STATS_ACTION, label="Sample running containers", target_kind=ENGINES.name, mutating=False,
    parameters=[{"name": "parallel", "type": "int", "default": 100, "min": 1, "max": 256,
                 "label": "Containers sampled at a time"},
                {"name": "max_containers", "type": "int", "default": 500, "min": 1, "max": 10000,
                 "label": "At most this many containers per engine"}],
    run=operations.guard(operations.engine_stats), prepare=_prepare(operations.prepare_engine_stats),
    description="CPU %, memory, network and block I/O of every running container of the engines, into their "
                "metric series (container metric rules read them; the built-in schedule runs it every minute).",
))

# Services ----------------------------------------------------------------------------------

SERVICE_SPEC = {"name": "spec", "type": "text", "required": True, "max_length": 65536, "label": "Service spec"}
register(ActionSpec(
    name="service.create", label="Create a service", target_kind=ENGINES.name, parameters=[SERVICE_SPEC],
    run=operations.guard(swarm.create_service), prepare=_prepare(safety.prepare),
    description="Create a Swarm service from a spec and follow it until it converged.",
))
register(ActionSpec(
    name="service.scale", label="Scale a service", target_kind=SERVICES.name,
    parameters=[{"name": "replicas", "type": "int", "required": True, "min": 0, "max": 1000},
                {"name": "reason", "type": "text", "max_length": 2000, "label": "Why",
                 "help": "Shown on the job and to approvers (autoscaling writes its decision and the metric here)."}],
    run=operations.guard(swarm.scale), prepare=_prepare(),
    description="Set the replicas and follow the service until it converged.",
))
register(ActionSpec(
    name="service.update", label="Update a service", target_kind=SERVICES.name, parameters=[
        {"name": "image", "type": "string", "max_length": 500, "label": "New image"},
        {**SERVICE_SPEC, "required": False, "label": "Whole new spec (JSON)"},
        {"name": "force", "type": "bool", "default": False, "label": "Restart tasks even if nothing changed"},
        {"name": "parallelism", "type": "int", "min": 0, "max": 1000, "label": "Tasks at a time (0: all)"},
        {"name": "delay", "type": "string", "pattern": DURATION, "label": "Delay between batches"},
        {"name": "order", "type": "choice", "choices": ["stop-first", "start-first"]},
        {"name": "failure_action", "type": "choice", "choices": ["pause", "continue", "rollback"]},
        {"name": "monitor", "type": "string", "pattern": DURATION, "label": "Watch each task for"},
        {"name": "max_failure_ratio", "type": "string", "pattern": r"(0(\.[0-9]{1,4})?|1(\.0{1,4})?)"}],
    run=operations.guard(swarm.update), prepare=_prepare(safety.prepare),
    description="Roll the service to a new image or spec, task by task; fails with the engine's words.",
))
register(ActionSpec(
    name="service.rollback", label="Roll a service back", target_kind=SERVICES.name, parameters=[],
    run=operations.guard(swarm.rollback), prepare=_prepare(),
    description="Go back to the previous spec (the service's rollback config).",
))
register(ActionSpec(
    name="service.remove", label="Remove a service", target_kind=SERVICES.name, parameters=[], risks=destructive,
    run=operations.guard(swarm.remove_service), prepare=_prepare(),
))
register(ActionSpec(
    name="service.check_balance", label="Check load balancing", target_kind=SERVICES.name, mutating=False,
    parameters=[{"name": "requests", "type": "int", "default": 20, "min": 1, "max": 1000},
                {"name": "path", "type": "string", "default": "/", "pattern": HTTP_PATH}],
    run=operations.guard(swarm.check_balance), prepare=_prepare(),
    description="Send requests to the published endpoints on 127.0.0.1 and count the replicas that answer.",
))

# Stacks ------------------------------------------------------------------------------------

STACK = {"name": "stack", "type": "int", "required": True, "min": 1, "label": "Stack id"}
register(ActionSpec(
    name="stack.deploy", label="Deploy a stack", target_kind=ENGINES.name, parameters=[
        STACK, {"name": "compose_hash", "type": "string", "required": True, "pattern": "[0-9a-f]{64}"},
        {"name": "prune", "type": "bool", "default": True, "label": "Remove services left out of the file"}],
    run=operations.guard(swarm.deploy_stack), prepare=_prepare(safety.prepare, swarm.prepare_deploy),
    description="The diff against what runs, then networks and services created or updated, followed until "
                "converged.",
))
register(ActionSpec(
    name="stack.remove", label="Remove a stack", target_kind=ENGINES.name, parameters=[STACK], risks=destructive,
    run=operations.guard(swarm.remove_stack), prepare=_prepare(swarm.prepare_remove),
))
