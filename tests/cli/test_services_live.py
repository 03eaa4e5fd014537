"""`opsportal services scale|update` against a live portal and the real engine in Swarm mode: one
command each, waiting until the service converged, as a pipeline step uses them."""
import pytest

from ops_portal.accounts.choices import Role
from ops_portal.containers import services
from ops_portal.containers.models import Service
from tests.containers.helpers import operator, running_tasks, synced_engine
from tests.helpers import api_token, person
from tests.jobs.helpers import wait_job

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.live, pytest.mark.fleet]


@pytest.fixture
def local(env, engine):
    return synced_engine(env, engine)


def images_running(docker_client, service_id):
    return sorted(t["Spec"]["ContainerSpec"]["Image"].split("@")[0] for t in running_tasks(docker_client, service_id))


def test_scale_and_roll_out_in_one_command_each_waiting_for_convergence(
        env, local, docker_client, ct_images, prefix, live_web, live_worker, opsportal):
    name = f"{prefix}-cli"
    spec = {"name": name, "image": ct_images["web:v1"], "replicas": 1, "ports": [{"target": 8080}]}
    wait_job(services.create_service(operator(env), local, spec), "succeeded", 120)
    service_id = Service.objects.get(engine=local, name=name).service_id
    token = api_token(person(env, Role.OPERATOR), "pipeline")[1]

    scaled = opsportal("services", "scale", name, "3", "-e", env.name, url=live_web.url, token=token, timeout=240)
    assert scaled.proc.returncode == 0, scaled.text()
    assert len(running_tasks(docker_client, service_id)) == 3  # converged when the command returned
    assert "Traceback" not in scaled.text()

    rolled = opsportal("services", "update", name, "--image", ct_images["web:v2"], "--parallelism", "1",
                       "--monitor", "1s", "-e", env.name, url=live_web.url, token=token, timeout=300)
    assert rolled.proc.returncode == 0, rolled.text()
    assert images_running(docker_client, service_id) == [ct_images["web:v2"]] * 3
    assert Service.objects.get(engine=local, name=name).image.split("@")[0] == ct_images["web:v2"]
