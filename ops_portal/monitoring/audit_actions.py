from ops_portal.audit.registry import register, register_crud

register_crud("alertrule", "Alert rule")
register("alert.fire", "Alert started firing")
register("alert.acknowledge", "Alert acknowledged")
register("alert.update", "Alert's severity or summary changed by its source")
register("alert.resolve", "Alert resolved")
