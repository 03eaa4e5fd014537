"""Every main page in a real Chromium, at a laptop's 1440x900 and a phone's 390x844, signed in as an
admin of a populated portal: no console or page errors, no sideways scrolling, the navigation and
"Sign out" reachable, and no serious or critical finding of axe-core (vendored, injected by the test).

A full-page screenshot of each page at each size is kept under var/test-artifacts/screenshots/
(see tests/README.md). Each test visits every page in one browser context and reports every
finding at once, naming the page.
"""
import re
import time

import pytest

from ops_portal.accounts.choices import Role
from ops_portal.approvals.models import ApprovalPolicy, ApprovalRequest
from ops_portal.audit.models import AuditEvent
from ops_portal.configs import services as configs
from ops_portal.core.context import Actor
from ops_portal.inventory.choices import Transport
from ops_portal.jobs import schedules
from ops_portal.jobs.choices import JobState
from ops_portal.jobs.templates import create_template
from ops_portal.monitoring import metrics
from ops_portal.monitoring import services as monitoring
from ops_portal.processes import store as process_store
from ops_portal.programs import services as programs
from tests import factories
from tests.browser.helpers import sign_in
from tests.helpers import ROOT, act, person, wait_until
from tests.jobs.helpers import launch, wait_job
from tests.processes.helpers import proc, snapshot

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser, pytest.mark.live]

AXE = ROOT / "static" / "vendor" / "axe-core" / "axe.min.js"
SCREENSHOTS = ROOT / "var" / "test-artifacts" / "screenshots"
LAPTOP = {"width": 1440, "height": 900}
PHONE = {"width": 390, "height": 844}
BLOCKING = ("serious", "critical")


def _populate():
    """A portal with something on every page: hosts with samples, a finished job with output, a job
    waiting for the admin's approval, a template and its schedule, a firing alert, a configuration
    template, a program, a process scan, a team and a credential. Returns the admin and the pages to visit."""
    staging = factories.environment("staging")
    production = factories.environment("production", is_production=True)
    admin = person(None, Role.ADMIN, "ada")
    operator = person(production, Role.OPERATOR, "olga")
    web = factories.host_group(staging, "web")
    hosts = [factories.host(staging, f"web-{i}", transport=Transport.LOCAL) for i in (1, 2)]
    for host in hosts:
        host.groups.add(web)
    factories.host(production, "db-1", transport=Transport.LOCAL)
    now = int(time.time())
    for minutes_ago, cpu in ((10, 12.0), (5, 30.0), (0, 18.0)):
        metrics.store([(hosts[0].pk, now - 60 * minutes_ago,
                        [("cpu_percent", "", cpu), ("memory_percent", "", 41.0), ("disk_percent", "/", 63.0)])])

    job = wait_job(launch(act(admin), staging, 'echo "hello from $OPSPORTAL_TARGET"; echo "a warning" >&2'),
                   JobState.SUCCEEDED)
    ApprovalPolicy.objects.create(name="production-always", environment=production, all_work=True)
    gated = launch(act(operator), production, "uptime")
    approval = ApprovalRequest.objects.get(pk=gated.approval_request_id)

    template = create_template(act(admin), name="restart-web", environment=staging, action="host.command",
                               selector={"groups": ["web"]}, action_params={"command": "true"})
    schedule = schedules.create_schedule(act(admin), name="nightly", template=template, kind="cron", cron="0 3 * * *")
    monitoring.create_rule(Actor.system(), name="cpu-hot", environment=staging, metric="cpu_percent", threshold=90)
    monitoring.fire(Actor.system(), source="rule", key="cpu-hot:web-1", environment=staging, host=hosts[0],
                    severity="warning", summary="CPU above 90 % on web-1")
    config = configs.create_config(act(admin), name="motd", environment=staging, selector={"all": True},
                                   path="/etc/motd", content="hello {{ host.name }}\n")
    program = programs.create_program(act(admin), host=hosts[0], manager="supervisord", name="worker",
                                      spec={"command": ["/bin/sleep", "100"]})
    process_store.store_scan(hosts[0].pk, snapshot([proc(1, "init", ppid=0), proc(40, "sshd"),
                                                    proc(77, "gunicorn", ppid=40, cpu=3.5)]))
    process = hosts[0].processes.get(pid=77)
    factories.team("operations", members=[admin, operator])
    factories.credential(staging, "deploy-key")
    entry = AuditEvent.objects.order_by("-pk").first()

    pages = {
        "dashboard": "/",
        "hosts": "/hosts/",
        "host": f"/hosts/{hosts[0].pk}/",
        "compliance": "/compliance/",
        "credentials": "/credentials/",
        "jobs": "/jobs/",
        "job": f"/jobs/{job.pk}/",
        "job-waiting": f"/jobs/{gated.pk}/",
        "job-new": "/jobs/new/",
        "templates": "/templates/",
        "template-new": "/templates/new/",
        "template-launch": f"/templates/{template.pk}/launch/",
        "schedules": "/schedules/",
        "schedule-edit": f"/schedules/{schedule.pk}/edit/",
        "approvals": "/approvals/",
        "approval": f"/approvals/{approval.pk}/",
        "approval-policies": "/approvals/policies/",
        "approval-policy-new": "/approvals/policies/new/",
        "monitoring": "/monitoring/",
        "alert-rule-new": "/monitoring/rules/new/",
        "audit": "/audit/",
        "audit-entry": f"/audit/{entry.pk}/",
        "containers": "/containers/",
        "engines": "/containers/engines/",
        "services": "/containers/services/",
        "stacks": "/containers/stacks/",
        "allowed-paths": "/containers/allowed-paths/",
        "autoscaling": "/containers/autoscaling/",
        "healing": "/containers/healing/",
        "programs": "/programs/",
        "program": f"/programs/{program.pk}/",
        "program-new": "/programs/new/",
        "processes": "/processes/",
        "host-processes": f"/processes/hosts/{hosts[0].pk}/",
        "process": f"/processes/{process.pk}/",
        "access": "/access/",
        "team-new": "/access/teams/new/",
        "configs": "/configs/",
        "config": f"/configs/{config.pk}/",
        "config-new": "/configs/new/",
        "tokens": "/account/tokens/",
        "password": "/account/password/",
    }
    return admin, pages


