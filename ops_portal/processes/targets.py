"""The process target kind: one process of one host, as the latest scan saw it.

{"kind": "process", "ids": [12, 13]}                       processes by their inventory id
{"kind": "process", "hosts": ["web-1"], "pids": [4242]}    by host and pid
{"kind": "process", "pattern": "web-*", "names": ["nginx"]}  by host pattern and process name

Criteria combine with AND, values inside a list with OR; a selector must name processes (ids,
pids or names): a job never signals every process of an environment. Pids need hosts or a host
pattern (a pid means nothing across hosts). Targets come from the job's own environment, on
enabled hosts.

The fingerprint is the host's (address, port, transport, user, credential, host key) plus the
pid, the start time and the name: a process that ended and whose pid was reused is another
target, so an approval never covers it, and the host refuses to signal it (control.py).
"""
import fnmatch
import re

from django.core.exceptions import ValidationError
from django.urls import reverse

from ops_portal.core import targets
from ops_portal.inventory.choices import Transport
from ops_portal.inventory.models import Host
from ops_portal.inventory.targets import host_fingerprint, sites_by

from .models import Process

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")
HOST_PATTERN = re.compile(r"[A-Za-z0-9*?][A-Za-z0-9._*?-]{0,127}")
PROCESS_NAME = re.compile(r"[^\x00-\x1f\x7f/]{1,128}")  # what the kernel allows in comm, minus control characters
MAX_ITEMS = 5000
MAX_PID = 4194304


class ProcessKind(targets.TargetKind):
    name = "process"
    label = "Process"
    list_keys = ("ids", "hosts", "pids", "names")

    def validate_selector(self, selector):
        errors = []
        unknown = set(selector) - {"kind", "ids", "hosts", "pattern", "pids", "names", "all"}
        if unknown:
            errors.append(f"Unknown selector keys: {', '.join(sorted(unknown))}.")
        if selector.get("all"):
            errors.append("A job never acts on every process: say which (ids, pids or names).")
        elif "all" in selector and selector["all"] is not False:
            errors.append("all must be false for processes.")
        for key, check, what in (("ids", _whole(2**63 - 1), "process ids"), ("pids", _whole(MAX_PID), "pids"),
                                 ("hosts", _text(NAME), "host names"), ("names", _text(PROCESS_NAME), "process names")):
            value = selector.get(key)
            if value is not None and (not isinstance(value, list) or len(value) > MAX_ITEMS
                                      or not all(check(v) for v in value)):
                errors.append(f"{key} must be a list of {what}.")
        pattern = selector.get("pattern")
        if pattern is not None and (not _text(HOST_PATTERN)(pattern)):
            errors.append("pattern must be a shell-style host name pattern such as web-*.")
        if not errors and not any(selector.get(k) for k in ("ids", "pids", "names")):
            errors.append("Say which processes: ids, pids (with hosts or a pattern) or names.")
        if not errors and selector.get("pids") and not (selector.get("hosts") or selector.get("pattern")):
            errors.append("Pids need hosts or a host pattern: a pid means nothing across hosts.")
        if errors:
            raise ValidationError({"selector": errors})
        return {"kind": self.name, **{k: v for k, v in selector.items() if k not in ("kind", "all")}}

    def select(self, selector, environment):
        queryset = self._queryset().filter(host__environment=environment, host__enabled=True)
        if selector.get("ids"):
            queryset = queryset.filter(pk__in=selector["ids"])
        if selector.get("hosts"):
            queryset = queryset.filter(host__name__in=selector["hosts"])
        if selector.get("pids"):
            queryset = queryset.filter(pid__in=selector["pids"])
        if selector.get("names"):
            queryset = queryset.filter(name__in=selector["names"])
        if selector.get("pattern"):
            names = Host.objects.filter(environment=environment, enabled=True).values_list("pk", "name")
            queryset = queryset.filter(host_id__in=[pk for pk, name in names
                                                    if fnmatch.fnmatchcase(name, selector["pattern"])])
        return list(queryset.order_by("host__name", "pid"))

    def _queryset(self):
        return Process.objects.select_related("host__credential")

    def sites(self, ref_ids):
        """Where the processs' hosts are: their jobs run on those sites' workers."""
        return sites_by(Process, "host__site__name", ref_ids)

    def load(self, ref_ids):
        return self._queryset().order_by().in_bulk(list(ref_ids))

    def available(self, ref_ids, environment):
        return (self._queryset().filter(host__environment=environment, host__enabled=True).order_by()
                .in_bulk(list(ref_ids)))

    def fingerprint(self, process):
        return {**host_fingerprint(process.host), "host": process.host.name, "pid": process.pid,
                "start_time": process.start_time, "name": process.name}

    def environment_of(self, process):
        return process.host.environment_id

    def display_name(self, process):
        return f"{process.host.name} pid {process.pid} ({process.name})"[:200]

    def is_local(self, entry):
        return entry["fingerprint"].get("transport") == Transport.LOCAL

    def url(self, ref_id):
        return reverse("processes:detail", args=[ref_id])


def _text(regex):
    return lambda v: isinstance(v, str) and regex.fullmatch(v) is not None


def _whole(maximum):
    return lambda v: isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= maximum


PROCESSES = targets.register(ProcessKind())
