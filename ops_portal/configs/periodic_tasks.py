"""Built-in periodic tasks of the configs app (loaded at start-up by core.declarations)."""
from ops_portal.core.periodic import register

DRIFT_SCHEDULE = "configs: drift check"

register(DRIFT_SCHEDULE, "configs.check_drift", 900,
         "Launch one config.drift job per environment with enabled configuration templates "
         "(skipped where the previous one has not ended).")