def _axe_findings(page):
    """Run axe-core in the page; each serious or critical violation as 'rule (impact): node: message'."""
    if not page.evaluate("typeof window.axe === 'object'"):
        # evaluated over the DevTools protocol, so the page's script-src 'self' does not refuse it
        page.evaluate(AXE.read_text())
    result = page.evaluate("""async () => {
        const r = await axe.run(document, {resultTypes: ["violations"]});
        return r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
            nodes: v.nodes.map(n => ({target: n.target.join(" "), summary: n.failureSummary}))}));
    }""")
    return [f"{v['id']} ({v['impact']}) at {node['target']}: {v['help']}. "
            + " ".join((node["summary"] or "").split())
            for v in result if v["impact"] in BLOCKING for node in v["nodes"]]


def _overflow(page):
    """How many CSS pixels the document is wider than the window (0 when it fits)."""
    return page.evaluate("document.documentElement.scrollWidth - window.innerWidth")


def _outside_viewport(page, selector):
    """The texts of elements matched by `selector` that cannot be seen: not wholly inside the window,
    or covered at their centre by something else (a box that clips them, another part of the bar)."""
    return page.evaluate("""selector => Array.from(document.querySelectorAll(selector)).filter(el => {
        const r = el.getBoundingClientRect();
        if (r.width === 0 || r.height === 0 || r.left < 0 || r.right > window.innerWidth || r.top < 0
            || r.bottom > window.innerHeight) { return true; }
        const top = document.elementFromPoint(r.left + r.width / 2, r.top + r.height / 2);
        return !top || !(el === top || el.contains(top));
    }).map(el => el.textContent.trim())""", selector)


def _open_navigation(page):
    """On a narrow window the sections sit behind a menu button: open it when it is shown.
    Return whether it was opened."""
    toggle = page.locator("#nav-toggle")
    if toggle.count() and toggle.is_visible() and toggle.get_attribute("aria-expanded") != "true":
        toggle.click()
        return True
    return False


def _settled(page):
    """A function that waits until no request of the page has been in flight for 0.2 s (what htmx
    and the charts fetch after loading); faster than "networkidle", which always waits 0.5 s."""
    inflight = set()
    page.on("request", lambda request: inflight.add(request))
    page.on("requestfinished", lambda request: inflight.discard(request))
    page.on("requestfailed", lambda request: inflight.discard(request))

    def wait(timeout=15.0):
        deadline, quiet = time.monotonic() + timeout, 0
        while quiet < 2 and time.monotonic() < deadline:
            page.wait_for_timeout(100)
            quiet = quiet + 1 if not inflight else 0

    return wait


