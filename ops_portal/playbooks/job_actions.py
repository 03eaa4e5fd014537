"""ansible.playbook: one ansible-playbook run per batch of the job's hosts (--limit of the batch),
pinned to the project revision frozen at launch.

Launch (freeze): the project named by the parameters must exist in the job's environment and have
been synced; its revision then is written into the plan (unless the launcher pinned one), so the
approval and a relaunch cover exactly that revision. Run (run_batch, in the task thread): a
read-only checkout of the revision, the batch's hosts and their groups handed to
schedulers.ansible, Ansible's lines streamed under the host they are about, a host's failure or
unreachability failing that target as soon as Ansible reports it, the others ending with the
play's counts. The template's own typed parameters become extra vars (data: never templated), and
so do the keys of `extra_vars`, a JSON or YAML mapping given at launch (ad-hoc jobs too), checked and
written into the plan as canonical JSON at launch (so the preview, the approval and a relaunch show
and cover exactly those values).
"""
import json
import math
import re
import secrets

import yaml
from django.core.exceptions import ValidationError

from ops_portal.inventory.choices import Transport
from ops_portal.inventory.models import Host, HostGroup
from ops_portal.inventory.targets import HOSTS
from ops_portal.jobs.actions import ActionSpec, register
from ops_portal.projects import services as projects
from ops_portal.projects.models import Project
from schedulers import ansible
from schedulers.base import BackendError, CommandResult

ACTION = "ansible.playbook"
PARAMETERS = [
    {"name": "project", "type": "string", "required": True, "pattern": r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}",
     "label": "Project", "help": "The project (of the job's environment) holding the playbook."},
    {"name": "playbook", "type": "string", "required": True, "max_length": 255, "label": "Playbook",
     "help": "Its path inside the project, e.g. site.yml or playbooks/web.yml."},
    {"name": "revision", "type": "string", "pattern": r"[0-9a-f]{40}|[0-9a-f]{64}", "label": "Revision",
     "help": "Empty: the revision the project was last synced to when the job is launched."},
    {"name": "limit", "type": "string", "max_length": 200, "label": "Limit",
     "help": "One Ansible host pattern within the job's hosts (a group, a name or a glob; !pattern leaves them out)."},
    {"name": "tags", "type": "string", "max_length": 1000, "label": "Tags",
     "help": "Comma-separated: only tasks with these tags."},
    {"name": "skip_tags", "type": "string", "max_length": 1000, "label": "Skip tags"},
    {"name": "dry_run", "type": "bool", "default": False, "label": "Dry run",
     "help": "Check mode with diffs: Ansible reports what it would change and changes nothing."},
    {"name": "diff", "type": "bool", "default": False, "label": "Show diffs"},
    {"name": "verbosity", "type": "int", "min": 0, "max": 4, "default": 0, "label": "Verbosity (-v count)"},
    {"name": "extra_vars", "type": "text", "max_length": 16384, "label": "Extra vars",
     "help": 'A JSON or YAML mapping, e.g. {"version": "1.2"}: each key becomes a variable of the play, its value '
             "data (never templated). Not for secrets: it is stored and shown as given."},
]
OWN = {d["name"] for d in PARAMETERS}
EXTRA_VAR = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}\Z")
MAX_EXTRA_VARS = 200
MAX_DEPTH = 10


def _reserved(name):
    """Variables that say how Ansible reaches a host: an extra var would override the inventory's."""
    return name in ansible.CONNECTION_VARS or name.startswith("ansible_ssh_")


def _check_value(value, where, depth=0):
    if depth > MAX_DEPTH:
        raise ValueError(f"{where} is nested more than {MAX_DEPTH} levels deep")
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise ValueError(f"{where} has a key that is not text ({key!r}): quote it")
            _check_value(item, f"{where}.{key}", depth + 1)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _check_value(item, f"{where}[{index}]", depth + 1)
    elif isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{where} is not a finite number")
    elif value is not None and not isinstance(value, str | int | float | bool):
        raise ValueError(f"{where} is a {type(value).__name__}: give text (quote dates), a number, true/false, "
                         "null, a list or a mapping")


