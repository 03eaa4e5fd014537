from ops_portal.audit.registry import register, register_crud

register_crud("project", "Project")
register("project.pruned", "Old revisions of a project removed from the machine")
