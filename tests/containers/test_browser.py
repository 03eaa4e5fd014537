"""The container pages in a real browser at phone width: rows change live when a container is
killed outside the portal; a scale from the service page is followed task by task on the job page."""
import subprocess

import pytest

from ops_portal.accounts.choices import Role
from ops_portal.containers.models import Container, Engine, Service
from tests.browser.helpers import sign_in
from tests.containers.helpers import engine as make_engine
from tests.containers.helpers import person, synced
from tests.live import wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser, pytest.mark.live, pytest.mark.fleet]
PHONE = {"width": 390, "height": 844}


def fits(page):
    """Nothing but the tables' own scrolling boxes is wider than the phone."""
    wide = page.evaluate("""() => Array.from(document.querySelectorAll("body *")).filter(el =>
        el.getBoundingClientRect().right > window.innerWidth + 1 && !el.closest(".scroll, .sections, pre")
        ).map(el => el.tagName + "#" + el.id + "." + el.className).slice(0, 10)""")
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"] + 1, wide
    return True


def test_the_containers_page_stays_live_at_phone_width(page, env, docker_client, ct_images, prefix, watcher,
                                                       live_web):
    row = make_engine(env)
    wait_for(lambda: synced(row.pk), 60, "the first resync", watcher)
    created = docker_client.containers.run(ct_images["web:v1"], name=f"{prefix}-live", detach=True)
    wait_for(lambda: Container.objects.filter(engine=row, docker_id=created.id, state="running").exists(), 15,
             "the container in the inventory", watcher)
    stored = Container.objects.get(engine=row, docker_id=created.id)
    person(env, Role.VIEWER, "vera")
    errors = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.set_viewport_size(PHONE)
    sign_in(page, live_web.url, "vera")
    page.goto(f"{live_web.url}/containers/?search={prefix}")
    page.wait_for_selector("#live-indicator.live")
    badge = page.locator(f"tr[data-id='{stored.pk}'] .js-cstate")
    assert badge.inner_text().startswith("running")
    assert fits(page), page.evaluate("document.documentElement.scrollWidth")
    subprocess.run(["docker", "kill", created.id], check=True, capture_output=True)
    page.wait_for_selector(f"tr[data-id='{stored.pk}'] .js-cstate:has-text('exited')", timeout=5000)
    page.goto(f"{live_web.url}/containers/{stored.pk}/")
    assert "exited" in page.locator("h1 .js-cstate").inner_text() and fits(page)
    assert errors == []


def test_a_scale_from_the_service_page_is_followed_task_by_task(page, env, docker_client, ct_images, prefix,
                                                                watcher, live_web, live_worker):
    from ops_portal.containers import services
    from tests.containers.helpers import act
    from tests.jobs.helpers import wait_job

    row = make_engine(env)
    wait_for(lambda: synced(row.pk) and Engine.objects.get(pk=row.pk).swarm_role == "manager", 60,
             "the engine read", watcher)
    operator = person(env, Role.OPERATOR, "olga")
    spec = {"name": f"{prefix}-web", "image": ct_images["web:v1"], "replicas": 1, "ports": [{"target": 8080}]}
    wait_job(services.create_service(act(operator), Engine.objects.get(pk=row.pk), spec), "succeeded", 120)
    service = wait_for_service(row, f"{prefix}-web")
    page.set_viewport_size(PHONE)
    sign_in(page, live_web.url, "olga")
    page.goto(f"{live_web.url}/containers/services/{service.pk}/")
    assert "host mode" in page.locator("#service-facts").inner_text() and fits(page)
    page.fill("input[name='scale-replicas']", "3")
    page.click("#scale-form button")
    page.wait_for_selector("#job")
    page.wait_for_selector("#target-tasks tbody tr >> nth=2", timeout=60000)
    page.wait_for_selector(".js-state .badge[data-state=succeeded]", timeout=120000)
    states = page.locator("#target-tasks tbody tr td:nth-child(4)").all_inner_texts()
    assert states.count("running") >= 3, states
    page.goto(f"{live_web.url}/containers/services/{service.pk}/")
    page.wait_for_selector("h1 .js-replicas:has-text('3/3')", timeout=15000)


def wait_for_service(engine, name):
    wait_for(lambda: Service.objects.filter(engine=engine, name=name).exists(), 30, f"service {name}")
    return Service.objects.get(engine=engine, name=name)
