from ops_portal.audit.registry import register, register_crud

register_crud("notificationchannel", "Notification channel")
register("notificationchannel.rotate_secret", "Notification channel's signing secret replaced")
register("notificationchannel.test", "Test notification sent to a channel")
register("delivery.retry", "Failed notification delivery retried")
