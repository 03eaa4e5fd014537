"""Each app declares its audit actions, notification events, periodic tasks, target kinds and job
actions in modules of fixed names; one loader imports them at start-up and the registries hold
nothing else."""
import importlib
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from django.apps import apps

from ops_portal.audit import registry as audit_registry
from ops_portal.core import declarations, periodic, targets
from ops_portal.jobs import actions as job_actions
from ops_portal.monitoring import states as alert_states
from ops_portal.notifications import registry as event_registry

REGISTRIES = {  # declaration module -> (registry module, name of its table)
    "audit_actions": (audit_registry, "_ACTIONS"),
    "notification_events": (event_registry, "EVENTS"),
    "periodic_tasks": (periodic, "_BUILTINS"),
    "targets": (targets, "_KINDS"),
    "job_actions": (job_actions, "_ACTIONS"),
    "alert_states": (alert_states, "_KINDS"),
}


def portal_apps():
    return [config for config in apps.get_app_configs() if config.name.startswith("ops_portal.")]


def declared_by(module_name, monkeypatch):
    """Run a declaration module again against an empty registry; return what it registers."""
    registry, table = REGISTRIES[module_name.rsplit(".", 1)[1]]
    fresh = {}
    monkeypatch.setattr(registry, table, fresh)
    importlib.reload(sys.modules[module_name])
    monkeypatch.undo()
    return fresh


def test_every_declaration_module_is_loaded_at_start_up():
    for config in portal_apps():
        for module in declarations.MODULES:
            on_disk = (Path(config.path) / f"{module}.py").exists()
            assert (f"{config.name}.{module}" in sys.modules) is on_disk, f"{config.name}.{module}"


def test_the_registries_hold_exactly_what_the_apps_declare(monkeypatch):
    registered = {module: dict(getattr(registry, table)) for module, (registry, table) in REGISTRIES.items()}
    declared = {module: {} for module in REGISTRIES}
    for name in declarations.load(portal_apps()):
        declared[name.rsplit(".", 1)[1]].update(declared_by(name, monkeypatch))
    assert {module: set(table) for module, table in declared.items()} == \
        {module: set(table) for module, table in registered.items()}
    # Declarations of plain values compare whole (kinds and actions are objects made anew by a reload).
    for module in ("audit_actions", "notification_events", "periodic_tasks"):
        assert declared[module] == registered[module]
    # Each kind is declared by the app that owns it, not by its registry's app.
    assert "configs: drift check" in declared_by("ops_portal.configs.periodic_tasks", monkeypatch)
    assert "jobs: reap lost jobs" in declared_by("ops_portal.jobs.periodic_tasks", monkeypatch)
    assert "alert.firing" in declared_by("ops_portal.monitoring.notification_events", monkeypatch)
    assert "job.failed" in declared_by("ops_portal.jobs.notification_events", monkeypatch)
    assert "host.create" in declared_by("ops_portal.inventory.audit_actions", monkeypatch)
    assert "host" in declared_by("ops_portal.inventory.targets", monkeypatch)
    assert "config.drift" in declared_by("ops_portal.configs.job_actions", monkeypatch)
    assert "host.metrics" in declared_by("ops_portal.monitoring.job_actions", monkeypatch)
    assert "program_not_running" in declared_by("ops_portal.programs.alert_states", monkeypatch)


@pytest.fixture
def app_package(tmp_path, monkeypatch):
    """make(name, **modules): an importable package with the given modules, standing in for an app."""
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(periodic, "_BUILTINS", dict(periodic._BUILTINS))
    monkeypatch.setattr(event_registry, "EVENTS", dict(event_registry.EVENTS))

    def make(name, **modules):
        package = tmp_path / name
        package.mkdir()
        (package / "__init__.py").write_text("")
        for module, source in modules.items():
            (package / f"{module}.py").write_text(source)
        importlib.invalidate_caches()
        return SimpleNamespace(name=name)

    yield make
    for name in [module for module in sys.modules if module.startswith("stand_in_")]:
        del sys.modules[name]


def test_an_app_without_declaration_modules_is_fine(app_package):
    assert declarations.load([apps.get_app_config("dashboard")]) == []
    app = app_package("stand_in_partial", periodic_tasks=(
        "from ops_portal.core.periodic import register\n"
        "register('stand-in: tidy', 'stand_in.tidy', 60, 'Tidy up.')\n"))
    assert declarations.load([app]) == ["stand_in_partial.periodic_tasks"]
    assert periodic.builtins()["stand-in: tidy"].task == "stand_in.tidy"


def test_a_broken_declaration_stops_start_up(app_package):
    """An error inside a declaration module is not mistaken for a missing module."""
    app = app_package("stand_in_broken", notification_events=(
        "from ops_portal.notifications.registry import register\n"
        "register('Not A Name', 'Broken.')\n"))
    with pytest.raises(ValueError, match="must be dotted lower-case words"):
        declarations.load([app])
