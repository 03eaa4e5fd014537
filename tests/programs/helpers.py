from ops_portal.core.context import Actor
from ops_portal.programs.models import Program
from tests import factories


def person(environment, role):
    user = factories.user()
    factories.binding(role=role, user=user, environment=environment)
    return user


def act(user, source="api"):
    return Actor.for_user(user, source=source)


def program(host, name="web", manager="supervisord", **fields):
    """One program row, straight into the database (services are tested elsewhere)."""
    return Program.objects.create(host=host, manager=manager, name=name, **fields)
