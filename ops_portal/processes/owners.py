"""Which managed program owns a process: the hook into the programs app.

The programs app (supervisord, systemd and PM2 programs the portal knows) sits below this one and
may not be installed. When it is, `programs.services.program_for_process(host, pid, owner_kind,
owner_name)` answers with its Program (which has `manager` and `name`) or None; when it is not,
or for a process no manager owns, there is no program and process actions signal the process
themselves, saying why the manager was not used.
"""
import importlib

from django.apps import apps

from .choices import MANAGED_KINDS

PROGRAMS_APP = "ops_portal.programs"
PROGRAMS_SERVICES = "ops_portal.programs.services"


class Owner:
    """The answer for one process: the program to act through, or why there is none."""

    def __init__(self, program=None, reason=""):
        self.program = program
        self.reason = reason

    def __bool__(self):
        return self.program is not None


def programs_installed():
    return apps.is_installed(PROGRAMS_APP)


def owning_program(process):
    """The Owner of a process: its program when a manager owns it as its main process and the
    programs app knows the program; otherwise the reason in plain words ("" for unmanaged ones)."""
    kind, name = process.owner_kind, process.owner_name
    if kind not in MANAGED_KINDS:
        return Owner(reason="")
    label = f"{process.get_owner_kind_display()} {name}"
    if not process.main:
        return Owner(reason=f"it is a child of {label}'s own process, and the manager would act on the whole "
                            f"program")
    if not programs_installed():
        return Owner(reason=f"it belongs to {label}, but the programs app is not installed")
    services = importlib.import_module(PROGRAMS_SERVICES)  # below this app; imported only when installed
    program = services.program_for_process(process.host, process.pid, kind, name)
    if program is None:
        return Owner(reason=f"it belongs to {label}, which the portal does not know as a program (refresh the "
                            f"host's programs)")
    return Owner(program=program)


def program_url(program):
    """The program's page, when the programs app gives it one."""
    getter = getattr(program, "get_absolute_url", None)
    return getter() if callable(getter) else None
