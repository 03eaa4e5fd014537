"""The autoscaling pages: viewers see policies and history without forms; operators create and
change policies with field errors on the form, and ask for an evaluation."""
import pytest
from django.urls import reverse

from ops_portal.accounts.choices import Role
from ops_portal.autoscaling.models import Evaluation, ScalingPolicy
from ops_portal.jobs.models import Job
from tests.autoscaling.helpers import policy
from tests.containers.helpers import engine, person, service

pytestmark = pytest.mark.django_db


@pytest.fixture
def world(env):
    local = engine(env, url="unix:///run/as-pages.sock", swarm_role="manager", state="ok")
    shop = service(local, "shop_web", replicas_desired=2, replicas_running=2)
    return {"engine": local, "service": shop, "policy": policy(local, "shop_web")}


def form_data(world, **fields):
    return {"engine": world["engine"].pk, "service_name": "shop_api", "enabled": "on", "min_replicas": 1,
            "max_replicas": 4, "metric": "cpu", "mode": "target", "target": "60", "tolerance": 10, "max_step_up": 2,
            "max_step_down": 1, "up_cooldown": 30, "down_cooldown": 120, "interval": 30, **fields}


def test_viewers_see_policies_and_history_without_forms(client, env, world):
    job = Job.objects.create(environment=env, name="Autoscale shop_web 2 → 4", action="service.scale")
    Evaluation.objects.create(policy=world["policy"], key="slot:1", metric="cpu", value=93.5, outcome="scale_up",
                              current_replicas=2, desired_replicas=4, reason="2 × 93.5 ÷ target 50", job=job,
                              samples={"abc (slot 1)": 93.5})
    client.force_login(person(env, Role.VIEWER))
    listing = client.get(reverse("autoscaling:policies")).content.decode()
    assert "shop_web" in listing and "2 × 93.5" in listing and 'id="policy-form"' not in listing
    page = client.get(reverse("autoscaling:policy", args=[world["policy"].pk])).content.decode()
    assert "93.5%" in page and "2 → 4" in page and f"/jobs/{job.pk}/" in page and "abc (slot 1)" in page
    assert 'value="evaluate"' not in page and 'id="policy-edit"' not in page
    assert "Autoscaling" in client.get(reverse("containers:services")).content.decode()  # in the section's nav


def test_operators_create_a_policy_and_see_field_errors(client, env, world):
    client.force_login(person(env, Role.OPERATOR))
    bad = client.post(reverse("autoscaling:policies"), form_data(world, min_replicas=5, max_replicas=2))
    assert bad.status_code == 200 and "The maximum must be at least the minimum." in bad.content.decode()
    http = client.post(reverse("autoscaling:policies"), form_data(world, metric="http",
                                                                  metric_url="http://192.0.2.1/"))
    assert "Only 127.0.0.1" in http.content.decode()
    assert ScalingPolicy.objects.count() == 1
    made = client.post(reverse("autoscaling:policies"), form_data(world))
    created = ScalingPolicy.objects.get(service_name="shop_api")
    assert made.status_code == 302 and made["Location"] == reverse("autoscaling:policy", args=[created.pk])
    edit = client.post(reverse("autoscaling:policy", args=[created.pk]), {"form": "edit",
                                                                          **form_data(world, max_replicas=9)})
    assert edit.status_code == 302 and ScalingPolicy.objects.get(pk=created.pk).max_replicas == 9


def test_operators_ask_for_an_evaluation(client, env, world, monkeypatch):
    from ops_portal.autoscaling import evaluation

    monkeypatch.setattr(evaluation, "send", lambda pk: None)
    client.force_login(person(env, Role.OPERATOR))
    response = client.post(reverse("autoscaling:policy", args=[world["policy"].pk]), {"form": "evaluate"})
    assert response.status_code == 302
    assert Evaluation.objects.get(policy=world["policy"]).key.startswith("now:")
