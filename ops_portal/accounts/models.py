import hashlib
import secrets

from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models
from django.db.models import Q

from .choices import Role
from .permissions import RestrictedQuerySet

slug_validator = RegexValidator(
    r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\Z",
    "Use lower-case letters, digits and hyphens (1-63 characters, not starting or ending with a hyphen).",
)


class Environment(models.Model):
    """A scope for permissions: production, staging, development..."""

    name = models.CharField(max_length=63, unique=True, validators=[slug_validator])
    description = models.CharField(max_length=255, blank=True)
    # Production-like environments are gated: policies ask for approval, freezes apply.
    is_production = models.BooleanField(default=False)
    allow_adhoc_jobs = models.BooleanField(
        default=True, help_text="Operators may run actions without a template here.")
    created = models.DateTimeField(auto_now_add=True)

    objects = RestrictedQuerySet.as_manager()
    environment_path = "pk"

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name


class Team(models.Model):
    name = models.CharField(max_length=100, unique=True)
    description = models.CharField(max_length=255, blank=True)
    members = models.ManyToManyField(settings.AUTH_USER_MODEL, related_name="ops_teams", blank=True)
    created = models.DateTimeField(auto_now_add=True)

    objects = RestrictedQuerySet.as_manager()
    environment_path = None  # global: managed by admins of all environments

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name


class RoleBinding(models.Model):
    """Grants a user or a team a role in one environment, or in all of them (environment empty)."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE, related_name="role_bindings"
    )
    team = models.ForeignKey(Team, null=True, blank=True, on_delete=models.CASCADE, related_name="role_bindings")
    role = models.CharField(max_length=16, choices=Role.choices)
    environment = models.ForeignKey(
        Environment, null=True, blank=True, on_delete=models.CASCADE, related_name="role_bindings"
    )
    created = models.DateTimeField(auto_now_add=True)

    objects = RestrictedQuerySet.as_manager()
    environment_path = "environment"

    class Meta:
        ordering = ["pk"]
        constraints = [
            models.CheckConstraint(
                condition=(Q(user__isnull=False, team__isnull=True) | Q(user__isnull=True, team__isnull=False)),
                name="rolebinding_user_xor_team",
            ),
            models.UniqueConstraint(
                fields=["user", "role", "environment"], name="rolebinding_unique_user",
                nulls_distinct=False, condition=Q(user__isnull=False),
            ),
            models.UniqueConstraint(
                fields=["team", "role", "environment"], name="rolebinding_unique_team",
                nulls_distinct=False, condition=Q(team__isnull=False),
            ),
        ]

    def __str__(self):
        subject = f"user {self.user}" if self.user_id else f"team {self.team}"
        return f"{subject} is {self.role} in {self.environment or 'all environments'}"


def hash_token(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class APIToken(models.Model):
    """A personal API token. Only its SHA-256 is stored; the key is shown once at creation."""

    PREFIX = "opt_"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100)
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    # First characters of the key, so a user can tell tokens apart without the secret.
    key_prefix = models.CharField(max_length=12, editable=False)
    created = models.DateTimeField(auto_now_add=True)
    expires = models.DateTimeField(null=True, blank=True)
    last_used = models.DateTimeField(null=True, blank=True, editable=False)
    revoked = models.DateTimeField(null=True, blank=True, editable=False)

    environment_path = None

    class Meta:
        ordering = ["-created"]

    def __str__(self):
        return f"{self.name} ({self.key_prefix}…)"

    @classmethod
    def generate_key(cls) -> str:
        return cls.PREFIX + secrets.token_urlsafe(32)
