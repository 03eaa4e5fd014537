"""Forms of the program pages: a portal-managed program's spec, and the logs job's options."""
import shlex

from django import forms
from django.core.exceptions import ValidationError

from schedulers.process.base import ProgramSpec

from .choices import Manager
from .specs import DEFAULTS

MIB = 2**20
AUTORESTART = [("unexpected", "on unexpected exits"), ("true", "always"), ("false", "never")]
STOP_SIGNALS = [(s, s) for s in ("TERM", "INT", "HUP", "QUIT", "KILL", "USR1", "USR2")]


class SpecForm(forms.Form):
    """The spec fields in words people type: the command as shell words, the environment one
    KEY=VALUE a line, memory in MiB. The backends' rules are applied by the service (specs.py)."""

    description = forms.CharField(max_length=255, required=False)
    command = forms.CharField(max_length=8192, help_text="Program and arguments as shell words (quotes group words; "
                                                          "no shell runs it).")
    directory = forms.CharField(max_length=1024, required=False)
    user = forms.CharField(max_length=32, required=False, help_text="Empty: the manager's user (root).")
    environment = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), required=False, max_length=16384,
                                  help_text="One KEY=VALUE a line. Visible to everyone who sees the program.")
    autostart = forms.BooleanField(required=False, initial=True)
    autorestart = forms.ChoiceField(choices=AUTORESTART, initial="unexpected", label="Restart")
    startsecs = forms.IntegerField(min_value=0, max_value=3600, initial=1,
                                   help_text="Seconds it must stay up to count as started.")
    startretries = forms.IntegerField(min_value=0, max_value=100, initial=3)
    stopsignal = forms.ChoiceField(choices=STOP_SIGNALS, initial="TERM")
    stopwaitsecs = forms.IntegerField(min_value=1, max_value=3600, initial=10)
    numprocs = forms.IntegerField(min_value=1, max_value=200, initial=1, label="Processes",
                                  help_text="supervisord numprocs, PM2 instances; systemd runs one.")
    memory_max = forms.IntegerField(min_value=4, max_value=2**30, required=False, label="Memory limit (MiB)")
    cpu_quota = forms.IntegerField(min_value=1, max_value=100_000, required=False, label="CPU quota (% of one CPU)",
                                   help_text="systemd only.")
    tasks_max = forms.IntegerField(min_value=1, max_value=4_194_304, required=False, label="Max processes/threads")
    nofile = forms.IntegerField(min_value=16, max_value=1_048_576, required=False, label="Max open files")

    def clean_command(self):
        try:
            words = shlex.split(self.cleaned_data["command"])
        except ValueError as exc:
            raise ValidationError(f"The command is not valid shell words: {exc}.")
        if not words:
            raise ValidationError("Give the program to run.")
        return words

    def clean_environment(self):
        values = {}
        for number, line in enumerate(self.cleaned_data["environment"].splitlines(), 1):
            if not line.strip():
                continue
            key, sep, value = line.partition("=")
            if not sep:
                raise ValidationError(f"Line {number}: write KEY=VALUE.")
            values[key.strip()] = value
        return values

    def spec(self):
        """The spec dict for the service (fields as ProgramSpec names them)."""
        data = self.cleaned_data
        spec = {name: data[name] for name in ProgramSpec.__dataclass_fields__ if name in data and name != "name"}
        spec["memory_max"] = data["memory_max"] * MIB if data.get("memory_max") else None
        return spec

    @classmethod
    def initial_from(cls, program):
        spec = {**DEFAULTS, **(program.spec or {})}
        initial = {key: spec.get(key) for key in cls.base_fields if key in spec}
        initial["command"] = shlex.join(spec.get("command") or [])
        initial["environment"] = "\n".join(f"{k}={v}" for k, v in (spec.get("environment") or {}).items())
        initial["memory_max"] = spec["memory_max"] // MIB if spec.get("memory_max") else None
        initial["description"] = program.description
        return initial


class NewProgramForm(SpecForm):
    host = forms.ModelChoiceField(queryset=None)
    manager = forms.ChoiceField(choices=Manager.choices)
    name = forms.CharField(max_length=64)

    field_order = ["host", "manager", "name"]

    def __init__(self, *args, hosts=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["host"].queryset = hosts
        self.order_fields(self.field_order)


class LogsForm(forms.Form):
    mode = forms.ChoiceField(choices=[("tail", "tail"), ("follow", "follow"), ("search", "search")], initial="tail")
    stream = forms.ChoiceField(choices=[("stdout", "stdout"), ("stderr", "stderr")], initial="stdout")
    lines = forms.IntegerField(min_value=1, max_value=10000, initial=200)
    duration = forms.IntegerField(min_value=1, max_value=3600, initial=300, required=False,
                                  label="Follow for (seconds)")
    text = forms.CharField(max_length=200, required=False, label="Text")
    since = forms.DateTimeField(required=False, help_text="YYYY-MM-DD HH:MM (UTC)")
    until = forms.DateTimeField(required=False)
