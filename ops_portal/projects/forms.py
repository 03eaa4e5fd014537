"""The project form: the API's fields; the rules are the model's and the service's
(services.create_project / update_project)."""
from django import forms

from . import validation
from .choices import ProjectKind


class ProjectForm(forms.Form):
    name = forms.CharField(max_length=128)
    description = forms.CharField(max_length=255, required=False)
    environment = forms.ModelChoiceField(queryset=None)
    kind = forms.ChoiceField(choices=ProjectKind.choices, initial=ProjectKind.GIT)
    url = forms.CharField(max_length=validation.MAX_URL, required=False, label="Git URL",
                          help_text="https://host/repo.git, ssh://git@host/repo.git, git@host:repo.git or "
                                    "file:///srv/repo.git.")
    branch = forms.CharField(max_length=200, required=False, initial="main")
    deploy_key = forms.CharField(required=False, strip=False, widget=forms.Textarea(attrs={"rows": 3, "class": "mono"}),
                                 help_text="SSH private key without passphrase, for ssh:// repositories. Stored "
                                           "encrypted, never shown; empty keeps the stored key.")
    path = forms.CharField(max_length=validation.MAX_PATH, required=False, label="Directory",
                           help_text="Directory projects: an absolute directory on the portal's machine.")

    FIELDS = ("name", "description", "kind", "url", "branch", "path")

    def __init__(self, *args, environments, editing=False, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["environment"].queryset = environments
        if editing:
            self.fields["remove_deploy_key"] = forms.BooleanField(required=False, help_text="Forget the stored key.")

    @classmethod
    def initial_from(cls, project):
        return {**{name: getattr(project, name) for name in cls.FIELDS}, "environment": project.environment_id}
