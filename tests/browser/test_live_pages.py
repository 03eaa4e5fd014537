"""Pages that stay true without a reload, and outages made visible, in a real Chromium.

Each test opens a page, changes the world behind its back (through the services, as another user
or a worker would) and waits for the page to say so, never reloading it.
"""
import re
import uuid

import pytest

from ops_portal.accounts.choices import Role
from ops_portal.approvals import services as approvals
from ops_portal.approvals.models import ApprovalPolicy
from ops_portal.inventory.choices import Transport
from ops_portal.jobs import launch as jobs_launch
from ops_portal.jobs.choices import JobState
from ops_portal.jobs.templates import create_template
from tests import factories
from tests.browser.helpers import sign_in
from tests.helpers import act, person, wait_until
from tests.jobs.helpers import launch, wait_job
from tests.live import Process, answers_healthz, daphne_argv, free_port, start_web, wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser, pytest.mark.live]


def _watch_errors(page, errors=None):
    errors = [] if errors is None else errors
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: msg.type == "error" and errors.append(msg.text))
    return errors


def _no_reload(page):
    """A marker that a reload would lose: the page must still carry it at the end."""
    page.evaluate("window.__notReloaded = true")
    return lambda: page.evaluate("window.__notReloaded === true")


def test_a_canceled_jobs_page_shows_canceled_counts_buttons_and_end_without_reload(page, live_web, live_worker):
    env = factories.environment("staging")
    for name in ("app-1", "app-2", "app-3"):
        factories.host(env, name, transport=Transport.LOCAL)
    user = person(env, Role.OPERATOR, "cora")
    errors = _watch_errors(page)
    job = launch(act(user), env, "echo started; sleep 600")
    sign_in(page, live_web.url, "cora")
    page.goto(f"{live_web.url}/jobs/{job.pk}/")
    still = _no_reload(page)
    page.wait_for_selector("#targets .js-tstate .state-running >> nth=2", timeout=30000)
    page.wait_for_selector(".js-state .badge[data-state=running]")
    assert page.locator(".js-cancel button").is_visible()
    assert page.locator(".js-relaunch").count() == 0
    assert "ended —" in page.locator(".js-timings").inner_text()

    jobs_launch.request_cancel(act(user), job)  # as if from another tab or the API

    page.wait_for_selector(".js-state .badge[data-state=canceled]", timeout=30000)
    wait_until(lambda: "3 canceled" in page.locator(".js-progress-text").inner_text(), 15, "canceled counts")
    assert page.locator(".js-progress-text").inner_text() == "0 ok, 0 failed, 3 canceled of 3 targets"
    assert page.locator(".progress .progress-ok").count() == 0  # no green bar for work not done
    assert page.locator(".progress .progress-canceled").count() == 1
    assert page.locator(".js-cancel").count() == 0
    assert page.locator(".js-relaunch button").inner_text() == "Launch again"
    assert re.search(r"ended \d\d:\d\d:\d\d \(\d+ s\)", page.locator(".js-timings").inner_text())
    assert still() and errors == [], errors


def test_the_approvers_inbox_fills_live_and_the_jobs_approval_box_follows(browser, live_web):
    env = factories.environment("production", is_production=True)
    factories.host(env, "db-1", transport=Transport.LOCAL)
    ApprovalPolicy.objects.create(name="prod-gate", environment=env, all_work=True)
    requester = person(env, Role.OPERATOR, "rita")
    approver = person(env, Role.APPROVER, "abe")
    inbox = browser.new_context().new_page()
    job_page = browser.new_context().new_page()
    errors = _watch_errors(job_page, _watch_errors(inbox))
    sign_in(inbox, live_web.url, "abe")
    inbox.goto(live_web.url + "/approvals/")
    assert "Nothing waits for you" in inbox.locator("#approvals-waiting").inner_text()
    inbox.wait_for_selector("#live-indicator.live")
    still = _no_reload(inbox)

    job = launch(act(requester), env, "echo deploy")
    assert job.state == JobState.PENDING_APPROVAL
    row = inbox.wait_for_selector(f"#approvals-waiting tr[data-approval='{job.approval_request_id}']")
    assert "rita" in row.inner_text() and "0/1" in row.inner_text()
    assert "Nothing waits for you" not in inbox.locator("#approvals-waiting").inner_text()
    inbox.wait_for_selector("#nav-approvals b:text-is('1')")  # the navigation counts it too

    sign_in(job_page, live_web.url, "rita")
    job_page.goto(f"{live_web.url}/jobs/{job.pk}/")
    box = job_page.locator(f"#job-approvals [data-approval='{job.approval_request_id}']")
    assert "0 of 1 approvals" in box.inner_text() and "Pending" in box.inner_text()
    assert "Waiting for approval: 0 of 1" in job_page.locator(".js-waiting").inner_text()
    job_page.wait_for_selector("#live-indicator.live")

    request = job.approval_request
    approvals.decide(act(approver), request, "approve", "ship it")

    inbox.wait_for_selector(f"#approvals-waiting tr[data-approval='{request.pk}']", state="detached")
    assert "Nothing waits for you" in inbox.locator("#approvals-waiting").inner_text()
    inbox.wait_for_selector("#nav-approvals b:text-is('0')")
    job_page.wait_for_selector(f"#job-approvals [data-approval='{request.pk}'] .badge[data-state=approved]")
    assert "1 of 1 approvals" in box.inner_text() and "abe approved" in box.inner_text()
    job_page.wait_for_selector(".js-state .badge:not([data-state=pending_approval])")
    assert still() and errors == [], errors
    inbox.context.close()
    job_page.context.close()


