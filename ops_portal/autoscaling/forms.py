"""Forms of the autoscaling pages. They only shape input; services decide and write."""
from django import forms

from .models import ScalingPolicy

FIELDS = ["engine", "service_name", "description", "enabled", "min_replicas", "max_replicas", "metric", "metric_url",
          "metric_key", "metric_total", "mode", "target", "tolerance", "scale_up_above", "scale_down_below",
          "max_step_up", "max_step_down", "up_cooldown", "down_cooldown", "interval", "approval_above"]


class PolicyForm(forms.ModelForm):
    class Meta:
        model = ScalingPolicy
        fields = FIELDS

    def __init__(self, *args, engines, services=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["engine"].queryset = engines
        self.fields["service_name"].widget.attrs["list"] = "service-names"
        self.service_names = sorted(set(services))

    def _post_clean(self):
        pass  # the service validates the model (after deciding on permissions)
