"""Management pages in a real browser: a job template with a launch parameter is created, edited
and deleted through the pages (the parameter builder's "Add a parameter" included)."""
import pytest

from ops_portal.accounts.choices import Role
from ops_portal.audit.models import AuditEvent
from ops_portal.jobs.models import JobTemplate
from tests import factories
from tests.browser.helpers import sign_in
from tests.helpers import person

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser, pytest.mark.live]


def test_create_edit_and_delete_a_job_template_with_a_parameter(page, live_web):
    env = factories.environment("staging")
    person(env, Role.ADMIN, "ada")
    errors = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: msg.type == "error" and errors.append(msg.text))
    sign_in(page, live_web.url, "ada")

    page.goto(live_web.url + "/templates/")
    page.click("text=New template")
    page.fill("input[name=name]", "run-script")
    page.select_option("select[name=action]", "host.script")
    page.fill("textarea[name=selector]", '{"pattern": "web-*"}')
    # The builder starts with one empty row; a second comes from "Add a parameter".
    page.fill("input[name='param-0-name']", "script")
    page.select_option("select[name='param-0-type']", "text")
    page.check("input[name='param-0-required']")
    page.click("button.js-param-add")
    page.fill("input[name='param-1-name']", "interpreter")
    page.select_option("select[name='param-1-type']", "choice")
    page.fill("textarea[name='param-1-choices']", "sh\nbash")
    page.fill("input[name='param-1-default']", "bash")
    page.click("#template-form button.primary")
    page.wait_for_selector("text=Template run-script saved (version 1).")
    row = page.locator("#job-templates tr", has_text="run-script")
    assert "script" in row.inner_text() and "interpreter" in row.inner_text()
    template = JobTemplate.objects.get()
    assert template.parameters == [
        {"name": "script", "type": "text", "required": True},
        {"name": "interpreter", "type": "choice", "required": False, "choices": ["sh", "bash"], "default": "bash"}]

    # A field the service refuses comes back in the form, nothing saved.
    row.locator("text=Edit").click()
    page.fill("input[name='param-1-default']", "zsh")
    page.click("#template-form button.primary")
    page.wait_for_selector("#parameters .errorlist")
    assert "default must be one of sh, bash" in page.locator("#parameters").inner_text()
    # Fix it, and drop the interpreter parameter.
    page.fill("input[name='param-1-default']", "sh")
    page.check("input[name='param-1-DELETE']")
    page.fill("input[name=description]", "one script on the web hosts")
    page.click("#template-form button.primary")
    page.wait_for_selector("text=Template run-script saved (version 2).")
    template.refresh_from_db()
    assert [p["name"] for p in template.parameters] == ["script"]
    assert template.description == "one script on the web hosts"

    page.locator("#job-templates tr", has_text="run-script").locator("text=Delete…").click()
    assert "run-script" in page.locator("#confirm-delete").inner_text()
    page.click("#confirm-delete button.danger")
    page.wait_for_selector("text=Job template run-script deleted.")
    assert not JobTemplate.objects.exists()
    assert list(AuditEvent.objects.filter(object_type="jobs.jobtemplate").order_by("pk")
                .values_list("action", flat=True)) == ["jobtemplate.create", "jobtemplate.update",
                                                       "jobtemplate.delete"]
    assert errors == []
