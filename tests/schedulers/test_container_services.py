"""Swarm services against the real engine (host-mode ports and DNS round robin: no IPVS here):
create, scale, rolling update, a failed update rolled back, load balancing, refused specs."""
import json
import time

import pytest

from schedulers.container import (
    HealthCheck,
    Mount,
    PortSpec,
    Resources,
    RestartPolicy,
    ServiceSpec,
    SpecError,
    UpdatePolicy,
    check_balance,
    endpoints,
    publish_mode,
    service_image_update,
    wait_converged,
)
from schedulers.container import services as svc
from tests.schedulers.container_rigs import http_get

pytestmark = pytest.mark.fleet


def _spec(prefix, image, **fields):
    base = {"name": f"{prefix}-web", "image": image, "replicas": 1, "endpoint_mode": "dnsrr",
            "ports": [PortSpec(8080, mode="host")]}
    return ServiceSpec(**{**base, **fields})


def _running(docker_client, service_id):
    tasks = docker_client.api.tasks(filters={"service": service_id, "desired-state": "running"})
    return [t for t in tasks if t["Status"]["State"] == "running"]


def _nanos(text):
    """RFC 3339 with up to nine fraction digits (Go trims trailing zeros) -> integer nanoseconds."""
    from datetime import datetime

    head, _, rest = text.rstrip("Z").partition(".")
    return int(datetime.fromisoformat(head + "+00:00").timestamp()) * 10**9 + int((rest or "0").ljust(9, "0")[:9])


def _versions(engine, service_id):
    seen = set()
    for endpoint in endpoints(engine, service_id).endpoints:
        seen.add(json.loads(http_get(endpoint.port)[1])["version"])
    return seen


def test_create_then_scale_one_to_five_to_two(engine, docker_client, ct_images, prefix):
    events = []
    change = svc.create(engine, _spec(prefix, ct_images["web:v1"]))
    result = wait_converged(engine, change, events.append, timeout=60, stable_for=0)
    assert result.ok and result.outcome == "converged" and (result.running, result.desired) == (1, 1)
    assert [e.state for e in events if e.kind == "task"][-1] == "running"
    assert len(_running(docker_client, change.service_id)) == 1

    result = wait_converged(engine, svc.scale(engine, change.service_id, 5), timeout=90, stable_for=0)
    assert result.ok and (result.running, result.desired) == (5, 5)
    assert len(_running(docker_client, change.service_id)) == 5
    assert docker_client.api.inspect_service(change.service_id)["Spec"]["Mode"]["Replicated"]["Replicas"] == 5

    result = wait_converged(engine, svc.scale(engine, change.service_id, 2), timeout=60, stable_for=0)
    assert result.ok and (result.running, result.desired) == (2, 2)
    assert len(_running(docker_client, change.service_id)) == 2
    assert {t["Slot"] for t in _running(docker_client, change.service_id)} == {1, 2}


def test_rolling_update_v1_to_v2_one_task_at_a_time(engine, docker_client, ct_images, prefix):
    spec = _spec(prefix, ct_images["web:v1"], replicas=3,
                 update_config=UpdatePolicy(parallelism=1, delay=0, order="stop-first", monitor=1))
    change = svc.create(engine, spec)
    assert wait_converged(engine, change, timeout=60, stable_for=0).ok
    assert _versions(engine, change.service_id) == {"v1"}

    seen = []
    change = svc.update(engine, change.service_id, image=ct_images["web:v2"])
    result = wait_converged(engine, change, lambda e: seen.append((time.monotonic(), e)), timeout=120)
    assert result.ok and result.outcome == "update_completed", result.message
    assert _versions(engine, change.service_id) == {"v2"}
    assert len(_running(docker_client, change.service_id)) == 3
    updates = [e.state for _, e in seen if e.kind == "update"]
    assert updates[0] == "updating" and updates[-1] == "completed"
    # Parallelism 1: the engine makes each new task only once the one before it runs (engine clock).
    created, running = {}, {}
    for _, event in seen:
        if event.kind == "task" and event.current:
            created[event.task_id] = _nanos(event.created_at)
            if event.state == "running":
                running.setdefault(event.task_id, _nanos(event.timestamp))
    order = sorted(created, key=created.get)
    assert len(order) == 3 and set(running) == set(order)
    for before, after in zip(order, order[1:], strict=False):
        assert created[after] >= running[before]


