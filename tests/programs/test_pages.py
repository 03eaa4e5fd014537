"""Program pages: lists fleet-wide and per host, a program's page with its limits, history and the
reasons actions are not offered, the spec forms with field errors, and the host page's section."""
import pytest
from django.urls import reverse
from django.utils import timezone

from ops_portal.accounts.choices import Role
from ops_portal.inventory.choices import Transport
from ops_portal.jobs.models import Job
from ops_portal.programs.models import HostManager, Program, ProgramEvent
from tests import factories
from tests.programs.helpers import person, program

pytestmark = pytest.mark.django_db


@pytest.fixture
def world(db):
    env = factories.environment("alpha")
    host = factories.host(env, "web-1")
    HostManager.objects.create(host=host, manager="supervisord", available=True, version="4.2.5",
                               supports=["start", "stop", "restart", "signal", "pause", "resume", "scale", "apply",
                                         "remove", "logs"],
                               why_not={"reload": "supervisord cannot reload a program: restart it"},
                               checked=timezone.now())
    HostManager.objects.create(host=host, manager="systemd", available=False,
                               reason="host web-1 did not boot systemd: its PID 1 is tini", checked=timezone.now())
    looping = program(host, "ticker", state="backoff", crash_loop=True, crash_loop_since=timezone.now(), restarts=7,
                      exit_code=3, exit_reason="exit status 3; not expected", updated=timezone.now(), present=True,
                      limits={"memory_max": {"value": 64 * 2**20, "enforced_by": "watchdog"}})
    ProgramEvent.objects.create(program=looping, time=timezone.now(), kind="crashed", exit_code=3,
                                detail="exit status 3; not expected")
    return env, host, looping


def test_the_list_shows_state_restarts_and_crash_loop_with_actions_only_where_offered(client, world):
    env, host, looping = world
    client.force_login(person(env, Role.OPERATOR))
    page = client.get(reverse("programs:home")).content.decode()
    assert "ticker" in page and "crash loop" in page and "exit status 3" in page
    assert 'value="restart"' in page  # offered: a form button
    response = client.get(reverse("programs:home"), {"crash_loop": "1", "manager": "supervisord", "q": "tick"})
    assert "ticker" in response.content.decode()
    assert "ticker" not in client.get(reverse("programs:home"), {"q": "nothing"}).content.decode()


def test_a_program_page_says_why_actions_are_not_offered_and_shows_limits_and_history(client, world):
    env, host, looping = world
    client.force_login(person(env, Role.OPERATOR))
    page = client.get(reverse("programs:detail", args=[looping.pk])).content.decode()
    assert "supervisord cannot reload a program: restart it" in page
    assert "64.0\xa0MB" in page and "watchdog" in page
    assert "Crash loop" in page and "Restart history" in page and "exit status 3; not expected" in page
    assert 'id="logs-form"' in page


def test_a_viewer_sees_programs_but_no_buttons(client, world):
    env, host, looping = world
    client.force_login(person(env, Role.VIEWER))
    page = client.get(reverse("programs:detail", args=[looping.pk])).content.decode()
    assert "ticker" in page and 'name="operation"' not in page and 'id="logs-form"' not in page
    response = client.post(reverse("programs:operate", args=[looping.pk]), {"operation": "restart"})
    assert response.status_code == 302 and not Job.objects.exists()


def test_programs_of_another_environment_are_404(client, world):
    env, host, looping = world
    other = factories.environment("beta")
    client.force_login(person(other, Role.ADMIN))
    assert client.get(reverse("programs:detail", args=[looping.pk])).status_code == 404
    assert client.post(reverse("programs:operate", args=[looping.pk]), {"operation": "stop"}).status_code == 404


