"""The processes pages in a real browser: a scan stored while the page is open shows without a
reload (the "processes" stream), and the pages fit a 390 px wide phone."""
import pytest

from ops_portal.accounts.choices import Role
from ops_portal.processes import store
from schedulers.process import inventory
from tests import factories
from tests.browser.conftest import browser, page  # noqa: F401
from tests.browser.helpers import sign_in
from tests.monitoring.test_browser import in_thread, watch_errors
from tests.processes.helpers import proc, snapshot

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser, pytest.mark.live]


@pytest.fixture
def host(db):
    env = factories.environment("staging")
    factories.binding(role=Role.OPERATOR, user=factories.user("olga"), environment=env)
    host = factories.host(env, "web-1")
    store.store_scan(host.pk, snapshot([proc(1, "init", ppid=0), proc(40, "sshd")], at=1_800_000_000))
    return host


def test_a_scan_stored_while_the_host_page_is_open_shows_at_once(page, live_web, host):  # noqa: F811
    errors = watch_errors(page)
    sign_in(page, live_web.url, "olga")
    page.goto(f"{live_web.url}/processes/hosts/{host.pk}/")
    page.wait_for_selector("#process-tree")
    # not wait_for_function: when its first try fails, Playwright polls with an eval that the page's
    # script-src 'self' refuses (a flake seen at random on a loaded machine)
    page.wait_for_selector("#live-indicator.live")
    page.fill("#process-filters input[name=q]", "typed, not lost")
    before = snapshot([proc(1, "init", ppid=0), proc(40, "sshd")], at=1_800_000_000)
    after = snapshot([proc(1, "init", ppid=0), proc(40, "sshd"), proc(77, "freshly-started", ppid=40)],
                     at=1_800_000_060)
    in_thread(store.store_scan, host.pk, after, inventory.diff(before, after))
    page.wait_for_selector("#process-tree td[title='/usr/bin/freshly-started --serve']")
    assert "1 new" in page.locator("#process-changes").inner_text()
    assert page.input_value("#process-filters input[name=q]") == "typed, not lost"
    assert errors == []


def test_the_processes_pages_fit_a_phone(page, live_web, host):  # noqa: F811
    page.set_viewport_size({"width": 390, "height": 844})
    sign_in(page, live_web.url, "olga")
    for path in ("/processes/", f"/processes/hosts/{host.pk}/", f"/processes/{host.processes.get(pid=40).pk}/"):
        page.goto(live_web.url + path)
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, f"{path} is {width} px wide"