def _start_web_on(port, live_env, live_logs, name):
    process = Process(name, daphne_argv(port), live_env, live_logs)
    process.url = f"http://127.0.0.1:{port}"
    wait_for(lambda: answers_healthz(process.url), 60, "web /healthz", process)
    return process


def test_the_offline_banner_comes_and_goes_and_the_log_resumes_without_a_gap(page, live_env, live_logs, live_worker):
    env = factories.environment("staging")
    factories.host(env, "app-1", transport=Transport.LOCAL)
    user = person(env, Role.OPERATOR, "odin")
    port = free_port()
    web = _start_web_on(port, live_env, live_logs, "web-outage")
    try:
        errors = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        job = launch(act(user), env, 'for i in $(seq 1 80); do echo "line $i"; sleep 0.15; done')
        sign_in(page, web.url, "odin")
        page.goto(f"{web.url}/jobs/{job.pk}/")
        still = _no_reload(page)
        page.wait_for_selector("#live-indicator.live")
        wait_until(lambda: int(page.locator(".js-log-count").inner_text().split()[0]) >= 8, 30, "some output")
        assert page.locator("#offline-banner").is_hidden()

        web.stop()
        banner = page.wait_for_selector("#offline-banner:not([hidden])", timeout=15000)
        assert re.fullmatch(r"Offline since \d\d:\d\d:\d\d, retrying… .*", banner.inner_text())
        assert page.locator("#live-indicator").inner_text() == "offline"
        page.wait_for_timeout(3000)  # the job goes on writing while the page cannot hear it

        web = _start_web_on(port, live_env, live_logs, "web-outage-back")
        page.wait_for_selector("#offline-banner", state="hidden", timeout=20000)
        page.wait_for_selector("#live-indicator.live")
        wait_job(job, JobState.SUCCEEDED, timeout=60)
        page.wait_for_selector(".js-state .badge[data-state=succeeded]", timeout=20000)
        page.uncheck(".js-log-follow")
        rows = _all_log_rows(page)
        assert len(rows) == int(page.locator(".js-log-count").inner_text().split()[0])
        numbered = [row.split("| ", 1)[1] for row in rows if "| line " in row]
        assert numbered == [f"line {i}" for i in range(1, 81)], numbered  # no gap, no repeat
        assert still() and errors == [], errors
    finally:
        web.stop()


def _all_log_rows(page):
    """Every row of the virtualised log, in order: scrolled through from the top, each rendered row
    placed by the index its block starts at (the block's translateY over the row height)."""
    by_index = {}
    log = page.locator("#log")
    log.evaluate("el => el.scrollTop = 0")
    while True:
        page.wait_for_timeout(60)
        first, texts, at_end = log.evaluate("""el => {
            const rows = el.querySelector('.log-rows');
            const first = Math.round(parseFloat(rows.style.transform.replace(/[^0-9.]/g, '') || '0') / 18);
            return [first, Array.from(rows.children, r => r.textContent),
                    el.scrollTop + el.clientHeight >= el.scrollHeight - 1];
        }""")
        for i, text in enumerate(texts):
            by_index[first + i] = text
        if at_end:
            break
        log.evaluate("el => el.scrollTop += el.clientHeight")
    return [by_index[i] for i in sorted(by_index)]


def test_a_queued_job_with_no_worker_says_so_and_a_ping_nobody_answers_says_so(page, live_env, live_logs):
    env = factories.environment("staging")
    factories.host(env, "app-1", transport=Transport.LOCAL)
    admin = person(env, Role.ADMIN, "quinn")
    queue = f"nobody-{uuid.uuid4().hex[:8]}"  # no worker of this run (nor of any other) takes it
    template = create_template(act(admin), name="on-an-empty-queue", environment=env, action="host.command",
                               selector={"all": True}, action_params={"command": "true"}, queue=queue)
    job = jobs_launch.launch(act(admin), template)
    web = start_web({**live_env, "CELERY_DEFAULT_QUEUE": queue}, live_logs, name="web-no-worker")
    try:
        errors = _watch_errors(page)
        sign_in(page, web.url, "quinn")
        page.goto(f"{web.url}/jobs/{job.pk}/")
        assert page.locator(".js-state .badge").get_attribute("data-state") == "queued"
        assert page.locator(".js-waiting").inner_text() == (
            f"No worker is alive on queue {queue}: it runs as soon as one takes that queue.")

        page.goto(web.url + "/")
        page.wait_for_selector("#live-indicator.live")
        page.click("#ping-worker")
        page.wait_for_selector("#status-feed li.ping-pending")
        unanswered = page.wait_for_selector("#status-feed li.ping-unanswered", timeout=20000)
        assert re.fullmatch(r"\d\d:\d\d:\d\d no worker answered within 10 s: .*", unanswered.inner_text())
        assert errors == [], errors
    finally:
        web.stop()
