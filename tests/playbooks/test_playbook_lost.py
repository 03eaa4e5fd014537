"""A playbook whose worker died: SIGKILL the live worker mid-playbook, ansible-playbook (a session
of its own) runs on; once the reaper marks the job lost, the next worker of the job's queue ends
every process tagged with the job's run (OPSPORTAL_RUN) on this machine, removes the run's private
directory, notes it on the targets and in the output, and writes the job.sessions_ended audit row."""
import os
import signal
import uuid
from pathlib import Path

import psutil
import pytest

from ops_portal.audit.models import AuditEvent
from ops_portal.jobs.choices import JobState, TargetState
from ops_portal.jobs.launch import launch
from ops_portal.jobs.models import Job, JobEvent
from ops_portal.jobs.tasks import reap_lost_jobs
from ops_portal.jobs.templates import create_template
from schedulers import ansible
from tests.helpers import wait_until
from tests.live import start_worker

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.live, pytest.mark.fleet]


def names(procs):
    found = []
    for proc in procs:
        try:
            found.append(proc.name())
        except psutil.Error:
            continue
    return found


def run_homes(procs):
    homes = set()
    for proc in procs:
        try:
            homes.add(proc.environ().get("HOME", ""))
        except psutil.Error:
            continue
    return homes


def test_a_dead_workers_playbook_is_ended_by_the_next_worker_of_its_queue(ans, live_env, live_logs, live_worker):
    marker = f"opsportal-lost-play-{uuid.uuid4().hex[:8]}"
    ans.write("long.yml", f"""
- hosts: all
  gather_facts: false
  tasks:
    - name: wait
      shell: "sleep 120; echo {marker}"
""")
    ans.sync()
    queue = f"q{uuid.uuid4().hex[:8]}"
    template = create_template(ans.admin, name=f"long-{queue}", environment=ans.env, action="ansible.playbook",
                               selector={"names": [h.name for h in ans.hosts]},
                               action_params={"project": "site", "playbook": "long.yml"}, queue=queue)
    doomed = start_worker(live_env, live_logs, name=f"doomed-{queue}", concurrency=1, queues=queue)
    heir, job = None, None
    try:
        job = launch(ans.operator, template)
        tag = wait_until(lambda: (job.targets.first().data or {}).get("local_run"), timeout=120,
                         what="the run tag on the targets")
        assert tag.startswith(f"{job.pk}.") and ansible.RUN_TAG.match(tag)
        # ansible-playbook, its forks and their ssh clients all carry the tag; the task runs on every host.
        wait_until(lambda: all(ans.exec(h, ["pgrep", "-f", marker]).exit_code == 0 for h in ans.hosts),
                   timeout=120, what="the task on every host")
        running = ansible.tagged(job.pk)
        assert "ansible-playbook" in " ".join(names(running)) or any(
            "ansible-playbook" in " ".join(p.cmdline()) for p in running)
        assert "ssh" in names(running)
        homes = run_homes(running)
        assert len(homes) == 1 and Path(next(iter(homes))).is_dir()

        os.killpg(doomed.proc.pid, signal.SIGKILL)
        doomed.proc.wait()
        assert ansible.tagged(job.pk), "ansible-playbook should outlive its worker (a session of its own)"
        wait_until(lambda: reap_lost_jobs() or Job.objects.get(pk=job.pk).state == JobState.LOST,
                   timeout=60, what="the reaper to mark the job lost")
        assert ansible.tagged(job.pk)  # nobody ended them yet
        heir = start_worker(live_env, live_logs, name=f"heir-{queue}", concurrency=1, queues=queue)
        wait_until(lambda: not ansible.tagged(job.pk), timeout=60, what="the tagged processes to be ended")
        event = wait_until(lambda: AuditEvent.objects.filter(action="job.sessions_ended", object_id=str(job.pk))
                           .first(), timeout=30, what="the audit row")
    finally:
        doomed.stop()
        if heir is not None:
            heir.stop()
        if job is not None:
            ansible.end_tagged(job.pk, grace=1)
        for host in ans.hosts:
            ans.exec(host, ["pkill", "-f", marker])
    # No process of any kind carries the tag; pgrep agrees for ansible-playbook.
    assert not ansible.tagged(job.pk)
    for proc in psutil.process_iter(["cmdline"]):
        try:
            if "ansible-playbook" in " ".join(proc.info["cmdline"] or ()):
                assert not proc.environ().get("OPSPORTAL_RUN", "").startswith(f"{job.pk}.")
        except psutil.Error:
            continue
    assert not Path(next(iter(homes))).exists()  # the run's inventory and private keys are gone
    local = event.after["local"]
    assert local["runs"] == [tag] and local["left_running"] == []
    assert any(e.startswith("ansible-playbook") or "ansible" in e for e in local["ended"])
    assert any(e.startswith("ssh ") for e in local["ended"])
    job = Job.objects.get(pk=job.pk)
    assert job.state == JobState.LOST
    for target in job.targets.all():
        assert target.state == TargetState.LOST
        assert target.error.startswith("the worker died; its ") and "were ended" in target.error
        assert target.data["local_run"] == tag and target.data["local_run_ended"] is True
        assert JobEvent.objects.filter(job=job, target=target.index, text=target.error).exists()
