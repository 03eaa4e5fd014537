from ops_portal.audit.registry import register_crud

register_crud("project", "Project")
