"""Everything that changes configuration templates, renders them, or launches their jobs.

Template changes are audited (audit.crud). Applying and checking drift are jobs of the jobs engine
(actions config.apply and config.drift, job_actions.py), so they are audited, approved where
policies say so, leased, streamed and kept in the job history like any other work. This app sits
above the jobs engine and launches them through it.
"""
import logging

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Model

from ops_portal.accounts.choices import Action
from ops_portal.accounts.models import Environment
from ops_portal.accounts.permissions import can, require_on
from ops_portal.audit.crud import create_object, delete_object, update_object
from ops_portal.audit.services import snapshot
from ops_portal.core import targets as target_kinds
from ops_portal.inventory.models import Host, site_queue
from ops_portal.jobs.choices import ACTIVE_STATES
from ops_portal.jobs.launch import DEFAULT_QUEUE, launch_adhoc
from ops_portal.jobs.models import Job

from . import drift, rendering
from .models import ConfigTemplate, plan_ids

log = logging.getLogger(__name__)
APPLY_ACTION = "config.apply"
DRIFT_ACTION = "config.drift"
DRIFT_JOB_TIMEOUT = 1800


# Templates ---------------------------------------------------------------------------------

def _clean(fields):
    if "selector" in fields:
        fields["selector"] = target_kinds.validate(fields["selector"])
    return fields


def create_config(actor, **fields):
    return create_object(actor, ConfigTemplate, _clean(dict(fields)))


def update_config(actor, config, **fields):
    """Change a template; any real change bumps its version (jobs planned with the old one refuse to run)."""
    fields = _clean(dict(fields))
    with transaction.atomic():
        current = ConfigTemplate.objects.select_for_update().get(pk=config.pk)
        before = snapshot(current)
        if any(before.get(name) != (value.pk if isinstance(value, Model) else value)
               for name, value in fields.items()):
            fields["version"] = current.version + 1
        return update_object(actor, current, fields)


def delete_config(actor, config):
    """Remove a template with its drift reports, resolving the alerts they raised."""
    with transaction.atomic():
        if actor.user is not None:
            require_on(actor.user, Action.MANAGE, config)
        drift.forget(list(config.drift_reports.all()))
        delete_object(actor, config)


# Rendering ---------------------------------------------------------------------------------

def variables_for(host):
    """What templates see for `host` (see rendering.context_for)."""
    groups = list(host.groups.all())
    return rendering.context_for(host, groups, host.environment.name)


def render_for(user, config, host):
    """Render `config` for one host, for a person to read. The caller has checked that the user sees
    both. Rendering costs the portal CPU and memory, so viewers may not start one: operators and
    administrators of the environment may (a sensitive template: administrators only)."""
    if config.sensitive and not can(user, Action.MANAGE, config.environment_id):
        raise PermissionDenied("This configuration holds secrets: only administrators may render it.")
    if not can(user, Action.OPERATE, config.environment_id):
        raise PermissionDenied("Only operators and administrators of this environment may render templates.")
    if host.environment_id != config.environment_id:
        raise ValidationError({"host": ["The host belongs to another environment than the configuration."]})
    try:
        content = rendering.render(config.content, variables_for(host), name=config.name)
    except rendering.RenderError as exc:
        raise ValidationError({"content": [f"{exc} (host {host.name})"]})
    targeted = any(t["ref_id"] == host.pk for t in target_kinds.resolve(config.selector, config.environment))
    return {"config": config.pk, "version": config.version, "host": host.name, "targeted": targeted,
            "path": config.path, "mode": config.mode_text, "owner": config.owner, "group": config.group,
            "content": content.decode("utf-8", "replace")}


# Jobs --------------------------------------------------------------------------------------

