"""Built-in periodic tasks of the audit app (loaded at start-up by core.declarations)."""
from ops_portal.core.periodic import register

register("retention: audit log", "audit.prune", 86400,
         "Remove audit rows older than `days` (the removal itself is audited).", days=365)
