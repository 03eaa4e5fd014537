from ops_portal.core.admin import register_read_only

from .models import Evaluation, ScalingPolicy

register_read_only(ScalingPolicy, Evaluation)
