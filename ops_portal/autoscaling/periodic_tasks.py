"""Built-in periodic tasks of the autoscaling app (loaded at start-up by core.declarations)."""
from ops_portal.core.periodic import register

register("autoscaling: evaluate", "autoscaling.tick", 10,
         "Evaluate every enabled autoscaling policy whose interval came round (one evaluation per policy and "
         "slot, however many ticks or workers): read the metric, decide, launch the service.scale job.")
