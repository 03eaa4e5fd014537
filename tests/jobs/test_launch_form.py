"""The launch form without hand-written JSON: the target picker's live count, strategy fields
turned into the API's strategy dict, the preview (what, where, which approval policy) and the
confirmation that names the count."""
import pytest

from ops_portal.accounts.choices import Role
from ops_portal.approvals.models import ApprovalPolicy, ApprovalRequest
from ops_portal.jobs.launch_forms import StrategyForm, strategy_from_fields
from ops_portal.jobs.models import Job
from ops_portal.jobs.templates import create_template
from tests import factories
from tests.helpers import act, person

pytestmark = pytest.mark.django_db


@pytest.fixture
def fleet(envs):
    """alpha: web-1..3 in group web (web-1 tagged blue), db-1; beta: web-9 in its own group web."""
    alpha, beta = envs
    web = factories.host_group(alpha, "web")
    for index in (1, 2, 3):
        host = factories.host(alpha, f"web-{index}", tags=["blue"] if index == 1 else [])
        host.groups.add(web)
    factories.host(alpha, "db-1")
    factories.host(alpha, "web-off", enabled=False)
    other = factories.host(beta, "web-9")
    other.groups.add(factories.host_group(beta, "web"))
    return alpha, beta


def count(client, **params):
    response = client.get("/jobs/new/targets/", params)
    assert response.status_code == 200
    return response.content.decode()


def test_the_picker_counts_and_names_the_matching_targets(client, fleet):
    alpha, _ = fleet
    client.force_login(person(alpha, Role.OPERATOR))
    every = count(client, environment=alpha.pk, target_all="on")
    assert 'data-count="4"' in every and "db-1, web-1, web-2, web-3" in every and "web-off" not in every
    group = count(client, environment=alpha.pk, target_groups="web")
    assert 'data-count="3"' in group and "db-1" not in group
    both = count(client, environment=alpha.pk, target_groups="web", target_tags="blue")
    assert 'data-count="1"' in both and "web-1" in both
    named = count(client, environment=alpha.pk, target_names="db-1, web-2")
    assert 'data-count="2"' in named
    pattern = count(client, environment=alpha.pk, target_pattern="web-?")
    assert 'data-count="3"' in pattern and "db-1" not in pattern
    assert 'data-count="0"' in count(client, environment=alpha.pk, target_pattern="nothing-*")
    advanced = count(client, environment=alpha.pk, selector='{"names": ["db-1"]}')
    assert 'data-count="1"' in advanced


def test_the_picker_lists_the_first_names_and_how_many_more(client, env):
    for index in range(25):
        factories.host(env, f"node-{index:02}")
    client.force_login(person(env, Role.OPERATOR))
    body = count(client, environment=env.pk, target_all="on")
    assert 'data-count="25"' in body and "node-19" in body and "node-20" not in body and "and 5 more" in body


def test_the_picker_never_shows_another_environments_hosts(client, fleet):
    alpha, beta = fleet
    client.force_login(person(alpha, Role.OPERATOR))
    body = count(client, environment=beta.pk, target_all="on")
    assert "web-9" not in body and "data-count=\"" not in body.replace('data-count=""', "")
    assert "Choose an environment" in body or "Select a valid choice" in body
    # beta's group of the same name selects only alpha's hosts in alpha
    group = count(client, environment=alpha.pk, target_groups="web")
    assert "web-9" not in group
    # a viewer of beta who operates only alpha still cannot resolve beta's targets
    viewer = person(alpha, Role.OPERATOR)
    factories.binding(role=Role.VIEWER, user=viewer, environment=beta)
    client.force_login(viewer)
    assert "web-9" not in count(client, environment=beta.pk, target_names="web-9")


def test_the_picker_needs_an_operator_and_shows_bad_input_on_the_fields(client, fleet):
    alpha, _ = fleet
    client.force_login(person(alpha, Role.VIEWER))
    assert client.get("/jobs/new/targets/", {"environment": alpha.pk}).status_code == 403
    client.force_login(person(alpha, Role.OPERATOR))
    bad = count(client, environment=alpha.pk, target_pattern="web;rm -rf /")
    assert "shell-style name pattern" in bad
    assert "Choose groups, names, tags or a pattern" in count(client, environment=alpha.pk)
    assert "Not valid JSON" in count(client, environment=alpha.pk, selector="{nope")


