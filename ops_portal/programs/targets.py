"""The program target kind: programs of the inventory's hosts, selected by program name, pattern,
host, host group, manager or id.

{"kind": "program", "names": ["ticker"], "pattern": "web-*", "hosts": ["host-01"], "groups": ["web"],
 "managers": ["supervisord"], "ids": ["12"], "all": false}

Criteria combine with AND, values inside a list with OR; the pattern matches the program's name.
Programs come from the job's own environment, on enabled hosts. A program's fingerprint is its
host's (address, port, transport, user, credential, host key) plus manager and name: what an
approver approves, so a program that moved hosts needs approval again.
"""
import fnmatch

from django.core.exceptions import ValidationError
from django.urls import reverse

from ops_portal.core import targets
from ops_portal.inventory.choices import Transport
from ops_portal.inventory.targets import host_fingerprint, sites_by

from .choices import Manager
from .models import Program


class ProgramKind(targets.TargetKind):
    name = "program"
    label = "Program"
    list_keys = ("names", "hosts", "groups", "managers", "ids")

    def validate_selector(self, selector):
        clean = super().validate_selector(selector)
        errors = []
        managers = clean.get("managers") or []
        if any(m not in Manager.values for m in managers):
            errors.append(f"managers must be among {', '.join(Manager.values)}.")
        if any(not i.isdigit() for i in clean.get("ids") or []):
            errors.append("ids must be program ids (digits).")
        if errors:
            raise ValidationError({"selector": errors})
        return clean

    def select(self, selector, environment):
        queryset = Program.objects.filter(host__environment=environment, host__enabled=True).select_related(
            "host__credential")
        if selector.get("names"):
            queryset = queryset.filter(name__in=selector["names"])
        if selector.get("hosts"):
            queryset = queryset.filter(host__name__in=selector["hosts"])
        if selector.get("groups"):
            queryset = queryset.filter(host__groups__name__in=selector["groups"]).distinct()
        if selector.get("managers"):
            queryset = queryset.filter(manager__in=selector["managers"])
        if selector.get("ids"):
            queryset = queryset.filter(pk__in=[int(i) for i in selector["ids"]])
        programs = list(queryset.order_by("host__name", "manager", "name"))
        if selector.get("pattern"):
            programs = [p for p in programs if fnmatch.fnmatchcase(p.name, selector["pattern"])]
        return programs

    def sites(self, ref_ids):
        """Where the programs' hosts are: their jobs run on those sites' workers."""
        return sites_by(Program, "host__site__name", ref_ids)

    def load(self, ref_ids):
        return Program.objects.select_related("host__credential", "host__environment").order_by().in_bulk(list(ref_ids))

    def available(self, ref_ids, environment):
        return Program.objects.select_related("host__credential").filter(
            host__environment=environment, host__enabled=True).order_by().in_bulk(list(ref_ids))

    def fingerprint(self, program):
        return {**host_fingerprint(program.host), "manager": program.manager, "name": program.name}

    def environment_of(self, program):
        return program.host.environment_id

    def display_name(self, program):
        return f"{program.host.name}: {program.name} ({program.manager})"[:200]

    def is_local(self, entry):
        return entry["fingerprint"].get("transport") == Transport.LOCAL

    def url(self, ref_id):
        return reverse("programs:detail", args=[ref_id])


PROGRAMS = targets.register(ProgramKind())
