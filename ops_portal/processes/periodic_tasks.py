"""Built-in periodic tasks of the processes app (loaded at start-up by core.declarations)."""
from ops_portal.core.periodic import register

register("processes: scan", "processes.scan_all", 300,
         "Launch one processes.scan job per environment with enabled hosts (skipped where the previous "
         "one has not ended): every process of every host, with what changed since the last scan.")
register("retention: process scan jobs", "processes.prune_jobs", 3600,
         "Remove the portal's own process scan jobs that ended more than `days` ago.", days=3)
