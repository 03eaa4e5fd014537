"""The approval policy form: the API's fields in words people type (lists comma-separated). The
rules are the service's and the model's (services.create_policy / update_policy)."""
from django import forms

from ops_portal.core.forms import NamesField

from .choices import ScheduleMode, TimeoutOutcome


class PolicyForm(forms.Form):
    name = forms.CharField(max_length=128)
    environment = forms.ModelChoiceField(queryset=None)
    enabled = forms.BooleanField(required=False, initial=True)
    all_work = forms.BooleanField(required=False, label="All work in the environment",
                                  help_text="Every job, whatever it does (the conditions below are then moot).")
    templates = NamesField(required=False, help_text="Template names, comma-separated (empty: any).")
    actions = NamesField(required=False, help_text="Action names, e.g. host.command, host.deploy (empty: any).")
    risks = NamesField(required=False, help_text="Risk tags, e.g. mutating, scale_to_zero, remove (empty: any).")
    min_targets = forms.IntegerField(required=False, min_value=0, label="More targets than",
                                     help_text="Matches only jobs with more targets than this (empty: any count).")
    approvals_required = forms.IntegerField(initial=1, help_text="From people other than the requester.")
    timeout_minutes = forms.IntegerField(initial=24 * 60, label="Decide within (minutes)")
    timeout_outcome = forms.ChoiceField(choices=TimeoutOutcome.choices, label="When nobody decided in time")
    schedule_mode = forms.ChoiceField(choices=ScheduleMode.choices, label="Scheduled runs")

    FIELDS = ("name", "enabled", "all_work", "templates", "actions", "risks", "min_targets", "approvals_required",
              "timeout_minutes", "timeout_outcome", "schedule_mode")

    def __init__(self, *args, environments, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["environment"].queryset = environments

    @classmethod
    def initial_from(cls, policy):
        return {**{name: getattr(policy, name) for name in cls.FIELDS}, "environment": policy.environment_id}
