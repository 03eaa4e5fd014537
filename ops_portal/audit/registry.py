"""The registry of named audit actions. Every action the audit log records is declared here once.

Apps declare their actions in their own audit_actions module at start-up:
    register("host.create", "Host added to the inventory")
"""
_ACTIONS: dict[str, str] = {}


class UnknownAuditAction(LookupError):
    pass


def register(name: str, description: str) -> str:
    existing = _ACTIONS.get(name)
    if existing is not None and existing != description:
        raise ValueError(f"audit action {name!r} is registered twice with different descriptions")
    _ACTIONS[name] = description
    return name


def register_crud(prefix: str, noun: str) -> None:
    register(f"{prefix}.create", f"{noun} created")
    register(f"{prefix}.update", f"{noun} changed")
    register(f"{prefix}.delete", f"{noun} deleted")


def describe(name: str) -> str:
    try:
        return _ACTIONS[name]
    except KeyError:
        raise UnknownAuditAction(name) from None


def all_actions() -> dict[str, str]:
    return dict(sorted(_ACTIONS.items()))
