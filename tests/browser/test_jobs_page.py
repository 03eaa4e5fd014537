"""The job page in a real browser: launch from the form, watch output and targets arrive live."""
import pytest

from ops_portal.accounts.choices import Role
from ops_portal.inventory.choices import Transport
from tests import factories
from tests.browser.helpers import sign_in
from tests.helpers import person

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser, pytest.mark.live]


def test_launch_an_action_and_follow_it_live(page, live_web, live_worker):
    env = factories.environment("staging")
    for name in ("app-1", "app-2"):
        factories.host(env, name, transport=Transport.LOCAL)
    person(env, Role.OPERATOR, "opal")
    errors = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    sign_in(page, live_web.url, "opal")
    page.goto(live_web.url + "/jobs/new/")
    page.select_option("select[name=action]", "host.command")
    page.fill("textarea[name='host.command__command']",
              'for i in $(seq 1 30); do echo "$OPSPORTAL_TARGET step $i"; sleep 0.05; done')
    page.click("main button.primary")
    # two targets: the page shows the preview and asks to confirm the count first
    page.check(".js-confirm-count")
    page.click("main button.primary")
    page.wait_for_selector("#job")
    page.wait_for_selector("#targets .js-tstate .state-ok >> nth=1", timeout=30000)
    page.wait_for_selector(".js-state .badge[data-state=succeeded]")
    assert page.locator(".js-progress-text").inner_text() == "2 ok, 0 failed of 2 targets"
    page.select_option(".js-log-target", "1")
    page.uncheck(".js-log-follow")
    page.locator("#log").evaluate("el => el.scrollTop = 0")
    page.wait_for_selector("#log .log-row")
    first_rows = page.locator("#log .log-row").all_inner_texts()
    assert first_rows[0] == "app-2 | ** running"
    assert "app-2 | app-2 step 1" in first_rows
    assert all(row.startswith("app-2 |") for row in first_rows)
    assert page.locator(".js-log-count").inner_text() == "32 lines"
    assert errors == []


def test_cancel_from_the_job_page(page, live_web, live_worker):
    env = factories.environment("staging")
    factories.host(env, "app-1", transport=Transport.LOCAL)
    person(env, Role.OPERATOR, "otto")
    sign_in(page, live_web.url, "otto")
    page.goto(live_web.url + "/jobs/new/")
    page.fill("textarea[name='host.command__command']", "echo started; sleep 600")
    page.click("main button.primary")
    page.wait_for_selector("text=started")
    page.click(".js-cancel button")
    page.wait_for_selector(".js-state .badge[data-state=canceled]", timeout=30000)
    assert page.locator("#targets .js-tstate").inner_text() == "Canceled"


def test_pick_a_group_see_the_live_count_preview_and_launch(page, live_web, live_worker):
    env = factories.environment("staging")
    web = factories.host_group(env, "web")
    for name in ("app-1", "app-2", "app-3"):
        host = factories.host(env, name, transport=Transport.LOCAL)
        if name != "app-3":
            host.groups.add(web)
    other = factories.environment("elsewhere")
    factories.host_group(other, "web").hosts.add(factories.host(other, "far-1", transport=Transport.LOCAL))
    person(env, Role.OPERATOR, "pia")
    errors = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    sign_in(page, live_web.url, "pia")
    page.goto(live_web.url + "/jobs/new/")
    page.wait_for_selector("#target-count .js-target-count[data-count='3']")
    page.uncheck("input[name=target_all]")
    page.wait_for_selector("#target-count .errors")
    page.select_option("select[name=target_groups]", "web")
    page.wait_for_selector("#target-count .js-target-count[data-count='2']")
    assert page.locator("#target-count .target-names").inner_text() == "app-1, app-2"
    page.select_option("select[name=strategy_kind]", "rolling")
    page.fill("input[name=batch_size]", "1")
    page.fill("textarea[name='host.command__command']", 'echo "hello from $OPSPORTAL_TARGET"')
    page.click("button[name=step][value=preview]")
    page.wait_for_selector("#launch-preview")
    assert page.locator(".js-preview-count").inner_text() == "2 targets"
    assert "Rolling in 2 batches" in page.locator("#launch-preview").inner_text()
    assert "No approval policy applies" in page.locator(".js-preview-approval").inner_text()
    # the choices survive the preview: the live count still says 2
    page.wait_for_selector("#target-count .js-target-count[data-count='2']")
    page.check(".js-confirm-count")
    page.click("main button.primary")
    page.wait_for_selector("#job")
    page.wait_for_selector(".js-state .badge[data-state=succeeded]", timeout=30000)
    assert page.locator("#targets tbody tr td:nth-child(2)").all_inner_texts() == ["app-1", "app-2"]
    assert page.locator("#targets tbody tr td:nth-child(3)").all_inner_texts() == ["1", "2"]  # batches of one
    assert "far-1" not in page.content()
    assert errors == []
