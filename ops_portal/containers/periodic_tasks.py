"""Built-in periodic tasks of the container level (loaded at start-up by core.declarations)."""
from ops_portal.core.periodic import register

# Sampling is a job (the engine.container_stats action, job_actions.py), launched by tasks.py.
register("containers: sample running containers", "containers.collect_stats", 60,
         "Launch one job per environment and site with running containers that samples their CPU, memory, "
         "network and block I/O into their metric series (container metric rules and the container pages "
         "read them); skipped while the previous one is still running. `parallel` containers at a time per "
         "engine (4 engines at a time), at most `max_containers` per engine.",
         parallel=100, max_containers=500, timeout_seconds=300)
