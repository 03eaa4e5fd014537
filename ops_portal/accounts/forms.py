from django import forms
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth import get_user_model
from django.contrib.auth.forms import AuthenticationForm

from . import throttle
from .choices import Role
from .models import Environment, Team

User = get_user_model()


THROTTLED_MESSAGE = "Too many failed sign-ins. Try again in a few minutes."


class ThrottledMessageMixin:
    """Say so when the throttle (in the authentication backend) refused the attempt."""

    def get_invalid_login_error(self):
        if throttle.was_throttled(self.request):
            return forms.ValidationError(THROTTLED_MESSAGE, code="throttled")
        return super().get_invalid_login_error()


class ThrottledAuthenticationForm(ThrottledMessageMixin, AuthenticationForm):
    pass


class ThrottledAdminAuthenticationForm(ThrottledMessageMixin, AdminAuthenticationForm):
    pass


class UserCreateForm(forms.Form):
    username = forms.CharField(max_length=150)
    email = forms.EmailField(required=False)
    password = forms.CharField(widget=forms.PasswordInput, required=False,
                               help_text="Leave empty to set it later.")


class BindingEditForm(forms.Form):
    """A binding's role and environment; its user or team stays (another subject is another binding)."""

    role = forms.ChoiceField(choices=Role.choices)
    environment = forms.ModelChoiceField(queryset=Environment.objects.none(), required=False,
                                         empty_label="All environments")

    def __init__(self, *args, environments, allow_all=False, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["environment"].queryset = environments
        if not allow_all:  # only administrators of all environments grant roles in all of them
            self.fields["environment"].required = True
            self.fields["environment"].empty_label = None


class BindingForm(BindingEditForm):
    """A new binding: who, which role, where."""

    subject = forms.CharField(help_text="A user name, or team:<name> for a team.")
    field_order = ["subject", "role", "environment"]

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


class TeamForm(forms.Form):
    """A team and its members; members take the team's role bindings along (services.update_team
    decides whether the actor may grant them)."""

    name = forms.CharField(max_length=100)
    description = forms.CharField(max_length=255, required=False)
    members = forms.ModelMultipleChoiceField(queryset=User.objects.filter(is_active=True).order_by("username"),
                                             required=False, widget=forms.CheckboxSelectMultiple)
