"""Projects in a real browser with a live worker: an administrator of all environments registers a
Git project through the form (a bad URL comes back on its field), syncs it with "Sync now", follows
the sync job and finds the commit as the project's revision; an operator sees the project and
may sync it but is offered no management."""
import pytest

from ops_portal.accounts.choices import Role
from ops_portal.projects.models import Project
from tests import factories
from tests.browser.helpers import sign_in
from tests.helpers import person, wait_until
from tests.projects.helpers import repository

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser, pytest.mark.live]


def test_register_sync_and_see_the_revision_of_a_git_project(page, live_web, live_worker, tmp_path):
    env = factories.environment("staging")
    person(None, Role.ADMIN, "ada")
    person(env, Role.OPERATOR, "otto")
    head = repository(tmp_path / "repo", {"site.yml": "- hosts: all\n  tasks: []\n"})
    errors = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: msg.type == "error" and errors.append(msg.text))
    sign_in(page, live_web.url, "ada")

    page.goto(live_web.url + "/projects/")
    page.click("text=New project")
    page.fill("input[name=name]", "site")
    page.select_option("select[name=environment]", label="staging")
    page.select_option("select[name=kind]", "git")
    page.fill("input[name=url]", "ext::sh -c touch% /tmp/x")
    page.fill("input[name=branch]", "main")
    page.click("#object-form button.primary")
    page.wait_for_selector("#object-form .errorlist")
    assert "Give a Git URL" in page.locator("#object-form").inner_text()
    assert not Project.objects.exists()
    page.fill("input[name=url]", f"file://{tmp_path / 'repo'}")
    page.click("#object-form button.primary")
    page.wait_for_selector("text=Project site saved.")
    row = page.locator("#projects tr", has_text="site")
    assert "Never synced" in row.inner_text()

    row.locator("text=Sync now").click()
    page.wait_for_url("**/jobs/*/")
    page.wait_for_selector("#job .badge.state-succeeded, .badge.state-succeeded", timeout=60000)
    project = wait_until(lambda: Project.objects.filter(revision=head).first(), 30, "the revision stored")
    page.goto(f"{live_web.url}/projects/{project.pk}/")
    assert head in page.locator("#project-facts").inner_text()
    assert "Sync project site" in page.locator("#project-jobs").inner_text()
    assert errors == []

    page.context.clear_cookies()
    sign_in(page, live_web.url, "otto")
    page.goto(live_web.url + "/projects/")
    assert "site" in page.locator("#projects").inner_text()
    assert page.locator("text=Sync now").count() == 1 and page.locator("text=New project").count() == 0
