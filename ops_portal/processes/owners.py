"""Which managed program owns a process: the programs app (below this one) answers.

`programs.services.program_for_process(host, pid, owner_kind, owner_name)` gives the Program
(supervisord, systemd or PM2) a process scan found owning a process, or None. Process actions go
through that program's manager; for a process no manager owns, a child of a program's own process,
or a program the portal does not know (yet), they signal the process themselves and say why.
"""
from django.urls import reverse

from ops_portal.programs.services import program_for_process

from .choices import MANAGED_KINDS


class Owner:
    """The answer for one process: the program to act through, or why there is none."""

    def __init__(self, program=None, reason=""):
        self.program = program
        self.reason = reason

    def __bool__(self):
        return self.program is not None


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
    program = program_for_process(process.host, process.pid, kind, name)
    if program is None:
        return Owner(reason=f"it belongs to {label}, which the portal does not know as a program (refresh the "
                            f"host's programs)")
    return Owner(program=program)


def program_url(program):
    """The program's page."""
    return reverse("programs:detail", args=[program.pk])
