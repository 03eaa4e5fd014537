"""One lock order, template row then schedule row: editing a template while its schedule is
edited or fires never deadlocks (on PostgreSQL, in two threads with their own connections)."""
import threading
import time

import pytest
from django.db import connection

from ops_portal.accounts.choices import Role
from ops_portal.approvals import services as approvals
from ops_portal.approvals.models import ApprovalPolicy
from ops_portal.inventory.choices import Transport
from ops_portal.jobs import schedules
from ops_portal.jobs.models import JobSchedule, JobTemplate
from ops_portal.jobs.templates import create_template, update_template
from tests import factories
from tests.helpers import act, person

pytestmark = pytest.mark.django_db(transaction=True)
WAIT = 3.0  # how long the template edit holds its lock waiting for the other side to lock the schedule


@pytest.fixture
def setup():
    env = factories.environment("alpha")
    factories.host(env, "h-1", transport=Transport.LOCAL)
    actor = act(person(env, Role.ADMIN))
    # A standing approval: both edits end it and ask again, so both touch its row too.
    ApprovalPolicy.objects.create(name="gate", environment=env, templates=["tick"])
    template = create_template(actor, name="tick", environment=env, action="host.command",
                                        selector={"all": True}, action_params={"command": "echo tick"})
    schedule = schedules.create_schedule(actor, name="s", template=template, kind="cron", cron="*/5 * * * *")
    return actor, template, schedule


def run_both(template_edit, other_edit, monkeypatch, other_holds_schedule_in):
    """Start the template edit; once it holds the template row, start the other edit, and let the
    template edit go on when the other holds the schedule row (or after WAIT when it cannot)."""
    template_locked, schedule_locked = threading.Event(), threading.Event()
    errors = []
    real_refresh = schedules.refresh_for_template

    def refresh_after_the_other_side(actor, template):
        template_locked.set()
        schedule_locked.wait(WAIT)
        real_refresh(actor, template)

    real_hook = getattr(schedules, other_holds_schedule_in)

    def hook(*args, **kwargs):
        schedule_locked.set()
        time.sleep(0.5)  # the template edit now reaches for the rows the other side wants next
        return real_hook(*args, **kwargs)

    monkeypatch.setattr(schedules, "refresh_for_template", refresh_after_the_other_side)
    monkeypatch.setattr(schedules, other_holds_schedule_in, hook)

    def thread(func, wait_for=None):
        def body():
            try:
                if wait_for is not None:
                    wait_for.wait(WAIT * 2)
                func()
            except Exception as exc:  # a deadlock surfaces as OperationalError in one thread
                errors.append(exc)
            finally:
                connection.close()

        return threading.Thread(target=body)

    threads = [thread(template_edit), thread(other_edit, wait_for=template_locked)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not any(t.is_alive() for t in threads), "an edit hangs"
    assert errors == []


def test_a_template_edit_and_a_schedule_edit_at_once_both_finish(setup, monkeypatch):
    actor, template, schedule = setup
    run_both(lambda: update_template(actor, template, description="edited"),
             lambda: schedules.update_schedule(actor, schedule, cron="*/10 * * * *"),
             monkeypatch, "_sync_beat")
    assert JobTemplate.objects.get(pk=template.pk).description == "edited"
    assert JobSchedule.objects.get(pk=schedule.pk).cron == "*/10 * * * *"


def test_a_template_edit_while_its_schedule_fires_both_finish(setup, monkeypatch):
    actor, template, schedule = setup
    approver = person(template.environment, Role.APPROVER)
    approvals.decide(act(approver), schedule.standing_request, "approve")  # it launches
    run_both(lambda: update_template(actor, template, description="edited"),
             lambda: schedules.fire(schedule.pk),
             monkeypatch, "_launch")
    assert JobTemplate.objects.get(pk=template.pk).description == "edited"
    run = schedule.runs.get()
    assert run.outcome in ("launched", "needs_approval"), run.detail  # before or after the edit
