"""Built-in periodic tasks of the monitoring app (loaded at start-up by core.declarations)."""
from ops_portal.core.periodic import register

register("monitoring: evaluate alert rules", "monitoring.evaluate", 30,
         "Fire and resolve alerts from the latest metric samples (also runs after each metrics job).")
register("monitoring: rollups and retention", "monitoring.rollup", 300,
         "Roll raw samples up into 5-minute and hourly averages and maxima; drop raw samples after "
         "`raw_hours`, 5-minute rollups after `five_minute_days`, hourly ones after `hourly_days`.",
         raw_hours=48, five_minute_days=30, hourly_days=365)
# Metrics collection is a job (the host.metrics action, job_actions.py), launched by tasks.py.
register("monitoring: collect metrics", "monitoring.collect_metrics", 60,
         "Launch one metrics job per environment with enabled hosts (skipped while the previous "
         "one is still running); `parallel` hosts at a time.", parallel=50, timeout_seconds=300)
register("retention: metrics jobs", "monitoring.prune_jobs", 3600,
         "Remove system sampling jobs (host metrics, running containers) that ended more than `days` ago.", days=3)
register("monitoring: workers of sites", "monitoring.site_workers", 30,
         "Alert when jobs wait on a site's queue (site.<name>) with no live worker taking it; resolve "
         "once a worker does or nothing waits.")
