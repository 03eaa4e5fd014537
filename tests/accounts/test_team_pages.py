"""Team and role binding pages: create, edit members, delete with a confirmation; nobody grants
through a team more than they hold."""
import pytest

from ops_portal.accounts.choices import Role
from ops_portal.accounts.models import RoleBinding, Team
from ops_portal.audit.models import AuditEvent
from tests import factories
from tests.helpers import person

pytestmark = pytest.mark.django_db


def test_a_global_admin_creates_edits_and_deletes_a_team(client, env):
    admin = person(None, Role.ADMIN)
    alice, bob = factories.user("alice"), factories.user("bob")
    client.force_login(admin)
    client.post("/access/teams/new/", {"name": "sre", "description": "on call", "members": [alice.pk]})
    team = Team.objects.get()
    assert list(team.members.all()) == [alice]
    factories.binding(role=Role.OPERATOR, team=team, environment=env)
    client.post(f"/access/teams/{team.pk}/edit/", {"name": "sre", "description": "on call",
                                                   "members": [alice.pk, bob.pk]})
    assert set(team.members.all()) == {alice, bob}
    confirm = client.get(f"/access/teams/{team.pk}/delete/").content.decode()
    assert "Delete team" in confirm and "operator in alpha" in confirm and "alice, bob" in confirm
    client.post(f"/access/teams/{team.pk}/delete/")
    assert not Team.objects.exists() and not RoleBinding.objects.filter(team__isnull=False).exists()
    assert list(AuditEvent.objects.filter(action__startswith="team.").order_by("pk")
                .values_list("action", flat=True)) == ["team.create", "team.update", "team.delete"]


def test_a_duplicate_name_shows_in_the_form(client):
    factories.team("sre")
    client.force_login(person(None, Role.ADMIN))
    response = client.post("/access/teams/new/", {"name": "sre", "description": ""})
    assert response.status_code == 200 and "already exists" in response.content.decode()
    assert Team.objects.count() == 1


def test_an_environment_admin_may_not_manage_teams_and_a_viewer_sees_nothing(client, env):
    team = factories.team("sre")
    client.force_login(person(env, Role.ADMIN))
    assert client.get("/access/teams/new/").status_code == 403
    assert client.post(f"/access/teams/{team.pk}/edit/", {"name": "x"}).status_code == 403
    assert client.post(f"/access/teams/{team.pk}/delete/").status_code == 403
    client.force_login(person(env, Role.VIEWER))
    assert client.get("/access/teams/new/").status_code == 403
    assert Team.objects.get().name == "sre"


def test_removing_a_binding_asks_first_and_names_who_loses_what(client, env):
    admin = person(env, Role.ADMIN)
    team = factories.team("sre", members=[factories.user("carol")])
    binding = factories.binding(role=Role.OPERATOR, team=team, environment=env)
    client.force_login(admin)
    confirm = client.get(f"/access/bindings/{binding.pk}/delete/").content.decode()
    assert "operator role of team sre in alpha" in confirm and "carol" in confirm
    assert RoleBinding.objects.filter(pk=binding.pk).exists()
    client.post(f"/access/bindings/{binding.pk}/delete/")
    assert not RoleBinding.objects.filter(pk=binding.pk).exists()
    assert AuditEvent.objects.filter(action="rolebinding.delete").count() == 1
