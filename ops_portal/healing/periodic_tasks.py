"""Built-in periodic tasks of self-healing (loaded at start-up by core.declarations)."""
from ops_portal.core.periodic import register

register("healing: settle", "healing.settle", 30,
         "Resolve crash-loop alerts of containers that stayed up for their policy's stable time (or are gone), "
         "and decide healing needs whose backoff has passed.")