def test_update_to_a_crashing_image_rolls_back_and_fails(engine, docker_client, ct_images, prefix):
    spec = _spec(prefix, ct_images["web:v1"], replicas=2,
                 update_config=UpdatePolicy(parallelism=1, delay=0, failure_action="rollback", monitor=5),
                 rollback_config=UpdatePolicy(parallelism=0, delay=0, monitor=1))
    change = svc.create(engine, spec)
    assert wait_converged(engine, change, timeout=60, stable_for=0).ok
    crashing = svc.current_spec(engine, change.service_id)
    crashing.image, crashing.env = ct_images["crasher"], {"CRASH_AFTER": "1"}
    events = []
    result = wait_converged(engine, svc.update(engine, change.service_id, crashing), events.append, timeout=120)
    assert not result.ok and result.outcome == "rolled_back"
    assert "rolled back" in result.message and "non-zero exit (3)" in result.message
    updates = [e.state for e in events if e.kind == "update"]
    assert updates[0] == "updating" and updates[-1] == "rollback_completed"
    assert any(e.kind == "task" and "non-zero exit (3)" in e.error for e in events)
    after = docker_client.api.inspect_service(change.service_id)
    assert after["Spec"]["TaskTemplate"]["ContainerSpec"]["Image"] == ct_images["web:v1"]
    assert wait_converged(engine, change.service_id, timeout=60, stable_for=0).ok
    assert _versions(engine, change.service_id) == {"v1"}


def test_explicit_rollback_returns_to_the_previous_spec(engine, ct_images, prefix):
    change = svc.create(engine, _spec(prefix, ct_images["web:v1"]))
    assert wait_converged(engine, change, timeout=60, stable_for=0).ok
    with pytest.raises(svc.ServiceError, match="no previous spec"):
        svc.rollback(engine, change.service_id)
    assert wait_converged(engine, svc.update(engine, change.service_id, image=ct_images["web:v2"]),
                          timeout=90).ok
    result = wait_converged(engine, svc.rollback(engine, change.service_id), timeout=90, stable_for=0)
    assert result.ok, result.message
    assert _versions(engine, change.service_id) == {"v1"}


def test_requests_to_published_ports_reach_more_than_one_replica(engine, ct_images, prefix):
    change = svc.create(engine, _spec(prefix, ct_images["web:v1"], replicas=3))
    assert wait_converged(engine, change, timeout=60, stable_for=0).ok
    published = endpoints(engine, change.service_id)
    assert published.publish_mode == "host" and published.endpoint_mode == "dnsrr"
    assert len(published.endpoints) == 3 and {e.address for e in published.endpoints} == {"127.0.0.1"}
    report = check_balance(published, 30, timeout=15)  # spread, not latency: a loaded machine is slow
    assert report.answered == 30 and not report.errors
    assert report.distinct == 3 and all(count == 10 for count in report.replicas.values())


def test_a_task_that_cannot_start_fails_with_the_engine_words(engine, docker_client, prefix):
    change = svc.create(engine, ServiceSpec(name=f"{prefix}-ghost", image=f"{prefix}/no-such-image:1"))
    result = wait_converged(engine, change, timeout=60, stable_for=0)
    assert not result.ok and result.outcome == "task_rejected"
    assert "No such image" in result.message and result.failed_tasks[0].state == "rejected"


