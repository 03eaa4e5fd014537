"""Built-in periodic tasks of the programs app (loaded at start-up by core.declarations)."""
from ops_portal.core.periodic import register

register("programs: refresh", "programs.refresh", 120,
         "Launch one programs.refresh job per environment with enabled hosts (skipped while the previous one "
         "is still running): managers, programs, restarts, crash loops; `parallel` hosts at a time.", parallel=20)
