from ops_portal.audit.registry import register, register_crud

register_crud("scalingpolicy", "Autoscaling policy")
register("scalingpolicy.scale", "Autoscaling decided to scale a service (the job, the metric and the reason)")
register("scalingpolicy.evaluate", "Autoscaling policy evaluated on request")
