"""ansible.playbook against the real fleet through a live worker: changed then ok per host with
the lines live under each host, one failing host failing only its target (and a threshold
stopping a rolling run), check mode changing nothing, extra vars as data, cancel leaving no
ansible or ssh process, bad input failing the job with Ansible's words, and a production job's
dry run (check mode) showing its diff on the approval page before the approved run changes the file."""
import subprocess
import time
import uuid

import pytest
from django.core.exceptions import ValidationError
from django.test import Client
from django.urls import reverse

from ops_portal.accounts.choices import Role
from ops_portal.approvals.models import ApprovalPolicy
from ops_portal.audit.models import AuditEvent
from ops_portal.jobs.choices import JobState, TargetState
from ops_portal.jobs.launch import launch, launch_adhoc, request_cancel
from ops_portal.jobs.models import Job, JobEvent
from ops_portal.jobs.templates import create_template
from tests.helpers import act, person, wait_until
from tests.jobs.helpers import wait_job

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.live, pytest.mark.fleet]


def play(ans, playbook, **values):
    strategy = values.pop("strategy", None)
    return launch_adhoc(ans.operator, environment=ans.env, action="ansible.playbook",
                        values={"project": "site", "playbook": playbook, **values},
                        selector={"names": [h.name for h in ans.hosts]}, strategy=strategy)


def lines(job, host=None):
    events = JobEvent.objects.filter(job=job, kind="output").order_by("seq")
    if host is not None:
        events = events.filter(target=job.targets.get(name=host.name).index)
    return [e.text for e in events]


def targets(job):
    return {t.name: t for t in job.targets.all()}


def test_a_playbook_that_changes_a_file_reports_changed_then_ok_per_host(ans, live_worker):
    ans.write("motd.yml", f"""
- hosts: all
  gather_facts: false
  tasks:
    - name: motd
      copy:
        dest: {ans.workdir}/motd
        content: "{{{{ greeting | default('hi') }}}} {{{{ inventory_hostname }}}} {{{{ port | default(0) }}}}\\n"
""")
    ans.sync()
    first = wait_job(play(ans, "motd.yml"), JobState.SUCCEEDED, timeout=180)
    assert first.params["revision"] == ans.project.revision  # pinned at launch
    one, two, three = ans.hosts
    assert ans.read(one, f"{ans.workdir}/motd") == f"hello {one.name} 8080\n"
    assert ans.read(two, f"{ans.workdir}/motd") == f"bonjour {two.name} 8080\n"  # host var wins
    assert ans.read(three, f"{ans.workdir}/motd") == f"hi {three.name} 0\n"  # in no group
    for name, target in targets(first).items():
        assert target.state == TargetState.OK and target.changed is True, name
        assert target.data["counts"]["changed"] == 1 and target.data["counts"]["failed"] == 0
        assert f"changed: [{name}]" in lines(first, next(h for h in ans.hosts if h.name == name))
    assert any(line.startswith("TASK [motd]") for line in lines(first))  # the job's own lines
    client = Client()
    client.force_login(ans.operator.user)
    grid = client.get(reverse("jobs:detail", args=[first.pk])).content.decode()
    assert grid.count("ok=1 changed=1") == len(ans.hosts)  # the per-target counts on the job page

    second = wait_job(play(ans, "motd.yml"), JobState.SUCCEEDED, timeout=180)
    for name, target in targets(second).items():
        assert target.changed is False and target.data["counts"] == {
            "ok": 1, "changed": 0, "failed": 0, "skipped": 0, "unreachable": 0, "rescued": 0, "ignored": 0}, name
        assert f"ok: [{name}]" in lines(second, next(h for h in ans.hosts if h.name == name))


def test_a_failing_task_on_one_host_fails_that_target_only_and_a_threshold_stops_a_rolling_run(ans, live_worker):
    one, two, three = ans.hosts
    ans.write("fail.yml", f"""
- hosts: all
  gather_facts: false
  tasks:
    - name: break one host
      command: /bin/false
      when: inventory_hostname == "{two.name}"
    - name: mark
      file: {{path: {ans.workdir}/marked, state: touch}}
""")
    ans.sync()
    job = wait_job(play(ans, "fail.yml"), JobState.FAILED, timeout=180)
    result = targets(job)
    assert result[two.name].state == TargetState.FAILED and "non-zero return code" in result[two.name].error
    assert result[two.name].data["counts"]["failed"] == 1
    assert result[one.name].state == TargetState.OK and result[three.name].state == TargetState.OK
    assert ans.read(one, f"{ans.workdir}/marked") == "" and ans.read(two, f"{ans.workdir}/marked") is None
    assert any("FAILED!" in line for line in lines(job, two))

    # Rolling, one host per batch, no failure allowed: the failing host's batch stops the rest.
    for host in ans.hosts:
        ans.exec(host, ["rm", "-f", f"{ans.workdir}/marked"])
    ordered = sorted(ans.hosts, key=lambda h: h.name)
    ans.write("fail.yml", (ans.source / "fail.yml").read_text().replace(two.name, ordered[0].name))
    ans.sync()
    job = wait_job(play(ans, "fail.yml", strategy={"kind": "rolling", "batch_size": 1, "max_failures": 0}),
                   JobState.FAILED, timeout=180)
    states = [t.state for t in job.targets.order_by("index")]
    assert states == [TargetState.FAILED, TargetState.SKIPPED, TargetState.SKIPPED]
    assert "Rollout stopped" in job.error
    assert all(ans.read(h, f"{ans.workdir}/marked") is None for h in ans.hosts)


