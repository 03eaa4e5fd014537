"""Lists and streams name canceled, failed and lost targets: none of them counts as done; the
portal's own periodic jobs stay out of object pages' job tables unless asked for."""
import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from ops_portal.accounts.choices import Role
from ops_portal.jobs.choices import JobState, TargetState
from ops_portal.jobs.launch import launch_adhoc
from ops_portal.jobs.lifecycle import job_summary
from ops_portal.jobs.models import Job
from ops_portal.jobs.system import launch_everywhere
from tests import factories
from tests.helpers import act, person

pytestmark = pytest.mark.django_db


def _ended_job(env, states, job_state=JobState.CANCELED):
    """A job over len(states) hosts whose targets ended in `states`, its counter as the runner leaves
    it (every ended target counted in targets_done)."""
    for i in range(len(states)):
        factories.host(env, f"h-{i}")
    operator = person(env, Role.OPERATOR)
    job = launch_adhoc(act(operator, source="web"), environment=env, action="host.command",
                       values={"command": "true"}, selector={"all": True})
    for target, state in zip(job.targets.order_by("index"), states, strict=True):
        target.state = state
        target.save()
    Job.objects.filter(pk=job.pk).update(state=job_state, targets_done=len(states))
    job.refresh_from_db()
    return operator, job


def _row(html, job):
    return re.search(rf'<tr data-job="{job.pk}">.*?</tr>', html, re.S).group(0)


def test_the_jobs_list_counts_canceled_and_lost_targets_apart_from_ok_ones(client, env):
    operator, job = _ended_job(env, [TargetState.OK, TargetState.OK, TargetState.CANCELED,
                                     TargetState.CANCELED, TargetState.LOST])
    client.force_login(operator)
    row = _row(client.get("/jobs/").content.decode(), job)
    text = re.sub(r"<[^>]+>", "", row)
    assert "2 ok, 0 failed, 2 canceled, 1 lost of 5" in text
    assert "5/5" not in text and "done" not in text


def test_the_dashboard_recent_jobs_show_failed_and_canceled_counts(client, env):
    operator, job = _ended_job(env, [TargetState.FAILED, TargetState.TIMED_OUT, TargetState.CANCELED],
                               job_state=JobState.FAILED)
    client.force_login(operator)
    text = re.sub(r"<[^>]+>", "", _row(client.get("/").content.decode(), job))
    assert "0 ok, 2 failed, 1 canceled of 3" in text


def test_a_job_summary_on_the_stream_carries_counts_per_category(env):
    _, job = _ended_job(env, [TargetState.OK, TargetState.CANCELED, TargetState.SKIPPED, TargetState.LOST])
    summary = job_summary(job)
    assert summary["counts"] == {"ok": 1, "canceled": 1, "skipped": 1, "lost": 1}
    assert summary["targets_done"] == 4  # the old counter: why the list must not show it as "done"


def test_the_jobs_list_costs_the_same_queries_for_5_and_50_jobs(client, env):
    operator, _ = _ended_job(env, [TargetState.OK])
    client.force_login(operator)
    for _ in range(4):
        launch_adhoc(act(operator, source="web"), environment=env, action="host.command",
                     values={"command": "true"}, selector={"all": True})
    client.get("/jobs/")  # warm the session and the permission cache
    with CaptureQueriesContext(connection) as few:
        client.get("/jobs/")
    for _ in range(45):
        launch_adhoc(act(operator, source="web"), environment=env, action="host.command",
                     values={"command": "true"}, selector={"all": True})
    with CaptureQueriesContext(connection) as many:
        client.get("/jobs/")
    assert len(many) == len(few)


def test_an_object_page_hides_system_jobs_until_asked(client, env):
    host = factories.host(env, "web-9")
    launch_everywhere("host.facts", name="Inventory refresh")
    operator = person(env, Role.OPERATOR)
    launch_adhoc(act(operator, source="web"), environment=env, action="host.command",
                 values={"command": "uptime"}, selector={"names": ["web-9"]})
    client.force_login(operator)
    page = client.get(f"/hosts/{host.pk}/").content.decode()
    table = page[page.index('id="host-jobs"'):]
    table = table[:table.index("</table>")]
    assert "Run a command" in table and "Inventory refresh" not in table
    assert "?system_jobs=1" in page
    shown = client.get(f"/hosts/{host.pk}/", {"system_jobs": "1"}).content.decode()
    table = shown[shown.index('id="host-jobs"'):]
    assert "Inventory refresh" in table[:table.index("</table>")]
    assert "Hide the portal's own jobs" in shown


def test_all_jobs_of_an_object_is_a_filtered_list(client, env):
    one = factories.host(env, "a-1")
    factories.host(env, "b-1")
    operator = person(env, Role.OPERATOR)
    job_a = launch_adhoc(act(operator, source="web"), environment=env, action="host.command",
                         values={"command": "uptime"}, selector={"names": ["a-1"]})
    job_b = launch_adhoc(act(operator, source="web"), environment=env, action="host.command",
                         values={"command": "uptime"}, selector={"names": ["b-1"]})
    client.force_login(operator)
    page = client.get(f"/hosts/{one.pk}/").content.decode()
    link = re.search(r'href="([^"]+)" class="js-all-jobs"', page).group(1).replace("&amp;", "&")
    listed = client.get(link).content.decode()
    assert f'data-job="{job_a.pk}"' in listed and f'data-job="{job_b.pk}"' not in listed
    assert "Only jobs that acted on host #" in listed
    launch_everywhere("host.facts", name="Inventory refresh")
    both = client.get(link + "&system=any").content.decode()
    assert f'data-job="{job_a.pk}"' in both and "Inventory refresh" in both and f'data-job="{job_b.pk}"' not in both
    audit = re.search(r'href="([^"]+)" class="js-audit-link"', page).group(1).replace("&amp;", "&")
    assert audit == f"/audit/?object_type=inventory.host&object_id={one.pk}"
    assert client.get(audit).status_code == 200
