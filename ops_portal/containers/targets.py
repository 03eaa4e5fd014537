"""Target kinds of the container level: containers, Swarm services, and engines (for what is created
on an engine: services, stacks, containers).

{"kind": "container", "names": ["web-1"], "pattern": "web-*", "engines": ["local"],
 "labels": ["team=shop"], "services": ["shop_web"], "ids": ["12"], "all": false}
{"kind": "service", "names": [...], "pattern": "shop_*", "stacks": ["shop"], "engines": [...], "ids": [...]}
{"kind": "engine", "names": ["local"], "pattern": ..., "all": true}

Criteria combine with AND, values inside a list with OR. Targets come from the job's environment,
on enabled engines. What an approver approves (the fingerprint): the engine, the docker id and
the image of a container; the engine, the service's id, image and spec version of a service (a
change of the spec after the approval asks again); an engine's address and how it is reached.
"""
import fnmatch
import hashlib
import re

from django.core.exceptions import ValidationError
from django.db.models import F
from django.db.models.functions import Coalesce
from django.urls import reverse

from ops_portal.core import targets

from .models import Container, Engine, Service

LABEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,127}(=[^\x00-\x1f=]{0,255})?\Z")



def engine_sites(model, engine_path, ref_ids):
    """{ref_id: site name or None} of rows on engines (`engine_path` from `model` to its Engine, ""
    for engines): the engine's host's site, else the engine's own, in one query."""
    site = Coalesce(F(f"{engine_path}host__site__name"), F(f"{engine_path}site__name"))
    found = dict(model.objects.filter(pk__in=list(ref_ids)).annotate(placed=site).values_list("pk", "placed"))
    return {ref_id: found.get(ref_id) for ref_id in ref_ids}

class _Kind(targets.TargetKind):
    model = None

    def validate_selector(self, selector):
        """The base class's rules, with labels (key or key=value) and ids (digits) checked their own way."""
        labels, ids = selector.get("labels"), selector.get("ids")
        errors = []
        if labels is not None and (not isinstance(labels, list) or not all(
                isinstance(v, str) and LABEL.match(v) for v in labels)):
            errors.append("labels must be a list of key or key=value.")
        if ids is not None and (not isinstance(ids, list) or not all(
                isinstance(v, str) and v.isdigit() and len(v) < 19 for v in ids)):
            errors.append("ids must be a list of object ids (as text).")
        if errors:
            raise ValidationError({"selector": errors})
        # Labels pass the base class's name check as a placeholder; their own check is above.
        plain = {**selector, **({"labels": ["label"] * len(labels)} if labels else {})}
        cleaned = super().validate_selector(plain)
        if labels is not None:
            cleaned["labels"] = list(labels)
        return cleaned

    engine_path = "engine__"

    def sites(self, ref_ids):
        """An engine is on its inventory host's site, or on its own site when it has no host: its
        containers' and services' jobs run on that site's workers."""
        return engine_sites(self.model, self.engine_path, ref_ids)

    def load(self, ref_ids):
        return self.model.objects.select_related(*self.related).order_by().in_bulk(list(ref_ids))

    def available(self, ref_ids, environment):
        return self.model.objects.select_related(*self.related).filter(
            **{self.environment_lookup: environment, self.enabled_lookup: True}).order_by().in_bulk(list(ref_ids))


def _labels_match(labels, wanted):
    for item in wanted:
        key, has_value, value = item.partition("=")
        if key in labels and (not has_value or labels[key] == value):
            return True
    return False


