"""Launching the process level's jobs: scans of hosts and actions on processes.

Scans and signals are jobs (job_actions.py), so they are audited, approved where policies say so,
leased (signals), streamed and kept in the job history like any other work; operators and
administrators of the environment launch them. They are predefined actions with fixed, checked
parameters (no free-form commands), so an environment's "no ad-hoc jobs" rule does not hold them
back; approval policies do (signals carry the "mutating" risk tag, stop and kill "destructive").
"""
from django.conf import settings
from django.core.exceptions import ValidationError

from ops_portal.accounts.choices import Action
from ops_portal.accounts.permissions import require, scope_for
from ops_portal.inventory.choices import Transport
from ops_portal.jobs import actions
from ops_portal.jobs.launch import launch_adhoc
from ops_portal.jobs.system import launch_everywhere

from .choices import PROCESS_ACTIONS, SCAN_ACTION

SCAN_TIMEOUT = 600
SCAN_LIMIT = 50  # hosts scanned at once per job


def launch_scan(actor, environment, hosts=None):
    """Launch a processes.scan job on hosts of one environment (all its enabled hosts when hosts
    is None). The portal's own machine is left out of "all" for people who may not act on it."""
    if actor.user is not None:
        require(actor.user, Action.OPERATE, environment)
    if hosts is None:
        selector = {"all": True}
        if actor.user is not None and settings.LOCAL_TARGETS_NEED_GLOBAL_ADMIN and not scope_for(
                actor.user, Action.MANAGE).everywhere:
            names = list(environment.hosts.filter(enabled=True).exclude(transport=Transport.LOCAL)
                         .order_by("name").values_list("name", flat=True))
            if not names:
                raise ValidationError({"hosts": ["No enabled host to scan here that you may act on (the portal's "
                                                 "own machine needs an administrator of all environments)."]})
            selector = {"names": names}
        name = f"Scan processes ({environment.name})"
    else:
        strays = sorted(h.name for h in hosts if h.environment_id != environment.pk)
        if not hosts or strays:
            raise ValidationError({"hosts": [f"Not hosts of {environment.name}: {', '.join(strays) or 'none given'}."]})
        disabled = sorted(h.name for h in hosts if not h.enabled)
        if disabled:
            raise ValidationError({"hosts": [f"Disabled: {', '.join(disabled)}."]})
        selector = {"names": sorted({h.name for h in hosts})}
        name = f"Scan processes of {hosts[0].name}" if len(hosts) == 1 else f"Scan processes ({len(hosts)} hosts)"
    return launch_adhoc(actor, environment=environment, action=SCAN_ACTION, values={}, selector=selector,
                        strategy={"kind": "parallel", "limit": SCAN_LIMIT}, name=name, timeout_seconds=SCAN_TIMEOUT,
                        target_timeout_seconds=180, predefined=True)


def launch_action(actor, process, action, values=None):
    """Launch one of PROCESS_ACTIONS on one process (the row the latest scan stored)."""
    if action not in PROCESS_ACTIONS:
        raise ValidationError({"action": [f"Say what to do: one of {', '.join(PROCESS_ACTIONS)}."]})
    environment = process.host.environment
    if actor.user is not None:
        require(actor.user, Action.OPERATE, environment)
    if not process.host.enabled:
        raise ValidationError({"host": [f"{process.host.name} is disabled."]})
    spec = actions.get(action)
    label = spec.label.replace("a process", "").strip().capitalize()
    return launch_adhoc(actor, environment=environment, action=action, values=values or {},
                        selector={"kind": "process", "ids": [process.pk]},
                        name=f"{label} {process.name} (pid {process.pid}) on {process.host.name}",
                        timeout_seconds=900, predefined=True)


def scan_everywhere():
    """The periodic scan: one system job per environment over its enabled hosts."""
    return launch_everywhere(SCAN_ACTION, name="Scan processes", limit=SCAN_LIMIT)


def refuse_local(user, process):
    """Whether the page should offer actions on this process (the portal's own machine needs an
    administrator of all environments); the launch decides anyway."""
    if process.host.transport != Transport.LOCAL or not settings.LOCAL_TARGETS_NEED_GLOBAL_ADMIN:
        return ""
    if scope_for(user, Action.MANAGE).everywhere:
        return ""
    return "Only administrators of all environments act on the portal's own machine."
