"""The programs API: specs checked before anything is stored or launched (injection attempts are
field errors), actions offered only where the host's manager supports them, operators operate and
administrators configure, and the list costs the same queries for 5 programs or 50."""
import json

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from ops_portal.accounts.choices import Role
from ops_portal.audit.models import AuditEvent
from ops_portal.inventory.choices import Transport
from ops_portal.jobs.models import Job
from ops_portal.programs import services
from ops_portal.programs.models import HostManager, Program, ProgramEvent
from tests import factories
from tests.programs.helpers import person, program

pytestmark = pytest.mark.django_db
SUPERVISORD = ["start", "stop", "restart", "signal", "pause", "resume", "scale", "apply", "remove", "logs"]


@pytest.fixture
def env(db):
    return factories.environment("alpha")


@pytest.fixture
def host(env):
    host = factories.host(env, "web-1")
    HostManager.objects.create(host=host, manager="supervisord", available=True, version="4.2.5", supports=SUPERVISORD,
                               why_not={"reload": "supervisord cannot reload a program: restart it, or send it a "
                                                  "signal such as HUP"}, checked=timezone.now())
    return host


def login(api, env, role):
    user = person(env, role)
    api.force_authenticate(user)
    return user


ALL = ("supervisord", "systemd", "pm2")
# (change, field, managers that must refuse it): " ;", quotes of both kinds and %(here)s break only
# supervisord's ini reader; systemd and PM2 quote them safely (unit file quoting, JSON).
INJECTIONS = [
    ({"name": "web;rm -rf /"}, "name", ALL),
    ({"name": "../../etc/passwd"}, "name", ALL),
    ({"name": "-rf"}, "name", ALL),
    ({"spec": {"command": ["/bin/sleep", "1\n[program:evil]\ncommand=/bin/sh -c id"]}}, "command", ALL),
    ({"spec": {"command": ["/bin/sleep", "1\r\nExecStartPre=/bin/sh -c id"]}}, "command", ALL),
    ({"spec": {"command": ["/bin/sleep", "1"], "environment": {"A": "x\ncommand=/tmp/evil"}}}, "environment", ALL),
    ({"spec": {"command": ["/bin/sleep", "1"], "environment": {"A B": "x"}}}, "environment", ALL),
    ({"spec": {"command": ["/bin/sleep", "1"], "environment": {"A": "it's \"both\""}}}, "environment",
     ("supervisord",)),
    ({"spec": {"command": ["/bin/sleep", "1 ;x"]}}, "command", ("supervisord",)),
    ({"spec": {"command": ["/bin/sleep", "%(here)s"]}}, "command", ("supervisord",)),
    ({"spec": {"command": ["/bin/sleep", "1"], "directory": "/tmp/../etc"}}, "directory", ALL),
    ({"spec": {"command": ["/bin/sleep", "1"], "user": "root;id"}}, "user", ALL),
]


@pytest.mark.parametrize("manager", ALL)
@pytest.mark.parametrize(("change", "field", "refused_by"), INJECTIONS, ids=[f"{i}-{f}" for i, (_, f, _) in
                                                                           enumerate(INJECTIONS)])
def test_injection_attempts_are_field_errors_and_nothing_is_stored_or_launched(api, env, host, manager, change,
                                                                              field, refused_by):
    login(api, env, Role.ADMIN)
    payload = {"host": host.pk, "manager": manager, "name": "web", "spec": {"command": ["/bin/sleep", "1"]}, **change}
    audit = AuditEvent.objects.count()
    response = api.post(reverse("api:program-list"), payload, format="json")
    if manager not in refused_by:
        assert response.status_code == 201, response.content
        return
    assert response.status_code == 400, response.content
    assert field in response.json()["error"]["fields"], response.json()
    assert not Program.objects.exists() and not Job.objects.exists()
    assert AuditEvent.objects.count() == audit


def test_apply_launches_the_stored_spec_for_admins_and_refuses_operators(api, env, host):
    worker = services.create_program(factories_actor(env, Role.ADMIN), host=host, manager="supervisord",
                                     name="worker", spec={"command": ["/bin/sleep", "100"], "memory_max": 2**25})
    login(api, env, Role.OPERATOR)
    response = api.post(reverse("api:program-apply", args=[worker.pk]))
    assert response.status_code == 403 and not Job.objects.exists()
    login(api, env, Role.ADMIN)
    response = api.post(reverse("api:program-apply", args=[worker.pk]))
    assert response.status_code == 201, response.content
    job = Job.objects.get()
    assert job.action == "program.apply" and json.loads(job.params["spec"])["memory_max"] == 2**25
    assert job.targets.get().fingerprint["manager"] == "supervisord"


def factories_actor(env, role):
    from tests.programs.helpers import act

    return act(person(env, role))