class ContainerKind(_Kind):
    name = "container"
    label = "Container"
    model = Container
    list_keys = ("names", "engines", "labels", "services", "ids")
    related = ("engine",)
    environment_lookup = "engine__environment"
    enabled_lookup = "engine__enabled"

    def select(self, selector, environment):
        queryset = Container.objects.select_related("engine").filter(engine__environment=environment,
                                                                     engine__enabled=True)
        if selector.get("names"):
            queryset = queryset.filter(name__in=selector["names"])
        if selector.get("engines"):
            queryset = queryset.filter(engine__name__in=selector["engines"])
        if selector.get("services"):
            queryset = queryset.filter(service_name__in=selector["services"])
        if selector.get("ids"):
            queryset = queryset.filter(pk__in=[int(v) for v in selector["ids"]])
        containers = list(queryset.order_by("engine__name", "name"))
        if selector.get("labels"):
            containers = [c for c in containers if _labels_match(c.labels or {}, selector["labels"])]
        if selector.get("pattern"):
            containers = [c for c in containers if fnmatch.fnmatchcase(c.name, selector["pattern"])]
        return containers

    def display_name(self, obj):
        return f"{obj.engine.name}/{obj.name}"

    def fingerprint(self, obj):
        return {"engine": obj.engine.name, "engine_url": obj.engine.url, "docker_id": obj.docker_id,
                "image_id": obj.image_id}

    def environment_of(self, obj):
        return obj.engine.environment_id

    def url(self, ref_id):
        return reverse("containers:container", args=[ref_id])


class ServiceKind(_Kind):
    name = "service"
    label = "Swarm service"
    model = Service
    list_keys = ("names", "stacks", "engines", "ids")
    related = ("engine",)
    environment_lookup = "engine__environment"
    enabled_lookup = "engine__enabled"

    def select(self, selector, environment):
        queryset = Service.objects.select_related("engine").filter(engine__environment=environment,
                                                                   engine__enabled=True)
        if selector.get("names"):
            queryset = queryset.filter(name__in=selector["names"])
        if selector.get("stacks"):
            queryset = queryset.filter(stack__in=selector["stacks"])
        if selector.get("engines"):
            queryset = queryset.filter(engine__name__in=selector["engines"])
        if selector.get("ids"):
            queryset = queryset.filter(pk__in=[int(v) for v in selector["ids"]])
        services = list(queryset.order_by("engine__name", "name"))
        if selector.get("pattern"):
            services = [s for s in services if fnmatch.fnmatchcase(s.name, selector["pattern"])]
        return services

    def display_name(self, obj):
        return f"{obj.engine.name}/{obj.name}"

    def fingerprint(self, obj):
        return {"engine": obj.engine.name, "engine_url": obj.engine.url, "service_id": obj.service_id,
                "image": obj.image, "version": obj.version}

    def environment_of(self, obj):
        return obj.engine.environment_id

    def url(self, ref_id):
        return reverse("containers:service", args=[ref_id])


class EngineKind(_Kind):
    name = "engine"
    label = "Docker engine"
    model = Engine
    list_keys = ("names", "ids")
    related = ("host__credential", "environment")
    environment_lookup = "environment"
    engine_path = ""
    enabled_lookup = "enabled"

    def select(self, selector, environment):
        queryset = Engine.objects.select_related(*self.related).filter(environment=environment, enabled=True)
        if selector.get("names"):
            queryset = queryset.filter(name__in=selector["names"])
        if selector.get("ids"):
            queryset = queryset.filter(pk__in=[int(v) for v in selector["ids"]])
        engines = list(queryset.order_by("name"))
        if selector.get("pattern"):
            engines = [e for e in engines if fnmatch.fnmatchcase(e.name, selector["pattern"])]
        return engines

    def fingerprint(self, obj):
        return engine_fingerprint(obj)

    def url(self, ref_id):
        return reverse("containers:engine", args=[ref_id])


def engine_fingerprint(engine):
    """Where the engine is and how the portal reaches it (certificates by their hash)."""
    digest = hashlib.sha256(f"{engine.tls_ca}\n{engine.tls_cert}".encode()).hexdigest()[:16]
    return {"url": engine.url, "transport": engine.transport, "host": engine.host.name if engine.host_id else None,
            "tls": digest if engine.tls_cert else None}


CONTAINERS = targets.register(ContainerKind())
SERVICES = targets.register(ServiceKind())
ENGINES = targets.register(EngineKind())
