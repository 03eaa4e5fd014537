from ops_portal.accounts.choices import Role
from ops_portal.configs.models import ConfigTemplate
from ops_portal.core.context import Actor
from tests import factories


def person(environment, role):
    user = factories.user()
    factories.binding(role=role, user=user, environment=environment)
    return user


def act(user, source="api"):
    return Actor.for_user(user, source=source)


def operator(environment):
    return act(person(environment, Role.OPERATOR))


def config(environment, name=None, **fields):
    """One configuration template, straight into the database (services are tested elsewhere)."""
    fields.setdefault("selector", {"all": True})
    fields.setdefault("path", "/etc/app.conf")
    fields.setdefault("content", "port={{ port }}\n")
    return ConfigTemplate.objects.create(name=name or f"conf-{factories._seq.__next__()}", environment=environment,
                                         **fields)
