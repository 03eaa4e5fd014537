"""The Configs pages (templates, drift by host, buttons that launch jobs) and the built-in periodic
drift check (one job per environment, no pile-up, stale reports forgotten)."""
import pytest
from django.utils import timezone

from ops_portal.accounts.choices import Role
from ops_portal.configs import services, tasks
from ops_portal.configs.models import DriftReport
from ops_portal.configs.periodic_tasks import DRIFT_SCHEDULE
from ops_portal.core import periodic
from ops_portal.core.choices import Source
from ops_portal.core.context import Actor
from ops_portal.jobs.models import Job
from tests import factories
from tests.configs.helpers import config
from tests.helpers import person

pytestmark = pytest.mark.django_db


def report(template, host, drifted, **fields):
    return DriftReport.objects.create(config=template, host=host, config_version=template.version, drifted=drifted,
                                      checked=timezone.now(), **fields)


# Pages ---------------------------------------------------------------------------------------

def test_the_configs_page_lists_templates_and_highlights_drifted_hosts_with_their_diff(client, env):
    web, db = factories.host(env, "web-1"), factories.host(env, "db-1")
    template = config(env, name="app-conf", path="/etc/app.conf")
    report(template, web, True, changes=["content"], diff="--- /etc/app.conf\n+++ /etc/app.conf\n-port=81\n+port=80\n")
    report(template, db, False)
    hidden = config(factories.environment("beta"), name="secret-place")
    client.force_login(person(env, Role.VIEWER))
    page = client.get("/configs/").content.decode()
    assert "app-conf" in page and hidden.name not in page
    assert 'class="drift-drifted"' in page and 'class="drift-in-sync"' in page
    assert "<summary>diff</summary>" in page and "+port=80" in page
    assert page.index("web-1") < page.index("db-1")  # drifted first
    assert 'value="apply"' not in page and "Apply to this host" not in page  # a viewer launches nothing
    drifted_only = client.get("/configs/?state=drifted").content.decode()
    assert "web-1" in drifted_only and "db-1</a>" not in drifted_only
    sections = client.get("/configs/").context["nav_sections"]
    assert [s["label"] for s in sections if s["active"]] == ["Configs"]


def test_buttons_launch_jobs_and_lead_to_the_job_page(client, env):
    web = factories.host(env, "web-1")
    template = config(env, name="app-conf")
    drifted = report(template, web, True, changes=["content"])
    client.force_login(person(env, Role.OPERATOR))
    page = client.get("/configs/").content.decode()
    assert 'value="dry_run"' in page and "Apply to this host" in page
    for what, action, params in (("dry_run", "config.apply", {"dry_run": True}),
                                 ("apply", "config.apply", {"dry_run": False}),
                                 ("check", "config.drift", {})):
        response = client.post(f"/configs/{template.pk}/launch/", {"what": what})
        job = Job.objects.latest("pk")
        assert response.status_code == 302 and response.url == f"/jobs/{job.pk}/"
        assert job.action == action and params.items() <= job.params.items()
    response = client.post(f"/configs/drift/{drifted.pk}/remediate/")
    job = Job.objects.latest("pk")
    assert response.url == f"/jobs/{job.pk}/" and list(job.targets.values_list("name", flat=True)) == ["web-1"]


def test_a_viewer_pressing_a_button_gets_a_message_not_a_job(client, env):
    factories.host(env, "web-1")
    template = config(env)
    client.force_login(person(env, Role.VIEWER))
    response = client.post(f"/configs/{template.pk}/launch/", {"what": "apply"}, follow=True)
    assert "You may not operate" in response.content.decode()
    assert not Job.objects.exists()


def test_the_detail_page_previews_a_host_and_shows_render_errors_as_messages(client, env):
    web = factories.host(env, "web-1", variables={"port": 81})
    good = config(env, name="good", content="port={{ port }}\n")
    bad = config(env, name="bad", content="port={{ nope }}\n")
    client.force_login(person(env, Role.VIEWER))
    page = client.get(f"/configs/{good.pk}/?host={web.pk}").content.decode()
    assert 'id="preview"' not in page and "Preview for a host" not in page  # viewers start no renders
    client.force_login(person(env, Role.OPERATOR))
    page = client.get(f"/configs/{good.pk}/?host={web.pk}").content.decode()
    assert '<pre class="content" id="preview">port=81\n</pre>' in page
    page = client.get(f"/configs/{bad.pk}/?host={web.pk}").content.decode()
    assert "&#x27;nope&#x27; is undefined" in page and 'id="preview"' not in page


