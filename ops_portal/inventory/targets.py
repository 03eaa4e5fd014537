"""The host target kind: machines of the inventory, selected by name, pattern, group or tag.

{"kind": "host", "names": ["web-01"], "pattern": "web-*", "groups": ["web"], "tags": ["blue"],
 "all": false}

Criteria combine with AND; values inside a list with OR. Targets always come from the job's own
environment and must be enabled. A selector with no criteria must say {"all": true}.
"""
import fnmatch

from django.urls import reverse

from ops_portal.core import targets

from .choices import Transport
from .models import Host


class HostKind(targets.TargetKind):
    name = "host"
    label = "Host"
    list_keys = ("names", "groups", "tags")

    def select(self, selector, environment):
        # Only what the plan entry (name, fingerprint) and the tag filter read: facts and variables
        # are kilobytes a host, and the credential's encrypted key is not needed to name it.
        queryset = (Host.objects.filter(environment=environment, enabled=True).select_related("credential")
                    .only("name", "address", "port", "transport", "username", "host_key", "tags", "credential_id",
                          "credential__name", "credential__username"))
        if selector.get("names"):
            queryset = queryset.filter(name__in=selector["names"])
        if selector.get("groups"):
            queryset = queryset.filter(groups__name__in=selector["groups"]).distinct()
        hosts = list(queryset.order_by("name"))
        if selector.get("tags"):
            wanted = set(selector["tags"])
            hosts = [h for h in hosts if wanted & set(h.tags)]
        if selector.get("pattern"):
            hosts = [h for h in hosts if fnmatch.fnmatchcase(h.name, selector["pattern"])]
        return hosts

    def load(self, ref_ids):
        return Host.objects.select_related("credential").order_by().in_bulk(list(ref_ids))

    def available(self, ref_ids, environment):
        return (Host.objects.select_related("credential").filter(environment=environment, enabled=True).order_by()
                .in_bulk(list(ref_ids)))

    def fingerprint(self, host):
        """Where the host is and how the portal reaches it."""
        return host_fingerprint(host)

    def is_local(self, entry):
        return entry["fingerprint"].get("transport") == Transport.LOCAL

    def sites(self, ref_ids):
        return sites_by(Host, "site__name", ref_ids)

    def url(self, ref_id):
        return reverse("inventory:host", args=[ref_id])


def sites_by(model, lookup, ref_ids):
    """{ref_id: site name or None} of `model` rows through `lookup` (a host's "site__name", an object
    on a host "host__site__name"), in one query: the target kinds' `sites`."""
    found = dict(model.objects.filter(pk__in=list(ref_ids)).values_list("pk", lookup))
    return {ref_id: found.get(ref_id) for ref_id in ref_ids}


def host_fingerprint(host):
    """What an approver approves about a host: where it is and how the portal reaches it."""
    return {"address": host.address, "port": host.port, "transport": host.transport, "user": host.login_user,
            "credential": host.credential.name if host.credential_id else None, "host_key": host.host_key}


HOSTS = targets.register(HostKind())
