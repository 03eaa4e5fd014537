"""The 1,000-row list endpoints of hosts, containers, services, programs, processes, jobs, alerts and audit are
written from values() rows (ops_portal.core.api.rows): their JSON is what the serializer gives
for the same rows, field for field and in the same order, nulls and computed fields included."""
import datetime
import json

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.utils import timezone
from rest_framework import serializers
from rest_framework.test import APIRequestFactory
from rest_framework.utils.encoders import JSONEncoder

from ops_portal.accounts.choices import Role
from ops_portal.audit.api.serializers import AuditEventSerializer
from ops_portal.audit.models import AuditEvent
from ops_portal.containers.api.serializers import ContainerSerializer, ServiceSerializer
from ops_portal.containers.models import Container, Service
from ops_portal.core.api.rows import Rows
from ops_portal.inventory.api.serializers import HostSerializer
from ops_portal.inventory.models import Host
from ops_portal.jobs.api.serializers import JobSerializer
from ops_portal.jobs.models import Job, JobTemplate
from ops_portal.monitoring.api.serializers import AlertSerializer
from ops_portal.monitoring.models import Alert
from ops_portal.processes import store
from ops_portal.processes.api.serializers import ProcessSerializer
from ops_portal.processes.models import Process
from ops_portal.programs.api.serializers import ProgramSerializer
from ops_portal.programs.models import HostManager, Program
from tests import factories
from tests.containers.helpers import container
from tests.helpers import person
from tests.processes.helpers import proc, snapshot
from tests.programs.helpers import program
from tests.web.test_list_queries import World

pytestmark = pytest.mark.django_db


@pytest.fixture
def world():
    """World's rows plus the cases a list must write right: a container on an inventory host and
    one without, an ad-hoc job (no template) relaunched from another and canceled by a user, a
    process listening on ports, programs on a host whose manager was checked (offering some
    operations) and on one never checked, one absent."""
    world = World()
    world.grow(3)
    host = factories.host(world.env, "odd-host", tags=["b", "a"], variables={"x": [1, None]})
    for name in ("zeta", "alpha"):  # written in the groups' order, not the order they were added
        host.groups.add(factories.host_group(world.env, name))
    container(world.engine, "c-on-host", host=host, labels={"app": "ünïcode"}, ports=[{"port": 80}], exit_code=137,
              started_at=timezone.now() - datetime.timedelta(days=2))
    user = factories.user()
    first = Job.objects.filter(environment=world.env).first()
    Job.objects.create(name="ad hoc", environment=world.env, action="host.command", state="canceled",
                       plan_hash="y" * 64, cancel_requested=timezone.now(), cancel_requested_by=user.username,
                       created_by=user, relaunch_of=first,
                       created_by_name=user.username, params={"command": "true", "nested": [1, None]},
                       started=timezone.now(), finished=timezone.now() + datetime.timedelta(microseconds=1500))
    store.store_scan(host.pk, snapshot([proc(1, "init", ppid=0),
                                        proc(42, "nginx", ports=[("0.0.0.0", 80), ("::", 443)], state="R",
                                             started=1_700_000_000.25, cpu=12.5)]))
    HostManager.objects.create(host=host, manager="supervisord", available=True, version="4.2",
                               supports=["start", "stop"], why_not={"restart": "not here"}, checked=timezone.now())
    program(host, "managed-one", managed=True, spec={"command": ["sleep", "1"]}, state="running")
    program(host, "absent-one", state="absent")
    program(host, "systemd-one", manager="systemd")
    world.rule.runbook = JobTemplate.objects.get(name="uptime")
    world.rule.save(update_fields=["runbook"])
    Alert.objects.create(source="drift", key="drift:odd", environment=world.env, host=None, host_name="odd-host",
                         severity="critical", summary="drifted", fired_at=timezone.now())  # no rule, no host
    AuditEvent.objects.create(actor=user, actor_name=user.username, action="host.update", object_type="inventory.host",
                              object_id=str(host.pk), object_repr="odd-host", environment=world.env,
                              environment_name=world.env.name, before={"port": 22, "tags": ["ä", None]},
                              after={"port": 2222}, extra=[1, "two"], request_id="r-1", source="api",
                              client_address="::1")
    AuditEvent.objects.create(action="job.finish", object_type="jobs.job", object_id="7", environment=world.env,
                              environment_name=world.env.name, source="system")  # no actor, nulls, no address
    return world


