"""Sites in a real browser: an administrator of all environments adds a site, places a host on it
through the host's edit page, finds it by site in the host list, and cannot delete the site while
the host is on it."""
import pytest

from ops_portal.accounts.choices import Role
from ops_portal.inventory.models import Host, Site
from tests import factories
from tests.browser.helpers import sign_in
from tests.helpers import person

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser, pytest.mark.live]


def test_add_a_site_place_a_host_on_it_and_filter_the_hosts_by_site(page, live_web):
    env = factories.environment("staging")
    host = factories.host(env, "web-1")
    factories.host(env, "web-2")
    person(None, Role.ADMIN, "ada")
    errors = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: msg.type == "error" and errors.append(msg.text))
    sign_in(page, live_web.url, "ada")

    page.goto(live_web.url + "/hosts/")
    page.click("text=Sites")
    page.fill("#add-site input[name=name]", "paris-dc2")
    page.fill("#add-site input[name=description]", "second room")
    page.click("#add-site button.primary")
    page.wait_for_selector("text=Site added.")
    assert "site.paris-dc2" in page.locator("#sites").inner_text()
    site = Site.objects.get(name="paris-dc2")

    page.goto(live_web.url + f"/hosts/{host.pk}/")
    page.click(".actions >> text=Edit")
    page.select_option("#object-form select[name=site]", str(site.pk))
    page.click("#object-form button.primary")
    page.wait_for_selector("text=Host web-1 saved.")
    assert "paris-dc2 (jobs run on queue site.paris-dc2)" in page.locator("#host-site").inner_text()
    assert Host.objects.get(pk=host.pk).site == site

    page.goto(live_web.url + "/hosts/")
    page.fill("input[name=site]", "paris-dc2")
    page.click("form.filters button[type=submit]")
    page.wait_for_url("**site=paris-dc2**")
    listed = page.locator("#hosts").inner_text()
    assert "web-1" in listed and "web-2" not in listed

    page.goto(live_web.url + "/sites/")
    page.locator("#sites tr", has_text="paris-dc2").locator("text=Delete…").click()
    assert "web-1" in page.locator("#confirm-delete").inner_text()
    page.click("#confirm-delete button.danger")
    page.wait_for_selector("text=still holds web-1")
    assert Site.objects.filter(pk=site.pk).exists()
    assert errors == []