def test_invalid_specs_are_refused_with_field_errors_and_nothing_is_created(engine, docker_client, ct_images,
                                                                             prefix):
    bad = {"name": f"{prefix}-bad", "image": "UPPER/case image", "replicas": 100000,
           "ports": [{"target": 8080, "published": 70000}, {"target": 80, "published": 8081},
                     {"target": 81, "published": 8081}],
           "update_config": {"parallelism": -1, "delay": "soon", "order": "random", "failure_action": "explode",
                             "max_failure_ratio": 2},
           "resources": {"memory_limit": "1k", "cpu_limit": 0},
           "healthcheck": {"test": ["curl"]}, "constraints": ["zone=a"], "command": "run everything"}
    with pytest.raises(SpecError) as err:
        svc.create(engine, ServiceSpec.from_dict(bad))
    assert set(err.value.errors) >= {
        "image", "replicas", "ports[0].published", "ports[2].published", "update_config.parallelism",
        "update_config.delay", "update_config.order", "update_config.failure_action",
        "update_config.max_failure_ratio", "resources.memory_limit", "resources.cpu_limit", "healthcheck.test",
        "constraints[0]", "command"}
    with pytest.raises(SpecError) as err:
        ServiceSpec.from_dict({"name": "x", "image": "y", "replica": 2})
    assert err.value.errors == {"replica": ["unknown field"]}
    assert not [s for s in docker_client.api.services() if s["Spec"]["Name"].startswith(prefix)]


def test_engine_aware_checks_refuse_clashes_before_sending(engine, docker_client, ct_images, prefix):
    first = svc.create(engine, _spec(prefix, ct_images["web:v1"], ports=[PortSpec(8080, 38181, mode="host")]))
    with pytest.raises(SpecError) as err:
        svc.create(engine, _spec(prefix, ct_images["web:v1"]))
    assert "exists already" in err.value.errors["name"][0]
    with pytest.raises(SpecError) as err:
        svc.create(engine, _spec(prefix, ct_images["web:v1"], name=f"{prefix}-two",
                                 ports=[PortSpec(8080, 38181, mode="host")]))
    assert "published by service" in err.value.errors["ports[0].published"][0]
    with pytest.raises(SpecError) as err:
        svc.scale(engine, first.service_id, -1)
    assert "replicas" in err.value.errors
    with pytest.raises(SpecError) as err:
        svc.update(engine, first.service_id, _spec(prefix, ct_images["web:v1"], replicas=3,
                                                   ports=[PortSpec(8080, 38182, mode="host")]))
    assert "1 are ready" in err.value.errors["replicas"][0]  # one node: one task per fixed host port
    with pytest.raises(SpecError) as err:
        svc.create(engine, _spec(prefix, ct_images["web:v1"], name=f"{prefix}-three", networks=["nope"]))
    assert "no network named nope" in err.value.errors["networks[0]"][0]
    names = sorted(s["Spec"]["Name"] for s in docker_client.api.services() if s["Spec"]["Name"].startswith(prefix))
    assert names == [f"{prefix}-web"]


def test_a_full_spec_round_trips_through_the_engine(engine, docker_client, ct_images, prefix):
    network = docker_client.networks.create(f"{prefix}-net", driver="overlay", attachable=True)
    spec = ServiceSpec(
        name=f"{prefix}-full", image=ct_images["web:v1"], replicas=2, args=["--flag"], env={"A": "1", "B": "two"},
        command=["/app-entrypoint"], ports=[PortSpec(8080, mode="host"), PortSpec(9090, protocol="udp", mode="host")],
        resources=Resources(cpu_limit=0.5, cpu_reservation=0.1, memory_limit="64m", memory_reservation="16m"),
        constraints=["node.role==manager"],
        healthcheck=HealthCheck(["CMD", "true"], interval="2s", timeout="1s", retries=3, start_period=1),
        restart_policy=RestartPolicy("on-failure", delay="1s", max_attempts=3, window="10s"),
        update_config=UpdatePolicy(2, "1s", "start-first", "rollback", "3s", 0.5),
        rollback_config=UpdatePolicy(0, 0, "stop-first", "pause", "1s", 0),
        labels={"team": "ops"}, container_labels={"role": "web"}, networks=[network.name], endpoint_mode="dnsrr",
        mounts=[Mount("/data", f"{prefix}-vol"), Mount("/tmp/scratch", type="tmpfs")],
        cap_add=["NET_ADMIN"], cap_drop=["MKNOD"], user="65534", workdir="/", stop_grace_period="5s")
    change = svc.create(engine, spec)
    back = svc.current_spec(engine, change.service_id)
    from schedulers.container.stacks import diff

    assert diff({spec.name: back}, {spec.name: spec}).unchanged == [spec.name]
    assert back.resources.memory_limit == 64 * 2**20 and back.update_config.delay == 1
    assert publish_mode(docker_client.api.inspect_service(change.service_id)) == "host"


