"""Changes to the inventory: hosts, groups and credentials. Each is audited."""
import hashlib
import io
import posixpath
import tarfile

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import ProtectedError
from django.utils import timezone

from ops_portal.accounts.choices import Action
from ops_portal.accounts.permissions import require_on
from ops_portal.audit.crud import create_object, delete_object, update_object
from ops_portal.audit.services import record, snapshot
from schedulers import sshkeys
from schedulers.host import validate_release_archive

from . import warm
from .choices import Reachability, Transport
from .models import Artifact, ComplianceResult, Credential, FactsChange, Host, HostGroup, Site


def _key_fields(private_key, passphrase):
    try:
        public, fingerprint = sshkeys.describe(private_key, passphrase or None)
    except sshkeys.BadKeyError as exc:
        raise ValidationError({"private_key": [str(exc)]}) from None
    return {"private_key": private_key, "passphrase": passphrase or "", "public_key": public,
            "fingerprint": fingerprint}


def create_site(actor, **fields):
    """A new site (administrators of all environments: Site is global)."""
    return create_object(actor, Site, fields)


def update_site(actor, site, **fields):
    """Rename or describe a site. A rename moves its hosts' future jobs to the new queue; jobs
    already queued keep the queue their plan froze."""
    return update_object(actor, site, fields)


def delete_site(actor, site):
    """Remove a site that no host is on any more (its hosts would silently change queue)."""
    with transaction.atomic():
        hosts = list(Host.objects.filter(site=site).order_by("name").values_list("name", flat=True)[:11])
        if hosts:
            raise ValidationError({"site": [f"Site {site} still holds {', '.join(hosts[:10])}"
                                            f"{' and more' if len(hosts) > 10 else ''}: move them first."]})
        try:
            delete_object(actor, site)
        except ProtectedError as exc:  # engines without a host placed on the site
            held = sorted(f"{obj._meta.verbose_name} {obj}" for obj in exc.protected_objects)
            raise ValidationError({"site": [f"Site {site} still holds {', '.join(held[:10])}"
                                            f"{' and more' if len(held) > 10 else ''}: move them first."]}) from None


def create_credential(actor, *, private_key, passphrase="", **fields):
    return create_object(actor, Credential, {**fields, **_key_fields(private_key, passphrase)})


def update_credential(actor, credential, **fields):
    fields.pop("private_key", None)
    fields.pop("passphrase", None)
    old_fingerprint, old_username = warm.fingerprint_of(credential), credential.username
    credential = update_object(actor, credential, fields)
    if credential.username != old_username:
        warm.revoke_on_commit(fingerprint=old_fingerprint)
    return credential


def rotate_credential(actor, credential, *, private_key, passphrase=""):
    """Replace the key of a credential; hosts using it switch at their next connection, and every
    worker closes its warm connections made with the old key once the change is committed."""
    fields = {**_key_fields(private_key, passphrase), "rotated": timezone.now()}
    old_fingerprint = warm.fingerprint_of(credential)
    credential = update_object(actor, credential, fields, audit_action="credential.rotate")
    warm.revoke_on_commit(fingerprint=old_fingerprint)
    return credential


def delete_credential(actor, credential):
    old_fingerprint = warm.fingerprint_of(credential)
    delete_object(actor, credential)
    warm.revoke_on_commit(fingerprint=old_fingerprint)


def _authorize_group(authority, group, m2m, before):
    """A group's name decides which templates select its hosts: a group holding the portal's own
    machine is changed only by administrators of all environments."""
    if group.pk is not None and not authority.everywhere(Action.MANAGE) \
            and group.hosts.filter(transport=Transport.LOCAL).exists():
        raise PermissionDenied(f"Only administrators of all environments change {group}: it holds a host with "
                               "the local transport (the portal's own machine).")


def create_group(actor, **fields):
    return create_object(actor, HostGroup, fields)


def update_group(actor, group, **fields):
    return update_object(actor, group, fields, authorize=_authorize_group)


def delete_group(actor, group):
    delete_object(actor, group, authorize=_authorize_group)


def _check_groups(environment, groups):
    for group in groups or ():
        if group.environment_id != environment.pk:
            raise ValidationError({"groups": [f"Group {group.name} belongs to another environment."]})


def _authorize_host(authority, host, m2m, before):
    """The portal's own machine (transport local) holds the portal's secrets and runs as its user:
    only administrators of all environments create such a host, make a host one, or change or
    remove one (its tags, groups and environment decide which templates select it)."""
    local = host.transport == Transport.LOCAL or (before is not None and before.get("transport") == Transport.LOCAL)
    if local and not authority.everywhere(Action.MANAGE):
        raise PermissionDenied(f"Only administrators of all environments manage {host.name}: a host with the "
                               "local transport is the portal's own machine.")


def create_host(actor, *, groups=(), **fields):
    _check_groups(fields.get("environment"), groups)
    return create_object(actor, Host, fields, m2m={"groups": list(groups)}, authorize=_authorize_host)


# What a warm SSH connection was made with: a change to any closes the host's warm connections.
REACH_FIELDS = ("address", "port", "username", "credential_id", "host_key", "enabled", "transport")


