"""Configuration jobs against the real fleet through a live worker: files rendered per host with
mode and owner, idempotent applies, dry runs with diffs, drift detected and alerted then fixed and
resolved, service actions only on change, and injection attempts that stay data."""
import uuid

import pytest

from ops_portal.accounts.choices import Role
from ops_portal.approvals import services as approvals
from ops_portal.approvals.models import ApprovalPolicy
from ops_portal.configs import services, tasks
from ops_portal.configs.models import ALERT_SOURCE, DriftReport
from ops_portal.inventory import services as inventory
from ops_portal.inventory.choices import Transport
from ops_portal.jobs.choices import JobState, TargetState
from ops_portal.jobs.models import Job, JobEvent
from ops_portal.monitoring.choices import OPEN_STATES, AlertState
from ops_portal.monitoring.models import Alert
from tests import factories
from tests.helpers import act, person
from tests.jobs.helpers import wait_job

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.live, pytest.mark.fleet]

CONTENT = "# {{ host.name }} ({{ host.environment }})\nport={{ port }}\ngreeting={{ greeting }}\n"


def lines(job, host=None, kinds=("output",)):
    events = JobEvent.objects.filter(job=job, kind__in=kinds).order_by("seq")
    if host is not None:
        events = events.filter(target=job.targets.get(name=host.name).index)
    return [e.text for e in events]


def expected(host, port, greeting):
    return f"# {host.name} (cfg)\nport={port}\ngreeting={greeting}\n"


def app_config(cfleet, name="app", **fields):
    fields = {"selector": {"groups": ["app"]}, "path": f"{cfleet.workdir}/{name}.conf", "content": CONTENT,
              "mode": 0o640, "owner": "daemon", "group": "adm", **fields}
    return services.create_config(cfleet.admin, name=name, environment=cfleet.env, **fields)


def apply(cfleet, config, state=JobState.SUCCEEDED, **kwargs):
    return wait_job(services.launch_apply(cfleet.operator, config, **kwargs), state, timeout=120)


def test_apply_renders_per_host_with_mode_and_owner_and_a_second_apply_changes_nothing(cfleet, live_worker):
    first, second, third = cfleet.hosts
    config = app_config(cfleet)
    path = config.path
    job = apply(cfleet, config)
    assert [t.changed for t in job.targets.order_by("index")] == [True, True, True]
    assert cfleet.read(first, path) == expected(first, 9090, "hello")  # group zz-canary wins over app
    assert cfleet.read(second, path) == expected(second, 8080, "bonjour")  # the host's own variable wins
    assert cfleet.read(third, path) == expected(third, 8080, "hello")
    assert {cfleet.stat(h, path) for h in cfleet.hosts} == {"640 daemon adm"}
    assert f"changed {path} (created)" in lines(job, first)

    again = apply(cfleet, config)
    assert [t.changed for t in again.targets.all()] == [False, False, False]
    assert all(t.data["configs"][0]["changes"] == [] for t in again.targets.all())
    assert f"ok {path}" in lines(again, second)

    config = services.update_config(cfleet.admin, config, mode=0o600)
    job = apply(cfleet, config)
    assert f"changed {path} (mode 0640 -> 0600)" in lines(job, first)
    assert cfleet.stat(first, path) == "600 daemon adm"
    # Applied files are in line: their reports say so without waiting for the next check.
    assert set(DriftReport.objects.filter(config=config).values_list("drifted", "config_version")) == {(False, 2)}


def test_a_dry_run_shows_the_diff_and_changes_nothing(cfleet, live_worker):
    first = cfleet.hosts[0]
    config = app_config(cfleet)
    apply(cfleet, config)
    config = services.update_config(cfleet.admin, config, content=CONTENT.replace("greeting=", "welcome="),
                                    owner="root")
    job = apply(cfleet, config, dry_run=True)
    out = lines(job, first)
    assert f"would change {config.path} (content, owner 1 -> 0 (root))" in out
    assert "-greeting=hello" in out and "+welcome=hello" in out
    assert cfleet.read(first, config.path) == expected(first, 9090, "hello")
    assert cfleet.stat(first, config.path) == "640 daemon adm"
    assert [t.changed for t in job.targets.all()] == [False, False, False]
    assert job.targets.get(name=first.name).data["configs"][0]["changes"] == ["content", "owner 1 -> 0 (root)"]


