"""The project target kind: what project.sync acts on.

{"kind": "project", "names": ["site"], "ids": ["3"], "pattern": "site-*", "all": true}

An approver approves where a project comes from (its directory, or its URL and branch).
"""
from django.core.exceptions import ValidationError
from django.urls import reverse

from ops_portal.core import targets

from .models import Project


class ProjectKind(targets.TargetKind):
    name = "project"
    label = "Project"
    list_keys = ("names", "ids")

    def validate_selector(self, selector):
        ids = selector.get("ids")
        if ids is not None and (not isinstance(ids, list) or not all(
                isinstance(v, str) and v.isdigit() and len(v) < 19 for v in ids)):
            raise ValidationError({"selector": ["ids must be a list of project ids (as text)."]})
        return super().validate_selector(selector)

    def queryset(self, selector, environment):
        queryset = Project.objects.filter(environment=environment)
        if selector.get("names"):
            queryset = queryset.filter(name__in=selector["names"])
        if selector.get("ids"):
            queryset = queryset.filter(pk__in=[int(v) for v in selector["ids"]])
        return queryset.order_by("name")

    def load(self, ref_ids):
        return Project.objects.order_by().in_bulk(list(ref_ids))

    def available(self, ref_ids, environment):
        return Project.objects.filter(environment=environment).order_by().in_bulk(list(ref_ids))

    def fingerprint(self, project):
        return {"kind": project.kind, "path": project.path, "url": project.url, "branch": project.branch,
                "deploy_key": project.deploy_key_fingerprint or None}

    def url(self, ref_id):
        return reverse("projects:detail", args=[ref_id])


PROJECTS = targets.register(ProjectKind())
