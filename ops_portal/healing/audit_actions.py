from ops_portal.audit.registry import register, register_crud

register_crud("healingpolicy", "Self-healing policy")
register("healing.launch", "Self-healing job launched for a container")
register("healing.skip", "Self-healing left a container alone")
register("healing.gave_up", "Self-healing gave up on a container in a crash loop")
