"""The alert rule form: the API's fields; the rules are the model's and the service's."""
from django import forms

from .choices import Comparator, Metric, Severity


class AlertRuleForm(forms.Form):
    name = forms.CharField(max_length=128)
    environment = forms.ModelChoiceField(queryset=None)
    enabled = forms.BooleanField(required=False, initial=True,
                                 help_text="Disabling a rule resolves its open alerts.")
    metric = forms.ChoiceField(choices=Metric.choices)
    comparator = forms.ChoiceField(choices=Comparator.choices, label="Fires when the value is")
    threshold = forms.FloatField()
    clear_threshold = forms.FloatField(required=False, help_text="Resolves once back past this (empty: the threshold).")
    for_seconds = forms.IntegerField(initial=0, min_value=0, label="For (seconds)",
                                     help_text="How long the condition must hold before the alert fires.")
    severity = forms.ChoiceField(choices=Severity.choices, initial=Severity.WARNING)
    group = forms.ModelChoiceField(queryset=None, required=False, empty_label="All hosts",
                                   help_text="Only the hosts of this group (of the rule's environment).")
    tag = forms.CharField(max_length=63, required=False, help_text="Only hosts with this tag.")
    mount = forms.CharField(max_length=255, required=False, help_text="Disk rules: only this mount point.")
    runbook = forms.ModelChoiceField(queryset=None, required=False, empty_label="None",
                                     help_text="A job template of the rule's environment that helps.")
    description = forms.CharField(max_length=255, required=False)

    FIELDS = ("name", "enabled", "metric", "comparator", "threshold", "clear_threshold", "for_seconds", "severity",
              "tag", "mount", "description")

    def __init__(self, *args, environments, groups, templates, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["environment"].queryset = environments
        self.fields["group"].queryset = groups
        self.fields["group"].label_from_instance = lambda g: f"{g.name} ({g.environment.name})"
        self.fields["runbook"].queryset = templates
        self.fields["runbook"].label_from_instance = lambda t: f"{t.name} ({t.environment.name})"

    @classmethod
    def initial_from(cls, rule):
        return {**{name: getattr(rule, name) for name in cls.FIELDS}, "environment": rule.environment_id,
                "group": rule.group_id, "runbook": rule.runbook_id}
