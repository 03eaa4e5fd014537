"""A template launched with a limit runs on some of the targets its selector matches, never more:
through the service, the API and the launch page (preview and confirmation count the limited
targets), with clear field errors for a limit that is malformed or keeps nothing."""
import pytest

from ops_portal.accounts.choices import Role
from ops_portal.inventory.choices import Transport
from ops_portal.jobs import limits
from ops_portal.jobs.launch import launch
from ops_portal.jobs.models import Job
from ops_portal.jobs.templates import create_template
from tests import factories
from tests.helpers import act, person

pytestmark = pytest.mark.django_db


@pytest.fixture
def template(env):
    for name in ("web-1", "web-2", "web-3", "db-1"):
        factories.host(env, name, transport=Transport.LOCAL)
    factories.host(factories.environment("elsewhere"), "web-9", transport=Transport.LOCAL)
    admin = person(env, Role.ADMIN)
    return create_template(act(admin), name="uptime", environment=env, action="host.command",
                           selector={"pattern": "web-*"}, action_params={"command": "uptime"})


def _targets(job):
    return list(job.targets.order_by("index").values_list("name", flat=True))


def test_a_limit_keeps_some_of_the_templates_targets_by_name_or_pattern(env, template):
    actor = act(person(env, Role.OPERATOR))
    assert _targets(launch(actor, template, limit="web-2")) == ["web-2"]
    assert _targets(launch(actor, template, limit="web-3, web-1")) == ["web-1", "web-3"]
    assert _targets(launch(actor, template, limit="web-[12]")) == ["web-1", "web-2"]
    # It never widens: db-1 is not the template's, web-9 is in another environment.
    assert _targets(launch(actor, template, limit="web-1,db-1,web-9")) == ["web-1"]
    assert _targets(launch(actor, template, limit="")) == ["web-1", "web-2", "web-3"]


@pytest.mark.parametrize("limit, message", [
    ("db-1", "keeps none of the 3 targets"),
    ("web-1;rm -rf /", "Not a name or pattern"),
    ("$(reboot)", "Not a name or pattern"),
    ("x" * 1001, "at most 1000"),
])
def test_a_limit_that_is_malformed_or_keeps_nothing_is_a_field_error_and_launches_nothing(env, template, limit,
                                                                                          message):
    with pytest.raises(Exception) as caught:
        launch(act(person(env, Role.OPERATOR)), template, limit=limit)
    assert message in str(caught.value.message_dict["limit"])
    assert not Job.objects.exists()


def test_the_api_launches_with_a_limit_and_answers_400_on_a_bad_one(api, env, template):
    api.force_authenticate(person(env, Role.OPERATOR))
    response = api.post(f"/api/job-templates/{template.pk}/launch/", {"limit": "web-3"}, format="json")
    assert response.status_code == 201, response.content
    assert [t["name"] for t in response.json()["targets"]] == ["web-3"]
    refused = api.post(f"/api/job-templates/{template.pk}/launch/", {"limit": "nothing-*"}, format="json")
    assert refused.status_code == 400 and "limit" in refused.json()["error"]["fields"]
    assert Job.objects.count() == 1
    # An ad-hoc job's selector is exact: it has no limit field (unknown fields are ignored).
    adhoc = api.post("/api/jobs/", {"environment": env.name, "action": "host.command", "selector": {"all": True},
                                    "params": {"command": "true"}, "limit": "web-1"}, format="json")
    assert adhoc.status_code == 201, adhoc.content
    assert len(adhoc.json()["targets"]) == 4


def test_the_launch_page_previews_and_confirms_the_limited_count(client, env, template):
    client.force_login(person(env, Role.OPERATOR))
    page = client.get(f"/templates/{template.pk}/launch/").content.decode()
    assert 'name="launch_limit"' in page and "3 targets" in page
    preview = client.post(f"/templates/{template.pk}/launch/", {"launch_limit": "web-1, web-2", "step": "preview"})
    text = preview.content.decode()
    assert "Launch on 2 targets" in text and not Job.objects.exists()
    launched = client.post(f"/templates/{template.pk}/launch/", {"launch_limit": "web-1, web-2", "step": "launch",
                                                                 "confirm_count": "2"})
    assert launched.status_code == 302
    assert _targets(Job.objects.get()) == ["web-1", "web-2"]
    refused = client.post(f"/templates/{template.pk}/launch/", {"launch_limit": "db-*", "step": "launch"})
    assert refused.status_code == 200 and "keeps none of the 3 targets" in refused.content.decode()
    assert Job.objects.count() == 1


def test_parse_reads_commas_and_spaces():
    assert limits.parse(" a-1,b-2  c-* ,, ") == ["a-1", "b-2", "c-*"]
    assert limits.parse(None) == [] and limits.parse("  ") == []
