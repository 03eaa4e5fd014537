"""Configuration actions: render configuration templates per host and make the files match
(config.apply), or compare only and record drift (config.drift). Over SSH only.

Rendering happens once per job in prepare(), in the task thread that may read the database;
target threads only talk to hosts, and hand their database writes to the job's writer thread.
"""
from dataclasses import dataclass

from ops_portal.core import targets as target_kinds
from ops_portal.inventory.models import Host
from ops_portal.inventory.targets import HOSTS
from ops_portal.jobs.actions import ActionSpec, register
from ops_portal.jobs.choices import EventKind
from ops_portal.jobs.job_actions import HOST, job_env, prepare_ssh, ssh_only, with_host
from schedulers import host as ssh
from schedulers.base import BackendError, CommandResult

from . import drift, rendering
from .models import PLAN_IDS_PATTERN, ConfigTemplate, parse_plan_ids

SERVICE_ACTION_TIMEOUT = 600


@dataclass(frozen=True)
class Planned:
    """One configuration rendered for one host (content None when rendering failed: see error)."""

    config_id: int
    version: int
    name: str
    path: str
    mode: int | None
    owner: str
    group: str
    service_action: str
    sensitive: bool
    content: bytes | None
    error: str = ""


def _load_configs(runner, strict):
    """The job's templates, checked against the versions it was planned with."""
    wanted = parse_plan_ids(runner.params["configs"])
    found = ConfigTemplate.objects.filter(environment=runner.job.environment).in_bulk([i for i, _ in wanted])
    configs, problems = [], []
    for config_id, version in wanted:
        config = found.get(config_id)
        if config is None:
            problems.append(f"configuration #{config_id} is gone or belongs to another environment")
        elif version is not None and version != config.version:
            problems.append(f"configuration {config.name} changed since this job was planned (version {version}, "
                            f"now {config.version}): launch it again")
        elif not config.enabled:
            problems.append(f"configuration {config.name} is disabled")
        else:
            configs.append(config)
    if problems and strict:
        raise BackendError("; ".join(problems))
    for problem in problems:
        runner.writer.emit(EventKind.INFO, f"Skipped: {problem}.")
    return sorted(configs, key=lambda c: c.name)


def _plan_hosts(hosts, configs_for):
    """{host id: [Planned]}: every configuration rendered for every host, in one batch of renders."""
    items, keys = [], []
    for host in hosts:
        variables = rendering.context_for(host, list(host.groups.all()), host.environment.name)
        for config in configs_for(host):
            items.append((config.content, variables, config.name))
            keys.append((host, config))
    plans = {host.pk: [] for host in hosts}
    for (host, config), result in zip(keys, rendering.render_many(items), strict=True):
        content, error = (None, str(result)) if isinstance(result, rendering.RenderError) else (result, "")
        plans[host.pk].append(Planned(config.pk, config.version, config.name, config.path, config.mode, config.owner,
                                      config.group, config.service_action, config.sensitive, content, error))
    return {host_id: _refuse_clashes(items) for host_id, items in plans.items()}


def _refuse_clashes(items):
    by_path = {}
    for item in items:
        by_path.setdefault(item.path, []).append(item.name)
    clashes = {path: names for path, names in by_path.items() if len(names) > 1}
    return [Planned(**{**item.__dict__, "content": None,
                       "error": f"configurations {', '.join(clashes[item.path])} all write {item.path}"})
            if item.path in clashes else item for item in items]


def prepare_configs(runner):
    """Open the SSH pool and render every configuration for every target host it selects."""
    prepare_ssh(runner)
    configs = _load_configs(runner, strict=runner.spec.name == "config.apply")
    environment = runner.job.environment
    scope = {c.pk: {t["ref_id"] for t in target_kinds.resolve(c.selector, environment)} for c in configs}
    host_ids = [t.ref_id for t in runner.targets if t.kind == HOSTS.name]
    hosts = Host.objects.filter(pk__in=host_ids).select_related("environment").prefetch_related("groups")
    runner.resources["configs"] = _plan_hosts(list(hosts), lambda host: [c for c in configs if host.pk in scope[c.pk]])


def _refusal(target):
    return (f"configuration files are applied over SSH only; {target.name} is the portal's own machine, "
            "whose files the worker's user should not rewrite")


