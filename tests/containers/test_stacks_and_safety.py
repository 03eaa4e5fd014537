"""Stacks, safe defaults, load balancing and image updates through the portal, against the real
engine in Swarm mode (host-mode ports and DNS round robin: this kernel has no IPVS)."""
import pytest
from django.urls import reverse

from ops_portal.accounts.choices import Role
from ops_portal.containers import services, sync
from ops_portal.containers.models import AllowedHostPath, Service, Stack
from ops_portal.jobs.models import Job, JobEvent
from schedulers import container as backend
from tests.containers.helpers import act, operator, person, synced_engine
from tests.jobs.helpers import wait_job

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.live, pytest.mark.fleet]


@pytest.fixture
def local(env, engine):
    return synced_engine(env, engine)


def compose(image, replicas, extra=""):
    return (f"services:\n  web:\n    image: {image}\n    deploy:\n      replicas: {replicas}\n"
            f"      update_config:\n        parallelism: 1\n        monitor: 1s\n    ports:\n      - target: 8080\n"
            f"{extra}")


def output(job):
    return list(JobEvent.objects.filter(job=job, kind="output").order_by("seq").values_list("text", flat=True))


def test_a_stack_is_deployed_changed_with_its_diff_and_removed(env, local, engine, docker_client, ct_images, prefix,
                                                               live_worker):
    actor = operator(env)
    name = prefix.replace("opsportal-ct-", "ct")  # stack names are short
    stack = services.create_stack(actor, engine=local, name=name, compose=compose(ct_images["web:v1"], 2))
    assert services.stack_diff(stack)["added"] == [f"{name}_web"]
    job = wait_job(services.deploy_stack(actor, stack), "succeeded", 180)
    assert f"+ {name}_web (new)" in output(job)
    web = Service.objects.get(engine=local, name=f"{name}_web")
    assert (web.replicas_running, web.stack, web.publish_mode) == (2, name, "host")
    assert Stack.objects.get(pk=stack.pk).deployed_hash
    stack = services.update_stack(actor, Stack.objects.get(pk=stack.pk), compose=compose(ct_images["web:v2"], 3))
    diff = services.stack_diff(stack)
    fields = {c["field"]: (c["old"], c["new"]) for c in diff["changed"][f"{name}_web"]}
    assert fields["image"] == (ct_images["web:v1"], ct_images["web:v2"]) and fields["replicas"] == (2, 3)
    job = wait_job(services.deploy_stack(actor, stack), "succeeded", 240)
    assert any(line.startswith("    image:") for line in output(job))
    tasks = docker_client.api.tasks(filters={"service": web.service_id, "desired-state": "running"})
    assert len(tasks) == 3 and {t["Spec"]["ContainerSpec"]["Image"] for t in tasks} == {ct_images["web:v2"]}
    wait_job(services.remove_stack(actor, stack), "succeeded", 120)
    assert not docker_client.api.services(filters={"label": f"com.docker.stack.namespace={name}"})
    assert not Service.objects.filter(engine=local, stack=name).exists()


