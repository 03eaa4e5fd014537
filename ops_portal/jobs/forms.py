import json

from django import forms

from . import actions


class JsonField(forms.CharField):
    """A textarea holding JSON (selectors, strategies, parameter definitions)."""

    def __init__(self, *args, empty=None, **kwargs):
        self.empty = empty
        kwargs.setdefault("widget", forms.Textarea(attrs={"rows": 3, "class": "mono"}))
        super().__init__(*args, **kwargs)

    def prepare_value(self, value):
        if isinstance(value, (dict, list)):
            return json.dumps(value, indent=1)
        return value

    def to_python(self, value):
        value = super().to_python(value)
        if not value:
            return self.empty
        try:
            return json.loads(value)
        except json.JSONDecodeError as exc:
            raise forms.ValidationError(f"Not valid JSON: {exc.msg} (line {exc.lineno}).") from None


class AdhocForm(forms.Form):
    environment = forms.ModelChoiceField(queryset=None)
    action = forms.ChoiceField(choices=())
    command = forms.CharField(widget=forms.Textarea(attrs={"rows": 3, "class": "mono"}), required=False,
                              help_text="For Run a command.")
    script = forms.CharField(widget=forms.Textarea(attrs={"rows": 6, "class": "mono"}), required=False,
                             help_text="For Run a script.")
    selector = JsonField(initial='{"all": true}', help_text='e.g. {"pattern": "web-*"} or {"tags": ["blue"]}')
    strategy = JsonField(required=False, empty=None, help_text='e.g. {"kind": "rolling", "batch_size": 2}')

    def __init__(self, *args, environments, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["environment"].queryset = environments
        if len(environments) == 1:
            self.fields["environment"].initial = environments[0].pk
        self.fields["action"].choices = [(a.name, a.label) for a in actions.all_actions().values()]

    def action_values(self):
        spec = actions.get(self.cleaned_data["action"])
        names = {d["name"] for d in spec.parameters}
        return {k: v for k, v in self.data.items() if k in names and v != ""}


class LaunchForm(forms.Form):
    """Launch-time values for a template's parameters, built from its definitions."""

    def __init__(self, *args, template, **kwargs):
        super().__init__(*args, **kwargs)
        for definition in template.parameters:
            kind, name = definition["type"], definition["name"]
            common = {"required": False, "label": definition.get("label") or name,
                      "help_text": definition.get("help", "")}
            if kind == "bool":
                field = forms.BooleanField(**common)
            elif kind == "choice":
                field = forms.ChoiceField(choices=[("", "—")] + [(c, c) for c in definition["choices"]], **common)
            elif kind == "text":
                field = forms.CharField(widget=forms.Textarea(attrs={"rows": 4, "class": "mono"}), **common)
            elif kind == "secret":
                field = forms.CharField(widget=forms.PasswordInput(render_value=False), **common)
            else:
                field = forms.CharField(**common)
            field.initial = definition.get("default")
            self.fields[name] = field

    def values(self):
        return {k: v for k, v in self.cleaned_data.items() if v not in ("", None)}


class ScheduleForm(forms.Form):
    name = forms.CharField(max_length=128)
    template = forms.ModelChoiceField(queryset=None)
    kind = forms.ChoiceField(choices=[("cron", "Cron"), ("interval", "Every N seconds"), ("once", "Once")])
    cron = forms.CharField(required=False, help_text="minute hour day-of-month month day-of-week, e.g. 30 2 * * 1-5")
    timezone = forms.CharField(initial="UTC", help_text="e.g. Europe/Berlin")
    interval_seconds = forms.IntegerField(required=False, min_value=10)
    run_at = forms.DateTimeField(required=False, widget=forms.DateTimeInput(attrs={"type": "datetime-local"}))
    missed_policy = forms.ChoiceField(choices=[("catch_up_once", "Run once when a run was missed"),
                                               ("skip", "Skip missed runs")])
    params = JsonField(required=False, empty={}, help_text="Launch values for the template's parameters.")

    def __init__(self, *args, templates, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["template"].queryset = templates
