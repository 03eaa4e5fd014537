from ops_portal.audit.registry import register, register_crud

register_crud("engine", "Docker engine")
register("engine.check", "Docker engine connection tested")
register_crud("stack", "Stack")
register_crud("allowedhostpath", "Allowed host path")
