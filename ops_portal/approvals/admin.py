from ops_portal.core.admin import register_read_only

from .models import ApprovalPolicy, ApprovalRequest

register_read_only(ApprovalPolicy, ApprovalRequest)
