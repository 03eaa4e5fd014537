from django.db import models


class ProjectKind(models.TextChoices):
    DIRECTORY = "directory", "Directory on the portal's machine"
    GIT = "git", "Git repository"


class ProjectState(models.TextChoices):
    NEW = "new", "Never synced"
    SYNCED = "synced", "Synced"
    FAILED = "failed", "Last sync failed"
