"""Forms of the container pages. They only shape input; services decide and write."""
import json

from django import forms
from django.core.exceptions import ValidationError

from .choices import CONTAINER_OPERATIONS, Transport
from .models import MAX_PEM, AllowedHostPath, Engine, Stack

SPEC_EXAMPLE = json.dumps({"name": "web", "image": "web:v1", "replicas": 2, "ports": [{"target": 8080}],
                           "update_config": {"parallelism": 1, "delay": "5s", "failure_action": "rollback"}},
                          indent=2)
COMPOSE_EXAMPLE = ("services:\n  web:\n    image: web:v1\n    deploy:\n      replicas: 2\n"
                   "      update_config:\n        parallelism: 1\n    ports:\n      - target: 8080\n")


def _pem(upload, pasted, field):
    if upload is None:
        return pasted
    if upload.size > MAX_PEM:
        raise ValidationError({field: f"At most {MAX_PEM // 1024} KiB."})
    return upload.read().decode("utf-8", "replace")


class EngineForm(forms.ModelForm):
    tls_ca_file = forms.FileField(required=False, label="TLS CA (file)")
    tls_cert_file = forms.FileField(required=False, label="Client certificate (file)")
    tls_key = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 3}), strip=False,
                              label="Client key (PEM)", help_text="Stored encrypted, never shown; empty keeps it.")
    tls_key_file = forms.FileField(required=False, label="Client key (file)")

    class Meta:
        model = Engine
        fields = ["name", "environment", "host", "site", "transport", "url", "tls_ca", "tls_cert", "tls_verify",
                  "enabled"]
        widgets = {"tls_ca": forms.Textarea(attrs={"rows": 3}), "tls_cert": forms.Textarea(attrs={"rows": 3})}

    def __init__(self, *args, environments, hosts, sites, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["environment"].queryset = environments
        self.fields["host"].queryset = hosts
        self.fields["site"].queryset = sites
        self.fields["url"].required = False
        self.fields["url"].validators = []  # unique: checked by the service after the permission decision

    def clean(self):
        data = super().clean()
        for name in ("tls_ca", "tls_cert", "tls_key"):
            data[name] = _pem(data.get(f"{name}_file"), data.get(name) or "", name)
            data.pop(f"{name}_file", None)
        if data.get("transport") == Transport.SSH and not data.get("url"):
            data["url"] = "ssh://"
        return data

    def _post_clean(self):
        pass  # the service validates the model (after deciding on permissions)

    def service_fields(self):
        return {k: v for k, v in self.cleaned_data.items() if k in self.Meta.fields or k == "tls_key"}


class AllowedHostPathForm(forms.ModelForm):
    class Meta:
        model = AllowedHostPath
        fields = ["environment", "path", "description"]

    def __init__(self, *args, environments, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["environment"].queryset = environments

    def _post_clean(self):
        pass


class StackForm(forms.ModelForm):
    class Meta:
        model = Stack
        fields = ["name", "engine", "description", "compose"]
        widgets = {"compose": forms.Textarea(attrs={"rows": 18, "class": "mono", "spellcheck": "false"})}

    def __init__(self, *args, engines, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["engine"].queryset = engines
        if not self.instance.pk:
            self.fields["compose"].initial = COMPOSE_EXAMPLE

    def _post_clean(self):
        pass


class SpecForm(forms.Form):
    engine = forms.ModelChoiceField(queryset=Engine.objects.none())
    spec = forms.CharField(widget=forms.Textarea(attrs={"rows": 14, "class": "mono", "spellcheck": "false"}),
                           initial=SPEC_EXAMPLE, max_length=64 * 1024,
                           help_text="JSON: name, image, replicas, ports [{target, published, mode}], env, "
                                     "resources, constraints, healthcheck, restart_policy, update_config, "
                                     "rollback_config, mounts …")

    def __init__(self, *args, engines, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["engine"].queryset = engines


class ScaleForm(forms.Form):
    replicas = forms.IntegerField(min_value=0, max_value=1000)


class UpdateForm(forms.Form):
    image = forms.CharField(required=False, max_length=500)
    parallelism = forms.IntegerField(required=False, min_value=0, max_value=1000,
                                     help_text="Tasks at a time (0: all at once).")
    delay = forms.CharField(required=False, max_length=40, help_text='Between batches: seconds or "10s".')
    order = forms.ChoiceField(required=False, choices=[("", "—"), ("stop-first", "stop-first"),
                                                       ("start-first", "start-first")])
    failure_action = forms.ChoiceField(required=False, choices=[("", "—"), ("pause", "pause"),
                                                                ("continue", "continue"), ("rollback", "rollback")])
    monitor = forms.CharField(required=False, max_length=40, help_text="Watch each new task this long.")
    max_failure_ratio = forms.DecimalField(required=False, min_value=0, max_value=1, decimal_places=4)
    force = forms.BooleanField(required=False, help_text="Restart the tasks even if nothing changed.")

    def values(self):
        data = {k: v for k, v in self.cleaned_data.items() if v not in (None, "", False)}
        if "max_failure_ratio" in data:
            data["max_failure_ratio"] = str(data["max_failure_ratio"].normalize())
        return data


class BalanceForm(forms.Form):
    requests = forms.IntegerField(min_value=1, max_value=1000, initial=20)
    path = forms.RegexField(r"^/[A-Za-z0-9._~!$&'()*+,;=:@%/?-]{0,500}$", initial="/", max_length=501)


class LogsForm(forms.Form):
    tail = forms.IntegerField(min_value=0, max_value=100000, initial=100)
    follow = forms.BooleanField(required=False)
    duration = forms.IntegerField(min_value=0, max_value=86400, initial=0, required=False,
                                  help_text="Follow for this many seconds (0: until you cancel the job).")


class ExecForm(forms.Form):
    argv = forms.CharField(widget=forms.Textarea(attrs={"rows": 3, "class": "mono"}), max_length=16384,
                           label="Command", help_text="One argument per line (no shell: name one, e.g. sh, -c, …).")
    user = forms.CharField(required=False, max_length=65)

    def clean_argv(self):
        argv = [line for line in self.cleaned_data["argv"].splitlines() if line != ""]
        if not argv:
            raise ValidationError("Give the command, one argument per line.")
        return argv


class BulkForm(forms.Form):
    operation = forms.ChoiceField(choices=[(o, o) for o in CONTAINER_OPERATIONS if o not in ("exec", "logs")])
    ids = forms.CharField(widget=forms.HiddenInput, required=False)
