"""Inventory import and export: CSV and Ansible-style YAML. Imports are all or nothing."""
import csv
import io
import json

import yaml
from django.core.exceptions import ValidationError
from django.db import transaction

from ops_portal.accounts.models import Environment
from ops_portal.audit.services import record

from . import services
from .choices import Transport
from .models import Credential, Host, HostGroup, Site

CSV_COLUMNS = ["name", "address", "port", "username", "environment", "credential", "groups", "tags", "variables",
               "transport", "enabled", "site"]
MAX_ROWS = 5000
# What says how Ansible reaches a host: written from the host's fields, never from its variables.
CONNECTION_VARS = {"ansible_host", "ansible_port", "ansible_user", "ansible_connection"}
# The portal's own fields in an Ansible inventory, written from the host, never from its variables.
PORTAL_VARS = {"opsportal_tags", "opsportal_site"}


def export_csv(hosts):
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS)
    writer.writeheader()
    for host in hosts.select_related("environment", "credential", "site").prefetch_related("groups"):
        writer.writerow({
            "name": host.name, "address": host.address, "port": host.port, "username": host.username,
            "environment": host.environment.name, "credential": host.credential.name if host.credential else "",
            "groups": ";".join(sorted(g.name for g in host.groups.all())), "tags": ";".join(host.tags),
            "variables": json.dumps(host.variables, sort_keys=True) if host.variables else "",
            "transport": host.transport, "enabled": "true" if host.enabled else "false",
            "site": host.site.name if host.site else "",
        })
    return buffer.getvalue()


def _ansible_entry(host):
    """A host's variables in an Ansible inventory: how Ansible reaches it, then its own variables
    (which may not replace those), and its portal tags and site."""
    entry = {k: v for k, v in host.variables.items() if k not in CONNECTION_VARS | PORTAL_VARS}
    if host.transport == Transport.LOCAL:  # the portal's own machine: no SSH to it
        entry.update(ansible_connection="local", ansible_host=host.address)
    else:
        entry.update(ansible_host=host.address, ansible_port=host.port, ansible_user=host.login_user)
    if host.tags:
        entry["opsportal_tags"] = list(host.tags)
    if host.site is not None:
        entry["opsportal_site"] = host.site.name
    return entry


def export_ansible(hosts):
    """An Ansible YAML inventory (`ansible-inventory -i FILE --list` reads it): groups with their
    variables, hosts with connection variables (`ansible_connection: local` for the portal's own
    machine), variables, tags (`opsportal_tags`) and site (`opsportal_site`). parse_ansible reads it
    back unchanged."""
    inventory = {"all": {"hosts": {}, "children": {}}}
    for host in hosts.select_related("environment", "credential", "site").prefetch_related("groups"):
        entry = _ansible_entry(host)
        groups = list(host.groups.all())
        if not groups:
            inventory["all"]["hosts"][host.name] = entry
        for group in groups:
            child = inventory["all"]["children"].setdefault(group.name, {"hosts": {}, "vars": dict(group.variables)})
            child["hosts"][host.name] = dict(entry)  # a copy each: no YAML anchors and aliases
    for child in inventory["all"]["children"].values():
        if not child["vars"]:
            del child["vars"]
    return yaml.safe_dump(inventory, sort_keys=True, default_flow_style=False)


def _bool(value, row):
    lowered = str(value).strip().lower()
    if lowered in ("", "true", "yes", "1"):
        return True
    if lowered in ("false", "no", "0"):
        return False
    raise ValueError(f"row {row}: enabled must be true or false")


def parse_csv(text, default_environment=None):
    rows = []
    reader = csv.DictReader(io.StringIO(text))
    missing = {"name", "address"} - set(reader.fieldnames or [])
    if missing:
        raise ValidationError({"file": [f"The CSV needs the columns {', '.join(sorted(missing))}."]})
    errors = []
    for number, row in enumerate(reader, start=2):
        try:
            variables = json.loads(row["variables"]) if (row.get("variables") or "").strip() else {}
            rows.append({
                "name": (row.get("name") or "").strip(), "address": (row.get("address") or "").strip(),
                "port": int(row.get("port") or 22), "username": (row.get("username") or "").strip(),
                "environment": (row.get("environment") or default_environment or "").strip(),
                "credential": (row.get("credential") or "").strip(),
                "groups": [g for g in (row.get("groups") or "").split(";") if g.strip()],
                "tags": [t for t in (row.get("tags") or "").split(";") if t.strip()],
                "variables": variables, "transport": (row.get("transport") or "ssh").strip(),
                "enabled": _bool(row.get("enabled", ""), number), "line": number,
            })
            if "site" in (reader.fieldnames or []):  # without the column, an update keeps the host's site
                rows[-1]["site"] = (row.get("site") or "").strip()
        except (ValueError, TypeError) as exc:
            errors.append(f"line {number}: {exc}")
    if errors:
        raise ValidationError({"file": errors[:50]})
    return rows, {}


