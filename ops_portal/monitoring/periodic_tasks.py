"""Built-in periodic tasks of the monitoring app (loaded at start-up by core.declarations).

Collection ("monitoring: collect metrics") is a job: its schedule is declared by the jobs app,
beside the host.metrics action.
"""
from ops_portal.core.periodic import register

register("monitoring: evaluate alert rules", "monitoring.evaluate", 30,
         "Fire and resolve alerts from the latest metric samples (also runs after each metrics job).")
register("monitoring: rollups and retention", "monitoring.rollup", 300,
         "Roll raw samples up into 5-minute and hourly averages and maxima; drop raw samples after "
         "`raw_hours`, 5-minute rollups after `five_minute_days`, hourly ones after `hourly_days`.",
         raw_hours=48, five_minute_days=30, hourly_days=365)