def test_actions_the_manager_does_not_offer_are_refused_with_its_reason(api, env, host):
    ticker = program(host, "ticker", state="running", present=True)
    login(api, env, Role.OPERATOR)
    response = api.post(reverse("api:program-act", args=[ticker.pk]), {"operation": "reload"}, format="json")
    assert response.status_code == 400
    assert "supervisord cannot reload a program" in response.json()["error"]["fields"]["operation"][0]
    response = api.post(reverse("api:program-act", args=[ticker.pk]), {"operation": "scale", "count": 2}, format="json")
    assert response.status_code == 400 and "not written by the portal" in response.content.decode()
    unchecked = program(factories.host(env, "new-1"), "ticker")
    response = api.post(reverse("api:program-act", args=[unchecked.pk]), {"operation": "start"}, format="json")
    assert response.status_code == 400 and "refresh" in response.content.decode()
    assert not Job.objects.exists()
    response = api.post(reverse("api:program-act", args=[ticker.pk]), {"operation": "signal", "signal": "HUP"},
                        format="json")
    assert response.status_code == 201
    assert Job.objects.get().params == {"signal": "HUP"}


def test_a_manager_that_is_down_refuses_every_action_with_its_state(api, env, host):
    ticker = program(host, "ticker", state="unknown", present=False)
    HostManager.objects.filter(host=host).update(available=False,
                                                 reason="supervisord is not running (its socket /run/supervisor.sock:"
                                                        " Connection refused)")
    login(api, env, Role.OPERATOR)
    response = api.post(reverse("api:program-act", args=[ticker.pk]), {"operation": "start"}, format="json")
    assert response.status_code == 400 and "supervisord is not running" in response.content.decode()
    detail = api.get(reverse("api:program-detail", args=[ticker.pk])).json()
    assert "supervisord is not running" in detail["actions"]["start"]


def test_viewers_cannot_launch_and_unknown_programs_are_404(api, env, host):
    ticker = program(host, "ticker", state="running", present=True)
    login(api, env, Role.VIEWER)
    assert api.post(reverse("api:program-act", args=[ticker.pk]), {"operation": "stop"},
                    format="json").status_code == 403
    assert api.post(reverse("api:program-logs", args=[ticker.pk]), {}, format="json").status_code == 403
    assert api.get(reverse("api:program-detail", args=[ticker.pk + 1000])).status_code == 404
    assert api.post(reverse("api:program-act", args=[ticker.pk + 1000]), {"operation": "stop"},
                    format="json").status_code == 404
    assert not Job.objects.exists()


def test_a_selector_naming_no_program_is_a_clear_400(api, env, host):
    login(api, env, Role.OPERATOR)
    response = api.post(reverse("api:job-list"), {"environment": "alpha", "action": "program.start",
                                                  "selector": {"kind": "program", "names": ["nosuch"]}}, format="json")
    assert response.status_code == 400 and "matches no enabled target" in response.content.decode()
    response = api.post(reverse("api:job-list"), {"environment": "alpha", "action": "program.start",
                                                  "selector": {"kind": "program", "managers": ["runit"]}},
                        format="json")
    assert response.status_code == 400 and "managers must be among" in response.content.decode()


def test_option_and_time_range_errors_are_field_errors(api, env, host):
    ticker = program(host, "ticker", state="running", present=True, managed=True, spec={"command": ["/bin/true"]})
    login(api, env, Role.OPERATOR)
    url = reverse("api:program-act", args=[ticker.pk])
    assert "count" in api.post(url, {"operation": "scale", "count": 500}, format="json").json()["error"]["fields"]
    assert "signal" in api.post(url, {"operation": "signal", "signal": "SEGV"}, format="json").json()["error"]["fields"]
    logs = reverse("api:program-logs", args=[ticker.pk])
    response = api.post(logs, {"mode": "search", "since": "2026-01-02T00:00:00Z", "until": "2026-01-01T00:00:00Z"},
                        format="json")
    assert response.status_code == 400 and "until" in response.json()["error"]["fields"]
    assert api.post(logs, {"mode": "grep"}, format="json").status_code == 400
    response = api.post(logs, {"mode": "search", "text": "error", "since": "2026-01-01T00:00:00Z"}, format="json")
    assert response.status_code == 201
    assert Job.objects.get().params["since"] == "1767225600"


def test_remove_forgets_a_spec_that_never_reached_its_host_and_refuses_foreign_programs(api, env, host):
    draft = services.create_program(factories_actor(env, Role.ADMIN), host=host, manager="supervisord", name="draft",
                                    spec={"command": ["/bin/true"]})
    foreign = program(host, "ticker", state="running", present=True)
    login(api, env, Role.ADMIN)
    response = api.post(reverse("api:program-remove", args=[draft.pk]))
    assert response.status_code == 204 and not Program.objects.filter(pk=draft.pk).exists()
    assert AuditEvent.objects.filter(action="program.delete", object_id=str(draft.pk)).exists()
    response = api.post(reverse("api:program-remove", args=[foreign.pk]))
    assert response.status_code == 400 and "only programs whose configuration the portal wrote" in \
        response.content.decode()


