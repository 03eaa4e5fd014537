"""Storing refreshes: managers and programs upserted in a few queries, restart history derived from
what changed, crash-loop alerts raised once the loop lasts and resolved when it ends, programs
that vanish forgotten unless the portal holds their spec."""
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from ops_portal.monitoring.choices import AlertState
from ops_portal.monitoring.models import Alert
from ops_portal.programs import observe
from ops_portal.programs.backend import ManagerReport
from ops_portal.programs.choices import ALERT_SOURCE
from ops_portal.programs.models import HostManager, Program
from tests import factories
from tests.programs.helpers import seen

pytestmark = pytest.mark.django_db


def report(*programs, manager="supervisord", available=True, reason=""):
    return ManagerReport(manager, available, "4.2.5", reason, ["start", "stop"], {"reload": "no"},
                         list(programs) if available else None)


@pytest.fixture
def host(db):
    return factories.host(factories.environment("alpha"), "web-1")


def events(program):
    return list(program.events.order_by("time", "pk").values_list("kind", "detail"))


def test_a_first_refresh_stores_managers_and_programs_as_a_baseline(host):
    observe.store_host(host.pk, [report(seen(), seen("sleeper")), report(manager="systemd", available=False,
                                                                         reason="PID 1 is tini")])
    assert {(m.manager, m.available, m.reason) for m in HostManager.objects.all()} == {
        ("supervisord", True, ""), ("systemd", False, "PID 1 is tini")}
    ticker = Program.objects.get(name="ticker")
    assert (ticker.state, ticker.pids, ticker.present) == ("running", [100], True)
    assert not ticker.events.exists()


def test_a_crash_and_restart_become_history_with_the_exit(host):
    observe.store_host(host.pk, [report(seen())])
    exit_record = {"at": 1_700_000_100.0, "how": "terminated by SIGKILL; not expected", "code": None,
                   "expected": False, "oom": False}
    observe.store_host(host.pk, [report(seen(pids=[101], restarts=1, exits=[exit_record],
                                             exit_reason="terminated by SIGKILL; not expected"))])
    ticker = Program.objects.get(name="ticker")
    assert ticker.restarts == 1 and ticker.pids == [101]
    assert [kind for kind, _ in events(ticker)] == ["crashed", "restarted"]
    # The same exit seen again is not history twice.
    observe.store_host(host.pk, [report(seen(pids=[101], restarts=1, exits=[exit_record]))])
    assert len(events(Program.objects.get(name="ticker"))) == 2


def test_a_memory_kill_is_an_oom_event_with_the_reason(host):
    observe.store_host(host.pk, [report(seen())])
    reason = "stopped for going over its memory limit (RSS 40000000 bytes, limit 33554432 bytes)"
    observe.store_host(host.pk, [report(seen(state="exited", pids=[], exit_reason=reason, exits=[
        {"at": 1_700_000_200.0, "how": "terminated by SIGKILL; not expected", "code": None, "expected": False,
         "oom": True}]))])
    assert events(Program.objects.get(name="ticker")) == [("oom", reason)]


def test_pm2_memory_restarts_are_oom_events(host):
    observe.store_host(host.pk, [report(seen("api"), manager="pm2")])
    reason = "restarted by PM2 2 time(s) for going over its memory limit"
    observe.store_host(host.pk, [report(seen("api", restarts=2, memory_restarts=2, exit_reason=reason),
                                        manager="pm2")])
    assert events(Program.objects.get(name="api")) == [("oom", reason)]


def test_state_changes_without_exits_are_started_and_stopped(host):
    observe.store_host(host.pk, [report(seen())])
    observe.store_host(host.pk, [report(seen(state="stopped", pids=[], raw_state="STOPPED"))])
    observe.store_host(host.pk, [report(seen(state="running", pids=[200]))])
    assert [kind for kind, _ in events(Program.objects.get(name="ticker"))] == ["stopped", "started"]


