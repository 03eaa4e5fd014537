"""Credential pages: the key is write-only; edit, delete (refused while hosts use it), refusals."""
import pytest

from ops_portal.accounts.choices import Role
from ops_portal.audit.models import AuditEvent
from ops_portal.inventory.models import Credential
from tests import factories
from tests.helpers import person
from tests.keys import ED25519_PRIVATE

pytestmark = pytest.mark.django_db


def test_an_admin_creates_edits_and_deletes_a_credential_and_never_sees_the_key(client, env):
    client.force_login(person(env, Role.ADMIN))
    client.post("/credentials/", {"name": "deploy-key", "environment": env.pk, "username": "deploy",
                                  "private_key": ED25519_PRIVATE, "passphrase": ""})
    credential = Credential.objects.get()
    marker = ED25519_PRIVATE.strip().splitlines()[1]
    for path in ("/credentials/", f"/credentials/{credential.pk}/edit/", f"/credentials/{credential.pk}/delete/"):
        assert marker not in client.get(path).content.decode(), path
    client.post(f"/credentials/{credential.pk}/edit/", {"name": "deploy-key-2", "environment": env.pk,
                                                        "username": "ops"})
    credential.refresh_from_db()
    assert (credential.name, credential.username, credential.private_key) == ("deploy-key-2", "ops", ED25519_PRIVATE)
    update = AuditEvent.objects.get(action="credential.update")
    assert update.after["username"] == "ops" and marker not in str(update.after)
    # In use: the confirmation says so and the delete is refused with a message, not a 500.
    factories.host(env, "web-1", credential=credential)
    confirm = client.get(f"/credentials/{credential.pk}/delete/").content.decode()
    assert "web-1" in confirm
    refused = client.post(f"/credentials/{credential.pk}/delete/", follow=True).content.decode()
    assert "is still in use by web-1" in refused and Credential.objects.exists()
    credential.hosts.all().delete()
    client.post(f"/credentials/{credential.pk}/delete/")
    assert not Credential.objects.exists()
    assert AuditEvent.objects.filter(action="credential.delete").count() == 1


def test_a_refused_field_shows_in_the_form(client, env):
    client.force_login(person(env, Role.ADMIN))
    credential = factories.credential(env, "k")
    response = client.post(f"/credentials/{credential.pk}/edit/", {"name": "k", "environment": env.pk,
                                                                   "username": "not a user!"})
    assert response.status_code == 200 and 'class="errorlist' in response.content.decode()
    assert Credential.objects.get().username == "root"


def test_operators_may_not_edit_or_delete_credentials(client, env):
    credential = factories.credential(env, "k")
    client.force_login(person(env, Role.OPERATOR))
    assert client.post(f"/credentials/{credential.pk}/edit/", {"name": "x", "environment": env.pk,
                                                               "username": "x"}).status_code == 403
    assert client.post(f"/credentials/{credential.pk}/delete/").status_code == 403
    assert Credential.objects.get().name == "k"
