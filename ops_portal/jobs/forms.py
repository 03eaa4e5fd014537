import json

from django import forms


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


def parameter_field(definition):
    """A form field for one typed parameter definition."""
    kind = definition["type"]
    common = {"required": False, "label": definition.get("label") or definition["name"].replace("_", " "),
              "help_text": definition.get("help", "")}
    if kind == "bool":
        field = forms.BooleanField(**common)
    elif kind == "choice":
        field = forms.ChoiceField(choices=[("", "—")] + [(c, c) for c in definition["choices"]], **common)
    elif kind == "text":
        field = forms.CharField(widget=forms.Textarea(attrs={"rows": 4, "class": "mono"}), **common)
    elif kind == "secret":
        field = forms.CharField(widget=forms.PasswordInput(render_value=False), **common)
    elif kind == "int":
        field = forms.IntegerField(**common)
    else:
        field = forms.CharField(**common)
    field.initial = definition.get("default")
    return field


LIMIT_FIELD = "launch_limit"


class LaunchForm(forms.Form):
    """Launch-time values for a template's parameters, built from its definitions."""

    def __init__(self, *args, template, **kwargs):
        super().__init__(*args, **kwargs)
        for definition in template.parameters:
            self.fields[definition["name"]] = parameter_field(definition)
        if LIMIT_FIELD not in self.fields:  # a template parameter of that name would win
            self.fields[LIMIT_FIELD] = forms.CharField(
                required=False, max_length=1000, label="Limit",
                help_text="Only some of the template's targets: names or patterns, e.g. web-1, db-*. Empty: all.")
        self.has_limit = not any(d["name"] == LIMIT_FIELD for d in template.parameters)

    def values(self):
        return {k: v for k, v in self.cleaned_data.items()
                if v not in ("", None) and not (k == LIMIT_FIELD and self.has_limit)}

    def limit(self):
        return (self.cleaned_data.get(LIMIT_FIELD) or None) if self.has_limit else None


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
    limit = forms.CharField(required=False, max_length=1000, label="Limit",
                            help_text="Only some of the template's targets: names or patterns, e.g. web-1, db-*. "
                                      "Empty: all.")
    secret_values = JsonField(required=False, empty={}, widget=forms.PasswordInput(render_value=False),
                              help_text='Values of secret parameters as JSON, e.g. {"token": "…"}: stored encrypted, '
                                        'never shown again; those stored stay unless given again.')

    def __init__(self, *args, templates, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["template"].queryset = templates
