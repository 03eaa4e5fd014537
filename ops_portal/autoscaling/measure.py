"""Reading a policy's metric: CPU % of the service's running tasks (one stats sample of each task's
container, through the engine of the node it runs on) or a number from an HTTP endpoint.

Each reading returns a Reading (value or None, the figures behind it, a message); nothing here
writes to the database except the CPU samples, stored into the containers' metric series like a
container.stats job's.
"""
import json
import math
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import requests

from ops_portal.containers import engines as engine_rows
from ops_portal.containers.models import Engine, Service, metric_key
from ops_portal.containers.operations import store_samples
from schedulers import container as backend
from schedulers.base import BackendError
from schedulers.container import containers as container_ops

HTTP_TIMEOUT = 5.0
MAX_BODY = 64 * 1024
MAX_TASKS = 20  # tasks sampled per evaluation (the first by slot); the average is over those
SAMPLE_WORKERS = 4


@dataclass
class Reading:
    value: float | None
    replicas: int | None = None  # the service's desired replicas as the engine says now
    samples: dict = field(default_factory=dict)
    message: str = ""


def _number(value):
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError("not a number")
    number = float(value)
    if not math.isfinite(number):
        raise ValueError("not a finite number")
    return number


def parse_metric(text, key=""):
    """The number in an endpoint's answer: plain text, or JSON (a number, or the value under a dotted key)."""
    text = text.strip()
    if not key:
        try:
            return _number(text)
        except ValueError:
            pass
    try:
        data = json.loads(text)
    except ValueError:
        raise ValueError(f"the answer is neither a number nor JSON: {text[:80]!r}") from None
    for part in key.split(".") if key else []:
        if not isinstance(data, dict) or part not in data:
            raise ValueError(f"the JSON answer has no {key!r}")
        data = data[part]
    try:
        return _number(data)
    except ValueError:
        raise ValueError(f"{key or 'the answer'} is not a number: {str(data)[:80]!r}") from None


def read_http(policy):
    """GET the policy's metric URL (5 s, no redirects, no proxies, 64 KiB at most)."""
    session = requests.Session()
    session.trust_env = False  # no proxies or netrc from the environment
    try:
        with session.get(policy.metric_url, timeout=HTTP_TIMEOUT, allow_redirects=False, stream=True,
                         headers={"Accept": "application/json, text/plain"}) as answer:
            body = answer.raw.read(MAX_BODY + 1, decode_content=True)
            if answer.status_code != 200:
                return Reading(None, message=f"{policy.metric_url} answered HTTP {answer.status_code}")
    except requests.RequestException as exc:
        return Reading(None, message=f"{policy.metric_url} could not be read: {exc.__class__.__name__}")
    finally:
        session.close()
    if len(body) > MAX_BODY:
        return Reading(None, message=f"{policy.metric_url} answered more than {MAX_BODY // 1024} KiB")
    try:
        value = parse_metric(body.decode("utf-8", "replace"), policy.metric_key)
    except ValueError as exc:
        return Reading(None, message=str(exc))
    return Reading(value, samples={"url": policy.metric_url, "value": value})


def _sample(spec, container_id):
    client = backend.connect(spec, timeout=engine_rows.CONNECT_TIMEOUT)
    try:
        return container_ops.stats(client, container_id)
    finally:
        client.close()


def read_cpu(policy, info, tasks):
    """The average CPU % (of one CPU, as `docker stats`) of the service's running tasks, each measured
    through the engine of its node (engines of the environment, by Swarm node id)."""
    engine = policy.engine
    tasks = [t for t in tasks if t.state == "running" and t.desired_state == "running" and t.container_id]
    tasks.sort(key=lambda t: (t.slot or 0, t.id))
    nodes = {row.swarm_node_id: row for row in Engine.objects.select_related("host__credential").filter(
        environment_id=engine.environment_id, enabled=True).exclude(swarm_node_id="")}
    if engine.swarm_node_id:
        nodes[engine.swarm_node_id] = engine
    reachable = [t for t in tasks if t.node_id in nodes][:MAX_TASKS]
    if not reachable:
        why = "no running task" if not tasks else "no running task on a node the portal has an engine of"
        return Reading(None, replicas=info.replicas_desired, message=why)
    specs = {node: engine_rows.engine_spec(nodes[node]) for node in {t.node_id for t in reachable}}
    with ThreadPoolExecutor(max_workers=min(SAMPLE_WORKERS, len(reachable))) as pool:
        futures = [(t, pool.submit(_sample, specs[t.node_id], t.container_id)) for t in reachable]
    samples, stored, errors = {}, {}, []
    at = int(time.time())
    for task, future in futures:
        try:
            sample = future.result()
        except BackendError as exc:
            errors.append(f"task {task.id[:12]}: {exc}")
            continue
        if not sample.running:
            continue
        samples[f"{task.id[:12]} (slot {task.slot})"] = sample.cpu_percent
        row = nodes[task.node_id]
        if row.host_id:
            stored.setdefault(row.host_id, []).append((metric_key(row.pk, task.container_id), sample))
    for host_id, keyed in stored.items():
        for key, sample in keyed:
            store_samples(host_id, key, [(at, sample)])
    if not samples:
        return Reading(None, replicas=info.replicas_desired,
                       message="; ".join(errors[:3]) or "no task could be measured")
    value = round(sum(samples.values()) / len(samples), 2)
    skipped = len(tasks) - len(samples)
    note = f"average of {len(samples)} task{'s' if len(samples) != 1 else ''}" + (
        f" ({skipped} not measured)" if skipped else "")
    return Reading(value, replicas=info.replicas_desired, samples=samples, message=note)


def read(policy, service):
    """The service's desired replicas as its engine says now, and the policy's metric."""
    try:
        client = engine_rows.connect(policy.engine)
    except BackendError as exc:
        return Reading(None, message=str(exc))
    try:
        info = backend.inventory.service(client, service.service_id)
        if info is None:
            return Reading(None, message=f"service {service.name} is gone from {policy.engine.name}")
        tasks = (backend.inventory.tasks(client, service_id=service.service_id) if policy.metric == "cpu" else [])
    except BackendError as exc:
        return Reading(None, message=str(exc))
    finally:
        client.close()
    reading = read_http(policy) if policy.metric == "http" else read_cpu(policy, info, tasks)
    reading.replicas = info.replicas_desired
    return reading


def service_of(policy):
    return Service.objects.filter(engine_id=policy.engine_id, name=policy.service_name).first()