@pytest.mark.parametrize(("fields", "expected"), [
    ({"strategy_kind": "parallel", "limit": 5}, {"kind": "parallel", "limit": 5}),
    ({"strategy_kind": "parallel", "limit": 5, "batch_size": 2}, {"kind": "parallel", "limit": 5}),
    ({"strategy_kind": "rolling", "limit": 20, "batch_percent": 25, "pause_seconds": 10, "max_failures": 1},
     {"kind": "rolling", "limit": 20, "batch_percent": 25, "pause_seconds": 10, "max_failures": 1}),
    ({"strategy_kind": "rolling", "limit": 3, "batch_size": 2, "max_failure_percent": 10, "gate_type": "http",
      "gate_url": "http://127.0.0.1:8080/health", "gate_retries": 5},
     {"kind": "rolling", "limit": 3, "batch_size": 2, "max_failure_percent": 10,
      "health_gate": {"type": "http", "url": "http://127.0.0.1:8080/health", "retries": 5}}),
])
def test_strategy_fields_become_the_apis_strategy_dict(fields, expected):
    assert strategy_from_fields(fields) == expected


def test_strategy_fields_are_validated_like_the_api_on_their_fields():
    form = StrategyForm({"strategy_kind": "rolling", "limit": "20", "gate_type": "http", "gate_url": "ftp://x"})
    assert not form.is_valid()
    assert "batch_size or batch_percent" in str(form.errors["batch_size"])
    assert "health_gate.url" in str(form.errors["gate_url"])
    form = StrategyForm({"strategy_kind": "rolling", "limit": "999", "batch_size": "2"})
    assert not form.is_valid() and "limit" in form.errors
    form = StrategyForm({"strategy_kind": "rolling", "limit": "4", "batch_percent": "50", "pause_seconds": "3"})
    assert form.is_valid(), form.errors
    assert form.chosen_strategy() == {"kind": "rolling", "limit": 4, "batch_percent": 50, "pause_seconds": 3}


def adhoc(alpha, **fields):
    return {"environment": alpha.pk, "action": "host.command", "host.command__command": "uptime",
            "strategy_kind": "parallel", "limit": "20", **fields}


def test_the_preview_shows_what_where_and_the_approval_policy_without_creating_anything(client, fleet):
    alpha, _ = fleet
    ApprovalPolicy.objects.create(name="web-needs-two", environment=alpha, all_work=True, approvals_required=2)
    client.force_login(person(alpha, Role.OPERATOR))
    response = client.post("/jobs/new/", adhoc(alpha, target_groups="web", strategy_kind="rolling",
                                                batch_size="2", step="preview"))
    body = response.content.decode()
    assert response.status_code == 200
    assert "Run a command" in body and "uptime" in body
    assert 'data-count="3"' in body and "web-1, web-2, web-3" in body
    assert "Rolling in 2 batches" in body
    assert "Needs 2 approvals (policy web-needs-two" in body
    assert 'name="confirm_count" value="3"' in body
    assert not Job.objects.exists() and not ApprovalRequest.objects.exists()


def test_the_preview_masks_secret_parameters(client, env):
    factories.host(env, "app-1")
    admin = person(env, Role.ADMIN)
    template = create_template(act(admin, source="web"), name="deploy", environment=env, action="host.command",
                               selector={"all": True},
                               parameters=[{"name": "command", "type": "secret", "required": True}])
    client.force_login(admin)
    body = client.post(f"/templates/{template.pk}/launch/", {"command": "hunter2-secret", "step": "preview"}
                       ).content.decode()
    assert "hunter2-secret" not in body and "&lt;secret&gt;" in body and "No approval policy applies" in body
    assert 'data-count="1"' in body and "app-1" in body and not Job.objects.exists()


def test_a_multi_target_launch_needs_the_count_confirmed(client, fleet):
    alpha, _ = fleet
    client.force_login(person(alpha, Role.OPERATOR))
    unconfirmed = client.post("/jobs/new/", adhoc(alpha, target_groups="web", step="launch"))
    assert unconfirmed.status_code == 200 and not Job.objects.exists()
    assert "Confirm the 3 targets before launching." in unconfirmed.content.decode()
    stale = client.post("/jobs/new/", adhoc(alpha, target_groups="web", step="launch", confirm_count="2"))
    assert stale.status_code == 200 and not Job.objects.exists()
    launched = client.post("/jobs/new/", adhoc(alpha, target_groups="web", step="launch", confirm_count="3"))
    job = Job.objects.get()
    assert launched.status_code == 302 and launched["Location"] == f"/jobs/{job.pk}/"
    assert sorted(job.targets.values_list("name", flat=True)) == ["web-1", "web-2", "web-3"]
    assert job.strategy == {"kind": "parallel", "limit": 20}


