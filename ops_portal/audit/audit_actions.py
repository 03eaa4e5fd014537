from .registry import register

register("audit.export", "Audit log exported")
register("audit.prune", "Audit rows past retention removed")
