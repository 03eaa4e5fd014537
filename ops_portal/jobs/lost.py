"""After a job is lost: end the remote commands its dead worker left running.

Each SSH command notes its remote session id on its JobTarget as it starts (TargetContext.
remote_session). When the reaper marks the job lost, this ends every such session over SSH
(TERM, KILL after the grace period, confirmed gone), only if the session's processes carry the
job's OPSPORTAL_JOB tag, and records the outcome on the target, in the job's output and in the
audit log. Output the worker stored before it died is kept; what the command printed after that
had nowhere to go.

A batch that runs a tool on the worker's own machine (ansible-playbook) notes its run tag on its
targets (BatchContext.local_run) and puts it in the tool's environment (OPSPORTAL_RUN=<job id>.
<random>, inherited by Ansible's forks and ssh clients). The worker that takes this task (one of
the job's queue) ends the processes of its machine carrying a tag of the job (TERM, KILL after the
grace period) and removes their private run directories, and records it the same way.
"""
import logging
import platform

from django.db import transaction

from ops_portal.audit.services import record
from ops_portal.core import targets as target_kinds
from ops_portal.inventory import services as inventory
from ops_portal.inventory.models import Host
from schedulers import ansible
from schedulers import host as ssh

from .choices import EventKind, TargetState
from .events import EventWriter
from .job_actions import HOST, host_target
from .lifecycle import worker_actor
from .models import Job, JobTarget

log = logging.getLogger(__name__)


def _hosts_of(targets):
    """{target pk: the Host its session ran on}: the target itself, or for a target of another kind
    (a program) the host its object lives on."""
    found = {}
    for kind_name in {t.kind for t in targets}:
        mine = [t for t in targets if t.kind == kind_name]
        kind = target_kinds.get(kind_name)
        objects = kind.load([t.ref_id for t in mine]) if kind is not None else {}
        for target in mine:
            obj = objects.get(target.ref_id)
            found[target.pk] = obj if isinstance(obj, Host) else getattr(obj, "host", None)
    return found


def _end_local_runs(job, targets, notes):
    """End the processes of the job's runs on this machine (ansible-playbook: jobs tagged with
    OPSPORTAL_RUN=<job id>.…); notes each target that ran one. Returns the audit's account."""
    ended, left = ansible.end_tagged(job.pk)
    tags = sorted({t.data["local_run"] for t in targets})
    if ended and not left:
        note = f"the worker died; its {len(ended)} processes on {platform.node()} were ended"
    elif left:
        note = (f"the worker died; {len(left)} of its processes on {platform.node()} could not be ended: "
                + ", ".join(f"{name} {pid}" for pid, name in left[:10]))
    else:
        note = f"the worker died; none of its processes was left on {platform.node()}"
    for target in targets:
        notes[target.name] = note
        JobTarget.objects.filter(pk=target.pk).update(
            error=note[:2000], data={**target.data, "local_run_ended": not left})
    return {"machine": platform.node(), "runs": tags, "ended": [f"{name} {pid}" for pid, name in ended],
            "left_running": [f"{name} {pid}" for pid, name in left]}


def end_lost_sessions(job_id, first=None, last=None):
    """End the remote sessions and the local runs (ansible-playbook) of a lost job's targets (of a
    lost slice: those with index first..last-1); returns {target name: note}."""
    job = Job.objects.get(pk=job_id)
    lost = JobTarget.objects.filter(job=job, state=TargetState.LOST)
    if first is not None and last is not None:
        lost = lost.filter(index__gte=first, index__lt=last)
    lost = list(lost)
    targets = [t for t in lost if isinstance(t.data, dict) and isinstance(t.data.get("session"), int)]
    local = [t for t in lost if isinstance(t.data, dict) and isinstance(t.data.get("local_run"), str)]
    if not targets and not local:
        return {}
    notes, ended, left = {}, [], []
    local_account = _end_local_runs(job, local, notes) if local else None
    if not targets:
        _record(job, notes, local, {"ended": ended, "left_running": left, "local": local_account})
        log.info("job %s: local runs %s", job.pk, local_account)
        return notes
    hosts = _hosts_of(targets)
    with HOST.session(4) as pool:
        for target in targets:
            sid, host = target.data["session"], hosts.get(target.pk)
            try:
                if host is None:
                    raise ssh.BackendError("the host is no longer in the inventory")
                gone, evidence = ssh.end_remote_session(pool, host_target(host), sid, tag=f"OPSPORTAL_JOB={job.pk}")
            except (ssh.BackendError, ValueError) as exc:
                gone, evidence = False, str(exc)
                if host is not None:
                    inventory.note_unreachable(host.pk, evidence)
            note = (f"the worker died; its remote session {sid} was ended" if gone else
                    f"the worker died; its remote session {sid} could not be ended: {evidence}")
            notes[target.name] = note
            (ended if gone else left).append(target.name)
            JobTarget.objects.filter(pk=target.pk).update(
                error=note[:2000], data={**target.data, "session_ended": gone, "session_note": evidence[:500]})
    after = {"ended": ended, "left_running": left}
    if local_account is not None:
        after["local"] = local_account
    _record(job, notes, targets + [t for t in local if t not in targets], after)
    log.info("job %s: ended remote sessions on %s; could not on %s", job.pk, ended, left)
    return notes


def _record(job, notes, targets, after):
    """The notes into the job's output (each under its target), then the audit row."""
    writer = EventWriter(job)
    for target in targets:
        writer.emit(EventKind.INFO, notes[target.name], target=target.index)
    writer.close()
    with transaction.atomic():
        record(worker_actor(job), "job.sessions_ended", job, after=after)
