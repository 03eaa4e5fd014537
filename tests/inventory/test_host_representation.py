"""The hosts API writes each host by hand for speed; it must say exactly what the generic
ModelSerializer says for the same fields."""
import pytest
from django.utils import timezone
from rest_framework import serializers

from ops_portal.inventory.api.serializers import HostSerializer
from ops_portal.inventory.models import hosts_for_lists
from tests import factories

pytestmark = pytest.mark.django_db


def test_the_hand_written_host_is_the_generic_one(env):
    credential = factories.credential(env, "deploy-key")
    bare = factories.host(env, "bare-1")
    full = factories.host(env, "full-1", credential=credential, tags=["web", "eu"], variables={"role": "web"},
                          username="deploy", port=2222, last_seen=timezone.now(), last_error="timed out",
                          host_key="ssh-ed25519 AAAA")
    full.groups.add(factories.host_group(env, "web"), factories.host_group(env, "eu"))
    assert bare.pk and full.pk
    for host in hosts_for_lists():
        serializer = HostSerializer(host)
        generic = serializers.ModelSerializer.to_representation(serializer, host)
        assert serializer.data == generic, host.name


def test_the_api_lists_hosts_as_the_detail_shows_them(api, admin_all, env):
    credential = factories.credential(env, "deploy-key")
    host = factories.host(env, "web-1", credential=credential, tags=["web"], last_seen=timezone.now())
    host.groups.add(factories.host_group(env, "web"))
    api.force_authenticate(admin_all)
    listed = api.get("/api/hosts/").json()["results"]
    assert listed == [api.get(f"/api/hosts/{host.pk}/").json()]
    assert listed[0]["credential"] == "deploy-key" and listed[0]["groups"] == ["web"]
