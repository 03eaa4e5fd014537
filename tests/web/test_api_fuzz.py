"""A bounded schemathesis run against the OpenAPI schema: every operation, valid and invalid input, as
an administrator of all environments, on the real PostgreSQL. No answer may be a server error, and
every answer must match the schema (status code, content type, body).

The app runs in-process (Django's WSGI handler) inside the test's transaction, and each request in
a savepoint rolled back after it: requests see the sample objects below, never each other's
changes, and nothing commits, so no job reaches a worker and no notification is sent; no operation
needs to be left out. FUZZ_EXAMPLES (default 12) sets the examples per operation; the generation is
derandomized, so a run is repeatable.
"""
import os
import re
from datetime import time, timedelta

import pytest
import schemathesis
from django.core import signals
from django.core.handlers.wsgi import WSGIHandler
from django.db import close_old_connections, transaction
from django.utils import timezone
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from ops_portal.accounts.choices import Role
from ops_portal.accounts.models import APIToken
from ops_portal.approvals.models import ApprovalPolicy, ApprovalRequest
from ops_portal.configs.models import ConfigTemplate, DriftReport
from ops_portal.inventory.models import Artifact
from ops_portal.jobs.models import FreezeWindow, Job, JobEvent, JobSchedule, JobTarget, JobTemplate, MaintenanceWindow
from ops_portal.monitoring.models import Alert, AlertRule
from ops_portal.notifications.models import Delivery, NotificationChannel
from tests import factories
from tests.helpers import api_token, person

pytestmark = pytest.mark.django_db

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "12"))
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_headers_conformance,
          response_schema_conformance]


def _schema():
    """The schema drf-spectacular serves at /api/schema/, loaded when the module is collected."""
    from drf_spectacular.generators import SchemaGenerator

    config = SchemathesisConfig.from_dict({
        "generation": {"mode": "all", "max-examples": EXAMPLES, "no-shrink": True, "deterministic": True,
                       "database": "none"},
        # The coverage phase sends every boundary case of every schema: thousands of requests.
        "phases": {"coverage": {"enabled": False}},
    })
    loaded = schemathesis.openapi.from_dict(SchemaGenerator().get_schema(request=None, public=True), config=config)
    loaded.app = WSGIHandler()
    return loaded


schema = _schema()


@pytest.fixture
def in_process(db):
    """Requests share the test's connection and transaction, as Django's test client arranges."""
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