class _HostRun:
    """The files of one host, then the service actions of those that changed."""

    def __init__(self, ctx, items, *, dry_run, check):
        self.ctx, self.items, self.dry_run, self.check = ctx, items, dry_run, check
        self.results = []

    def file(self, pool, target, item):
        ctx = self.ctx
        record = {"config": item.config_id, "version": item.version, "name": item.name, "path": item.path,
                  "changed": False, "changes": [], "diff": "", "error": item.error}
        self.results.append(record)
        if item.error:
            ctx.output("stderr", f"failed {item.path}: {item.error}")
            return
        try:
            result = ssh.apply_file(pool, target, path=item.path, content=item.content, mode=item.mode,
                                    owner=item.owner or None, group=item.group or None, dry_run=self.dry_run,
                                    cancel=ctx.cancel)
        except ValueError as exc:  # the backend's own argument checks
            result = CommandResult(error=str(exc))
        if result.error:
            record["error"] = result.error
            ctx.output("stderr", f"failed {item.path}: {result.error}")
            return
        changes = list(result.data.get("changes") or [])
        record.update(changed=bool(result.changed), changes=changes,
                      diff="" if item.sensitive else result.data.get("diff", ""))
        if not result.changed:
            ctx.output("stdout", f"{'in sync' if self.check else 'ok'} {item.path}")
            return
        verb = "drifted" if self.check else "would change" if self.dry_run else "changed"
        ctx.output("stdout", f"{verb} {item.path} ({', '.join(changes)})")
        if self.dry_run and record["diff"]:
            for line in record["diff"].splitlines():
                ctx.output("stdout", line)
        elif self.dry_run and item.sensitive and "content" in changes:
            ctx.output("stdout", "(diff not shown: the configuration is sensitive)")

    def service_actions(self, pool, target):
        """Run each distinct service action of the changed files once, in template order."""
        ctx, failures = self.ctx, []
        commands = {}
        for item, record in zip(self.items, self.results, strict=True):
            if record["changed"] and not record["error"] and item.service_action:
                commands.setdefault(item.service_action, []).append(item.name)
        for command, names in commands.items():
            if self.dry_run:
                ctx.info(f"Would run the service action of {', '.join(names)}: {command}")
                continue
            ctx.info(f"Service action of {', '.join(names)}: {command}")
            result = HOST.run_command(pool, target, command, on_line=ctx.output, cancel=ctx.cancel,
                                      timeout=ctx.timeout or SERVICE_ACTION_TIMEOUT, env=job_env(ctx))
            if result.canceled or result.timed_out:
                return result
            if not result.ok:
                failures.append(f"service action of {', '.join(names)} failed "
                                f"({result.error or f'exit {result.exit_code}'})")
        return failures

    def __call__(self, pool, target):
        ssh_only(target, _refusal(target))
        for item in self.items:
            if self.ctx.cancel.is_set():
                return CommandResult(canceled=True, data=self.summary())
            self.file(pool, target, item)
        outcome = [] if self.check else self.service_actions(pool, target)
        if isinstance(outcome, CommandResult):
            outcome.data = self.summary()
            return outcome
        failures = [f"{r['path']}: {r['error']}" for r in self.results if r["error"]] + outcome
        changed = sum(1 for r in self.results if r["changed"])
        in_line = sum(1 for r in self.results if not r["changed"] and not r["error"])
        verb = "drifted" if self.check else "would change" if self.dry_run else "changed"
        self.ctx.info(f"{len(self.results)} configurations: {changed} {verb}, {in_line} in line, "
                      f"{len(failures)} failed")
        return CommandResult(exit_code=1 if failures else 0, error="; ".join(failures)[:2000],
                             changed=bool(changed) and not self.dry_run, data=self.summary())

    def summary(self):
        return {"dry_run": self.dry_run, "configs": [{k: r[k] for k in ("name", "path", "changed", "changes", "error")}
                                                     for r in self.results]}


def _run(ctx, *, dry_run, check):
    items = ctx.resources["configs"].get(ctx.target.ref_id, [])
    if not items:
        ctx.info("No configuration selects this host any more.")
        return CommandResult(exit_code=0, changed=False, data={"dry_run": dry_run, "configs": []})
    host_id, job_id = ctx.target.ref_id, ctx.job.pk
    run = _HostRun(ctx, items, dry_run=dry_run, check=check)
    try:
        result = with_host(ctx, run)
    except BackendError as exc:
        if check:
            unknown = [{"config": i.config_id, "version": i.version, "drifted": None, "error": str(exc)}
                       for i in items]
            ctx.after(lambda: drift.store_results(host_id, job_id, unknown))
        raise
    if check and not result.canceled:
        checked = [{"config": r["config"], "version": r["version"], "changes": r["changes"], "diff": r["diff"],
                    "drifted": None if r["error"] else r["changed"], "error": r["error"]} for r in run.results]
        ctx.after(lambda: drift.store_results(host_id, job_id, checked))
    elif not dry_run:
        applied = [(r["config"], r["version"]) for r in run.results if not r["error"]]
        if applied:
            ctx.after(lambda: drift.mark_applied(host_id, job_id, applied))
    return result


def apply_configs(ctx):
    return _run(ctx, dry_run=bool(ctx.params.get("dry_run")), check=False)


def check_drift(ctx):
    return _run(ctx, dry_run=True, check=True)


CONFIGS_PARAM = {"name": "configs", "type": "string", "required": True, "pattern": PLAN_IDS_PATTERN,
                 "max_length": 16384, "label": "Configuration templates",
                 "help": "Comma-separated ids; id@version pins the version the job was planned with."}

register(ActionSpec(
    name="config.apply", label="Apply configuration files", target_kind=HOSTS.name, prepare=prepare_configs,
    description="Render configuration templates for each host and make its files match (content, mode, owner, "
                "group); run a template's service action when its file changed. A dry run shows the diffs.",
    parameters=[CONFIGS_PARAM, {"name": "dry_run", "type": "bool", "default": False, "label": "Dry run"}],
    risks=lambda params, target_count: [] if params.get("dry_run") else ["config_change"],
    run=apply_configs,
))
register(ActionSpec(
    name="config.drift", label="Check configuration drift", target_kind=HOSTS.name, prepare=prepare_configs,
    mutating=False,
    description="Compare each host's files with their rendered configuration templates and record a drift report "
                "(with the diff) per host and template; drift raises an alert, a file back in line resolves it.",
    parameters=[CONFIGS_PARAM], run=check_drift,
))
