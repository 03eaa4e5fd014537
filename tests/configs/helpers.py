from ops_portal.configs.models import ConfigTemplate
from tests import factories


def config(environment, name=None, **fields):
    """One configuration template, straight into the database (services are tested elsewhere)."""
    fields.setdefault("selector", {"all": True})
    fields.setdefault("path", "/etc/app.conf")
    fields.setdefault("content", "port={{ port }}\n")
    return ConfigTemplate.objects.create(name=name or f"conf-{factories._seq.__next__()}", environment=environment,
                                         **fields)
