"""The job page's Puppet Resources grid in a real browser follows the job's stream: each target's
resource counts (data.resources in its target event) appear as that target ends, in target order,
without a reload; a reload draws the same grid from the stored targets.

The run happens in this process (a JobRunner of a stand-in batch action reporting Puppet's data
shape, so one host can end while the other is held), its events reach the browser through the live
web server's websocket as a worker's do; the real puppet.apply on fleet hosts is in tests/puppet."""
import threading

import pytest

from ops_portal.accounts.choices import Role
from ops_portal.jobs import actions
from ops_portal.jobs import launch as launching
from ops_portal.jobs.choices import JobState
from ops_portal.jobs.launch import launch_adhoc
from ops_portal.jobs.runner import JobRunner, claim
from schedulers.base import CommandResult
from tests import factories
from tests.browser.helpers import sign_in
from tests.helpers import act, person
from tests.jobs.helpers import local_hosts, wait_job

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser, pytest.mark.live]

REVISION = "0123456789abcdef" * 2 + "01234567"


def test_the_resources_grid_fills_live_as_each_target_ends(page, live_web, monkeypatch):
    release = threading.Event()

    def run_batch(batch):
        for target in sorted(batch.targets, key=lambda t: t.index, reverse=True):  # the last host ends first
            if target.index == 0:
                assert release.wait(60), "the test never released the first host"
            failed = target.index == 0
            batch.finish(target, CommandResult(
                exit_code=4 if failed else 2, changed=not failed, error="1 resource failed" if failed else "",
                data={"noop": False, "puppet_exit": 4 if failed else 2, "revision": REVISION,
                      "resources": {"total": 7, "changed": 0 if failed else 2, "failed": int(failed),
                                    "out_of_sync": 0 if failed else 2, "unchanged": 6 if failed else 5}}))

    monkeypatch.setattr(actions, "_ACTIONS", dict(actions._ACTIONS))
    actions.register(actions.ActionSpec(name="puppet.standin", label="Apply (stand-in)", target_kind="host",
                                        parameters=[], run=None, run_batch=run_batch, mutating=False))
    monkeypatch.setattr(launching, "enqueue", lambda job: None)
    env = factories.environment("staging")
    local_hosts(env, 2, prefix="pup")
    operator = person(env, Role.OPERATOR, "pam")
    job = launch_adhoc(act(operator), environment=env, action="puppet.standin", selector={"all": True})
    errors = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    sign_in(page, live_web.url, "pam")
    page.goto(f"{live_web.url}/jobs/{job.pk}/")
    page.wait_for_selector("#job")
    assert page.locator("#puppet-resources-section").is_hidden()  # nothing yet
    page.wait_for_function("window.OpsPortal && window.OpsPortal.socket")

    runner = threading.Thread(target=lambda: JobRunner(claim(job.pk, "test-worker").job).run(), daemon=True)
    runner.start()
    page.wait_for_selector("#puppet-resources tbody tr[data-index='1']", timeout=30000)
    assert page.locator("#puppet-resources-section").is_visible()
    assert page.locator("#puppet-resources tbody tr").all_inner_texts() == [
        "pup-2\t7\t2\t0\t2\t5\t" + REVISION[:12]]  # the held host has no row yet
    release.set()
    page.wait_for_selector("#puppet-resources tbody tr[data-index='0']", timeout=30000)
    live_rows = page.locator("#puppet-resources tbody tr").all_inner_texts()
    assert live_rows == ["pup-1\t7\t0\t1\t0\t6\t" + REVISION[:12],
                         "pup-2\t7\t2\t0\t2\t5\t" + REVISION[:12]]  # in target order
    assert page.locator("#puppet-resources tbody tr[data-index='0'] td.bad").inner_text() == "1"
    runner.join(60)
    wait_job(job, JobState.FAILED)

    page.reload()
    page.wait_for_selector("#puppet-resources tbody tr[data-index='0']")
    assert page.locator("#puppet-resources tbody tr").all_inner_texts() == live_rows
    assert errors == []
