from django.core.exceptions import ValidationError
from django.db import models

from ops_portal.accounts.models import Environment
from ops_portal.accounts.permissions import RestrictedQuerySet
from ops_portal.core.crypto import EncryptedTextField
from ops_portal.inventory.models import name_validator

from . import validation
from .choices import ProjectKind, ProjectState

REVISION = r"^[0-9a-f]{40}\Z|^[0-9a-f]{64}\Z"  # a Git commit, or a directory's SHA-256 content hash


class Project(models.Model):
    """A source of playbooks or manifests in one environment: a directory on the portal's machine or
    a Git repository (URL, branch, an optional deploy key stored encrypted). A sync (job action
    project.sync) records the revision it found; jobs pin the revision they run."""

    environment = models.ForeignKey(Environment, on_delete=models.PROTECT, related_name="projects")
    name = models.CharField(max_length=128, validators=[name_validator])
    description = models.CharField(max_length=255, blank=True)
    kind = models.CharField(max_length=16, choices=ProjectKind.choices, default=ProjectKind.GIT)
    path = models.CharField(max_length=validation.MAX_PATH, blank=True, validators=[validation.directory],
                            help_text="Directory projects: an absolute directory on the portal's machine.")
    url = models.CharField(max_length=validation.MAX_URL, blank=True, validators=[validation.git_url],
                           help_text="Git projects: https://, ssh://, user@host:repo or file:///path.")
    branch = models.CharField(max_length=200, blank=True, default="main", validators=[validation.branch])
    deploy_key = EncryptedTextField(blank=True, default="",
                                    help_text="SSH private key for the repository. Stored encrypted, never shown.")
    deploy_key_fingerprint = models.CharField(max_length=128, blank=True, editable=False)
    # Observed (written by syncs; not audited: the sync job is).
    state = models.CharField(max_length=16, choices=ProjectState.choices, default=ProjectState.NEW)
    revision = models.CharField(max_length=64, blank=True)
    synced_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    objects = RestrictedQuerySet.as_manager()
    environment_path = "environment"
    audit_prefix = "project"
    audit_secret_fields = ("deploy_key",)
    audit_exclude = ("updated", "state", "revision", "synced_at", "last_error")

    class Meta:
        ordering = ["environment__name", "name"]
        constraints = [models.UniqueConstraint(fields=["environment", "name"], name="project_unique_name")]

    def __str__(self):
        return self.name

    def clean(self):
        errors = {}
        if self.kind == ProjectKind.DIRECTORY:
            if not self.path:
                errors["path"] = "A directory project needs its directory."
            if self.url or self.deploy_key:
                errors["url"] = "A directory project has no Git URL or deploy key."
        elif self.kind == ProjectKind.GIT:
            if not self.url:
                errors["url"] = "A Git project needs its repository URL."
            if not self.branch:
                errors["branch"] = "A Git project needs a branch."
            if self.path:
                errors["path"] = "A Git project has no directory: give its URL."
        if errors:
            raise ValidationError(errors)

    @property
    def source(self):
        return self.path if self.kind == ProjectKind.DIRECTORY else f"{self.url} ({self.branch})"

    @property
    def reads_portal_files(self):
        """A directory, or a repository on the portal's machine (file://): both read its files."""
        return self.kind == ProjectKind.DIRECTORY or validation.is_local_url(self.url)
