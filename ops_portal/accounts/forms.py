from django import forms
from django.contrib.auth import get_user_model
from django.contrib.auth.forms import AuthenticationForm

from ops_portal.core.context import client_address

from . import throttle
from .choices import Role
from .models import Environment, Team

User = get_user_model()


class ThrottledAuthenticationForm(AuthenticationForm):
    error_messages = {
        **AuthenticationForm.error_messages,
        "throttled": "Too many failed sign-ins. Try again in a few minutes.",
    }

    def clean(self):
        username = self.cleaned_data.get("username") or ""
        address = client_address(self.request)
        if throttle.is_locked(username, address):
            raise forms.ValidationError(self.error_messages["throttled"], code="throttled")
        try:
            cleaned = super().clean()
        except forms.ValidationError:
            throttle.note_failure(username, address)
            raise
        throttle.clear(username, address)
        return cleaned


class UserCreateForm(forms.Form):
    username = forms.CharField(max_length=150)
    email = forms.EmailField(required=False)
    password = forms.CharField(widget=forms.PasswordInput, required=False,
                               help_text="Leave empty to set it later.")


class BindingForm(forms.Form):
    subject = forms.CharField(help_text="A user name, or team:<name> for a team.")
    role = forms.ChoiceField(choices=Role.choices)
    environment = forms.ModelChoiceField(queryset=Environment.objects.none(), required=False,
                                         empty_label="All environments")

    def __init__(self, *args, environments, allow_all=False, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["environment"].queryset = environments
        if not allow_all:  # only administrators of all environments grant roles in all of them
            self.fields["environment"].required = True
            self.fields["environment"].empty_label = None

    def clean_subject(self):
        value = self.cleaned_data["subject"].strip()
        if value.startswith("team:"):
            team = Team.objects.filter(name=value[5:]).first()
            if team is None:
                raise forms.ValidationError("No team with that name.")
            return {"team": team}
        user = User.objects.filter(username=value).first()
        if user is None:
            raise forms.ValidationError("No user with that name.")
        return {"user": user}


class EnvironmentForm(forms.ModelForm):
    class Meta:
        model = Environment
        fields = ["name", "description", "is_production"]


class TokenForm(forms.Form):
    name = forms.CharField(max_length=100)
    expires = forms.DateTimeField(required=False, help_text="Optional, e.g. 2027-01-31 00:00",
                                  widget=forms.DateTimeInput(attrs={"type": "datetime-local"}))
