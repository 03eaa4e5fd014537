"""Inventory snapshots of the real engine: every kind, with the fields the portal shows."""
import pytest

from schedulers.container import PortSpec, ServiceSpec, inventory, snapshot, wait_converged
from schedulers.container import services as svc
from tests.helpers import wait_until

pytestmark = pytest.mark.fleet


def test_snapshot_has_containers_images_networks_volumes_and_swarm_objects(engine, docker_client, ct_images,
                                                                         prefix):
    network = docker_client.networks.create(f"{prefix}-net", driver="overlay", attachable=True,
                                            labels={"opsportal.test": "inv"})
    volume = docker_client.volumes.create(f"{prefix}-vol", labels={"opsportal.test": "inv"})
    web = docker_client.containers.run(ct_images["web:v1"], name=f"{prefix}-web", detach=True,
                                       ports={"8080/tcp": ("127.0.0.1", None)}, labels={"opsportal.test": "inv"},
                                       volumes={volume.name: {"bind": "/data", "mode": "rw"}})
    crashed = docker_client.containers.run(ct_images["crasher"], name=f"{prefix}-crash", detach=True,
                                           environment={"CRASH_AFTER": "0", "CRASH_CODE": "7"})
    change = svc.create(engine, ServiceSpec(name=f"{prefix}-svc", image=ct_images["web:v1"], replicas=2,
                                            endpoint_mode="dnsrr", ports=[PortSpec(8080, mode="host")],
                                            networks=[network.name], labels={"opsportal.test": "inv"}))
    assert wait_converged(engine, change, timeout=60, stable_for=0).ok
    wait_until(lambda: docker_client.containers.get(crashed.id).status == "exited", 30)
    wait_until(lambda: "(healthy)" in docker_client.api.containers(filters={"id": web.id})[0]["Status"], 30)

    snap = snapshot(engine, detail=True)
    assert snap.swarm
    by_name = {c.name: c for c in snap.containers}
    w = by_name[f"{prefix}-web"]
    image = docker_client.images.get(ct_images["web:v1"])
    assert (w.state, w.health, w.image, w.image_id) == ("running", "healthy", ct_images["web:v1"], image.id)
    assert w.labels["opsportal.test"] == "inv" and w.restart_count == 0 and w.started_at and w.created > 0
    assert [p for p in w.ports if p["ip"] == "127.0.0.1" and p["private"] == 8080 and p["public"]]
    assert {"type": "volume", "source": volume.name, "destination": "/data", "rw": True} in w.mounts
    c = by_name[f"{prefix}-crash"]
    assert (c.state, c.exit_code) == ("exited", 7) and c.finished_at
    tasks_containers = [x for x in snap.containers if x.service_id == change.service_id]
    assert len(tasks_containers) == 2 and all(x.task_id and x.node_id and x.service_name == f"{prefix}-svc"
                                              for x in tasks_containers)

    assert image.id in {i.id for i in snap.images}
    assert {ct_images["web:v1"]} <= {t for i in snap.images for t in i.tags}
    net = next(n for n in snap.networks if n.name == network.name)
    assert (net.driver, net.scope, net.attachable, net.labels) == ("overlay", "swarm", True, {"opsportal.test": "inv"})
    assert next(v for v in snap.volumes if v.name == volume.name).labels == {"opsportal.test": "inv"}

    node = next(n for n in snap.nodes if n.id == docker_client.info()["Swarm"]["NodeID"])
    assert node.role == "manager" and node.state == "ready" and node.leader
    service = next(s for s in snap.services if s.id == change.service_id)
    assert (service.mode, service.replicas_desired, service.replicas_running) == ("replicated", 2, 2)
    assert service.endpoint_mode == "dnsrr" and service.ports == [
        {"target": 8080, "published": None, "protocol": "tcp", "mode": "host"}]
    tasks = [t for t in snap.tasks if t.service_id == change.service_id]
    assert sorted(t.slot for t in tasks) == [1, 2]
    assert all(t.state == "running" and t.desired_state == "running" and t.container_id and t.node_id == node.id
               and t.ports and t.ports[0]["target"] == 8080 for t in tasks)
    assert {t.container_id for t in tasks} == {x.id for x in tasks_containers}


def test_without_detail_one_list_call_still_gives_state_health_and_exit_codes(engine, docker_client, ct_images,
                                                                              prefix):
    crashed = docker_client.containers.run(ct_images["crasher"], name=f"{prefix}-crash", detach=True,
                                           environment={"CRASH_AFTER": "0", "CRASH_CODE": "5"})
    wait_until(lambda: docker_client.containers.get(crashed.id).status == "exited", 30)
    calls = []
    original = engine.api.inspect_container
    engine.api.inspect_container = lambda *a, **k: calls.append(a) or original(*a, **k)
    try:
        rows = inventory.containers(engine, detail=False)
    finally:
        del engine.api.inspect_container
    assert calls == []
    c = next(x for x in rows if x.id == crashed.id)
    assert (c.state, c.exit_code, c.restart_count) == ("exited", 5, None)


def test_one_container_for_an_event_and_not_found_after_removal(engine, docker_client, ct_images, prefix):
    import docker

    web = docker_client.containers.run(ct_images["web:v1"], name=f"{prefix}-one", detach=True)
    info = inventory.container(engine, web.id)
    assert (info.name, info.state, info.restart_count) == (f"{prefix}-one", "running", 0)
    web.remove(force=True)
    with pytest.raises(docker.errors.NotFound):
        inventory.container(engine, web.id)
