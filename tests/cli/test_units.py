"""The client's own logic, without a portal: exit codes, configuration, output formats, error
words, parameters, and the stream's dedupe and gap filling."""
import io
import json
import os
import subprocess
import sys

import httpx
import pytest
import yaml
from opsportal_cli import config, errors, main, output
from opsportal_cli.client import Client
from opsportal_cli.watch import EventPrinter, JobWatcher

from ops_portal.jobs.choices import FINISHED_STATES, JobState
from tests.cli.conftest import CLI_SRC

TOKEN = "opt_" + "a" * 40


def test_every_finished_state_has_its_own_exit_code_and_only_success_is_zero():
    assert set(errors.JOB_EXIT_CODES) == {str(s) for s in FINISHED_STATES}
    codes = [errors.job_exit_code(s) for s in errors.JOB_EXIT_CODES]
    assert len(set(codes)) == len(codes)
    assert errors.job_exit_code(JobState.SUCCEEDED) == 0
    assert all(code != 0 for state, code in errors.JOB_EXIT_CODES.items() if state != "succeeded")
    others = {errors.USAGE, errors.GAVE_UP, errors.CONFIG, errors.UNREACHABLE, errors.UNAUTHORIZED, errors.FORBIDDEN,
              errors.NOT_FOUND, errors.INVALID, errors.CONFLICT, errors.PORTAL_FAILED, errors.INTERNAL}
    assert len(others) == 11 and not others & set(codes)


def write(path, text, mode=0o600):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    os.chmod(path, mode)
    return path


def test_configuration_comes_from_the_environment_over_the_file(tmp_path):
    home = {"HOME": str(tmp_path)}
    write(tmp_path / ".config/opsportal/config.toml", f'url = "https://ops.example.com/"\ntoken = "{TOKEN}"\n')
    loaded = config.load(home)
    assert (loaded.url, loaded.token, loaded.source) == ("https://ops.example.com", TOKEN,
                                                         str(tmp_path / ".config/opsportal/config.toml"))
    assert loaded.ws_url == "wss://ops.example.com/ws/" and TOKEN not in repr(loaded)
    other = "opt_" + "b" * 40
    from_env = config.load({**home, "PORTAL_URL": "http://127.0.0.1:8000", "PORTAL_TOKEN": other})
    assert (from_env.url, from_env.token, from_env.ws_url) == ("http://127.0.0.1:8000", other, "ws://127.0.0.1:8000/ws/")


def test_a_token_in_a_file_others_may_read_is_refused(tmp_path):
    path = write(tmp_path / "c.toml", f'url = "https://ops"\ntoken = "{TOKEN}"\n', mode=0o644)
    with pytest.raises(errors.ConfigError, match="others may read it .mode 0644.: run chmod 600"):
        config.load({"OPSPORTAL_CONFIG": str(path)})
    token_file = write(tmp_path / "token", TOKEN + "\n", mode=0o640)
    with pytest.raises(errors.ConfigError, match="chmod 600"):
        config.load({"PORTAL_URL": "https://ops", "PORTAL_TOKEN_FILE": str(token_file), "HOME": str(tmp_path)})
    os.chmod(token_file, 0o600)
    assert config.load({"PORTAL_URL": "https://ops", "PORTAL_TOKEN_FILE": str(token_file),
                        "HOME": str(tmp_path)}).token == TOKEN
    # A file with only the address may be readable.
    write(tmp_path / "url.toml", 'url = "https://ops"\n', mode=0o644)
    assert config.load({"OPSPORTAL_CONFIG": str(tmp_path / "url.toml"), "PORTAL_TOKEN": TOKEN}).url == "https://ops"


def test_profiles_and_mistakes_in_the_configuration_are_told_plainly(tmp_path):
    path = write(tmp_path / "c.toml", f'url = "https://ops"\ntoken = "{TOKEN}"\n'
                                      f'[profiles.staging]\nurl = "https://staging-ops"\n')
    assert config.load({"OPSPORTAL_CONFIG": str(path)}, profile="staging").url == "https://staging-ops"
    with pytest.raises(errors.ConfigError, match=r"no \[profiles.prod\] \(it has: staging\)"):
        config.load({"OPSPORTAL_CONFIG": str(path)}, profile="prod")
    for env, words in [
        ({"HOME": str(tmp_path)}, "Set PORTAL_URL"),
        ({"HOME": str(tmp_path), "PORTAL_URL": "https://ops"}, "no API token: set PORTAL_TOKEN"),
        ({"HOME": str(tmp_path), "PORTAL_URL": "ops.example.com", "PORTAL_TOKEN": TOKEN}, "must look like https://"),
        ({"HOME": str(tmp_path), "PORTAL_URL": "https://ops", "PORTAL_TOKEN": "opt_a b"}, "whitespace"),
    ]:
        with pytest.raises(errors.ConfigError, match=words):
            config.load(env)
    bad = write(tmp_path / "bad.toml", 'url = "https://ops"\npassword = "x"\n')
    with pytest.raises(errors.ConfigError, match="unknown keys password"):
        config.load({"OPSPORTAL_CONFIG": str(bad)})