def _visit_all(page, base, pages, sizes):
    """Visit each page at each size; return {kind of finding: [messages naming the page and size]}."""
    findings = {"errors": [], "overflow": [], "navigation": [], "axe": []}
    errors = []
    page.on("pageerror", lambda exc: errors.append(f"page error: {exc}"))
    page.on("console", lambda msg: msg.type == "error" and errors.append(f"console: {msg.text}"))
    settle = _settled(page)
    for size in sizes:
        shots = SCREENSHOTS / f"{size['width']}x{size['height']}"
        shots.mkdir(parents=True, exist_ok=True)
        print(f"screenshots at {size['width']}x{size['height']}: {shots}")
        page.set_viewport_size(size)
        for name, path in pages.items():
            where = f"{name} ({path}) at {size['width']} px"
            page.goto(base + path)
            settle()
            page.screenshot(path=str(shots / f"{name}.png"), full_page=True)
            findings["axe"] += [f"{where}: {finding}" for finding in _axe_findings(page)]
            if (extra := _overflow(page)) > 0:
                findings["overflow"].append(f"{where} is {extra} px wider than the window")
            if _open_navigation(page) and name == "dashboard":
                page.screenshot(path=str(shots / "dashboard-menu-open.png"))
            for selector in ("nav.sections a", "#sign-out"):
                if lost := _outside_viewport(page, selector):
                    findings["navigation"].append(f"{where}: {selector} not reachable: {lost}")
            findings["errors"] += [f"{where}: {error}" for error in errors]
            errors.clear()
    return findings


def _assert_clean(findings):
    """Fail once, listing every finding of every kind."""
    report = [f"{kind}: {message}" for kind, messages in findings.items() for message in messages]
    if report:
        pytest.fail(f"{len(report)} findings:\n" + "\n".join(report), pytrace=False)


def test_every_main_page_at_laptop_and_phone_width_has_no_errors_fits_and_no_serious_axe_violation(
        page, live_web, live_worker):
    admin, pages = _populate()
    sign_in(page, live_web.url, admin.username)
    _assert_clean(_visit_all(page, live_web.url, pages, [LAPTOP, PHONE]))


def test_the_sign_in_page_fits_a_phone_and_has_no_serious_axe_violation(page, live_web):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.set_viewport_size(PHONE)
    errors = []
    page.on("console", lambda msg: msg.type == "error" and errors.append(msg.text))
    page.goto(live_web.url + "/login/")
    page.screenshot(path=str(SCREENSHOTS / "login-390.png"), full_page=True)
    assert _axe_findings(page) == []
    assert _overflow(page) <= 0
    assert page.get_by_label("User name").is_visible() and page.get_by_label("Password").is_visible()
    assert errors == []


def test_on_a_phone_the_menu_opens_and_closes_from_the_keyboard_with_a_visible_focus(page, live_web):
    factories.environment("staging")
    admin = person(None, Role.ADMIN, "ada")
    page.set_viewport_size(PHONE)
    sign_in(page, live_web.url, admin.username)
    toggle = page.locator("#nav-toggle")
    assert toggle.is_visible() and toggle.get_attribute("aria-expanded") == "false"
    assert not page.locator("nav.sections").is_visible()

    page.keyboard.press("Tab")  # the skip link comes first
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    page.keyboard.press("Tab")  # the brand
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "nav-toggle"
    assert page.evaluate("getComputedStyle(document.activeElement).outlineStyle") != "none"
    page.keyboard.press("Enter")
    assert toggle.get_attribute("aria-expanded") == "true"
    assert page.locator("nav.sections a", has_text="Audit log").is_visible()
    assert _outside_viewport(page, "nav.sections a") == []

    page.keyboard.press("Tab")  # into the open menu: its first section
    assert page.evaluate("document.activeElement.textContent") == "Dashboard"
    page.keyboard.press("Escape")
    assert toggle.get_attribute("aria-expanded") == "false"
    assert page.evaluate("document.activeElement.id") == "nav-toggle"
    assert not page.locator("nav.sections").is_visible()


def test_on_laptops_and_tablets_every_section_shows_without_a_menu_button(page, live_web):
    factories.environment("staging")
    admin = person(None, Role.ADMIN, "ada")
    sign_in(page, live_web.url, admin.username)
    for width in (1440, 1280, 1024, 768):
        page.set_viewport_size({"width": width, "height": 800})
        assert not page.locator("#nav-toggle").is_visible(), width
        assert _outside_viewport(page, "nav.sections a, #sign-out") == [], width
        assert _overflow(page) <= 0, width