def test_tells_when_a_tag_now_points_to_another_image(engine, docker_client, ct_images, prefix):
    v1, v2 = docker_client.images.get(ct_images["web:v1"]), docker_client.images.get(ct_images["web:v2"])
    tag = f"{prefix}-img:stable"
    v1.tag(tag)
    change = svc.create(engine, _spec(prefix, tag))
    assert wait_converged(engine, change, timeout=60, stable_for=0).ok
    check = service_image_update(engine, change.service_id)
    assert not check.update_available and check.current == v1.id and check.running == [v1.id]
    v2.tag(tag)  # the tag moves, the running tasks do not
    check = service_image_update(engine, change.service_id)
    assert check.update_available and check.current == v2.id and check.running == [v1.id]
    assert "now points to" in check.message and check.unknown == 0


def test_an_update_keeps_what_the_spec_does_not_model(engine, docker_client, ct_images, prefix):
    import docker

    created = docker_client.services.create(
        ct_images["web:v1"], name=f"{prefix}-outside", env=["A=1", "B=2"], hosts={"db.internal": "10.1.2.3"},
        init=True, endpoint_spec=docker.types.EndpointSpec(mode="dnsrr"))
    assert wait_converged(engine, created.id, timeout=60, stable_for=0).ok
    assert wait_converged(engine, svc.update(engine, created.id, image=ct_images["web:v2"]), timeout=90).ok
    container = docker_client.api.inspect_service(created.id)["Spec"]["TaskTemplate"]["ContainerSpec"]
    assert container["Image"] == ct_images["web:v2"]
    assert container["Env"] == ["A=1", "B=2"] and container["Hosts"] == ["10.1.2.3 db.internal"]
    assert container["Init"] is True

    spec = svc.current_spec(engine, created.id)
    spec.env = {}
    assert wait_converged(engine, svc.update(engine, created.id, spec), timeout=90).ok
    container = docker_client.api.inspect_service(created.id)["Spec"]["TaskTemplate"]["ContainerSpec"]
    assert "Env" not in container and container["Hosts"] == ["10.1.2.3 db.internal"]


def test_an_engine_that_goes_away_mid_wait_fails_in_plain_words(engine, ct_images, prefix, tmp_path):
    import threading

    from schedulers.container import EngineError, EngineSpec, connect
    from tests.schedulers.container_rigs import SocketProxy

    proxy = SocketProxy(unix_path=str(tmp_path / "engine.sock")).start()
    client = connect(EngineSpec("flaky", proxy.url), timeout=5)
    try:
        change = svc.create(client, _spec(prefix, ct_images["web:v1"], ports=[]))
        outcome = {}

        def follow():
            try:
                outcome["result"] = wait_converged(client, change, timeout=60, stable_for=30)
            except EngineError as exc:
                outcome["error"] = exc

        thread = threading.Thread(target=follow)
        thread.start()
        time.sleep(1.5)
        proxy.stop()
        thread.join(20)
        assert not thread.is_alive()
        error = outcome["error"]
        assert error.engine == "flaky" and error.state == "down"
        assert "no Docker socket" in str(error) or "closed the connection" in str(error)
    finally:
        client.close()
        proxy.stop()


def test_a_paused_update_fails_naming_the_task_and_its_error(engine, ct_images, prefix):
    change = svc.create(engine, _spec(prefix, ct_images["web:v1"],
                                      update_config=UpdatePolicy(parallelism=1, failure_action="pause", monitor=5)))
    assert wait_converged(engine, change, timeout=60, stable_for=0).ok
    crashing = svc.current_spec(engine, change.service_id)
    crashing.image, crashing.env = ct_images["crasher"], {"CRASH_AFTER": "1"}
    result = wait_converged(engine, svc.update(engine, change.service_id, crashing), timeout=120)
    assert not result.ok and result.outcome == "paused"
    assert "update paused" in result.message and "non-zero exit (3)" in result.message
    assert result.failed_tasks and result.failed_tasks[-1].slot == 1