def test_drift_is_detected_by_the_scheduled_check_alerted_fixed_through_approval_and_resolved(cfleet, live_worker):
    first, second, third = cfleet.hosts
    env = cfleet.env
    env.allow_adhoc_jobs = False  # the built-in check and config applies are not ad-hoc work
    env.save()
    config = app_config(cfleet)
    apply(cfleet, config)
    ApprovalPolicy.objects.create(name="every-change", environment=env, all_work=True)
    cfleet.exec(second, f"echo debug=1 >> {config.path}").check()
    cfleet.exec(third, ["chmod", "0666", config.path]).check()

    job_ids = tasks.check_drift()  # what the beat schedule runs every 15 minutes
    assert len(job_ids) == 1
    job = wait_job(Job.objects.get(pk=job_ids[0]), JobState.SUCCEEDED, timeout=120)
    assert (job.action, job.created_by_name, job.source) == ("config.drift", "", "schedule")
    reports = {r.host_id: r for r in DriftReport.objects.filter(config=config)}
    assert reports[first.pk].drifted is False and not reports[first.pk].alerted
    drifted = reports[second.pk]
    assert drifted.drifted is True and drifted.changes == ["content"] and drifted.job_id == job.pk
    assert "+debug=1" not in drifted.diff and "-debug=1" in drifted.diff  # the host has it, the template not
    assert reports[third.pk].changes == ["mode 0666 -> 0640"]
    assert f"drifted {config.path} (content)" in lines(job, second)
    alert = Alert.objects.get(source=ALERT_SOURCE, key=drifted.alert_key, state__in=OPEN_STATES)
    assert alert.host_id == second.pk and alert.environment_id == env.pk and config.path in alert.summary
    assert Alert.objects.filter(source=ALERT_SOURCE, state__in=OPEN_STATES).count() == 2
    assert cfleet.read(second, config.path).endswith("debug=1\n")  # a check changes nothing

    # A second check while still drifted keeps one alert per host and configuration.
    wait_job(Job.objects.get(pk=tasks.check_drift()[0]), JobState.SUCCEEDED, timeout=120)
    assert Alert.objects.filter(source=ALERT_SOURCE, state__in=OPEN_STATES).count() == 2

    fix = services.remediate(cfleet.operator, DriftReport.objects.get(pk=drifted.pk))
    assert fix.state == JobState.PENDING_APPROVAL  # remediation goes through the environment's policy
    approvals.decide(act(person(env, Role.APPROVER)), fix.approval_request, "approve")
    fix = wait_job(fix, JobState.SUCCEEDED, timeout=120)
    assert list(fix.targets.values_list("name", flat=True)) == [second.name]
    assert cfleet.read(second, config.path) == expected(second, 8080, "bonjour")

    job = wait_job(Job.objects.get(pk=tasks.check_drift()[0]), JobState.SUCCEEDED, timeout=120)
    report = DriftReport.objects.get(pk=drifted.pk)
    assert (report.drifted, report.alerted, report.diff, report.job_id) == (False, False, "", job.pk)
    assert Alert.objects.get(pk=alert.pk).state == AlertState.RESOLVED
    assert DriftReport.objects.get(config=config, host=third).drifted is True  # not fixed yet


def test_an_unreachable_host_gives_an_unknown_report(cfleet, live_worker):
    third = cfleet.hosts[2]
    config = app_config(cfleet)
    apply(cfleet, config)
    cfleet.fleet.stop_host(third.name)
    try:
        job = wait_job(services.launch_check(cfleet.operator, config), JobState.FAILED, timeout=120)
    finally:
        cfleet.fleet.start_host(third.name)
    report = DriftReport.objects.get(config=config, host=third)
    assert report.drifted is None and report.error and report.job_id == job.pk
    assert job.targets.get(name=third.name).state == TargetState.FAILED


def test_the_service_action_runs_only_when_the_file_changed_and_its_output_streams(cfleet, live_worker):
    first = cfleet.hosts[0]
    marker = f"{cfleet.workdir}/restarts"
    config = app_config(cfleet, service_action=f"echo restarting app on $OPSPORTAL_TARGET; echo x >> {marker}")

    def restarts(host):
        return (cfleet.read(host, marker) or "").count("x")

    job = apply(cfleet, config)
    assert f"restarting app on {first.name}" in lines(job, first)
    assert any(text.startswith("Service action of app:") for text in lines(job, first, kinds=("info",)))
    assert {restarts(h) for h in cfleet.hosts} == {1}

    job = apply(cfleet, config)  # nothing changed: no restart
    assert {restarts(h) for h in cfleet.hosts} == {1}
    assert not any("Service action" in text for text in lines(job, kinds=("info",)))

    config = services.update_config(cfleet.admin, config, content=CONTENT + "# v2\n")
    apply(cfleet, config, dry_run=True)  # a dry run says it would restart, and does not
    assert {restarts(h) for h in cfleet.hosts} == {1}
    apply(cfleet, config)
    assert {restarts(h) for h in cfleet.hosts} == {2}

    config = services.update_config(cfleet.admin, config, content=CONTENT + "# v3\n", service_action="exit 3")
    job = apply(cfleet, config, state=JobState.FAILED)
    target = job.targets.get(name=first.name)
    assert target.state == TargetState.FAILED and "service action of app failed (exit 3)" in target.error
    assert target.changed is True  # the file did change


