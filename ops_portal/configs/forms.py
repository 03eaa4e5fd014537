"""The configuration template form: the API's fields (the mode as octal text, like the API's); the
rules are the model's and the service's (services.create_config / update_config)."""
from django import forms
from django.core.exceptions import ValidationError

from ops_portal.jobs.forms import JsonField

from . import validation


class ConfigTemplateForm(forms.Form):
    name = forms.CharField(max_length=128)
    description = forms.CharField(max_length=255, required=False)
    environment = forms.ModelChoiceField(queryset=None)
    selector = JsonField(initial='{"all": true}', help_text='Which hosts, as for jobs: {"groups": ["web"]}, '
                                                           '{"pattern": "web-*"}, {"tags": [...]} or {"all": true}.')
    path = forms.CharField(max_length=validation.MAX_PATH, help_text="Absolute path of the file on each host.")
    content = forms.CharField(required=False, strip=False, widget=forms.Textarea(attrs={"rows": 12, "class": "mono"}),
                              help_text="Jinja2: group variables, host variables and `host`.")
    mode = forms.CharField(max_length=5, required=False, help_text="Octal, e.g. 0640; empty keeps the file's mode.")
    owner = forms.CharField(max_length=32, required=False, help_text="Empty: keep the file's owner.")
    group = forms.CharField(max_length=32, required=False, help_text="Empty: keep the file's group.")
    service_action = forms.CharField(max_length=validation.MAX_SERVICE_ACTION, required=False,
                                     label="On change, run", help_text="Run on the host (sh -c) only when the file "
                                                                       "changed, e.g. systemctl reload nginx.")
    sensitive = forms.BooleanField(required=False, help_text="The file holds secrets: diffs are neither stored nor "
                                                             "shown, and only administrators may render it.")
    enabled = forms.BooleanField(required=False, initial=True)

    FIELDS = ("name", "description", "selector", "path", "content", "owner", "group", "service_action", "sensitive",
              "enabled")

    def __init__(self, *args, environments, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["environment"].queryset = environments

    def clean_mode(self):
        try:
            return validation.parse_mode(self.cleaned_data["mode"] or None)
        except ValidationError as exc:
            raise ValidationError(exc.messages) from None

    @classmethod
    def initial_from(cls, config):
        return {**{name: getattr(config, name) for name in cls.FIELDS}, "environment": config.environment_id,
                "mode": validation.format_mode(config.mode) or ""}
