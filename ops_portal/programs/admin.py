from ops_portal.core.admin import register_read_only

from .models import HostManager, Program, ProgramEvent

register_read_only(HostManager, Program, ProgramEvent)
