"""Puppet job actions, on hosts over SSH (schedulers.hostlib.puppet):

- puppet.apply: `puppet apply` of a manifest of a project at a pinned revision (the project's synced
  revision at launch when none is given: `freeze`); `--noop` is the dry run;
- puppet.drift: the same with `--noop`, for schedules: out-of-sync resources raise a drift alert, a host
  back in line resolves it (drift.py);
- puppet.agent: one `puppet agent -t` where the host's agent is configured (facts name its server);
- host.install_puppet: Debian's puppet-agent with apt-get (nothing when installed), then fresh facts.

Hosts whose facts lack puppet are left out of the plan with the reason (ActionSpec.host_check); a
host that lost puppet since fails with a plain reason before anything runs.
"""

from ops_portal.inventory import services as inventory
from ops_portal.inventory.targets import HOSTS
from ops_portal.jobs.actions import ActionSpec, register
from ops_portal.jobs.choices import EventKind
from ops_portal.jobs.job_actions import HOST, job_env, prepare_ssh, ssh_only, with_host
from ops_portal.jobs.tools import tool_check
from ops_portal.projects import services as projects
from ops_portal.projects.models import REVISION, Project
from schedulers.base import BackendError
from schedulers.hostlib import puppet

from . import drift

REFUSAL = "Puppet runs on hosts over SSH; {name} is the portal's own machine"
COUNTS = ("total", "changed", "failed", "out_of_sync", "unchanged")


def freeze(public, environment):
    """At launch: the project (by name, in the job's environment) must have been synced and the manifest
    path must stay inside it; the project's synced revision is written into the plan unless one was
    given, so an approval and a relaunch cover exactly that revision."""
    def check(errors):
        try:
            puppet.manifest_path(public.get("manifest"))
        except ValueError as exc:
            errors.append(f"manifest: {exc}.")

    return projects.freeze_launch(public, environment, check)


def prepare_project(runner):
    """Open the SSH pool and check out the project at the job's pinned revision (once, in the task thread)."""
    prepare_ssh(runner)
    params = runner.params
    project = Project.objects.filter(name=params["project"], environment=runner.job.environment).first()
    if project is None:
        raise BackendError(f"project {params['project']} is gone from {runner.job.environment}")
    revision = params.get("revision") or project.revision  # frozen at launch; a job from before keeps working
    if not revision:
        raise BackendError(f"project {project.name} was never synced: sync it first")
    tree = projects.checkout(project, revision)  # UnknownRevision (a BackendError) for a revision never synced
    manifest = puppet.manifest_path(params["manifest"])
    if not (tree / manifest).is_file():
        raise BackendError(f"the manifest {manifest} is not in project {project.name} at revision {revision[:12]}")
    runner.resources["puppet"] = {"project": project.pk, "project_name": project.name, "revision": revision,
                                  "tree": str(tree), "manifest": manifest}
    runner.writer.emit(EventKind.INFO, f"Project {project.name} at revision {revision}, manifest {manifest}.")


def _report(ctx, result, extra):
    resources = result.data.get("resources")
    if resources:
        ctx.info("Resources: " + ", ".join(f"{resources[k]} {k.replace('_', ' ')}" for k in COUNTS) + ".")
    result.data.update(extra)
    return result


def _apply(ctx, *, noop):
    pinned = ctx.resources["puppet"]

    def over_ssh(session, target):
        ssh_only(target, REFUSAL.format(name=target.name))
        return puppet.apply_manifest(session, target, tree=pinned["tree"], manifest=pinned["manifest"], noop=noop,
                                     on_line=ctx.output, cancel=ctx.cancel, timeout=ctx.timeout, env=job_env(ctx),
                                     on_session=ctx.remote_session)

    result = with_host(ctx, over_ssh)
    return _report(ctx, result, {"project": pinned["project"], "revision": pinned["revision"],
                                 "manifest": pinned["manifest"]})


def apply_manifest(ctx):
    return _apply(ctx, noop=bool(ctx.params.get("noop")))


def check_drift(ctx):
    result = _apply(ctx, noop=True)
    resources = result.data.get("resources")
    if resources is not None and not (result.canceled or result.timed_out) and result.data.get("puppet_exit") in (
            0, 2, 4, 6):
        pinned, host_id = ctx.resources["puppet"], ctx.obj.pk
        counts = dict(resources)
        ctx.after(lambda: drift.record(host_id, pinned["project"], pinned["project_name"], pinned["manifest"],
                                       pinned["revision"], counts))
        if counts["out_of_sync"]:
            ctx.info(f"Drift: {counts['out_of_sync']} resource(s) out of sync with {pinned['manifest']}.")
    return result


