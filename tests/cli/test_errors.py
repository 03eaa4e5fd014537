"""Errors in plain words against a live portal: a wrong token, a refusal with its reason, bad
input with its fields, an unreachable portal; never a traceback."""
import pytest

from ops_portal.accounts.choices import Role
from tests import factories
from tests.helpers import api_token, person
from tests.live import free_port

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.live]


def test_errors_say_what_went_wrong_with_their_exit_code(live_web, opsportal):
    env = factories.environment("words")
    viewer_key = api_token(person(env, Role.VIEWER))[1]
    operator_key = api_token(person(env, Role.OPERATOR))[1]
    url = live_web.url
    cases = [
        (("jobs", "list"), url, "opt_" + "x" * 40, 11,
         "opsportal: the portal refused the API token (token from environment): Invalid or revoked API token.\n"),
        (("jobs", "list"), url, "not-a-token", 11, "Malformed API token"),
        (("run", "host.command", "-e", env.name, "--all", "-p", "command=true"), url, viewer_key, 12,
         "opsportal: not allowed: "),
        (("run", "host.command", "-e", env.name, "--pattern", "nothing-*", "-p", "command=true"), url, operator_key,
         14, "opsportal: invalid input: selector:"),
        (("jobs", "show", "999999"), url, operator_key, 13, "opsportal: not found"),
        (("jobs", "list"), f"http://127.0.0.1:{free_port()}", operator_key, 10,
         "cannot reach the portal at http://127.0.0.1:"),
    ]
    for args, portal, key, code, words in cases:
        run = opsportal(*args, url=portal, token=key)
        assert run.proc.returncode == code, (args, run.text())
        assert words in run.stderr and "Traceback" not in run.text(), (args, run.text())
        assert run.stdout == ""
    me = opsportal("whoami", "-o", "json", url=url, token=operator_key)
    assert me.proc.returncode == 0 and '"username"' in me.stdout, me.text()