def test_one_target_that_is_not_destructive_launches_without_confirmation(client, fleet):
    alpha, _ = fleet
    client.force_login(person(alpha, Role.OPERATOR))
    response = client.post("/jobs/new/", adhoc(alpha, target_names="db-1", strategy_kind="rolling",
                                               batch_size="1", pause_seconds="0", max_failures="0"))
    job = Job.objects.get()
    assert response.status_code == 302
    assert job.strategy == {"kind": "rolling", "limit": 20, "batch_size": 1, "pause_seconds": 0, "max_failures": 0}


def test_bad_launch_input_is_shown_on_the_fields_never_a_500(client, fleet):
    alpha, beta = fleet
    client.force_login(person(alpha, Role.OPERATOR))
    cases = [
        (adhoc(alpha), "Choose groups, names, tags or a pattern"),
        (adhoc(alpha, target_pattern="nothing-*"), "matches no enabled target"),
        (adhoc(alpha, target_all="on", strategy_kind="rolling"), "batch_size or batch_percent"),
        (adhoc(alpha, target_all="on", limit="0"), "greater than or equal to 1"),
        (adhoc(alpha, target_all="on", strategy='{"kind": "sideways"}'), "kind must be one of"),
        (adhoc(alpha, target_all="on", selector='{"colour": "red"}'), "Unknown selector keys"),
        (adhoc(alpha, target_all="on", **{"host.command__command": ""}), "required"),
        (adhoc(beta, target_all="on"), "Select a valid choice"),
    ]
    for data, message in cases:
        response = client.post("/jobs/new/", data)
        assert response.status_code == 200, data
        assert message in response.content.decode(), (message, data)
    assert not Job.objects.exists()


def test_a_template_launch_previews_its_targets_and_confirms_the_count(client, fleet):
    alpha, _ = fleet
    admin = person(alpha, Role.ADMIN)
    template = create_template(act(admin, source="web"), name="restart-web", environment=alpha,
                               action="host.command", selector={"groups": ["web"]},
                               action_params={"command": "systemctl restart web"})
    client.force_login(person(alpha, Role.OPERATOR))
    page = client.get(f"/templates/{template.pk}/launch/").content.decode()
    assert 'data-count="3"' in page and "systemctl restart web" in page and "web-9" not in page
    assert 'name="confirm_count" value="3"' in page and "Confirm the 3 targets" not in page
    refused = client.post(f"/templates/{template.pk}/launch/", {"step": "launch"})
    assert refused.status_code == 200 and not Job.objects.exists()
    assert "Confirm the 3 targets before launching." in refused.content.decode()
    launched = client.post(f"/templates/{template.pk}/launch/", {"step": "launch", "confirm_count": "3"})
    assert launched.status_code == 302 and Job.objects.get().targets_total == 3


def test_a_disabled_template_says_so_instead_of_launching(client, fleet):
    alpha, _ = fleet
    admin = person(alpha, Role.ADMIN)
    template = create_template(act(admin, source="web"), name="off", environment=alpha, action="host.command",
                               selector={"names": ["db-1"]}, action_params={"command": "true"}, enabled=False)
    client.force_login(admin)
    response = client.post(f"/templates/{template.pk}/launch/", {"step": "launch"})
    assert response.status_code == 200 and "This template is disabled." in response.content.decode()
    assert not Job.objects.exists()


def test_the_launch_page_slices_a_job_and_shows_a_refused_slicing_on_its_field(client, fleet):
    alpha, _ = fleet
    client.force_login(person(alpha, Role.OPERATOR))
    page = client.get("/jobs/new/").content.decode()
    assert 'name="slices"' in page and 'name="slice_size"' in page
    preview = client.post("/jobs/new/", adhoc(alpha, target_groups="web", slices="2", step="preview"))
    assert preview.status_code == 200 and "sliced over 2 workers" in preview.content.decode()
    refused = client.post("/jobs/new/", adhoc(alpha, target_groups="web", strategy_kind="rolling", batch_size="1",
                                               slices="2", step="preview"))
    assert "slices go with a parallel strategy" in refused.content.decode()
    assert not Job.objects.exists()