def test_an_operators_privileged_create_and_host_bind_mount_are_refused_and_change_nothing(
        env, local, docker_client, ct_images, prefix, api):
    user = person(env, Role.OPERATOR)
    api.force_authenticate(user)
    before = {s["ID"] for s in docker_client.api.services()}
    containers_before = {c["Id"] for c in docker_client.api.containers(all=True)}
    attempts = [
        ("api:service-list", {"name": f"{prefix}-root", "image": ct_images["web:v1"],
                              "mounts": [{"type": "bind", "source": "/", "target": "/host"}]},
         "bind-mounts the host path /"),
        ("api:service-list", {"name": f"{prefix}-caps", "image": ct_images["web:v1"], "cap_add": ["SYS_ADMIN"]},
         "adds the capability CAP_SYS_ADMIN"),
        ("api:container-list", {"name": f"{prefix}-priv", "image": ct_images["web:v1"], "privileged": True},
         "runs privileged"),
        ("api:container-list", {"name": f"{prefix}-net", "image": ct_images["web:v1"], "network_mode": "host"},
         "uses the host's network namespace"),
    ]
    for route, spec, words in attempts:
        response = api.post(reverse(route), {"engine": local.pk, "spec": spec}, format="json")
        assert response.status_code == 403, response.content
        assert words in response.json()["error"]["message"], response.json()
    assert not Job.objects.exists()
    assert {s["ID"] for s in docker_client.api.services()} == before
    assert {c["Id"] for c in docker_client.api.containers(all=True)} - containers_before == set()
    # Below an allowed host path, an operator's bind mount goes through (and only there).
    AllowedHostPath.objects.create(environment=env, path="/srv/opsportal-ct")
    response = api.post(reverse("api:service-list"), {"engine": local.pk, "spec": {
        "name": f"{prefix}-data", "image": ct_images["web:v1"],
        "mounts": [{"type": "bind", "source": "/srv/opsportal-ctx", "target": "/x"}]}}, format="json")
    assert response.status_code == 403 and "/srv/opsportal-ctx" in response.json()["error"]["message"]
    response = api.post(reverse("api:service-list"), {"engine": local.pk, "spec": {
        "name": f"{prefix}-data", "image": ct_images["web:v1"],
        "mounts": [{"type": "bind", "source": "/srv/opsportal-ct/../../etc", "target": "/x"}]}}, format="json")
    assert response.status_code == 400 and "spec.mounts[0].source" in response.json()["error"]["fields"]
    assert not Job.objects.exists()
    response = api.post(reverse("api:service-list"), {"engine": local.pk, "spec": {
        "name": f"{prefix}-data", "image": ct_images["web:v1"],
        "mounts": [{"type": "bind", "source": "/srv/opsportal-ct/data", "target": "/x"}]}}, format="json")
    assert response.status_code == 201, response.content


def test_requests_to_the_published_endpoints_reach_more_than_one_replica(env, local, ct_images, prefix, live_worker):
    actor = operator(env)
    spec = {"name": f"{prefix}-lb", "image": ct_images["web:v1"], "replicas": 3, "ports": [{"target": 8080}]}
    wait_job(services.create_service(actor, local, spec), "succeeded", 180)
    service = Service.objects.get(engine=local, name=f"{prefix}-lb")
    assert len(service.endpoints) == 3 and {e["slot"] for e in service.endpoints} == {1, 2, 3}
    job = wait_job(services.check_balance(actor, service, 30), "succeeded", 120)
    data = job.targets.get().data
    assert data["answered"] == 30 and data["distinct"] >= 2, data
    assert data["publish_mode"] == "host" and data["endpoint_mode"] == "dnsrr"


def test_a_moved_tag_shows_an_image_update_and_the_prefilled_update_rolls_it_out(
        env, local, engine, docker_client, ct_images, prefix, live_worker):
    tag = f"{prefix}-app:stable"
    docker_client.images.get(ct_images["web:v1"]).tag(tag)
    actor = act(person(env, Role.OPERATOR))
    spec = {"name": f"{prefix}-app", "image": tag, "replicas": 1, "ports": [{"target": 8080}],
            "update_config": {"parallelism": 1, "monitor": 1}}
    wait_job(services.create_service(actor, local, spec), "succeeded", 120)
    service = Service.objects.get(engine=local, name=f"{prefix}-app")
    assert service.image_update["update_available"] is False
    docker_client.images.get(ct_images["web:v2"]).tag(tag)  # the tag now names v2
    sync.resync(local.pk, backend.snapshot(engine))
    service = Service.objects.get(pk=service.pk)
    assert service.image_update["update_available"] is True and "now points to" in service.image_update["message"]
    assert services.prefilled_update(service) == {"image": tag}
    job = services.update_service(actor, service, services.prefilled_update(service) | {"force": True})
    wait_job(job, "succeeded", 180)
    sync.resync(local.pk, backend.snapshot(engine))
    assert Service.objects.get(pk=service.pk).image_update["update_available"] is False