def run_agent(ctx):
    noop = bool(ctx.params.get("noop"))

    def over_ssh(session, target):
        ssh_only(target, REFUSAL.format(name=target.name))
        return puppet.run_agent(session, target, noop=noop, on_line=ctx.output, cancel=ctx.cancel,
                                timeout=ctx.timeout, env=job_env(ctx), on_session=ctx.remote_session)

    return _report(ctx, with_host(ctx, over_ssh), {})


def install_puppet(ctx):
    def over_ssh(session, target):
        ssh_only(target, f"host.install_puppet installs Debian's puppet-agent over SSH; {target.name} is the "
                         "portal's own machine")
        result = puppet.install_agent(session, target, on_line=ctx.output, cancel=ctx.cancel, timeout=ctx.timeout,
                                      env=job_env(ctx), on_session=ctx.remote_session)
        facts = HOST.probe(session, target, "facts", cancel=ctx.cancel) if result.ok else None
        return result, facts

    result, facts = with_host(ctx, over_ssh)
    if facts is not None:
        host_id, job_id = ctx.obj.pk, ctx.job.pk
        ctx.after(lambda: inventory.store_facts(host_id, facts, job_id))
        version = ((facts.get("tools") or {}).get("puppet") or {}).get("version", "")
        ctx.info(f"Facts gathered: puppet {version or 'not found'}.")
    return result


PROJECT = {"name": "project", "type": "string", "required": True, "pattern": r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}",
           "label": "Project", "help": "The project (of the job's environment) holding the manifest."}
REVISION_PARAM = {"name": "revision", "type": "string", "pattern": REVISION.replace(r"\Z", "").replace("^", ""),
                  "label": "Revision", "help": "A synced commit or content hash; empty: the revision the project "
                                                "was last synced to when the job is launched."}
MANIFEST = {"name": "manifest", "type": "string", "required": True, "default": "manifests/site.pp",
            "pattern": puppet.MANIFEST_PATH.pattern, "max_length": 500, "label": "Manifest",
            "help": "Path of the manifest inside the project; modules/ of the project is on the module path."}
NEEDS_PUPPET = tool_check("puppet", install="host.install_puppet")

register(ActionSpec(
    name="puppet.apply", label="Apply a Puppet manifest", target_kind=HOSTS.name, prepare=prepare_project,
    description="Run `puppet apply --detailed-exitcodes` of a project's manifest on each host (the project's "
                "modules on the module path); per host: changed, failed, out-of-sync and unchanged resources. "
                "The dry run is --noop.",
    parameters=[PROJECT, MANIFEST, REVISION_PARAM,
                {"name": "noop", "type": "bool", "default": False, "label": "Dry run (--noop)"}],
    risks=lambda params, target_count: [] if params.get("noop") else ["config_change"],
    run=apply_manifest, host_check=NEEDS_PUPPET, freeze=freeze, dry_run_param="noop",
))
register(ActionSpec(
    name="puppet.drift", label="Check Puppet drift", target_kind=HOSTS.name, prepare=prepare_project,
    mutating=False,
    description="Run `puppet apply --noop` of a project's manifest on each host: resources out of sync raise a "
                "drift alert, a host back in line resolves it. Schedule it from a template.",
    parameters=[PROJECT, MANIFEST, REVISION_PARAM], run=check_drift, host_check=NEEDS_PUPPET, freeze=freeze,
))
register(ActionSpec(
    name="puppet.agent", label="Run the Puppet agent", target_kind=HOSTS.name, prepare=prepare_ssh,
    description="One `puppet agent -t` against the server the host's puppet.conf names (hosts whose facts "
                "show a configured agent).",
    parameters=[{"name": "noop", "type": "bool", "default": False, "label": "Dry run (--noop)"}],
    risks=lambda params, target_count: [] if params.get("noop") else ["config_change"],
    run=run_agent, host_check=tool_check("puppet", agent=True, install="host.install_puppet"), dry_run_param="noop",
))
register(ActionSpec(
    name="host.install_puppet", label="Install Puppet", target_kind=HOSTS.name, prepare=prepare_ssh,
    description="Install Debian's puppet-agent package with apt-get (nothing when it is installed), then gather "
                "the host's facts.",
    parameters=[], run=install_puppet, needs="manage",
    risks=lambda params, target_count: ["package_change"],
))
