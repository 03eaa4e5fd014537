"""The authorization matrix: every API endpoint x role x environment.

Allowed calls succeed and write one audit row naming the actor, the action and before/after;
denied calls get 403 (visible object) or 404 (invisible object) and change nothing: the table's
row count and the audit log stay as they were.
"""
import pytest
from django.urls import reverse

from ops_portal.accounts.choices import ROLE_ACTIONS, Action, Role
from ops_portal.audit.models import AuditEvent
from ops_portal.core.api.router import router
from tests import factories
from tests.web.api_cases import ALL, CASES, ESCALATIONS, GLOBAL, OWN

SUBJECTS = [
    ("nobody", None, None),
    ("viewer-alpha", Role.VIEWER, "alpha"),
    ("operator-alpha", Role.OPERATOR, "alpha"),
    ("approver-alpha", Role.APPROVER, "alpha"),
    ("admin-alpha", Role.ADMIN, "alpha"),
    ("admin-all", Role.ADMIN, "*"),
]
CASE_IDS = [c.basename for c in CASES]
SUBJECT_IDS = [s[0] for s in SUBJECTS]


def test_every_endpoint_has_a_case():
    registered = {basename for _, _, basename in router.registry}
    assert registered == set(CASE_IDS), "add a case in tests/web/api_cases.py for each new endpoint"


class World:
    def __init__(self, subject):
        label, role, env_name = subject
        self.alpha = factories.environment("alpha")
        self.beta = factories.environment("beta", is_production=True)
        self.user = factories.user(username=label)
        self.role = role
        self.bound_env = None if env_name in (None, "*") else self.alpha
        self.everywhere = env_name == "*"
        if role is not None:
            factories.binding(role=role, user=self.user, environment=self.bound_env)

    def allows(self, action, environment):
        if self.role is None or action not in ROLE_ACTIONS[self.role]:
            return False
        return self.everywhere or (environment is not None and environment == self.bound_env)

    def holds(self, role, where):
        """Does the subject already hold `role` in `where` (ALL or an environment attribute name)?"""
        environment = None if where is ALL else getattr(self, where)
        return all(self.allows(action, environment) for action in ROLE_ACTIONS[role])


def _visible(world, case, obj_env, owner_is_subject=False):
    if case.scope == OWN:
        return owner_is_subject
    if case.scope == GLOBAL:
        return world.allows(Action.MANAGE if case.basename == "user" else Action.VIEW, None)
    return world.allows(Action.VIEW, obj_env)


def _write_allowed(world, case, env, operation):
    if case.scope == OWN:
        return True
    if case.scope == GLOBAL or case.write_everywhere or (operation in ("create", "delete") and case.scope == "self"):
        return world.allows(case.write_action, None)
    return world.allows(case.write_action, env)


def _url(case, obj=None):
    if obj is None:
        return reverse(f"api:{case.basename}-list")
    return reverse(f"api:{case.basename}-detail", args=[obj.pk])


def _model(case):
    for _, viewset, basename in router.registry:
        if basename == case.basename:
            return viewset.queryset.model
    raise LookupError(case.basename)


@pytest.fixture(params=SUBJECTS, ids=SUBJECT_IDS)
def world(request, db):
    return World(request.param)


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_list_shows_only_what_the_role_may_see(case, world, api):
    api.force_authenticate(world.user)
    mine = case.make(world.alpha, owner=world.user)
    other = case.make(world.beta)
    response = api.get(_url(case), {"limit": 1000})
    assert response.status_code == 200, response.content
    seen = {row["id"] for row in response.json()["results"]}
    assert (mine.pk in seen) == _visible(world, case, world.alpha, owner_is_subject=True)
    assert (other.pk in seen) == _visible(world, case, world.beta)


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_detail_is_404_outside_scope(case, world, api):
    api.force_authenticate(world.user)
    obj = case.make(world.beta)
    response = api.get(_url(case, obj))
    assert response.status_code == (200 if _visible(world, case, world.beta) else 404)


CREATABLE = [c for c in CASES if c.writable and c.creatable]


@pytest.mark.parametrize("case", CREATABLE, ids=[c.basename for c in CREATABLE])
def test_create_is_allowed_only_with_the_write_action(case, world, api):
    api.force_authenticate(world.user)
    model = _model(case)
    rows, audit = model.objects.count(), AuditEvent.objects.count()
    response = api.post(_url(case), case.create_payload(world.alpha), format=case.create_format)
    if _write_allowed(world, case, world.alpha, "create"):
        assert response.status_code == 201, response.content
        event = AuditEvent.objects.exclude(action__startswith="auth.").latest("pk")
        assert (event.action, event.actor_id, event.actor_name) == (
            case.audit_create or f"{case.audit_prefix}.create", world.user.pk, world.user.username)
        assert event.object_id == str(response.json()["id"])
        assert event.after and event.before is None
        assert event.source == "api"
        assert model.objects.count() == rows + 1
    else:
        assert response.status_code == 403, response.content
        assert response.json()["error"]["status"] == 403
        assert model.objects.count() == rows
        assert AuditEvent.objects.count() == audit