# The periodic drift check --------------------------------------------------------------------

def test_the_drift_check_is_a_built_in_periodic_task_every_15_minutes():
    builtin = periodic.builtins()[DRIFT_SCHEDULE]
    assert (builtin.task, builtin.every_seconds) == ("configs.check_drift", 900)
    from django_celery_beat.models import PeriodicTask

    periodic.ensure_builtins()
    assert PeriodicTask.objects.get(name=DRIFT_SCHEDULE).task == "configs.check_drift"


def test_one_drift_job_per_environment_over_the_hosts_its_templates_select(env):
    env.allow_adhoc_jobs = False
    env.save()
    web, db = factories.host(env, "web-1", tags=["web"]), factories.host(env, "db-1", tags=["db"])
    factories.host(env, "other-1", tags=["other"])
    first = config(env, selector={"tags": ["web"]})
    second = config(env, selector={"tags": ["db"]}, path="/etc/db.conf")
    config(env, selector={"all": True}, enabled=False)
    beta = factories.environment("beta")
    config(beta, selector={"all": True})  # no hosts there: no job
    job_ids = tasks.check_drift()
    assert len(job_ids) == 1
    job = Job.objects.get(pk=job_ids[0])
    assert (job.action, job.environment, job.source, job.created_by_id) == ("config.drift", env, "schedule", None)
    assert job.params == {"configs": f"{first.pk},{second.pk}"}
    assert sorted(job.targets.values_list("name", flat=True)) == [db.name, web.name]
    assert job.state == "queued"
    assert tasks.check_drift() == []  # the previous check has not ended: no pile-up


def test_reports_out_of_scope_are_forgotten_by_the_next_check(env):
    web, db = factories.host(env, "web-1", tags=["web"]), factories.host(env, "db-1", tags=["db"])
    template = config(env, selector={"tags": ["web"]})
    kept = report(template, web, False)
    report(template, db, False)  # db-1 is not a target any more
    disabled = config(env, enabled=False, path="/etc/x.conf")
    report(disabled, web, False)
    services.launch_drift_checks(Actor.system(Source.SCHEDULE))
    assert list(DriftReport.objects.values_list("pk", flat=True)) == [kept.pk]


def test_the_page_and_the_reports_api_cost_the_same_queries_for_3_or_30_reports(client, api, env):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    viewer = person(env, Role.VIEWER)
    client.force_login(viewer)
    api.force_authenticate(viewer)

    def counts():
        with CaptureQueriesContext(connection) as page:
            assert client.get("/configs/").status_code == 200
        with CaptureQueriesContext(connection) as listing:
            assert api.get("/api/drift-reports/").status_code == 200
        return len(page), len(listing)

    templates = [config(env, path=f"/etc/app{i}.conf") for i in range(3)]
    hosts = [factories.host(env, f"web-{i}") for i in range(10)]
    for template in templates[:1]:
        for host in hosts[:3]:
            report(template, host, True, changes=["content"], diff="-a\n+b\n")
    counts()  # warm up: the viewer's scopes are computed once and cached on the user
    few = counts()
    for template in templates:
        for host in hosts:
            DriftReport.objects.get_or_create(config=template, host=host, defaults={
                "config_version": 1, "drifted": host.pk % 2 == 0, "checked": timezone.now()})
    assert counts() == few


def test_alerts_of_deleted_hosts_and_drift_gone_out_of_scope_are_resolved_by_the_next_check(env):
    from ops_portal.configs import drift
    from ops_portal.monitoring.models import Alert

    web, db, gone = (factories.host(env, name, tags=["web"]) for name in ("web-1", "db-1", "gone-1"))
    template = config(env, selector={"tags": ["web"]})
    for host in (web, db, gone):
        drift.store_results(host.pk, None, [{"config": template.pk, "drifted": True, "changes": ["content"]}])
    assert Alert.objects.filter(source="config_drift", state="firing").count() == 3
    gone.delete()  # its report goes with it; its alert must not stay open
    db.tags = ["db"]
    db.save()  # out of the template's scope
    services.launch_drift_checks(Actor.system(Source.SCHEDULE))
    assert list(Alert.objects.filter(state="firing").values_list("host_name", flat=True)) == ["web-1"]
    assert list(DriftReport.objects.values_list("host__name", flat=True)) == ["web-1"]