def parse_extra_vars(text):
    """The mapping `text` (JSON or YAML) holds: identifier keys (not connection variables), values of
    JSON's kinds (a YAML date, set or binary is refused), no YAML anchors or aliases. Raises
    ValueError with the reason."""
    if not isinstance(text, str) or not text.strip():
        return {}
    try:
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
            if isinstance(event, yaml.AliasEvent):
                raise ValueError("YAML anchors and aliases (&, *) are not allowed")
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        raise ValueError(f"not a JSON or YAML mapping: {getattr(exc, 'problem', None) or exc}{where}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ValueError("give a mapping of variable names to values, e.g. {\"version\": \"1.2\"}")
    if len(data) > MAX_EXTRA_VARS:
        raise ValueError(f"at most {MAX_EXTRA_VARS} variables")
    bad = sorted(str(k) for k in data if not isinstance(k, str) or not EXTRA_VAR.match(k))
    if bad:
        raise ValueError(f"not variable names (letters, digits, _; not starting with a digit): {', '.join(bad[:10])}")
    reserved = sorted(k for k in data if _reserved(k))
    if reserved:
        raise ValueError(f"{', '.join(reserved)}: the portal sets how Ansible reaches a host; these cannot be "
                         "extra vars")
    for key, value in data.items():
        _check_value(value, key)
    return data


def canonical(extra_vars):
    return json.dumps(extra_vars, sort_keys=True, ensure_ascii=False)


def freeze(public, environment):
    """Check what the parameters name and pin the project's synced revision into the plan."""
    def check(errors):
        if not ansible.PLAYBOOK.match(public.get("playbook") or ""):
            errors.append("playbook: give a relative .yml or .yaml path inside the project (no leading /, no ..).")
        for name in ("tags", "skip_tags"):
            try:
                ansible.check_tags(_split(public.get(name)))
            except BackendError as exc:
                errors.append(f"{name}: {exc}.")
        try:
            ansible.check_limit(public.get("limit") or "")
        except BackendError as exc:
            errors.append(f"limit: {exc}.")

    return projects.freeze_launch(public, environment, check)


def normalize(public):
    """Extra vars checked and written as canonical JSON (preview and launch alike); a template
    parameter named as a connection variable, or given twice (as a parameter and in extra_vars),
    is refused."""
    errors = []
    named = {name for name in public if name not in OWN}
    reserved = sorted(name for name in named if _reserved(name))
    if reserved:
        errors.append(f"{', '.join(reserved)}: the portal sets how Ansible reaches a host; these cannot be "
                      "extra vars.")
    if "extra_vars" in public:
        try:
            extra = parse_extra_vars(public["extra_vars"])
        except ValueError as exc:
            errors.append(f"extra_vars: {exc}.")
        else:
            twice = sorted(set(extra) & named)
            if twice:
                errors.append(f"extra_vars: {', '.join(twice)} also given as a parameter of the template: "
                              "give each variable once.")
            elif extra:
                public["extra_vars"] = canonical(extra)
            else:
                public.pop("extra_vars")
    if errors:
        raise ValidationError({"parameters": errors})
    return public


def _split(text):
    return [part.strip() for part in (text or "").split(",") if part.strip()]


def prepare(runner):
    """Read the job's hosts, their groups and the groups' variables once, in the task thread."""
    host_ids = [t.ref_id for t in runner.targets if t.kind == HOSTS.name]
    hosts = Host.objects.filter(pk__in=host_ids).select_related("credential").prefetch_related("groups")
    described, group_ids = {}, set()
    for host in hosts:
        credential = host.credential
        groups = list(host.groups.all())
        group_ids.update(g.pk for g in groups)
        described[host.pk] = ansible.Host(
            name=host.name, local=host.transport == Transport.LOCAL, address=host.address, port=host.port,
            user=host.login_user, private_key=credential.private_key if credential else "",
            passphrase=(credential.passphrase or "") if credential else "", host_key=host.host_key or "",
            variables=dict(host.variables or {}), groups=sorted(g.name for g in groups))
    groups = {g.name: dict(g.variables or {}) for g in HostGroup.objects.filter(pk__in=group_ids)}
    runner.resources["ansible"] = {"hosts": described, "groups": groups}


def _result(counts: ansible.HostResult, *, check, revision):
    data = {"counts": counts.counts(), "check": check, "revision": revision}
    if counts.diffs:  # --diff (always in check mode): what each task changed or would change, per host
        data["diff"] = counts.diffs
        if counts.diffs_truncated:
            data["diff_truncated"] = True
    if counts.bad:
        what = "unreachable" if counts.unreachable else "failed"
        return CommandResult(exit_code=2, error=counts.error or what, changed=bool(counts.changed) and not check,
                             data=data)
    return CommandResult(exit_code=0, changed=bool(counts.changed) and not check, data=data)


def run_batch(batch):
    params = batch.params
    prepared = batch.resources["ansible"]
    project = Project.objects.filter(environment=batch.job.environment, name=params["project"]).first()
    if project is None:
        raise BackendError(f"project {params['project']} is gone from {batch.job.environment}")
    checkout = projects.checkout(project, params["revision"])
    by_name = {t.name: t for t in batch.targets}
    hosts = []
    for target in batch.targets:
        host = prepared["hosts"].get(target.ref_id)
        if host is None:
            batch.finish(target, CommandResult(error="the host is gone"))
        else:
            hosts.append(host)
    if not hosts:
        return
    check = bool(params.get("dry_run"))
    run_tag = f"{batch.job.pk}.{secrets.token_hex(8)}"  # ends the run's processes should this worker die
    batch.local_run(run_tag)
    extravars = {**parse_extra_vars(params.get("extra_vars")),
                 **{name: value for name, value in params.items() if name not in OWN and not _reserved(name)}}
    playbook = ansible.Playbook(
        project_dir=checkout, playbook=params["playbook"], extravars=extravars, tags=_split(params.get("tags")),
        skip_tags=_split(params.get("skip_tags")), limit=params.get("limit") or "",
        forks=min(batch.limit, len(hosts)), check=check, diff=check or bool(params.get("diff")),
        timeout=batch.timeout, verbosity=int(params.get("verbosity") or 0), run_tag=run_tag)
    revision = params["revision"]
    batch.info(f"ansible-playbook {params['playbook']} of project {project.name} at {revision[:12]} on "
               f"{len(hosts)} hosts{' (check mode)' if check else ''}.")

    def on_line(host, stream, line):
        batch.output(by_name.get(host), stream, line)

    def on_host_failed(host, counts):
        batch.finish(by_name[host], _result(counts, check=check, revision=revision))

    outcome = ansible.run_playbook(playbook, hosts, prepared["groups"], cancel=batch.cancel, on_line=on_line,
                                   on_host_failed=on_host_failed)
    for host in hosts:
        target = by_name[host.name]
        counts = outcome.hosts.get(host.name)
        if outcome.status == "canceled" or batch.cancel.is_set():
            batch.finish(target, CommandResult(canceled=True, error="canceled"))
        elif outcome.status == "timeout":
            batch.finish(target, CommandResult(timed_out=True, error="ansible-playbook timed out"))
        elif counts is not None:
            summary = " ".join(f"{k}={v}" for k, v in counts.counts().items())
            batch.info(summary, target=target)
            batch.finish(target, _result(counts, check=check, revision=revision))
        elif outcome.error:
            batch.finish(target, CommandResult(exit_code=outcome.rc, error=outcome.error))
        else:
            batch.info("No task ran on this host (the play's hosts or the limit leave it out).", target=target)
            batch.finish(target, CommandResult(exit_code=0, changed=False,
                                               data={"counts": ansible.HostResult().counts(), "check": check,
                                                     "revision": revision}))


register(ActionSpec(
    name=ACTION, label="Run an Ansible playbook", target_kind=HOSTS.name, parameters=PARAMETERS, run=None,
    run_batch=run_batch, prepare=prepare, freeze=freeze, normalize=normalize, extra_parameters=True,
    dry_run_param="dry_run",
    description="Run a playbook of a project, at the revision synced when the job is launched, on the job's hosts "
                "through ansible-runner (one run per batch); the dry run is check mode with diffs.",
    risks=lambda params, target_count: [] if params.get("dry_run") else ["config_change"],
))
