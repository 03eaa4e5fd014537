from django.apps import AppConfig


class MonitoringConfig(AppConfig):
    name = "ops_portal.monitoring"
    label = "monitoring"
    verbose_name = "Monitoring"

    def ready(self):
        from ops_portal.core import periodic

        from . import audit_actions, streams  # noqa: F401

        # Collection ("monitoring: collect metrics") is a job: its task and schedule are registered
        # with the host.metrics action in ops_portal.jobs.actions.monitoring.
        periodic.register("monitoring: evaluate alert rules", "monitoring.evaluate", 30,
                          "Fire and resolve alerts from the latest metric samples (also runs after each "
                          "metrics job).")
        periodic.register("monitoring: rollups and retention", "monitoring.rollup", 300,
                          "Roll raw samples up into 5-minute and hourly averages and maxima; drop raw samples "
                          "after `raw_hours`, 5-minute rollups after `five_minute_days`, hourly ones after "
                          "`hourly_days`.", raw_hours=48, five_minute_days=30, hourly_days=365)