def test_a_job_finishing_while_its_page_is_open_is_read_out_by_the_live_region(page, live_web, live_worker):
    env = factories.environment("staging")
    factories.host(env, "app-1", transport=Transport.LOCAL)
    user = person(env, Role.OPERATOR, "otto")
    job = launch(act(user), env, "sleep 3; echo done")
    sign_in(page, live_web.url, "otto")
    page.goto(f"{live_web.url}/jobs/{job.pk}/")
    announcer = page.locator("#announcer")
    assert announcer.get_attribute("aria-live") == "polite"
    page.wait_for_selector(".js-state .badge[data-state=succeeded]", timeout=30000)
    wait_until(lambda: "Succeeded" in announcer.inner_text(), 15, "the announcement")
    assert announcer.inner_text() == "Job Succeeded: 1 ok, 0 failed of 1 target"


def test_states_reached_by_interaction_have_no_serious_axe_violation_and_fit_a_phone(page, live_web):
    """What a page shows after the user acts, which loading alone never shows: a form sent back with
    field errors, the launch form asking to confirm the target count, a delete confirmation, the
    flash message after a save, the search box's results, the open menu, and the offline banner."""
    env = factories.environment("staging")
    for name in ("app-1", "app-2"):
        factories.host(env, name, transport=Transport.LOCAL)
    admin = person(None, Role.ADMIN, "ada")
    template = create_template(act(admin), name="restart-app", environment=env, action="host.command",
                               selector={"all": True}, action_params={"command": "true"})
    errors, findings = [], {"errors": [], "overflow": [], "axe": [], "shown": []}
    page.on("pageerror", lambda exc: errors.append(f"page error: {exc}"))
    page.on("console", lambda msg: msg.type == "error" and "WebSocket" not in msg.text
            and errors.append(f"console: {msg.text}"))
    settle = _settled(page)
    sign_in(page, live_web.url, admin.username)
    shots = SCREENSHOTS / "states"
    shots.mkdir(parents=True, exist_ok=True)

    def check(name, shown):
        """The state is on screen (`shown`, a selector), then axe, overflow and errors, at this size."""
        settle()
        width = page.viewport_size["width"]
        where = f"{name} at {width} px"
        if not page.locator(shown).first.is_visible():
            findings["shown"].append(f"{where}: {shown} is not shown")
        page.screenshot(path=str(shots / f"{name}-{width}.png"), full_page=True)
        findings["axe"] += [f"{where}: {finding}" for finding in _axe_findings(page)]
        if (extra := _overflow(page)) > 0:
            findings["overflow"].append(f"{where} is {extra} px wider than the window")
        findings["errors"] += [f"{where}: {error}" for error in errors]
        errors.clear()

    for size in (LAPTOP, PHONE):
        page.set_viewport_size(size)
        page.goto(live_web.url + "/templates/new/")
        page.fill("input[name=name]", "bad name;")
        page.fill("textarea[name=selector]", '{"bogus": 1}')
        page.click("#template-form button.primary")  # sent back by the server with its field errors
        check("template-form-errors", ".errorlist")

        page.goto(live_web.url + "/jobs/new/")
        settle()
        # The live target count is asked again when the action changes: let it answer (leaving the
        # page while it is asked makes htmx log the aborted request as an error).
        with page.expect_response(lambda response: "/jobs/new/targets/" in response.url):
            page.select_option("select[name=action]", "host.command")
        page.fill("textarea[name='host.command__command']", "uptime")
        page.click("main button.primary")  # two targets: the count must be confirmed first
        check("launch-confirm-count", ".confirm.errors")

        page.goto(f"{live_web.url}/templates/{template.pk}/delete/")
        check("delete-confirmation", "#confirm-delete")

        page.goto(f"{live_web.url}/templates/{template.pk}/edit/")
        page.click("#template-form button.primary")
        check("saved-message", "text=Template restart-app saved")

        page.goto(live_web.url + "/")
        if _open_navigation(page):
            check("menu-open", "nav.sections")
        page.fill("#nav-search-q", "app")
        page.wait_for_selector("#nav-search-results:not([hidden])")
        check("search-results", "#nav-search-results")

    # The server goes away: every socket the page opens is closed at once, so after a few seconds
    # the banner says since when the page is offline.
    page.context.route_web_socket(re.compile(r"/ws/$"), lambda ws: ws.close(code=1011))
    for size in (LAPTOP, PHONE):
        page.set_viewport_size(size)
        page.goto(live_web.url + "/jobs/")
        page.wait_for_selector("#offline-banner:not([hidden])", timeout=20000)
        assert "Offline since" in page.locator("#offline-banner").inner_text()
        check("offline-banner", "#offline-banner")
    _assert_clean(findings)