def launch_apply(actor, config, *, dry_run=False, hosts=None):
    """Launch a config.apply job of one template on its hosts (or on some of them: `hosts`, ids).

    Operators and admins of the environment; approval policies apply (matching the action
    "config.apply" or the risk tag "config_change" of real applies). The job pins the template's
    version, so an edit made before it runs makes it refuse rather than write something unapproved.
    """
    if not config.enabled:
        raise ValidationError({"enabled": ["This configuration template is disabled."]})
    selector = config.selector
    if hosts is not None:
        targets = {t["ref_id"]: t["name"] for t in target_kinds.resolve(config.selector, config.environment)}
        wanted = [getattr(h, "pk", h) for h in hosts]
        strays = [str(pk) for pk in wanted if pk not in targets]
        if not wanted or strays:
            raise ValidationError({"hosts": [f"Not enabled targets of {config.name}: {', '.join(strays) or 'none'}."]})
        selector = {"names": sorted({targets[pk] for pk in wanted})}
    what = "Dry run of" if dry_run else "Apply"
    return launch_adhoc(actor, environment=config.environment, action=APPLY_ACTION,
                             values={"configs": plan_ids([config]), "dry_run": dry_run}, selector=selector,
                             name=f"{what} configuration {config.name}", predefined=True)


def launch_check(actor, config):
    """Launch a config.drift job for one template now (operators and admins)."""
    if not config.enabled:
        raise ValidationError({"enabled": ["This configuration template is disabled."]})
    return launch_adhoc(actor, environment=config.environment, action=DRIFT_ACTION,
                             values={"configs": plan_ids([config], pin=False)}, selector=config.selector,
                             name=f"Drift check of configuration {config.name}", timeout_seconds=DRIFT_JOB_TIMEOUT,
                             predefined=True)


def remediate(actor, report):
    """Apply a drifted report's configuration to its host again."""
    return launch_apply(actor, report.config, hosts=[report.host_id])


def launch_drift_checks(actor):
    """The periodic drift check: one config.drift job per environment with enabled templates, on the
    hosts they select. An environment whose previous check has not ended is skipped, and reports of
    hosts or templates out of scope are forgotten (their alerts resolved)."""
    launched = []
    environments = Environment.objects.filter(config_templates__isnull=False).distinct().order_by("name")
    for environment in environments:
        configs = list(ConfigTemplate.objects.filter(environment=environment, enabled=True).order_by("name"))
        in_scope = {c.pk: {t["ref_id"]: t["name"] for t in target_kinds.resolve(c.selector, environment)}
                    for c in configs}
        drift.prune(environment, in_scope)
        names = sorted({name for targets in in_scope.values() for name in targets.values()})
        if not names:
            continue
        busy = set(Job.objects.filter(environment=environment, action=DRIFT_ACTION, state__in=ACTIVE_STATES)
                   .values_list("queue", flat=True))
        # One job per site (a job runs on one site's workers; one spanning sites is refused).
        by_site = {}
        for name, site in Host.objects.filter(environment=environment, name__in=names).values_list("name",
                                                                                                  "site__name"):
            by_site.setdefault(site, []).append(name)
        for site, site_names in sorted(by_site.items(), key=lambda item: item[0] or ""):
            if (DEFAULT_QUEUE if site is None else site_queue(site)) in busy:
                log.info("drift check in %s (site %s) skipped: the previous one has not ended", environment.name,
                         site)
                continue
            try:
                checked = [c for c in configs if in_scope[c.pk]]
                launched.append(launch_adhoc(
                    actor, environment=environment, action=DRIFT_ACTION,
                    values={"configs": plan_ids(checked, pin=False)}, selector={"names": sorted(site_names)},
                    name="Configuration drift check" + (f" ({site})" if site else ""),
                    timeout_seconds=DRIFT_JOB_TIMEOUT, predefined=True))
            except (ValidationError, PermissionDenied) as exc:
                log.warning("drift check in %s (site %s) not launched: %s", environment.name, site, exc)
    return launched


def hosts_in(config):
    """The hosts a template selects now (for pages)."""
    ids = [t["ref_id"] for t in target_kinds.resolve(config.selector, config.environment)]
    return Host.objects.filter(pk__in=ids)