@pytest.mark.parametrize("case", [c for c in CASES if c.writable and c.updatable],
                         ids=[c.basename for c in CASES if c.writable and c.updatable])
@pytest.mark.parametrize("where", ["alpha", "beta"])
def test_update_is_allowed_only_in_scope(case, world, api, where):
    api.force_authenticate(world.user)
    environment = getattr(world, where)
    obj = case.make(environment, owner=world.user)
    model = _model(case)
    before_row = model.objects.filter(pk=obj.pk).values().get()
    audit = AuditEvent.objects.count()
    payload = case.update_payload(obj)
    response = api.patch(_url(case, obj), payload, format="json")
    if not _visible(world, case, environment, owner_is_subject=True):
        assert response.status_code == 404
    elif not _write_allowed(world, case, environment, "update"):
        assert response.status_code == 403
    else:
        assert response.status_code == 200, response.content
        event = AuditEvent.objects.latest("pk")
        assert (event.action, event.actor_id) == (f"{case.audit_prefix}.update", world.user.pk)
        field, value = next(iter(payload.items()))
        assert event.after[field] == value and event.before[field] != value
        return
    assert model.objects.filter(pk=obj.pk).values().get() == before_row
    assert AuditEvent.objects.count() == audit


@pytest.mark.parametrize("case", [c for c in CASES if c.writable and c.deletable],
                         ids=[c.basename for c in CASES if c.writable and c.deletable])
@pytest.mark.parametrize("where", ["alpha", "beta"])
def test_delete_is_allowed_only_in_scope(case, world, api, where):
    api.force_authenticate(world.user)
    environment = getattr(world, where)
    obj = case.make(environment, owner=world.user)
    model = _model(case)
    rows, audit = model.objects.count(), AuditEvent.objects.count()
    response = api.delete(_url(case, obj))
    if not _visible(world, case, environment, owner_is_subject=True):
        assert response.status_code == 404
    elif not _write_allowed(world, case, environment, "delete"):
        assert response.status_code == 403
    else:
        assert response.status_code == 204, response.content
        event = AuditEvent.objects.latest("pk")
        expected = "token.revoke" if case.scope == OWN else f"{case.audit_prefix}.delete"
        assert (event.action, event.actor_id) == (expected, world.user.pk)
        if case.scope != OWN:
            assert event.before is not None
            assert model.objects.count() == rows - 1
        return
    assert model.objects.count() == rows
    assert AuditEvent.objects.count() == audit


@pytest.mark.parametrize("method", ["post", "put", "patch", "delete"])
def test_audit_log_cannot_be_changed_through_the_api_even_by_admins(method, api, admin_all, envs):
    event = CASES[CASE_IDS.index("auditevent")].make(envs[0])
    api.force_authenticate(admin_all)
    url = _url(CASES[CASE_IDS.index("auditevent")], None if method == "post" else event)
    response = getattr(api, method)(url, {"action": "x"}, format="json")
    assert response.status_code == 405
    assert AuditEvent.objects.filter(pk=event.pk, action="audit.export").exists()


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_anonymous_requests_are_refused(case, api, db):
    response = api.get(_url(case))
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"


def _rights(user):
    """What the user may do now, from the database (no cached scopes)."""
    from django.contrib.auth import get_user_model

    from ops_portal.accounts.permissions import scope_for

    fresh = get_user_model().objects.get(pk=user.pk)
    return {action: scope_for(fresh, action, fresh=True) for action in Action.values}


def _within(after, before):
    return all(before[a].everywhere
               or (not after[a].everywhere and after[a].environment_ids <= before[a].environment_ids)
               for a in Action.values)


@pytest.mark.parametrize("escalation", ESCALATIONS, ids=[e.name for e in ESCALATIONS])
def test_no_user_gives_itself_more_than_it_has(escalation, world, api, client, settings):
    """Every path to more rights (bindings, teams, pages, local hosts, templates and schedules other
    users' authority runs) succeeds only for a subject that already holds what it would give, and
    never widens the subject's own rights."""
    if escalation.needs_local_rule:
        settings.LOCAL_TARGETS_NEED_GLOBAL_ADMIN = True
    escalation.setup(world)
    api.force_authenticate(world.user)
    client.force_login(world.user)
    before = _rights(world.user)
    response = escalation.attempt(world, api, client)
    allowed = escalation.allowed(world)
    assert escalation.succeeded(world) == allowed, (response.status_code, getattr(response, "content", b"")[:300])
    assert response.status_code < 500
    if not allowed and escalation.refused_at_request:
        assert response.status_code in (302, 400, 403, 404, 405) or b"errorlist" in response.content
    assert _within(_rights(world.user), before)