def test_only_portal_managed_programs_have_a_spec_to_change(api, env, host):
    foreign = program(host, "ticker", state="running", present=True)
    login(api, env, Role.ADMIN)
    response = api.patch(reverse("api:program-detail", args=[foreign.pk]), {"spec": {"command": ["/bin/true"]}},
                         format="json")
    assert response.status_code == 400 and "configured outside the portal" in response.content.decode()
    mine = services.create_program(factories_actor(env, Role.ADMIN), host=host, manager="supervisord", name="mine",
                                   spec={"command": ["/bin/true"]})
    response = api.patch(reverse("api:program-detail", args=[mine.pk]),
                         {"spec": {"command": ["/bin/sleep", "5"], "nofile": 1024}}, format="json")
    assert response.status_code == 200, response.content
    event = AuditEvent.objects.filter(action="program.update").latest("pk")
    assert event.before["spec"]["command"] == ["/bin/true"] and event.after["spec"]["nofile"] == 1024
    response = api.patch(reverse("api:program-detail", args=[mine.pk]), {"name": "renamed"}, format="json")
    assert Program.objects.get(pk=mine.pk).name == "mine"


def test_install_is_offered_only_on_ssh_hosts_without_a_manager_and_to_admins(api, env, host):
    bare = factories.host(env, "bare-1")
    HostManager.objects.create(host=bare, manager="supervisord", available=False, reason="not installed")
    local = factories.host(env, "portal", transport=Transport.LOCAL)
    url = reverse("api:program-install-supervisor")
    login(api, env, Role.OPERATOR)
    assert api.post(url, {"host": bare.pk}, format="json").status_code == 403
    login(api, env, Role.ADMIN)
    assert "already has supervisord" in api.post(url, {"host": host.pk}, format="json").content.decode()
    assert "portal's own machine" in api.post(url, {"host": local.pk}, format="json").content.decode()
    response = api.post(url, {"host": bare.pk}, format="json")
    assert response.status_code == 201 and Job.objects.get().action == "manager.install_supervisor"


def test_refresh_takes_hosts_of_one_environment(api, env, host):
    other = factories.host(factories.environment("beta"), "db-1")
    factories.binding(role=Role.OPERATOR, user=login(api, env, Role.OPERATOR), environment=other.environment)
    url = reverse("api:program-refresh")
    assert api.post(url, {"hosts": [host.pk, other.pk]}, format="json").status_code == 400
    response = api.post(url, {"hosts": [host.pk]}, format="json")
    assert response.status_code == 201 and Job.objects.get().action == "programs.refresh"


def test_events_are_the_restart_history_newest_first(api, env, host):
    ticker = program(host, "ticker")
    for kind in ("crashed", "restarted", "oom"):
        ProgramEvent.objects.create(program=ticker, time=timezone.now(), kind=kind, detail=kind)
    login(api, env, Role.VIEWER)
    url = reverse("api:program-events", args=[ticker.pk])
    assert [e["kind"] for e in api.get(url).json()["results"]] == ["oom", "restarted", "crashed"]
    assert [e["kind"] for e in api.get(url, {"kind": "oom"}).json()["results"]] == ["oom"]
    assert api.get(url, {"kind": "boom"}).status_code == 400
    assert api.get(url, {"colour": "red"}).status_code == 400


def test_the_list_filters_and_costs_the_same_queries_for_more_programs(api, env, host):
    login(api, env, Role.VIEWER)
    url = reverse("api:program-list")

    def count(n):
        Program.objects.all().delete()
        for i in range(n):
            program(factories.host(env) if i % 2 else host, f"p{i}", state="running", crash_loop=i == 3)
        with CaptureQueriesContext(connection) as queries:
            assert len(api.get(url, {"limit": 100}).json()["results"]) == n
        return len(queries)

    count(1)  # the user's scope is read once, then cached
    assert count(5) == count(50)
    assert [p["name"] for p in api.get(url, {"crash_loop": "true"}).json()["results"]] == ["p3"]
    assert api.get(url, {"state": "nonsense"}).status_code == 400


def test_program_for_process_follows_the_owner_a_scan_found(env, host):
    web = program(host, "web", pids=[4242])
    group = program(host, "pool", pids=[4300, 4301])
    unit = program(host, "ssh", manager="systemd")
    app = program(host, "api", manager="pm2")
    assert services.program_for_process(host, 1, "supervisord", "web") == web
    assert services.program_for_process(host, 1, "supervisord", "pool:pool_01") == group
    assert services.program_for_process(host, 1, "systemd", "ssh.service") == unit
    assert services.program_for_process(host, 1, "pm2", "api") == app
    assert services.program_for_process(host, 4301, "", "") == group
    assert services.program_for_process(host, 9999, "container", "abc") is None