def test_a_lasting_crash_loop_raises_one_alert_and_its_end_resolves_it(host):
    observe.store_host(host.pk, [report(seen())])
    looping = seen(state="backoff", pids=[], crash_loop=True, exit_reason="exit status 3; not expected", restarts=3)
    observe.store_host(host.pk, [report(looping)], alert_after=60)
    program = Program.objects.get(name="ticker")
    assert program.crash_loop and program.crash_loop_since and not program.alerted
    assert not Alert.objects.filter(source=ALERT_SOURCE).exists()  # a loop that just began: not yet
    observe.store_host(host.pk, [report(looping)], alert_after=0)
    observe.store_host(host.pk, [report(looping)], alert_after=0)
    alert = Alert.objects.get(source=ALERT_SOURCE)
    assert alert.state == AlertState.FIRING and alert.host_id == host.pk and "crash loop" in alert.summary
    assert (alert.subject_kind, alert.subject_id, alert.subject_name) == ("program", program.pk, "ticker")
    assert Program.objects.get(name="ticker").alerted
    # Running again, but it restarted 3 times a moment ago: still the same loop.
    observe.store_host(host.pk, [report(seen(pids=[300], restarts=3))], alert_after=0)
    assert Program.objects.get(name="ticker").crash_loop
    assert Alert.objects.get(source=ALERT_SOURCE).state == AlertState.FIRING
    # Five quiet minutes later it is out of the loop.
    program = Program.objects.get(name="ticker")
    program.details["restart_marks"] = [[t - 400, n] for t, n in program.details["restart_marks"]]
    program.save(update_fields=["details"])
    observe.store_host(host.pk, [report(seen(pids=[300], restarts=3))], alert_after=0)
    alert.refresh_from_db()
    assert alert.state == AlertState.RESOLVED and not Program.objects.get(name="ticker").alerted


def test_restarts_piling_up_are_a_crash_loop_even_between_crashes(host):
    """systemd and PM2 show a loop only while a restart is pending; the restart count tells."""
    observe.store_host(host.pk, [report(seen("api"), manager="pm2")])
    for count in (1, 2):
        observe.store_host(host.pk, [report(seen("api", restarts=count, pids=[200 + count]), manager="pm2")])
        assert not Program.objects.get(name="api").crash_loop
    observe.store_host(host.pk, [report(seen("api", restarts=3, pids=[203]), manager="pm2")])
    api = Program.objects.get(name="api")
    assert api.crash_loop and api.details["restarts_recent"] == 3
    assert api.events.filter(kind="crashed", detail__startswith="crash loop: restarted 3 times").exists()


def test_an_action_a_person_runs_starts_the_count_afresh(host):
    observe.store_host(host.pk, [report(seen())])
    observe.store_host(host.pk, [report(seen(restarts=4, pids=[5]))])
    ticker = Program.objects.get(name="ticker")
    assert ticker.crash_loop
    observe.store_program(ticker.pk, seen(restarts=4, pids=[6]), action="restart")
    ticker.refresh_from_db()
    assert not ticker.crash_loop and ticker.events.filter(kind="restarted", detail="restart").exists()


def test_vanished_programs_are_forgotten_unless_the_portal_holds_their_spec(host):
    observe.store_host(host.pk, [report(seen(), seen("mine"))])
    Program.objects.filter(name="mine").update(managed=True, spec={"command": ["/bin/true"]})
    observe.store_host(host.pk, [report()])
    assert not Program.objects.filter(name="ticker").exists()
    mine = Program.objects.get(name="mine")
    assert (mine.state, mine.present) == ("absent", False)


def test_a_manager_that_is_down_leaves_its_programs_unknown_with_the_reason(host):
    observe.store_host(host.pk, [report(seen())])
    observe.store_host(host.pk, [report(available=False, reason="supervisord is not running (its socket ...)")])
    ticker = Program.objects.get(name="ticker")
    assert ticker.state == "unknown" and "not running" in ticker.details["not_listed"]
    assert not HostManager.objects.get(manager="supervisord").available


def test_a_refresh_of_many_programs_costs_a_few_queries(host):
    many = [seen(f"p{i}") for i in range(300)]
    observe.store_host(host.pk, [report(*many)])
    changed = [seen(f"p{i}", pids=[1000 + i], restarts=1) for i in range(300)]
    with CaptureQueriesContext(connection) as queries:
        observe.store_host(host.pk, [report(*changed)])
    assert len(queries) <= 20, [q["sql"][:80] for q in queries]
    assert Program.objects.filter(restarts=1).count() == 300
