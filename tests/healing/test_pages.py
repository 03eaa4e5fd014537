"""The self-healing pages: viewers see policies and history without forms, administrators create,
edit and delete policies with field errors shown (audited), the container page loads its history
panel, and the API answers bad input with 400 and field errors."""
import pytest
from django.urls import reverse

from ops_portal.accounts.choices import Role
from ops_portal.audit.models import AuditEvent
from ops_portal.healing.models import HealingEvent, HealingPolicy
from ops_portal.monitoring.models import Alert
from tests import factories
from tests.containers.helpers import container, engine, person
from tests.healing.helpers import policy

pytestmark = pytest.mark.django_db


@pytest.fixture
def world(env):
    local = engine(env, url="unix:///run/heal-pages.sock", state="ok")
    box = container(local, "web-1", labels={"app": "web"})
    event = HealingEvent.objects.create(key="k1", environment=env, engine=local, container=box,
                                        docker_id=box.docker_id, container_name="web-1", trigger="exit", exit_code=3,
                                        state="launched", action="restart", reason="restart (attempt 1 of 5)",
                                        policy_name="web-crashes")
    return {"engine": local, "container": box, "event": event, "policy": policy(env, "web-crashes")}


def login(client, env, role):
    user = person(env, role)
    client.force_login(user)
    return user


def test_viewers_see_policies_and_history_without_forms(client, env, world):
    login(client, env, Role.VIEWER)
    for url in (reverse("healing:policies"), reverse("healing:policy", args=[world["policy"].pk])):
        page = client.get(url).content.decode()
        assert "web-crashes" in page and "healing-policy-form" not in page, url
    page = client.get(reverse("healing:policies")).content.decode()
    assert "restart (attempt 1 of 5)" in page and "code 3" in page


def test_the_container_page_loads_its_healing_history_and_crash_loop_alert(client, env, world):
    login(client, env, Role.VIEWER)
    box = world["container"]
    page = client.get(reverse("containers:container", args=[box.pk])).content.decode()
    panel_url = reverse("healing:container_panel", args=[box.pk])
    assert f'hx-get="{panel_url}"' in page and 'hx-trigger="load"' in page
    Alert.objects.create(source="container_crash_loop", key=f"container:{world['engine'].pk}:web-1", environment=env,
                         severity="critical", summary="web-1 keeps crashing", fired_at=world["event"].created)
    panel = client.get(panel_url).content.decode()
    assert "restart (attempt 1 of 5)" in panel and "web-1 keeps crashing" in panel
    # Another environment's viewer cannot see it.
    other = factories.environment("other")
    client.force_login(person(other, Role.VIEWER))
    assert client.get(panel_url).status_code == 404


def test_administrators_manage_policies_with_field_errors_on_the_page(client, env, world):
    login(client, env, Role.ADMIN)
    form = {"environment": env.pk, "name": "db", "labels": "app=db, tier", "action": "recreate", "on_exit": "on",
            "backoff_seconds": 10, "backoff_max_seconds": 5, "max_attempts": 3, "window_seconds": 600,
            "stable_seconds": 60, "enabled": "on"}
    page = client.post(reverse("healing:policies"), form).content.decode()
    assert "The longest delay cannot be shorter than the first." in page
    assert not HealingPolicy.objects.filter(name="db").exists()
    response = client.post(reverse("healing:policies"), {**form, "backoff_max_seconds": 60})
    created = HealingPolicy.objects.get(name="db")
    assert response.status_code == 302 and created.label_selector == {"app": "db", "tier": ""}
    assert AuditEvent.objects.filter(action="healingpolicy.create", object_id=str(created.pk)).exists()
    url = reverse("healing:policy", args=[created.pk])
    page = client.post(url, {**form, "backoff_max_seconds": 60, "on_exit": "", "form": "edit"}).content.decode()
    assert "Heal on exit, on unhealthy, or both." in page
    client.post(url, {**form, "backoff_max_seconds": 60, "max_attempts": 9, "form": "edit"})
    assert HealingPolicy.objects.get(pk=created.pk).max_attempts == 9
    client.post(url, {"form": "delete"})
    assert not HealingPolicy.objects.filter(pk=created.pk).exists()
    assert AuditEvent.objects.filter(action="healingpolicy.delete").exists()


def test_operators_cannot_change_policies(client, env, world):
    login(client, env, Role.OPERATOR)
    client.post(reverse("healing:policy", args=[world["policy"].pk]), {"form": "delete"})
    assert HealingPolicy.objects.filter(pk=world["policy"].pk).exists()


def test_the_api_answers_bad_policies_with_field_errors(api, env, world):
    api.force_authenticate(person(env, Role.ADMIN))
    url = reverse("api:healingpolicy-list")
    bad = {"name": "x", "environment": env.name, "on_exit": False, "on_unhealthy": False, "max_attempts": 0,
           "label_selector": {"app": ["web"]}, "action": "explode"}
    response = api.post(url, bad, format="json")
    assert response.status_code == 400
    assert {"max_attempts", "label_selector", "action"} <= set(response.json()["error"]["fields"])
    response = api.post(url, {"name": "x", "environment": env.name, "on_exit": False, "on_unhealthy": False},
                        format="json")
    assert response.status_code == 400 and "on_exit" in response.json()["error"]["fields"]
    other = engine(factories.environment("beta"), name="beta-engine", url="unix:///run/beta.sock")
    response = api.post(url, {"name": "x", "environment": env.name, "engine": other.pk}, format="json")
    assert response.status_code == 400 and "engine" in response.json()["error"]["fields"]  # invisible: absent
    events = api.get(reverse("api:healingevent-list"), {"container": world["container"].pk}).json()
    assert [e["reason"] for e in events["results"]] == ["restart (attempt 1 of 5)"]
