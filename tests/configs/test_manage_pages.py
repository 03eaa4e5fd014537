"""Configuration template pages: create, edit, delete through the config services."""
import pytest

from ops_portal.accounts.choices import Role
from ops_portal.audit.models import AuditEvent
from ops_portal.configs.models import ConfigTemplate
from tests.helpers import person

pytestmark = pytest.mark.django_db


def config_form(env, **overrides):
    data = {"name": "motd", "description": "", "environment": env.pk, "selector": '{"all": true}',
            "path": "/etc/motd", "content": "Welcome to {{ host.name }}\n", "mode": "0644", "owner": "root",
            "group": "", "service_action": "", "enabled": "on"}
    data.update(overrides)
    return data


def test_an_admin_creates_edits_and_deletes_a_configuration(client, env):
    client.force_login(person(env, Role.ADMIN))
    client.post("/configs/new/", config_form(env))
    config = ConfigTemplate.objects.get()
    assert (config.mode, config.content, config.version) == (0o644, "Welcome to {{ host.name }}\n", 1)
    page = client.get(f"/configs/{config.pk}/edit/").content.decode()
    assert 'value="0644"' in page
    client.post(f"/configs/{config.pk}/edit/", config_form(env, mode="0600", content="Hello\n"))
    config.refresh_from_db()
    assert (config.mode, config.content, config.version) == (0o600, "Hello\n", 2)
    assert "Delete configuration template" in client.get(f"/configs/{config.pk}/delete/").content.decode()
    client.post(f"/configs/{config.pk}/delete/")
    assert not ConfigTemplate.objects.exists()
    assert list(AuditEvent.objects.filter(action__startswith="configtemplate.").order_by("pk")
                .values_list("action", flat=True)) == ["configtemplate.create", "configtemplate.update",
                                                        "configtemplate.delete"]


def test_refused_fields_show_in_the_form(client, env):
    client.force_login(person(env, Role.ADMIN))
    syntax = client.post("/configs/new/", config_form(env, content="{% if %}"))
    assert syntax.status_code == 200 and "Template syntax error on line 1" in syntax.content.decode()
    mode = client.post("/configs/new/", config_form(env, mode="999")).content.decode()
    assert "Give the mode as 3 or 4 octal digits" in mode
    relative = client.post("/configs/new/", config_form(env, path="etc/motd")).content.decode()
    assert "Unsafe path" in relative or "absolute" in relative
    assert not ConfigTemplate.objects.exists()


def test_operators_may_not_manage_configurations(client, env):
    config = ConfigTemplate.objects.create(name="c", environment=env, selector={"all": True}, path="/etc/c")
    client.force_login(person(env, Role.OPERATOR))
    assert client.get("/configs/new/").status_code == 403
    assert client.post(f"/configs/{config.pk}/edit/", config_form(env, name="c")).status_code == 403
    assert client.post(f"/configs/{config.pk}/delete/").status_code == 403
    assert ConfigTemplate.objects.get().path == "/etc/c"