@pytest.fixture
def world(in_process):
    """An administrator of all environments with a token, and one object of every kind the API serves."""
    env = factories.environment("alpha")
    factories.environment("beta", is_production=True)
    admin = person(None, Role.ADMIN, "fuzz-admin")
    _, key = api_token(admin, "fuzz")
    other = factories.user("other")
    binding = factories.binding(role=Role.VIEWER, user=other, environment=env)
    team = factories.team("ops", members=[other])
    credential = factories.credential(env, "deploy-key")
    group = factories.host_group(env, "web", variables={"port": 80})
    site = factories.site("paris")
    host = factories.host(env, "web-1", address="10.0.0.5", credential=credential, variables={"a": 1}, site=site)
    host.groups.set([group])
    template = JobTemplate.objects.create(name="uptime", environment=env, action="host.command",
                                          selector={"kind": "host", "names": ["web-1"]},
                                          action_params={"command": "uptime"})
    job = Job.objects.create(name="uptime", environment=env, action="host.command", template=template,
                             params={"command": "uptime"}, state="failed", created_by=admin,
                             created_by_name=admin.username, finished=timezone.now())
    JobTarget.objects.create(job=job, index=0, kind="host", ref_id=host.pk, name=host.name, state="failed",
                             exit_code=1)
    JobEvent.objects.create(job=job, seq=1, time=timezone.now(), kind="output", target=0, stream="stdout", text="up")
    schedule = JobSchedule.objects.create(name="hourly", template=template, kind="interval", interval_seconds=3600,
                                          owner=admin, owner_name=admin.username)
    freeze = FreezeWindow.objects.create(environment=env, starts=timezone.now() + timedelta(days=1),
                                         ends=timezone.now() + timedelta(days=2), reason="release")
    window = MaintenanceWindow.objects.create(environment=env, name="nightly", weekdays=[0, 1], start_time=time(2),
                                              duration_minutes=60)
    policy = ApprovalPolicy.objects.create(name="four-eyes", environment=env, actions=["host.deploy"])
    request = ApprovalRequest.objects.create(environment=env, subject_type="job", subject_id=job.pk, title="deploy",
                                             plan={}, plan_hash="0" * 64, requested_by=other,
                                             requested_by_name=other.username,
                                             expires_at=timezone.now() + timedelta(hours=1))
    rule = AlertRule.objects.create(name="cpu", environment=env, metric="cpu_percent", threshold=90)
    alert = Alert.objects.create(rule=rule, source="rule", key=f"rule:{rule.pk}:host:{host.pk}", environment=env,
                                 host=host, host_name=host.name, metric="cpu_percent", severity="warning",
                                 summary="cpu high", fired_at=timezone.now(), value=95, threshold=90)
    config = ConfigTemplate.objects.create(name="app", environment=env, selector={"kind": "host", "all": True},
                                           path="/etc/app.conf", content="port={{ port }}\n")
    report = DriftReport.objects.create(config=config, host=host, config_version=1, drifted=True,
                                        changes=["content"], diff="-a\n+b\n", checked=timezone.now())
    channel = NotificationChannel.objects.create(name="hook", environment=env, kind="webhook",
                                                 url="http://127.0.0.1:9/hook", events=["job.failed"])
    delivery = Delivery.objects.create(channel=channel, event="job.failed", environment_name=env.name,
                                       subject="job failed", payload={}, status="failed", dedupe_key="k1")
    artifact = Artifact.objects.create(name="app-1.0.tar.gz", environment=env, data=b"\x1f\x8b", size=2,
                                       sha256="0" * 64, uploaded_by=admin.username)
    token = APIToken.objects.create(user=admin, name="spare", key_hash="1" * 64, key_prefix="opt_spare")
    from ops_portal.programs.models import HostManager, Program

    manager = HostManager.objects.create(host=host, manager="supervisord", available=True, version="4.2.5",
                                         supports=["start", "stop", "restart", "apply", "remove", "logs"])
    program = Program.objects.create(host=host, manager="supervisord", name="worker", managed=True, present=True,
                                     state="running", spec={"command": ["/bin/sleep", "100"]})
    containers = _container_world(env)
    from ops_portal.projects.models import Project

    Project.objects.create(environment=env, name="site", url="https://git.example.test/site.git", branch="main")
    from django_celery_beat.models import PeriodicTask

    from ops_portal.core import periodic

    periodic.ensure_builtins()
    from ops_portal.audit.models import AuditEvent
    from ops_portal.processes import store
    from tests.processes.helpers import proc, snapshot

    scan = store.store_scan(host.pk, snapshot([proc(1, "init", ppid=0), proc(4242, "nginx", ports=[("::", 80)])]))

    ids = {"environments": env.pk, "users": other.pk, "teams": team.pk, "role-bindings": binding.pk,
           "tokens": token.pk, "credentials": credential.pk, "host-groups": group.pk, "hosts": host.pk,
           "sites": site.pk,
           "artifacts": artifact.pk, "job-templates": template.pk, "jobs": job.pk, "schedules": schedule.pk,
           "freezes": freeze.pk, "maintenance-windows": window.pk, "approval-policies": policy.pk,
           "approvals": request.pk, "alert-rules": rule.pk, "alerts": alert.pk, "config-templates": config.pk,
           "drift-reports": report.pk, "notification-channels": channel.pk, "deliveries": delivery.pk,
           "audit": AuditEvent.objects.latest("pk").pk,
           "system-schedules": PeriodicTask.objects.order_by("pk").first().pk,
           "processes": host.processes.get(pid=4242).pk, "process-scans": scan.pk,
           "programs": program.pk, "host-managers": manager.pk, **containers}
    return {"headers": {"Authorization": f"Token {key}"}, "ids": ids}


def _container_world(env):
    """An engine (nothing listens at its address: a connection test fails fast, in words) and one
    object of each container-level kind."""
    from ops_portal.containers.models import (
        AllowedHostPath,
        Container,
        Engine,
        Image,
        Network,
        Node,
        Service,
        Stack,
        Volume,
    )

    engine = Engine.objects.create(environment=env, name="fuzz", url="unix:///nonexistent/docker.sock",
                                   swarm_role="manager", state="ok")
    compose = "services:\n  web:\n    image: web:v1\n"
    return {
        "engines": engine.pk,
        "containers": Container.objects.create(engine=engine, docker_id="c" * 64, name="web-1", state="running",
                                               image="web:v1").pk,
        "services": Service.objects.create(engine=engine, service_id="s" * 25, name="web", image="web:v1",
                                           mode="replicated", replicas_desired=1, replicas_running=1,
                                           spec={"name": "web", "image": "web:v1"}).pk,
        "images": Image.objects.create(engine=engine, docker_id="sha256:" + "a" * 64, tags=["web:v1"]).pk,
        "networks": Network.objects.create(engine=engine, docker_id="n" * 64, name="bridge").pk,
        "volumes": Volume.objects.create(engine=engine, name="data").pk,
        "nodes": Node.objects.create(engine=engine, node_id="o" * 25, hostname="node-1").pk,
        "stacks": Stack.objects.create(engine=engine, name="shop", compose=compose).pk,
        "allowed-host-paths": AllowedHostPath.objects.create(environment=env, path="/srv/data").pk,
    }


@schema.parametrize()
@settings(deadline=None, suppress_health_check=list(HealthCheck))
def test_the_api_answers_every_input_without_a_server_error_and_as_its_schema_says(case, world):
    resource = re.match(r"/api/([^/]+)/\{id\}", case.operation.path)
    if resource and isinstance(case.path_parameters.get("id"), int) and case.path_parameters["id"] % 2 == 0:
        # Half the examples address an object that exists, the other half whatever was drawn.
        case.path_parameters["id"] = world["ids"].get(resource.group(1), case.path_parameters["id"])
    with transaction.atomic():
        response = case.call(headers=world["headers"])
        transaction.set_rollback(True)
    case.validate_response(response, checks=CHECKS)