def _old(serializer_class, model, ids, context):
    """The serializer's JSON for these rows as model instances, in this order."""
    found = model.objects.in_bulk(ids)
    return json.loads(json.dumps(serializer_class([found[i] for i in ids], many=True, context=context).data,
                                 cls=JSONEncoder))


def _managers(ids):
    host_ids = set(Program.objects.filter(pk__in=ids).values_list("host_id", flat=True))
    return {(m.host_id, m.manager): m for m in HostManager.objects.filter(host_id__in=host_ids)}


@pytest.mark.parametrize("role", ["viewer", "admin_all"])
@pytest.mark.parametrize("url,serializer_class,model", [
    ("/api/containers/?limit=1000", ContainerSerializer, Container),
    ("/api/programs/?limit=1000", ProgramSerializer, Program),
    ("/api/processes/?limit=1000", ProcessSerializer, Process),
    ("/api/jobs/?limit=1000", JobSerializer, Job),
    ("/api/services/?limit=1000", ServiceSerializer, Service),
    ("/api/alerts/?limit=1000", AlertSerializer, Alert),
    ("/api/audit/?limit=1000", AuditEventSerializer, AuditEvent),
    ("/api/hosts/?limit=1000", HostSerializer, Host),
    ("/api/hosts/?limit=1000&offset=1&ordering=-name", HostSerializer, Host),
    ("/api/audit/?limit=1000&offset=1", AuditEventSerializer, AuditEvent),
])
def test_a_list_page_is_the_serializers_json_for_the_same_rows(world, client, url, serializer_class, model, role):
    user = person(world.env, Role.VIEWER) if role == "viewer" else person(None, Role.ADMIN)
    client.force_login(user)
    response = client.get(url)
    assert response.status_code == 200
    rows = response.json()["results"]
    assert len(rows) >= 3
    ids = [row["id"] for row in rows]
    request = APIRequestFactory().get(url)
    request.user = user
    context = {"request": request, "managers": _managers(ids) if model is Program else None}
    old = _old(serializer_class, model, ids, context)
    assert [list(row) for row in rows] == [list(row) for row in old]  # same fields, same order
    assert rows == old


def test_the_programs_actions_say_what_each_manager_offers(world, client):
    client.force_login(person(None, Role.ADMIN))
    rows = {row["name"]: row for row in client.get("/api/programs/?limit=1000").json()["results"]}
    assert rows["managed-one"]["actions"]["start"] == ""
    assert rows["managed-one"]["actions"]["restart"] == "not here"
    assert "apply its configuration first" in rows["absent-one"]["actions"]["start"]
    assert "have not been checked yet" in rows["systemd-one"]["actions"]["start"]


def test_a_field_that_is_not_a_column_must_be_computed():
    class WithMethod(serializers.ModelSerializer):
        shout = serializers.SerializerMethodField()

        class Meta:
            model = Container
            fields = ["id", "shout"]

        def get_shout(self, container):
            return container.name.upper()

    with pytest.raises(ImproperlyConfigured, match="shout"):
        Rows(WithMethod())
    rows = Rows(WithMethod(), {"shout": (["name"], lambda row: row["name"].upper())})
    assert rows.paths == ["id", "name"]
    assert rows.write([{"id": 3, "name": "web"}]) == [{"id": 3, "shout": "WEB"}]


def test_the_hosts_list_writes_each_hosts_groups_in_their_order_in_one_query(world, client,
                                                                             django_assert_max_num_queries):
    client.force_login(person(None, Role.ADMIN))
    with django_assert_max_num_queries(8):
        rows = {row["name"]: row for row in client.get("/api/hosts/?limit=1000").json()["results"]}
    assert rows["odd-host"]["groups"] == ["alpha", "zeta"] and rows["odd-host"]["tags"] == ["b", "a"]
