"""Built-in periodic tasks of the approvals app (loaded at start-up by core.declarations)."""
from ops_portal.core.periodic import register

register("approvals: expire requests", "approvals.expire_due", 60,
         "End approval requests past their time with their policy's outcome.")
