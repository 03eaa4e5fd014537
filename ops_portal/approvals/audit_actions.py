from ops_portal.audit.registry import register, register_crud

register_crud("approvalpolicy", "Approval policy")
register("approval.request", "Approval requested")
register("approval.approve", "Approved")
register("approval.reject", "Rejected")
register("approval.comment", "Commented on an approval request")
register("approval.approved", "Request reached its quorum")
register("approval.expired", "Request expired")
register("approval.invalidated", "Request invalidated: the plan changed")
register("approval.withdrawn", "Request withdrawn")
register("approval.link_used", "One-time approval link used")