def test_the_new_program_form_shows_the_managers_rules_as_field_errors(client, world):
    env, host, looping = world
    client.force_login(person(env, Role.ADMIN))
    response = client.post(reverse("programs:new"), {
        "host": host.pk, "manager": "supervisord", "name": "evil;rm", "command": "/bin/true",
        "environment": "A=1\nB", "autorestart": "unexpected", "startsecs": 1, "startretries": 3, "stopsignal": "TERM",
        "stopwaitsecs": 10, "numprocs": 1, "cpu_quota": 50})
    page = response.content.decode()
    assert response.status_code == 200
    assert "Line 2: write KEY=VALUE." in page
    response = client.post(reverse("programs:new"), {
        "host": host.pk, "manager": "supervisord", "name": "evil;rm", "command": "/bin/true",
        "autorestart": "unexpected", "startsecs": 1, "startretries": 3, "stopsignal": "TERM", "stopwaitsecs": 10,
        "numprocs": 1, "cpu_quota": 50})
    page = response.content.decode()
    assert "must be letters, digits" in page and "supervisord cannot limit CPU" in page
    assert not Program.objects.filter(name="evil;rm").exists()
    response = client.post(reverse("programs:new"), {
        "host": host.pk, "manager": "supervisord", "name": "worker", "command": "/usr/bin/python3 -m http.server",
        "environment": "PORT=8000", "autorestart": "true", "startsecs": 1, "startretries": 3, "stopsignal": "TERM",
        "stopwaitsecs": 10, "numprocs": 1, "memory_max": 64, "autostart": "on"})
    worker = Program.objects.get(name="worker")
    assert response.status_code == 302 and response.url == reverse("programs:detail", args=[worker.pk])
    assert worker.managed and worker.state == "absent"
    assert worker.spec["command"] == ["/usr/bin/python3", "-m", "http.server"]
    assert worker.spec["environment"] == {"PORT": "8000"} and worker.spec["memory_max"] == 64 * 2**20
    page = client.get(reverse("programs:edit", args=[worker.pk])).content.decode()
    assert "/usr/bin/python3 -m http.server" in page and "PORT=8000" in page


def test_an_operator_cannot_open_the_spec_forms_to_any_effect(client, world):
    env, host, looping = world
    client.force_login(person(env, Role.OPERATOR))
    response = client.post(reverse("programs:new"), {
        "host": host.pk, "manager": "supervisord", "name": "worker", "command": "/bin/true",
        "autorestart": "true", "startsecs": 1, "startretries": 3, "stopsignal": "TERM", "stopwaitsecs": 10,
        "numprocs": 1})
    assert response.status_code == 200 and not Program.objects.filter(name="worker").exists()


def test_the_host_page_shows_its_managers_programs_and_the_install_offer(client, world):
    env, host, looping = world
    client.force_login(person(env, Role.ADMIN))
    page = client.get(reverse("inventory:host", args=[host.pk])).content.decode()
    assert "Process managers and programs" in page and "4.2.5" in page and "its PID 1 is tini" in page
    assert "ticker" in page and "install-offer" not in page
    bare = factories.host(env, "bare-1")
    HostManager.objects.create(host=bare, manager="supervisord", available=False,
                               reason="supervisord is not installed here", checked=timezone.now())
    page = client.get(reverse("inventory:host", args=[bare.pk])).content.decode()
    assert "No process manager on this host" in page and reverse("programs:install", args=[bare.pk]) in page
    local = factories.host(env, "portal", transport=Transport.LOCAL)
    HostManager.objects.create(host=local, manager="supervisord", available=False, reason="not installed",
                               checked=timezone.now())
    page = client.get(reverse("inventory:host", args=[local.pk])).content.decode()
    assert "install supervisord with its package manager" in page
    home = client.get(reverse("programs:home")).content.decode()
    assert "bare-1" in home and "Install supervisord" in home


def test_the_list_page_costs_the_same_queries_for_5_or_50_programs(client, world):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    env, host, looping = world
    client.force_login(person(env, Role.OPERATOR))

    def queries(n):
        Program.objects.exclude(pk=looping.pk).delete()
        for i in range(n):
            program(factories.host(env) if i % 2 else host, f"p{i}", state="running", present=True)
        with CaptureQueriesContext(connection) as captured:
            assert client.get(reverse("programs:home")).status_code == 200
        return len(captured)

    queries(1)
    assert queries(5) == queries(50)