def parse_ansible(text, environment):
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ValidationError({"file": [f"Not valid YAML: {exc}"]}) from None
    if not isinstance(document, dict) or not isinstance(document.get("all"), dict):
        raise ValidationError({"file": ["An Ansible YAML inventory starts with `all:`."]})
    hosts, group_vars = {}, {}

    def walk(name, node):
        if not isinstance(node, dict):
            return
        if name != "all":
            group_vars.setdefault(name, dict(node.get("vars") or {}))
        for host_name, values in (node.get("hosts") or {}).items():
            values = dict(values or {})
            entry = hosts.setdefault(str(host_name), {"name": str(host_name), "groups": [], "variables": {}})
            entry["address"] = str(values.pop("ansible_host", host_name))
            entry["port"] = int(values.pop("ansible_port", 22))
            entry["username"] = str(values.pop("ansible_user", ""))
            entry["tags"] = list(values.pop("opsportal_tags", []))
            if "opsportal_site" in values:  # without it, an update keeps the host's site
                entry["site"] = str(values.pop("opsportal_site") or "")
            connection = values.pop("ansible_connection", "ssh")
            if connection not in ("ssh", "local"):
                raise ValueError(f"host {host_name}: ansible_connection {connection!r} is not ssh or local")
            entry["transport"] = Transport.LOCAL if connection == "local" else Transport.SSH
            entry["variables"].update(values)
            if name != "all":
                entry["groups"].append(name)
        for child_name, child in (node.get("children") or {}).items():
            walk(str(child_name), child)

    try:
        walk("all", document["all"])
    except (TypeError, ValueError) as exc:
        raise ValidationError({"file": [f"Unreadable inventory: {exc}"]}) from None
    rows = [{"transport": Transport.SSH, **entry, "environment": environment, "credential": "", "enabled": True,
             "line": entry["name"]} for entry in hosts.values()]
    return rows, group_vars


def apply_import(actor, rows, group_vars, *, update_existing=False, credential_name=""):
    """Create (or update) every host of the import in one transaction, or nothing at all."""
    if len(rows) > MAX_ROWS:
        raise ValidationError({"file": [f"At most {MAX_ROWS} hosts per import."]})
    errors, created, updated = [], 0, 0
    with transaction.atomic():
        environments = {e.name: e for e in Environment.objects.all()}
        sites = {s.name: s for s in Site.objects.all()}
        for row in rows:
            where = f"line {row['line']}" if isinstance(row["line"], int) else f"host {row['line']}"
            environment = environments.get(row["environment"])
            if environment is None:
                errors.append(f"{where}: unknown environment {row['environment']!r}")
                continue
            groups = []
            for group_name in row["groups"]:
                group = HostGroup.objects.filter(environment=environment, name=group_name).first()
                if group is None:
                    try:
                        group = services.create_group(actor, name=group_name, environment=environment,
                                                      variables=group_vars.get(group_name, {}))
                    except ValidationError as exc:
                        errors.append(f"{where}: group {group_name}: {' '.join(exc.messages)}")
                        continue
                groups.append(group)
            credential = None
            name = row["credential"] or credential_name
            if name:
                credential = Credential.objects.filter(name=name, environment=environment).first()
                if credential is None:
                    errors.append(f"{where}: no credential {name!r} in {environment}")
                    continue
            fields = {"address": row["address"], "port": row["port"], "username": row["username"],
                      "environment": environment, "credential": credential, "tags": row["tags"],
                      "variables": row["variables"], "transport": row["transport"], "enabled": row["enabled"]}
            if "site" in row:
                if row["site"] and row["site"] not in sites:
                    errors.append(f"{where}: no site {row['site']!r} (administrators of all environments add "
                                  "sites on the Sites page)")
                    continue
                fields["site"] = sites.get(row["site"])
            existing = Host.objects.filter(name=row["name"]).first()
            try:
                if existing is None:
                    services.create_host(actor, name=row["name"], groups=groups, **fields)
                    created += 1
                elif update_existing:
                    services.update_host(actor, existing, groups=groups, **fields)
                    updated += 1
                else:
                    errors.append(f"{where}: host {row['name']} already exists")
            except ValidationError as exc:
                details = exc.message_dict if hasattr(exc, "error_dict") else {"": exc.messages}
                errors.append(f"{where}: " + "; ".join(f"{k}: {' '.join(v)}" if k else " ".join(v)
                                                       for k, v in details.items()))
            except Exception as exc:  # PermissionDenied: the actor may not manage that environment
                errors.append(f"{where}: {exc}")
        if errors:
            transaction.set_rollback(True)
            raise ValidationError({"file": errors[:100]})
        record(actor, "host.import", object_type="inventory.host", object_repr=f"{created} created, {updated} updated",
               extra={"created": created, "updated": updated})
    return {"created": created, "updated": updated}
