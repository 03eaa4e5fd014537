"""Forms of the self-healing pages. They only shape input; services decide and write."""
from django import forms
from django.core.exceptions import ValidationError

from .models import HealingPolicy, validate_selector


def parse_selector(text):
    """"app=web, tier" -> {"app": "web", "tier": ""} (commas or new lines between labels)."""
    selector = {}
    for part in (text or "").replace("\n", ",").split(","):
        part = part.strip()
        if not part:
            continue
        key, _, value = part.partition("=")
        if not key.strip():
            raise ValidationError("Write labels as name=value or name, separated by commas.")
        selector[key.strip()] = value.strip()
    validate_selector(selector)
    return selector


def selector_text(selector):
    return ", ".join(f"{k}={v}" if v else k for k, v in (selector or {}).items())


class PolicyForm(forms.ModelForm):
    labels = forms.CharField(required=False, label="Label selector", max_length=4000,
                             help_text="Only containers with these labels: app=web, tier (any value). Empty: all.")

    class Meta:
        model = HealingPolicy
        fields = ["environment", "name", "description", "engine", "container_name", "action", "on_exit",
                  "on_unhealthy", "heal_clean_exit", "backoff_seconds", "backoff_max_seconds", "max_attempts",
                  "window_seconds", "stable_seconds", "enabled"]

    def __init__(self, *args, environments, engines, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["environment"].queryset = environments
        self.fields["engine"].queryset = engines
        if self.instance.pk:
            self.fields["labels"].initial = selector_text(self.instance.label_selector)
        order = list(self.fields)
        order.insert(order.index("container_name"), order.pop(order.index("labels")))
        self.order_fields(order)

    def clean_labels(self):
        return parse_selector(self.cleaned_data.get("labels"))

    def _post_clean(self):
        pass  # the service validates the model, after its permission decision

    def service_fields(self):
        fields = {k: v for k, v in self.cleaned_data.items() if k in self.Meta.fields}
        fields["label_selector"] = self.cleaned_data.get("labels") or {}
        return fields