def test_a_missing_variable_fails_the_target_by_name_and_writes_nothing(cfleet, live_worker):
    first = cfleet.hosts[0]
    config = app_config(cfleet, content="port={{ port }}\npassword={{ db_password }}\n")
    job = apply(cfleet, config, state=JobState.FAILED)
    target = job.targets.get(name=first.name)
    assert "'db_password' is undefined" in target.error and "line 2" in target.error
    assert cfleet.read(first, config.path) is None


def test_injection_attempts_are_refused_or_written_as_plain_data(cfleet, live_worker):
    first, second = cfleet.hosts[:2]
    pwned = f"/tmp/pwned-{uuid.uuid4().hex[:8]}"
    hostile = f"$(touch {pwned}); `touch {pwned}`; touch {pwned}"
    inventory.update_host(cfleet.admin, second, variables={"greeting": hostile})
    config = app_config(cfleet, content=f"run=$(touch {pwned})\ngreeting={{{{ greeting }}}}\n")
    apply(cfleet, config)
    assert cfleet.read(second, config.path) == f"run=$(touch {pwned})\ngreeting={hostile}\n"
    assert all(cfleet.exec(h, ["test", "-e", pwned]).exit_code == 1 for h in cfleet.hosts)

    escape = app_config(cfleet, name="escape", content="{{ ''.__class__.__mro__[1].__subclasses__() }}")
    job = apply(cfleet, escape, state=JobState.FAILED)
    assert "refused by the template sandbox" in job.targets.get(name=first.name).error
    assert cfleet.read(first, escape.path) is None

    cfleet.exec(first, ["ln", "-s", "/etc/passwd", f"{cfleet.workdir}/link.conf"]).check()
    link = app_config(cfleet, name="link", selector={"names": [first.name]})
    job = apply(cfleet, link, state=JobState.FAILED)
    assert "is a symlink, not a regular file" in job.targets.get(name=first.name).error
    assert cfleet.exec(first, ["grep", "-c", "greeting", "/etc/passwd"]).stdout.strip() == "0"

    stranger = app_config(cfleet, name="stranger", owner="nosuchuser", selector={"names": [first.name]})
    job = apply(cfleet, stranger, state=JobState.FAILED)
    assert "no user 'nosuchuser'" in job.targets.get(name=first.name).error

    for field, value in (("path", f"{cfleet.workdir}/x;touch {pwned}"), ("owner", f"root$(touch {pwned})"),
                         ("group", f"adm`touch {pwned}`")):
        with pytest.raises(Exception) as caught:
            app_config(cfleet, name=f"bad-{field}", **{field: value})
        assert field in caught.value.message_dict
    assert all(cfleet.exec(h, ["test", "-e", pwned]).exit_code == 1 for h in cfleet.hosts)


def test_a_template_edited_after_approval_is_not_applied(cfleet, live_worker):
    first = cfleet.hosts[0]
    config = app_config(cfleet)
    ApprovalPolicy.objects.create(name="config-changes", environment=cfleet.env, risks=["config_change"])
    job = services.launch_apply(cfleet.operator, config)
    assert job.state == JobState.PENDING_APPROVAL
    services.update_config(cfleet.admin, config, content="something = else\n")
    approvals.decide(act(person(cfleet.env, Role.APPROVER)), job.approval_request, "approve")
    job = wait_job(job, JobState.FAILED, timeout=120)
    assert "changed since this job was planned (version 1, now 2)" in job.error
    assert cfleet.read(first, config.path) is None


def test_the_portals_own_machine_is_refused(live_worker, db):
    env = factories.environment("local")
    factories.host(env, "portal", transport=Transport.LOCAL)
    admin = act(person(env, Role.ADMIN))
    config = services.create_config(admin, name="motd", environment=env, selector={"all": True}, path="/etc/motd",
                                    content="hi\n")
    job = wait_job(services.launch_apply(admin, config), JobState.FAILED, timeout=60)
    assert "SSH only" in job.targets.get().error
