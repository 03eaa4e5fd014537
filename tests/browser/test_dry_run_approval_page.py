"""The approval page of a playbook job in a real browser: the dry run section polls until the dry run
ends, then shows each host's diff without a reload; no serious axe finding, and it fits a phone."""
import pytest

from ops_portal.accounts.choices import Role
from ops_portal.approvals.models import ApprovalPolicy
from ops_portal.jobs import launch as launching
from ops_portal.jobs.choices import JobState, TargetState
from ops_portal.jobs.launch import launch_adhoc
from ops_portal.jobs.models import Job
from ops_portal.projects.models import Project
from tests import factories
from tests.browser.helpers import sign_in
from tests.browser.test_pages_a11y import _axe_findings, _overflow
from tests.helpers import act, person

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser, pytest.mark.live]

DIFF = "--- before: /srv/app.conf\n+++ after: /srv/app.conf\n@@ -1,2 +1,2 @@\n-port=80\n+port=9090\n keep=1\n"


def test_the_dry_run_section_fills_in_when_the_dry_run_ends(page, live_web, monkeypatch):
    monkeypatch.setattr(launching, "enqueue", lambda job: None)
    env = factories.environment("prod")
    for name in ("web-1", "web-2"):
        factories.host(env, name)
    Project.objects.create(environment=env, name="site", url="https://git.example.test/site.git", branch="main",
                           revision="a" * 40, state="synced")
    ApprovalPolicy.objects.create(name="production", environment=env, all_work=True)
    operator = person(env, Role.OPERATOR, "otto")
    person(env, Role.APPROVER, "abby")
    job = launch_adhoc(act(operator), environment=env, action="ansible.playbook",
                       values={"project": "site", "playbook": "site.yml"}, selector={"all": True})
    request = job.approval_request
    dry = Job.objects.get(dry_run_for=request)
    errors = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    sign_in(page, live_web.url, "abby")
    page.goto(f"{live_web.url}/approvals/{request.pk}/")
    page.wait_for_selector("#dry-run[data-state=queued]")
    assert "The dry run has not finished" in page.locator("#dry-run").inner_text()

    for target in dry.targets.all():
        target.state, target.changed, target.finished = TargetState.OK, False, dry.created
        target.data = {"counts": {"ok": 1, "changed": 1, "failed": 0}, "check": True, "revision": "a" * 40,
                       "diff": [{"task": "app conf", "diff": DIFF.replace("9090", f"9090-{target.name}")}]}
        target.save()
    Job.objects.filter(pk=dry.pk).update(state=JobState.SUCCEEDED)
    page.wait_for_selector("#dry-run[data-state=succeeded]", timeout=15000)  # the next poll
    text = page.locator("#dry-run").inner_text()
    assert "2 of 2 hosts would change" in text
    assert page.locator("#dry-run .d-add").all_inner_texts() == ["+port=9090-web-1", "+port=9090-web-2"]
    assert page.locator("#dry-run .d-del").all_inner_texts() == ["-port=80", "-port=80"]
    assert _axe_findings(page) == []
    page.set_viewport_size({"width": 375, "height": 800})
    assert _overflow(page) <= 0
    assert errors == []