ROWS = [{"id": 1, "name": "web-1", "tags": ["a", "b"], "enabled": True, "vars": {"k": 1}, "error": None},
        {"id": 22, "name": "db", "tags": [], "enabled": False, "vars": {}, "error": "x" * 100}]


def test_tables_align_columns_and_json_and_yaml_keep_the_api_objects():
    text = output.render(ROWS, "table", ("id", "name", "tags", "enabled", "vars", "error", "absent"))
    lines = text.splitlines()
    assert lines[0].split() == ["ID", "NAME", "TAGS", "ENABLED", "VARS", "ERROR"]
    assert lines[1].split() == ["1", "web-1", "a,b", "yes", '{"k":1}']
    assert lines[2].startswith("22  db   ") and lines[2].endswith("x" * 59 + "…")
    assert len({line.index("NAME") if i == 0 else line.index(ROWS[i - 1]["name"]) for i, line in enumerate(lines)}) == 1
    assert json.loads(output.render(ROWS, "json")) == ROWS
    assert yaml.safe_load(output.render(ROWS, "yaml")) == ROWS
    assert output.render([], "table") == "(none)\n"
    assert output.render({"id": 3, "targets": [{"name": "a"}]}, "table") == 'id       3\ntargets:\n  - {"name": "a"}\n'


def test_parameters_are_text_or_json():
    assert main._key_value("command=echo a=b") == ("command", "echo a=b")
    assert main._key_value("count:=3") == ("count", 3)
    assert main._key_value("flags:=[1, true]") == ("flags", [1, True])
    assert main._key_value("text=a:=b") == ("text", "a:=b")
    for bad in ("novalue", "=x", "n:={"):
        with pytest.raises(Exception, match="key=value|missing|JSON"):
            main._key_value(bad)


def client_for(handler):
    settings = config.Config(url="http://portal.test", token=TOKEN)
    return Client(settings, transport=httpx.MockTransport(handler))


@pytest.mark.parametrize(("status", "body", "kind", "words"), [
    (401, {"error": {"message": "Invalid or revoked API token."}}, errors.Unauthorized,
     "the portal refused the API token.*Invalid or revoked"),
    (403, {"error": {"message": "You may not operate here."}}, errors.Forbidden, "not allowed: You may not operate"),
    (400, {"error": {"message": "x", "fields": {"selector": ["Matches no host."], "params.count": ["Too big."]}}},
     errors.Invalid, "invalid input: selector: Matches no host.; params.count: Too big."),
    (409, {"error": {"message": "This request is already approved."}}, errors.Conflict, "already approved"),
    (404, {"error": {"message": "Not found."}}, errors.NotFound, "not found"),
    (502, {"error": {"message": "Bad gateway"}, "request_id": "r-1"}, errors.PortalFailed, "HTTP 502, request id r-1"),
])
def test_http_errors_become_plain_words_with_their_exit_code(status, body, kind, words):
    client = client_for(lambda request: httpx.Response(status, json=body))
    with pytest.raises(kind, match=words) as caught:
        client.get("/api/jobs/")
    assert caught.value.exit_code == kind.exit_code


def test_a_web_page_or_a_redirect_is_not_taken_for_the_api():
    pages = client_for(lambda r: httpx.Response(200, text="<html>", headers={"content-type": "text/html"}))
    with pytest.raises(errors.PortalFailed, match="web page, not the API"):
        pages.get("/api/jobs/")
    moved = client_for(lambda r: httpx.Response(302, headers={"location": "/login/"}))
    with pytest.raises(errors.PortalFailed, match="redirect to /login/"):
        moved.get("/api/jobs/")


