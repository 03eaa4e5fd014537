"""The program pages in a real browser: a program's state changes live, and its output follows live
from a real supervisord program into the page; the pages fit a 390 px wide screen."""
import pytest
from django.utils import timezone
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from ops_portal.accounts.choices import Role
from ops_portal.programs import observe
from ops_portal.programs.backend import ManagerReport
from ops_portal.programs.models import HostManager, Program
from tests import factories
from tests.browser.helpers import sign_in
from tests.programs.helpers import refresh, seen

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser, pytest.mark.live]
SUPPORTS = ["start", "stop", "restart", "signal", "pause", "resume", "scale", "apply", "remove", "logs"]


def test_state_changes_reach_the_open_pages_live_at_390px(page, live_web):
    env = factories.environment("alpha")
    host = factories.host(env, "web-1")
    HostManager.objects.create(host=host, manager="supervisord", available=True, version="4.2.5", supports=SUPPORTS,
                               checked=timezone.now())
    observe.store_host(host.pk, [ManagerReport("supervisord", True, "4.2.5", "", SUPPORTS, {},
                                                       [seen("ticker")])])
    ticker = Program.objects.get(name="ticker")
    user = factories.user("pia")
    factories.binding(role=Role.OPERATOR, user=user, environment=env)
    errors = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.set_viewport_size({"width": 390, "height": 800})
    sign_in(page, live_web.url, "pia")
    for url in ("/programs/", f"/programs/{ticker.pk}/", f"/hosts/{host.pk}/"):
        page.goto(live_web.url + url)
        page.wait_for_selector("body[data-live=live]")
        assert page.locator(f"[data-program='{ticker.pk}'] .js-state[data-state=running]").count() >= 1
        for attempt in range(10):  # the page subscribes as its socket opens: publish until it has
            observe.store_host(host.pk, [ManagerReport("supervisord", True, "4.2.5", "", SUPPORTS, {}, [
                seen("ticker", state="backoff", pids=[], crash_loop=True, restarts=4,
                     exit_reason="exit status 3; not expected")])])
            try:
                page.wait_for_selector(f"[data-program='{ticker.pk}'] .js-state[data-state=backoff]", timeout=1500)
                break
            except PlaywrightTimeout:
                assert attempt < 9, "the page never showed the new state"
        assert page.locator(f"[data-program='{ticker.pk}'] .js-crash").count() >= 1
        assert "exit status 3" in page.locator(f"[data-program='{ticker.pk}'] .js-reason").first.inner_text()
        wide = page.evaluate("document.documentElement.scrollWidth")
        culprits = page.evaluate("""Array.from(document.querySelectorAll('main *')).filter(
            el => el.getBoundingClientRect().right > 391 && !el.closest('.scroll-x')).slice(0, 5).map(
            el => el.tagName + '.' + el.className + '#' + el.id)""")
        assert wide <= 390, f"{url} is {wide}px wide: {culprits}"
        observe.store_host(host.pk, [ManagerReport("supervisord", True, "4.2.5", "", SUPPORTS, {},
                                                           [seen("ticker", pids=[7])])])
    assert errors == []


def test_following_a_program_streams_its_lines_onto_its_page(page, live_web, live_worker, pfleet):
    refresh(pfleet, "supervisord")
    ticker = Program.objects.get(host=pfleet.hosts["supervisord"], manager="supervisord", name="ticker")
    user = factories.user("otis")
    factories.binding(role=Role.OPERATOR, user=user, environment=pfleet.env)
    sign_in(page, live_web.url, "otis")
    page.goto(f"{live_web.url}/programs/{ticker.pk}/")
    page.select_option("#logs-form select[name=mode]", "follow")
    page.fill("#logs-form input[name=duration]", "20")
    page.click("#logs-form button[type=submit]")
    page.wait_for_selector("#program-log")
    page.wait_for_selector("#program-log div.stdout >> nth=1", timeout=45000)
    first = page.locator("#program-log div.stdout").first.inner_text()
    assert first.strip()
