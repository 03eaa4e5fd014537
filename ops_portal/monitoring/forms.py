"""The alert rule form: the API's fields; the rules are the model's and the service's. Fields a
rule's kind does not use are hidden by static/js/rule_form.js and emptied here, so a value typed
before the kind changed (or posted without script) does not turn into a refusal."""
from django import forms

from .choices import RULE_METRICS, Comparator, Metric, RuleKind, Severity

METRIC_ONLY = ("metric", "comparator", "threshold", "clear_threshold", "mount")
STATE_ONLY = ("name_filter",)  # and container, service and program metric rules
HOST_SCOPE = ("group", "tag")  # metric rules and program rules (programs are on hosts)
# What a hidden field holds (the comparator keeps its default: state rules ignore it).
EMPTY = {"metric": "", "comparator": Comparator.GT, "threshold": None, "clear_threshold": None, "mount": "",
         "name_filter": "", "group": None, "tag": ""}


class AlertRuleForm(forms.Form):
    name = forms.CharField(max_length=128)
    environment = forms.ModelChoiceField(queryset=None)
    enabled = forms.BooleanField(required=False, initial=True,
                                 help_text="Disabling a rule resolves its open alerts.")
    kind = forms.ChoiceField(choices=RuleKind.choices, initial=RuleKind.METRIC, required=False, label="Watches",
                             help_text="A host, container, Swarm service or program metric against a threshold, "
                                       "or the state of containers, Swarm services or programs of the environment.")
    metric = forms.ChoiceField(required=False, choices=[
        ("", "—"), ("Hosts", Metric.choices),
        ("Containers", [(m.value, m.label) for m in RULE_METRICS[RuleKind.CONTAINER_METRIC]]),
        ("Swarm services", [(m.value, m.label) for m in RULE_METRICS[RuleKind.SERVICE_METRIC]]),
        ("Programs", [(m.value, m.label) for m in RULE_METRICS[RuleKind.PROGRAM_METRIC]])])
    comparator = forms.ChoiceField(choices=Comparator.choices, label="Fires when the value is")
    threshold = forms.FloatField(required=False)
    clear_threshold = forms.FloatField(required=False, help_text="Resolves once back past this (empty: the threshold).")
    for_seconds = forms.IntegerField(initial=0, min_value=0, label="For (seconds)",
                                     help_text="How long the condition must hold before the alert fires.")
    severity = forms.ChoiceField(choices=Severity.choices, initial=Severity.WARNING)
    group = forms.ModelChoiceField(queryset=None, required=False, empty_label="All hosts",
                                   help_text="Only the hosts of this group (of the rule's environment).")
    tag = forms.CharField(max_length=63, required=False, help_text="Only hosts with this tag.")
    mount = forms.CharField(max_length=255, required=False, help_text="Disk rules: only this mount point.")
    name_filter = forms.CharField(max_length=255, required=False, label="Name filter",
                                  help_text="Only containers, services or programs whose name matches this glob, "
                                            "e.g. web-* (empty: all).")
    runbook = forms.ModelChoiceField(queryset=None, required=False, empty_label="None",
                                     help_text="A job template of the rule's environment that helps.")
    description = forms.CharField(max_length=255, required=False)

    FIELDS = ("name", "enabled", "kind", "metric", "comparator", "threshold", "clear_threshold", "for_seconds",
              "severity", "tag", "mount", "name_filter", "description")

    def __init__(self, *args, environments, groups, templates, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["environment"].queryset = environments
        self.fields["group"].queryset = groups
        self.fields["group"].label_from_instance = lambda g: f"{g.name} ({g.environment.name})"
        self.fields["runbook"].queryset = templates
        self.fields["runbook"].label_from_instance = lambda t: f"{t.name} ({t.environment.name})"

    def clean(self):
        data = super().clean()
        kind = data["kind"] = data.get("kind") or RuleKind.METRIC  # forms posted before kinds existed
        hidden = {RuleKind.METRIC: STATE_ONLY, RuleKind.CONTAINER_METRIC: ("mount",),
                  RuleKind.SERVICE_METRIC: ("mount",), RuleKind.PROGRAM_METRIC: ("mount",)}.get(kind, METRIC_ONLY)
        if kind not in (RuleKind.METRIC, RuleKind.PROGRAM_NOT_RUNNING, RuleKind.PROGRAM_METRIC):
            hidden += HOST_SCOPE
        data.update({name: EMPTY[name] for name in hidden})
        return data

    @classmethod
    def initial_from(cls, rule):
        return {**{name: getattr(rule, name) for name in cls.FIELDS}, "environment": rule.environment_id,
                "group": rule.group_id, "runbook": rule.runbook_id}