def test_lists_are_read_page_by_page_up_to_the_limit():
    seen = []

    def handler(request):
        offset, limit = int(request.url.params["offset"]), int(request.url.params["limit"])
        seen.append((offset, limit))
        rows = [{"id": i} for i in range(offset, min(offset + limit, 2500))]
        return httpx.Response(200, json={"count": 2500, "results": rows,
                                         "next": "x" if offset + limit < 2500 else None})

    assert [r["id"] for r in client_for(handler).list("/api/hosts/", limit=0)] == list(range(2500))
    assert seen == [(0, 1000), (1000, 1000), (2000, 1000)]
    assert len(client_for(handler).list("/api/hosts/", limit=30)) == 30


class FakeJobs:
    """The REST side of one job: its stored events, read with ?after=."""

    config = config.Config(url="http://portal.test", token=TOKEN)

    def __init__(self, events):
        self.events = events
        self.asked = []

    def get(self, path, **params):
        self.asked.append((path, params))
        return [e for e in self.events if e["seq"] > params["after"]][:params["limit"]]


def output_event(seq, target, text):
    return {"seq": seq, "kind": "output", "time": 0, "text": text, "target": target, "stream": "stdout"}


def test_the_stream_skips_repeats_and_fills_holes_from_the_api():
    events = [output_event(seq, seq % 2, f"line-{seq}") for seq in range(1, 11)]
    jobs = FakeJobs(events)
    out = io.StringIO()
    watcher = JobWatcher(jobs, {"id": 7, "state": "running"}, out=out, err=io.StringIO())
    watcher.printer = EventPrinter({0: "web-10", 1: "db"}, out)
    watcher.deliver(events[0:3])
    watcher.deliver(events[1:4])  # a replay after reconnecting: 2 and 3 again
    watcher.deliver(events[7:10])  # 5..7 never came over the socket
    assert jobs.asked == [("/api/jobs/7/events/", {"after": 4, "limit": 5000})]
    assert out.getvalue().splitlines() == [
        f"{'web-10' if seq % 2 == 0 else 'db    '} | line-{seq}" for seq in range(1, 11)]


def test_events_read_as_lines_with_their_target():
    printer = EventPrinter({0: "web-1"}, io.StringIO())
    assert printer.line({"kind": "output", "text": "oops", "target": 0, "stream": "stderr"}) == "web-1 ! oops"
    assert printer.line({"kind": "target", "text": "web-1", "target": 0,
                         "data": {"state": "failed", "exit_code": 3, "error": ""}}) == "web-1 ** failed exit=3"
    assert printer.line({"kind": "state", "text": "running", "data": {"state": "running"}}) == "-- job running"
    assert printer.line({"kind": "info", "text": "Batch 1 of 2: 1 targets."}) == "-- Batch 1 of 2: 1 targets."
    assert printer.line({"kind": "info", "text": "", "target": 3, "data": {"task": 1}}) == '#3    -- {"task":1}'


def test_the_package_needs_no_django_and_never_shows_a_traceback(tmp_path):
    probe = ("import sys; sys.modules['django'] = None; sys.modules['rest_framework'] = None\n"
             "from opsportal_cli import client, config, errors, main, output, watch\n"
             "main.build_parser(); print('ok')")
    env = {"PYTHONPATH": str(CLI_SRC), "PATH": os.environ["PATH"], "HOME": str(tmp_path)}
    assert subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True).stdout == "ok\n"
    # A config file that is not TOML: one line in words, the config exit code, no traceback.
    write(tmp_path / ".config/opsportal/config.toml", "url = \n")
    done = subprocess.run([sys.executable, "-m", "opsportal_cli", "jobs", "list"], env=env, capture_output=True,
                          text=True)
    assert done.returncode == errors.CONFIG
    assert done.stderr.startswith("opsportal: ") and "not valid TOML" in done.stderr and "Traceback" not in done.stderr


def test_launch_sends_the_limit_only_when_given(capsys):
    class Portal:
        config = type("Config", (), {"url": "http://portal"})()

        def __init__(self):
            self.posted = []

        def get(self, path):
            return {"id": 7, "name": "uptime"}

        def post(self, path, body=None):
            self.posted.append((path, body))
            return {"id": 1, "state": "queued"}

    parser = main.build_parser()
    for argv, expected in ((["launch", "7", "--limit", "web-1,db-*"], {"params": {}, "limit": "web-1,db-*"}),
                           (["launch", "7"], {"params": {}})):
        portal = Portal()
        assert main.cmd_launch(portal, parser.parse_args(argv)) == 0
        assert portal.posted == [("/api/job-templates/7/launch/", expected)]
    assert "job 1 queued: http://portal/jobs/1/" in capsys.readouterr().out
