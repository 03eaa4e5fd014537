"""The process level's inventory: every process of every host (the portal's own machine read
in the worker, SSH hosts through the collector; /proc on Linux, psutil elsewhere), who owns it,
what changed since the last scan, and
signals to one process (signal, stop, pause, resume, kill) with its owning manager preferred.

Layering: a level app above the jobs engine. Scans and signals are jobs (job_actions.py declares
processes.scan on hosts and process.* on the `process` target kind of targets.py); services.py
launches them through jobs.launch. The programs app (managed programs) sits below this one: a
process owned by supervisord, systemd or PM2 is acted on through its manager when that app knows
the program (owners.py).
"""
