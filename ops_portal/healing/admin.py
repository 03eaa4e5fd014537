from ops_portal.core.admin import register_read_only

from .models import HealingEvent, HealingPolicy

register_read_only(HealingPolicy, HealingEvent)
