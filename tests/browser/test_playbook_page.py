"""An Ansible playbook job followed live in a real browser (live worker and web, the real
ansible-playbook on the portal's machine through the local transport): each host's counts reach
the target grid as the play ends, and Ansible's lines appear in the log under their host."""
import pytest

from ops_portal.accounts.choices import Role
from ops_portal.inventory.choices import Transport
from ops_portal.jobs.launch import launch_adhoc
from ops_portal.projects import services as projects
from tests import factories
from tests.browser.helpers import sign_in
from tests.helpers import act, person
from tests.jobs.helpers import wait_job

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser, pytest.mark.live]


def test_a_playbook_job_shows_per_host_counts_and_lines_live(page, live_web, live_worker, tmp_path):
    env = factories.environment("staging")
    for name in ("app-1", "app-2"):
        factories.host(env, name, transport=Transport.LOCAL)
    ada = act(person(None, Role.ADMIN, "ada"))
    source, out = tmp_path / "project", tmp_path / "out"
    source.mkdir()
    out.mkdir()
    (source / "site.yml").write_text(f"""
- hosts: all
  gather_facts: false
  tasks:
    - name: wait
      command: sleep 2
    - name: write
      copy: {{dest: "{out}/{{{{ inventory_hostname }}}}.txt", content: "hi\\n"}}
""")
    project = projects.create_project(ada, name="site", environment=env, kind="directory", path=str(source),
                                      branch="")
    wait_job(projects.launch_sync(ada, project), "succeeded", timeout=120)
    errors = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    sign_in(page, live_web.url, "ada")
    job = launch_adhoc(ada, environment=env, action="ansible.playbook",
                       values={"project": "site", "playbook": "site.yml"}, selector={"all": True})
    page.goto(f"{live_web.url}/jobs/{job.pk}/")
    page.wait_for_selector(".js-state .badge[data-state=succeeded]", timeout=120000)
    assert page.locator("#targets .js-counts").all_inner_texts() == ["ok=2 changed=2"] * 2
    page.wait_for_selector("#log .log-row")
    rows = page.locator("#log .log-row").all_inner_texts()
    assert "app-1 | changed: [app-1]" in rows and "app-2 | changed: [app-2]" in rows
    assert (out / "app-1.txt").read_text() == "hi\n"
    assert errors == []
