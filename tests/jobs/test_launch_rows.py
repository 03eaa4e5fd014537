"""What a launch stores for its targets (written by COPY on PostgreSQL): one pending row per target
in plan order, its batch and its fingerprint; and a launch's queries do not grow with its targets
(the plan reads only the columns a plan entry needs)."""
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from ops_portal.inventory.targets import HOSTS
from ops_portal.jobs.models import JobTarget
from tests import factories
from tests.helpers import act, person
from tests.jobs.helpers import launch

pytestmark = pytest.mark.django_db


def test_target_rows_are_pending_in_plan_order_with_their_batch_and_fingerprint(env):
    credential = factories.credential(env, "deploy-key")
    hosts = [factories.host(env, f"web-{i}", credential=credential) for i in range(1, 6)]
    job = launch(act(person(env, "admin")), env, "uptime", strategy={"kind": "rolling", "batch_size": 2})
    rows = list(JobTarget.objects.filter(job=job).order_by("index"))
    assert [(r.index, r.name, r.batch, r.state, r.error, r.data) for r in rows] == [
        (0, "web-1", 0, "pending", "", None), (1, "web-2", 0, "pending", "", None),
        (2, "web-3", 1, "pending", "", None), (3, "web-4", 1, "pending", "", None),
        (4, "web-5", 2, "pending", "", None)]
    assert [r.fingerprint for r in rows] == [HOSTS.fingerprint(h) for h in hosts]
    assert rows[0].fingerprint["credential"] == "deploy-key" and rows[0].kind == "host"
    assert [r.ref_id for r in rows] == [h.pk for h in hosts]


def test_a_launchs_queries_do_not_grow_with_its_targets(env):
    actor = act(person(env, "admin"))
    credential = factories.credential(env, "k")
    for i in range(3):
        factories.host(env, f"a-{i}", credential=credential)
    launch(actor, env, "true", selector={"pattern": "a-*"})  # the actor's authority is read once, here
    with CaptureQueriesContext(connection) as few:
        launch(actor, env, "true", selector={"pattern": "a-*"})
    for i in range(60):
        factories.host(env, f"b-{i}", credential=credential, facts={"os": "debian", "blob": "x" * 2000})
    with CaptureQueriesContext(connection) as many:
        launch(actor, env, "true", selector={"pattern": "b-*"})
    assert JobTarget.objects.filter(name__startswith="b-").count() == 60
    assert len(many.captured_queries) == len(few.captured_queries), [q["sql"][:120] for q in many.captured_queries]
    plan_read = next(q["sql"] for q in many.captured_queries if 'FROM "inventory_host"' in q["sql"]
                     and '"inventory_host"."facts"' not in q["sql"] and "ORDER BY" in q["sql"])
    assert '"inventory_credential"."private_key"' not in plan_read
