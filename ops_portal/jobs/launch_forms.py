"""The launch form's target picker and strategy fields: what people choose instead of writing the
selector and the strategy as JSON. Each turns its fields into the same dict the API takes, checked
by the same code (core.targets.validate, jobs.strategy.validate); the JSON fields stay as an
advanced fallback that wins when filled."""
import re

from django import forms
from django.core.exceptions import ValidationError

from ops_portal.core import targets as target_kinds

from . import actions
from . import strategy as strategies
from .choices import StrategyKind
from .forms import JsonField, parameter_field

_SPLIT = re.compile(r"[\s,]+")


def words(text):
    """The names in a comma- or space-separated field."""
    return [word for word in _SPLIT.split(text or "") if word]


class GroupSelect(forms.SelectMultiple):
    """Options carry the environments that have a group of that name, so the page shows only the
    chosen environment's groups."""

    def __init__(self, *args, environments_of=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.environments_of = environments_of or {}

    def create_option(self, name, value, *args, **kwargs):
        option = super().create_option(name, value, *args, **kwargs)
        option["attrs"]["data-environments"] = " ".join(str(pk) for pk in self.environments_of.get(value, ()))
        return option


# Picker field → selector key; each list field is split into names.
PICKER_KEYS = {"target_names": "names", "target_groups": "groups", "target_tags": "tags", "target_pattern": "pattern"}


class TargetPickerForm(forms.Form):
    """Hosts by name, group, tag or pattern (criteria combine with AND, names in one with OR), or
    every enabled host of the environment."""

    environment = forms.ModelChoiceField(queryset=None)
    target_all = forms.BooleanField(required=False, initial=True, label="Every enabled host of the environment")
    target_groups = forms.MultipleChoiceField(required=False, label="Groups", widget=GroupSelect(attrs={"size": 4}))
    target_names = forms.CharField(required=False, label="Host names", help_text="comma or space separated")
    target_tags = forms.CharField(required=False, label="Tags", help_text="any of these tags")
    target_pattern = forms.CharField(required=False, label="Name pattern", help_text="e.g. web-*")
    selector = JsonField(required=False, empty=None, label="Selector (JSON)",
                         help_text='Advanced: wins over the picker when filled, e.g. {"pattern": "web-*"}')

    def __init__(self, *args, environments, groups=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["environment"].queryset = environments
        if len(environments) == 1:
            self.fields["environment"].initial = environments[0].pk
        environments_of = {}
        for name, environment_id in groups:
            environments_of.setdefault(name, []).append(environment_id)
        self.fields["target_groups"].choices = [(name, name) for name in sorted(environments_of)]
        self.fields["target_groups"].widget.environments_of = environments_of

    def clean(self):
        data = super().clean()
        if data.get("selector") is not None:
            return data
        if data.get("target_all"):
            data["picked"] = {"all": True}
            return data
        picked = {}
        for field, key in PICKER_KEYS.items():
            value = data.get(field)
            value = value if isinstance(value, list) else (value.strip() if key == "pattern" else words(value))
            if not value:
                continue
            try:
                target_kinds.validate({key: value})
            except ValidationError as exc:
                for message in exc.message_dict.get("selector", []):
                    self.add_error(field, message)
                continue
            picked[key] = value
        if not picked and not any(field in self.errors for field in PICKER_KEYS):
            self.add_error("target_all", "Choose groups, names, tags or a pattern, or every host.")
        data["picked"] = picked
        return data

    def chosen_selector(self):
        """The selector the API takes: the advanced JSON when given, else the picker's."""
        data = self.cleaned_data
        return data["selector"] if data.get("selector") is not None else data.get("picked", {})


# Strategy key → the field that shows its errors.
STRATEGY_FIELDS = {"limit": "limit", "batch_size": "batch_size", "batch_percent": "batch_percent",
                   "pause_seconds": "pause_seconds", "max_failures": "max_failures",
                   "max_failure_percent": "max_failure_percent", "health_gate.url": "gate_url",
                   "health_gate.command": "gate_command", "health_gate.timeout": "gate_timeout",
                   "health_gate.retries": "gate_retries", "health_gate.interval": "gate_interval",
                   "health_gate": "gate_type", "Batches": "gate_type", "A rolling": "batch_size",
                   "slices": "slices", "slice_size": "slice_size"}


def _number(label, low, high, **kwargs):
    return forms.IntegerField(required=False, min_value=low, max_value=high, label=label, **kwargs)


class StrategyForm(forms.Form):
    """A rollout as fields: parallel or rolling, batches by size or percent, failure threshold,
    pause between batches and a health gate after each batch."""

    strategy_kind = forms.ChoiceField(label="Rollout", initial=StrategyKind.PARALLEL,
                                      choices=[(StrategyKind.PARALLEL, "Parallel: all targets at once"),
                                               (StrategyKind.ROLLING, "Rolling: in batches")])
    limit = _number("At most at once", 1, strategies.MAX_LIMIT, initial=strategies.DEFAULT_LIMIT)
    batch_size = _number("Batch size (targets)", 1, 10000)
    batch_percent = _number("or batch size (% of targets)", 1, 100)
    pause_seconds = _number("Pause between batches (s)", 0, 86400)
    max_failures = _number("Stop after this many failed targets", 0, 100000)
    max_failure_percent = _number("or this % of targets failed", 0, 100)
    slices = _number("Slices (one per worker)", 1, strategies.MAX_SLICES,
                     help_text="Split the targets over this many workers of the job's queue (parallel only).")
    slice_size = _number("or targets per slice", 1, 100000)
    gate_type = forms.ChoiceField(required=False, label="Health gate after each batch",
                                  choices=[("", "None"), ("http", "HTTP check"), ("command", "Command")])
    gate_url = forms.CharField(required=False, label="Gate URL", help_text="e.g. http://127.0.0.1:8080/health")
    gate_command = forms.CharField(required=False, label="Gate command")
    gate_timeout = _number("Gate timeout (s)", 1, 300)
    gate_retries = _number("Gate retries", 1, 100)
    gate_interval = _number("Gate interval (s)", 0, 600)
    strategy = JsonField(required=False, empty=None, label="Strategy (JSON)",
                         help_text='Advanced: wins over the fields when filled, e.g. {"kind": "rolling", '
                                   '"batch_size": 2}')

    def clean(self):
        data = super().clean()
        if any(name in self.errors for name in StrategyForm.base_fields):
            return data
        if data.get("strategy") is not None:
            data["clean_strategy"] = data["strategy"]  # launch_adhoc validates it and shows errors on it
            return data
        wanted = strategy_from_fields(data)
        try:
            data["clean_strategy"] = strategies.validate(wanted)
        except ValidationError as exc:
            for message in exc.message_dict.get("strategy", []):
                field = next((f for key, f in STRATEGY_FIELDS.items() if message.startswith(key)), "strategy_kind")
                self.add_error(field, message)
        return data

    def chosen_strategy(self):
        return self.cleaned_data.get("clean_strategy")


def strategy_from_fields(data):
    """The strategy dict the API takes, from the fields (blank fields left out)."""
    kind = data.get("strategy_kind") or StrategyKind.PARALLEL
    result = {"kind": kind}
    keys = ["limit", "max_failures", "max_failure_percent", "slices", "slice_size"]
    if kind == StrategyKind.ROLLING:
        keys += ["batch_size", "batch_percent", "pause_seconds"]
    for key in keys:
        if data.get(key) is not None:
            result[key] = data[key]
    if data.get("gate_type"):
        gate = {"type": data["gate_type"]}
        gate["url" if data["gate_type"] == "http" else "command"] = (
            data.get("gate_url") if data["gate_type"] == "http" else data.get("gate_command")) or ""
        for key in ("timeout", "retries", "interval"):
            if data.get(f"gate_{key}") is not None:
                gate[key] = data[f"gate_{key}"]
        result["health_gate"] = gate
    return result


class AdhocForm(TargetPickerForm, StrategyForm):
    """Run any registered action: its parameters appear for the action chosen; targets and
    strategy come from the picker and the strategy fields."""

    action = forms.ChoiceField(choices=())
    in_window = forms.BooleanField(required=False, label="Hold until the next maintenance window")

    field_order = ["environment", "action"]

    def __init__(self, *args, environments, groups=(), **kwargs):
        super().__init__(*args, environments=environments, groups=groups, **kwargs)
        self.fields["action"].choices = [(a.name, a.label) for a in actions.all_actions().values()]
        self.fields["action"].initial = "host.command"
        self.action_fields = {}
        for spec in actions.all_actions().values():
            names = []
            for definition in spec.parameters:
                name = f"{spec.name}__{definition['name']}"
                self.fields[name] = parameter_field(definition)
                names.append(name)
            self.action_fields[spec.name] = names

    def parameter_groups(self):
        """[(action name, [bound fields])] for the template."""
        return [(name, [self[field] for field in fields]) for name, fields in self.action_fields.items()]

    def action_values(self):
        action = self.cleaned_data["action"]
        prefix = f"{action}__"
        return {name[len(prefix):]: value for name, value in self.cleaned_data.items()
                if name.startswith(prefix) and value not in ("", None)}

    def picker_fields(self):
        return [self[name] for name in ("target_all", "target_groups", "target_names", "target_tags",
                                        "target_pattern")]

    def strategy_fields(self):
        return [self[name] for name in ("limit", "max_failures", "max_failure_percent", "slices", "slice_size")]

    def rolling_fields(self):
        return [self[name] for name in ("batch_size", "batch_percent", "pause_seconds", "gate_type", "gate_url",
                                        "gate_command", "gate_timeout", "gate_retries", "gate_interval")]
