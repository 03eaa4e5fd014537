"""The autoscaling API: operators write policies, viewers read; bad input is 400 with field errors;
"evaluate" claims an evaluation for a worker; the history is filterable."""
import pytest

from ops_portal.accounts.choices import Role
from ops_portal.audit.models import AuditEvent
from ops_portal.autoscaling import evaluation
from ops_portal.autoscaling.models import Evaluation, ScalingPolicy
from tests.autoscaling.helpers import policy
from tests.containers.helpers import engine, person

pytestmark = pytest.mark.django_db
URL = "/api/scaling-policies/"


@pytest.fixture
def manager(env):
    return engine(env, url="unix:///run/as-api.sock", swarm_role="manager", state="ok")


def as_role(api, env, role):
    api.force_authenticate(person(env, role))
    return api


def body(manager, **fields):
    return {"engine": manager.name, "service_name": "shop_web", "min_replicas": 1, "max_replicas": 4, "metric": "cpu",
            "mode": "target", "target": 60, **fields}


def test_an_operator_creates_changes_and_deletes_a_policy_with_audit_rows(api, env, manager):
    as_role(api, env, Role.OPERATOR)
    created = api.post(URL, body(manager), format="json")
    assert created.status_code == 201, created.json()
    data = created.json()
    assert data["environment"] == env.name and data["engine"] == manager.name and data["target"] == 60.0
    assert api.patch(f"{URL}{data['id']}/", {"max_replicas": 6}, format="json").json()["max_replicas"] == 6
    assert api.delete(f"{URL}{data['id']}/").status_code == 204
    assert [a for a in AuditEvent.objects.filter(action__startswith="scalingpolicy.")
            .order_by("pk").values_list("action", flat=True)] == [
        "scalingpolicy.create", "scalingpolicy.update", "scalingpolicy.delete"]


@pytest.mark.parametrize(("fields", "field"), [
    ({"min_replicas": 5, "max_replicas": 2}, "max_replicas"),
    ({"max_replicas": 1001}, "max_replicas"),
    ({"min_replicas": -1}, "min_replicas"),
    ({"min_replicas": 0}, "min_replicas"),  # CPU needs a task to measure
    ({"target": None}, "target"),
    ({"target": 0}, "target"),
    ({"target": "lots"}, "target"),
    ({"mode": "thresholds", "target": None, "scale_up_above": 20, "scale_down_below": 80}, "scale_down_below"),
    ({"mode": "thresholds", "target": None}, "scale_up_above"),
    ({"mode": "sideways"}, "mode"),
    ({"metric": "http"}, "metric_url"),
    ({"metric": "http", "metric_url": "http://10.1.2.3/load"}, "metric_url"),
    ({"metric": "http", "metric_url": "http://user:pw@127.0.0.1/load"}, "metric_url"),
    ({"metric": "http", "metric_url": "file:///etc/passwd"}, "metric_url"),
    ({"metric": "http", "metric_url": "http://127.0.0.1:99999/"}, "metric_url"),
    ({"metric": "http", "metric_url": "http://127.0.0.1/m", "metric_key": "a..b"}, "metric_key"),
    ({"metric_url": "http://127.0.0.1/m"}, "metric_url"),  # CPU takes no URL
    ({"max_step_up": 0}, "max_step_up"),
    ({"up_cooldown": 90000}, "up_cooldown"),
    ({"interval": 2}, "interval"),
    ({"approval_above": 0, "min_replicas": 2}, "approval_above"),
    ({"engine": "nowhere"}, "engine"),
    ({"service_name": ""}, "service_name"),
])
def test_bad_input_is_400_with_the_field_named(api, env, manager, fields, field):
    as_role(api, env, Role.OPERATOR)
    response = api.post(URL, body(manager, **fields), format="json")
    assert response.status_code == 400, response.json()
    assert field in response.json()["error"]["fields"], response.json()
    assert not ScalingPolicy.objects.exists()


def test_one_policy_per_service_and_only_on_a_swarm_manager(api, env, manager):
    as_role(api, env, Role.OPERATOR)
    assert api.post(URL, body(manager), format="json").status_code == 201
    assert api.post(URL, body(manager), format="json").status_code == 400
    plain = engine(env, name="plain", url="unix:///run/as-plain.sock", swarm_role="none", state="ok")
    refused = api.post(URL, body(plain), format="json")
    assert refused.status_code == 400 and "engine" in refused.json()["error"]["fields"]


def test_viewers_read_but_neither_write_nor_evaluate(api, env, manager):
    p = policy(manager, "shop_web")
    as_role(api, env, Role.VIEWER)
    assert api.get(URL).json()["results"][0]["id"] == p.pk
    assert api.post(URL, body(manager, service_name="other"), format="json").status_code == 403
    assert api.patch(f"{URL}{p.pk}/", {"max_replicas": 9}, format="json").status_code == 403
    assert api.post(f"{URL}{p.pk}/evaluate/").status_code == 403
    assert not Evaluation.objects.exists()


def test_evaluate_claims_one_evaluation_for_a_worker(api, env, manager, monkeypatch,
                                                     django_capture_on_commit_callbacks):
    sent = []
    monkeypatch.setattr(evaluation, "send", sent.append)
    p = policy(manager, "shop_web")
    as_role(api, env, Role.OPERATOR)
    with django_capture_on_commit_callbacks(execute=True):
        response = api.post(f"{URL}{p.pk}/evaluate/")
    assert response.status_code == 202, response.json()
    assert response.json()["outcome"] == "pending" and sent == [response.json()["id"]]
    assert response.json()["requested_by"] and AuditEvent.objects.filter(action="scalingpolicy.evaluate").exists()


def test_the_history_filters_by_outcome_and_scaling(api, env, manager):
    p = policy(manager, "shop_web")
    Evaluation.objects.create(policy=p, key="slot:1", metric="cpu", value=10, outcome="hold")
    Evaluation.objects.create(policy=p, key="slot:2", metric="cpu", value=90, outcome="scale_up")
    as_role(api, env, Role.VIEWER)
    rows = api.get("/api/scaling-evaluations/", {"outcome": "scale_up"}).json()["results"]
    assert [r["key"] for r in rows] == ["slot:2"] and rows[0]["service"] == "shop_web"
    assert api.get("/api/scaling-evaluations/", {"policy": p.pk}).json()["count"] == 2
    assert api.get("/api/scaling-evaluations/", {"outcome": "sideways"}).status_code == 400