def test_check_mode_shows_the_diff_and_changes_nothing_on_the_hosts(ans, live_worker):
    ans.write("conf.yml", f"""
- hosts: all
  gather_facts: false
  tasks:
    - copy: {{dest: {ans.workdir}/app.conf, content: "port=9090\\n"}}
""")
    ans.sync()
    for host in ans.hosts:
        ans.exec(host, ["sh", "-c", f"echo port=80 > {ans.workdir}/app.conf"]).check()
    job = wait_job(play(ans, "conf.yml", dry_run=True), JobState.SUCCEEDED, timeout=180)
    for host in ans.hosts:
        target = job.targets.get(name=host.name)
        assert target.changed is False and target.data["check"] is True
        assert target.data["counts"]["changed"] == 1  # would change
        assert "-port=80" in lines(job, host) and "+port=9090" in lines(job, host)
        assert ans.read(host, f"{ans.workdir}/app.conf") == "port=80\n"  # verified on the host


def test_extra_vars_from_template_parameters_arrive_as_data(ans, live_worker):
    marker = f"/tmp/pwned-{uuid.uuid4().hex[:8]}"
    ans.write("echo.yml", f"""
- hosts: all
  gather_facts: false
  tasks:
    - copy: {{dest: {ans.workdir}/said, content: "{{{{ said }}}}"}}
    - shell: printf '%s' {{{{ said | quote }}}} > {ans.workdir}/said-shell
""")
    ans.sync()
    template = create_template(ans.admin, name="echo", environment=ans.env, action="ansible.playbook",
                               selector={"names": [ans.hosts[0].name]},
                               action_params={"project": "site", "playbook": "echo.yml"},
                               parameters=[{"name": "said", "type": "string", "required": True}])
    said = f"$(touch {marker}); `touch {marker}` {{{{ lookup('pipe', 'touch {marker}') }}}} ' \" ; | &"
    job = wait_job(launch(ans.operator, template, {"said": said}), JobState.SUCCEEDED, timeout=180)
    host = ans.hosts[0]
    assert job.params["said"] == said
    assert ans.read(host, f"{ans.workdir}/said") == said
    assert ans.read(host, f"{ans.workdir}/said-shell") == said
    assert ans.exec(host, ["test", "-e", marker]).exit_code != 0
    assert subprocess.run(["test", "-e", marker]).returncode != 0  # nor on the portal's machine


def test_ad_hoc_extra_vars_arrive_as_data_nested_and_typed(ans, live_worker):
    marker = f"/tmp/pwned-{uuid.uuid4().hex[:8]}"
    ans.write("vars.yml", f"""
- hosts: all
  gather_facts: false
  tasks:
    - copy:
        dest: {ans.workdir}/vars
        content: "{{{{ said }}}}|{{{{ app.port + 1 }}}}|{{{{ app.names | join(',') }}}}"
""")
    ans.sync()
    said = f"{{{{ lookup('pipe', 'touch {marker}') }}}} $(touch {marker})"
    text = f"said: \"{said}\"\napp:\n  port: 8079\n  names: [a, b]\n"
    job = wait_job(play(ans, "vars.yml", extra_vars=text), JobState.SUCCEEDED, timeout=180)
    assert job.params["extra_vars"] == (
        '{"app": {"names": ["a", "b"], "port": 8079}, "said": "' + said.replace('"', '\\"') + '"}')
    for host in ans.hosts:
        assert ans.read(host, f"{ans.workdir}/vars") == f"{said}|8080|a,b"
        assert ans.exec(host, ["test", "-e", marker]).exit_code != 0
    assert subprocess.run(["test", "-e", marker]).returncode != 0


def _portal_leftovers():
    found = subprocess.run(["pgrep", "-af", "opsportal-ansible-"], capture_output=True, text=True).stdout
    return [line for line in found.splitlines() if "pgrep" not in line]


