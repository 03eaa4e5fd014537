from django import forms

from .models import Credential, Host, Site


class HostForm(forms.ModelForm):
    tags = forms.CharField(required=False, help_text="Comma-separated.")

    class Meta:
        model = Host
        fields = ["name", "address", "port", "username", "transport", "environment", "credential", "site"]

    def __init__(self, *args, environments, credentials, sites, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["environment"].queryset = environments
        self.fields["credential"].queryset = credentials
        self.fields["site"].queryset = sites
        self.fields["site"].help_text = ("Where the host is: its jobs run on the workers of queue site.<name>. "
                                         "Empty: the default queue.")

    def clean_tags(self):
        return [t.strip() for t in self.cleaned_data["tags"].split(",") if t.strip()]


class ImportForm(forms.Form):
    format = forms.ChoiceField(choices=[("csv", "CSV"), ("ansible", "Ansible YAML inventory")])
    file = forms.FileField()
    environment = forms.ModelChoiceField(queryset=None, required=False,
                                         help_text="Ansible inventories, and CSV rows without an environment.")
    credential = forms.CharField(required=False, help_text="Credential name for hosts that name none.")
    update_existing = forms.BooleanField(required=False)

    def __init__(self, *args, environments, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["environment"].queryset = environments


class CredentialForm(forms.ModelForm):
    private_key = forms.CharField(widget=forms.Textarea(attrs={"rows": 6, "class": "mono", "autocomplete": "off"}),
                                  strip=False, help_text="Stored encrypted; never shown again.")
    passphrase = forms.CharField(widget=forms.PasswordInput, required=False)

    class Meta:
        model = Credential
        fields = ["name", "environment", "username"]

    def __init__(self, *args, environments, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["environment"].queryset = environments


class RotateForm(forms.Form):
    private_key = forms.CharField(widget=forms.Textarea(attrs={"rows": 6, "class": "mono", "autocomplete": "off"}),
                                  strip=False)
    passphrase = forms.CharField(widget=forms.PasswordInput, required=False)


class CredentialEditForm(forms.Form):
    """A credential's name, environment and user; the key itself only changes by rotation."""

    name = forms.CharField(max_length=128)
    environment = forms.ModelChoiceField(queryset=None)
    username = forms.CharField(max_length=32)

    def __init__(self, *args, environments, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["environment"].queryset = environments


class SiteForm(forms.ModelForm):
    class Meta:
        model = Site
        fields = ["name", "description"]