def update_host(actor, host, *, groups=None, **fields):
    if groups is not None:
        _check_groups(fields.get("environment", host.environment), groups)
    m2m = {"groups": list(groups)} if groups is not None else None
    before = {name: getattr(host, name) for name in REACH_FIELDS}
    host = update_object(actor, host, fields, m2m=m2m, authorize=_authorize_host)
    if any(getattr(host, name) != value for name, value in before.items()):
        warm.revoke_on_commit(address=before["address"], port=before["port"])
    return host


def delete_host(actor, host):
    address, port = host.address, host.port
    delete_object(actor, host, authorize=_authorize_host)
    warm.revoke_on_commit(address=address, port=port)


def accept_host_key(actor, host):
    """Pin the host key the host last offered (after a legitimate re-install, say)."""
    with transaction.atomic():
        host = Host.objects.select_for_update().get(pk=host.pk)
        if actor.user is not None:
            require_on(actor.user, Action.MANAGE, host)
        if not host.offered_host_key:
            raise ValidationError({"host_key": ["The host has not offered a new key."]})
        before = snapshot(host)
        host.host_key, host.offered_host_key = host.offered_host_key, ""
        host.reachability = "unknown"
        host.last_error = ""
        host.save()
        record(actor, "host.accept_host_key", host, before=before, after=snapshot(host))
        warm.revoke_on_commit(address=host.address, port=host.port)
    return host


# Observations from jobs (not audited one by one: the job that made them is) -----------------

def note_reachable(host_id):
    Host.objects.filter(pk=host_id).update(reachability=Reachability.REACHABLE, last_seen=timezone.now(),
                                           last_error="")


def note_reachable_many(host_ids):
    """note_reachable for several hosts in one statement (a job's targets that ended together)."""
    Host.objects.filter(pk__in=host_ids).update(reachability=Reachability.REACHABLE, last_seen=timezone.now(),
                                                last_error="")


def note_unreachable(host_id, error):
    Host.objects.filter(pk=host_id).update(reachability=Reachability.UNREACHABLE, last_error=str(error)[:500])


def note_host_key_changed(host_id, offered_key, error):
    Host.objects.filter(pk=host_id).update(reachability=Reachability.HOST_KEY_CHANGED, offered_host_key=offered_key,
                                           last_error=str(error)[:500])
    for address, port in Host.objects.filter(pk=host_id).values_list("address", "port"):
        warm.revoke_on_commit(address=address, port=port)


def pin_first_host_key(host_id, key_line):
    """Trust on first use: pin the key only if nothing is pinned yet."""
    Host.objects.filter(pk=host_id, host_key="").update(host_key=key_line)


def store_facts(host_id, facts, job_id=None):
    """Keep the current facts and a history row of what changed."""
    with transaction.atomic():
        host = Host.objects.select_for_update().filter(pk=host_id).first()
        if host is None:
            return None
        before = host.facts or {}
        changes = {key: {"before": before.get(key), "after": facts.get(key)}
                   for key in sorted(set(before) | set(facts)) if before.get(key) != facts.get(key)
                   and key not in VOLATILE_FACTS}
        host.facts, host.facts_updated = facts, timezone.now()
        host.save(update_fields=["facts", "facts_updated"])
        if changes and before:
            FactsChange.objects.create(host=host, changes=changes, job_id=job_id)
    return changes


# Facts that change on every gathering and would drown the history.
VOLATILE_FACTS = {"uptime_seconds", "memory", "disks", "collected_at"}


def store_compliance(host_id, results, job_id=None):
    ComplianceResult.objects.bulk_create([
        ComplianceResult(host_id=host_id, name=r["check"][:64], passed=r["passed"], evidence=str(r["evidence"])[:4000],
                         job_id=job_id)
        for r in results
    ])


# Artifacts ---------------------------------------------------------------------------------

def create_artifact(actor, *, name, environment, data):
    """Store a release archive after checking it (tar.gz, no absolute paths, no escapes)."""
    if len(data) > Artifact.MAX_SIZE:
        raise ValidationError({"archive": [f"At most {Artifact.MAX_SIZE // (1024 * 1024)} MiB."]})
    try:
        members = validate_release_archive(data)
    except ValueError as exc:
        raise ValidationError({"archive": [str(exc)]}) from None
    return create_object(actor, Artifact, {
        "name": name, "environment": environment, "data": data, "size": len(data),
        "sha256": hashlib.sha256(data).hexdigest(), "uploaded_by": actor.username,
        "files": len(members) if hasattr(members, "__len__") else 0})


def delete_artifact(actor, artifact):
    delete_object(actor, artifact)


def pack_directory(files):
    """Build a tar.gz release from uploaded files {relative path: bytes} (a directory upload)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for path, content in sorted(files.items()):
            clean = posixpath.normpath(path)
            if clean.startswith(("/", "..")) or "/../" in f"/{clean}/" or "\x00" in clean or clean == ".":
                raise ValidationError({"files": [f"Unsafe path in the upload: {path!r}."]})
            info = tarfile.TarInfo(clean)
            info.size, info.mode = len(content), 0o644
            tar.addfile(info, io.BytesIO(content))
    return buffer.getvalue()