def test_a_canceled_playbook_leaves_no_ansible_or_ssh_process(ans, live_worker):
    seconds = 300 + int(uuid.uuid4().int % 500)
    ans.write("sleep.yml", f"""
- hosts: all
  gather_facts: false
  tasks:
    - name: sleep
      shell: sleep {seconds}
""")
    ans.sync()
    job = play(ans, "sleep.yml")
    wait_until(lambda: any(line.startswith("TASK [sleep]") for line in lines(job)), 120, "the sleep task started")
    wait_until(lambda: all(ans.exec(h, ["pgrep", "-f", f"sleep {seconds}"]).exit_code == 0 for h in ans.hosts), 60,
               "sleep running on every host")
    assert _portal_leftovers()  # ansible-playbook and its ssh clients, while it runs
    started = time.monotonic()
    request_cancel(ans.operator, job)
    job = wait_job(job, JobState.CANCELED, timeout=60)
    assert time.monotonic() - started < 30
    assert set(job.targets.values_list("state", flat=True)) == {TargetState.CANCELED}
    assert _portal_leftovers() == []
    wait_until(lambda: all(ans.exec(h, ["pgrep", "-f", f"sleep {seconds}"]).exit_code == 1 for h in ans.hosts),
               30, "no sleep left on the hosts")


@pytest.mark.parametrize("playbook,text,said", [
    ("syntax.yml", "- hosts: all\n  tasks:\n    - copy: {dest: /tmp/x\n", "YAML"),
    ("role.yml", "- hosts: all\n  gather_facts: false\n  roles: [no_such_role]\n", "no_such_role"),
])
def test_a_broken_playbook_fails_the_job_with_ansibles_words_and_changes_nothing(ans, live_worker, playbook, text,
                                                                                 said):
    ans.write(playbook, text)
    ans.sync()
    job = wait_job(play(ans, playbook), JobState.FAILED, timeout=180)
    for target in job.targets.all():
        assert target.state == TargetState.FAILED and said in target.error, target.error
    assert all(ans.exec(h, ["ls", "-A", ans.workdir]).stdout == "" for h in ans.hosts)


def test_an_unknown_revision_or_project_is_refused_with_plain_words(ans, live_worker):
    with pytest.raises(ValidationError, match="has not been synced yet"):
        play(ans, "site.yml")
    ans.write("site.yml", "- hosts: all\n  gather_facts: false\n  tasks: []\n")
    ans.sync()
    job = wait_job(play(ans, "site.yml", revision="0" * 64), JobState.FAILED, timeout=120)
    assert all("was not synced" in t.error for t in job.targets.all())
    job = wait_job(play(ans, "missing.yml"), JobState.FAILED, timeout=120)
    assert all("has no playbook missing.yml" in t.error for t in job.targets.all())
    with pytest.raises(ValidationError, match="no project nope"):
        launch_adhoc(ans.operator, environment=ans.env, action="ansible.playbook",
                     values={"project": "nope", "playbook": "site.yml"}, selector={"all": True})


def test_a_production_playbook_shows_its_dry_runs_diff_before_approval_and_changes_the_file_only_after(
        ans, live_worker):
    ans.write("conf.yml", f"""
- hosts: all
  gather_facts: false
  tasks:
    - name: app conf
      copy: {{dest: {ans.workdir}/app.conf, content: "port=9090\\n"}}
""")
    ans.sync()
    ApprovalPolicy.objects.create(name="production", environment=ans.env, all_work=True)
    approver = act(person(ans.env, Role.APPROVER))
    for host in ans.hosts:
        ans.exec(host, ["sh", "-c", f"echo port=80 > {ans.workdir}/app.conf"]).check()
    job = play(ans, "conf.yml")
    assert job.state == JobState.PENDING_APPROVAL
    request = job.approval_request
    dry = wait_job(Job.objects.get(dry_run_for=request), JobState.SUCCEEDED, timeout=180)
    assert dry.params["revision"] == job.params["revision"] and dry.params["dry_run"] is True
    for host in ans.hosts:
        assert ans.read(host, f"{ans.workdir}/app.conf") == "port=80\n"  # the dry run changed nothing
        diff = dry.targets.get(name=host.name).data["diff"]
        assert [d["task"] for d in diff] == ["app conf"]
        assert "-port=80" in diff[0]["diff"].splitlines() and "+port=9090" in diff[0]["diff"].splitlines()
    client = Client()
    client.force_login(approver.user)
    page = client.get(reverse("approvals:detail", args=[request.pk])).content.decode()
    assert f"<strong>{len(ans.hosts)}</strong> of {len(ans.hosts)} hosts would change" in page
    assert page.count('<span class="d-del"><span class="d-mark" aria-hidden="true">-</span>port=80</span>') == len(
        ans.hosts)
    assert page.count('<span class="d-add"><span class="d-mark" aria-hidden="true">+</span>port=9090</span>') == len(
        ans.hosts)
    job.refresh_from_db()
    assert job.state == JobState.PENDING_APPROVAL  # still waiting: the dry run did not stand in for it

    response = client.post(reverse("approvals:detail", args=[request.pk]), {"decision": "approve"})
    assert response.status_code == 302
    row = AuditEvent.objects.filter(action="approval.approve", object_id=str(request.pk)).order_by("pk").first()
    assert row.extra["dry_run"] == {"job": dry.pk, "state": "succeeded", "finished": True}
    job = wait_job(job, JobState.SUCCEEDED, timeout=180)
    for host in ans.hosts:
        assert ans.read(host, f"{ans.workdir}/app.conf") == "port=9090\n"
        assert job.targets.get(name=host.name).changed is True
