"""Built-in periodic tasks of the jobs app (loaded at start-up by core.declarations)."""
from ops_portal.core.periodic import register

register("jobs: reap lost jobs", "jobs.reap_lost", 30,
         "Mark running jobs whose worker stopped heartbeating as lost.")
register("jobs: dispatch waiting jobs", "jobs.dispatch_waiting", 15,
         "Retry queued jobs waiting for a lease or a concurrency slot, and re-send lost messages.")
register("retention: job output", "jobs.prune_events", 86400,
         "Remove output of jobs that finished more than `days` ago.", days=90)
register("inventory: refresh facts", "jobs.refresh_facts", 6 * 3600,
         "Gather facts from every enabled host, one job per environment (health and reachability too).")
register("compliance: run checks", "jobs.compliance_checks", 86400,
         "Run the security and compliance checks on every enabled host.")
