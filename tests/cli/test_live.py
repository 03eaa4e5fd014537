"""opsportal against a live portal (daphne, a Celery worker) and the fleet's sshd hosts, run as a
pipeline runs it: a subprocess with PORTAL_URL and PORTAL_TOKEN, no Django."""
import json
import re

import jsonschema
import pytest
import requests

from ops_portal.accounts.choices import Role
from ops_portal.approvals.models import ApprovalPolicy, ApprovalRequest
from ops_portal.jobs.models import Job
from tests.cli.proxy import CuttableProxy
from tests.helpers import api_token, person, wait_until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.live, pytest.mark.fleet]

LINE = re.compile(r"^(\S+)\s+([|!]) (.*)$")


def lines_by_target(stdout):
    """{target name: [output text, ...]} in the order printed."""
    found = {}
    for line in stdout.splitlines():
        match = LINE.match(line)
        if match:
            found.setdefault(match.group(1), []).append(match.group(3))
    return found


def counting(n, pause=""):
    return f"for i in $(seq 1 {n}); do echo line-$i; {pause} done"


@pytest.fixture
def portal(live_web, live_worker):
    return live_web.url


def admin_key(fleet_env):
    return api_token(fleet_env[1].user, "cli")[1]


def test_wait_follow_prints_every_line_of_every_host_once_in_order_and_exits_0(fleet_env, portal, opsportal):
    env, actor, hosts = fleet_env
    run = opsportal("run", "host.command", "-e", env.name, "--tag", "fleet", "-p", f"command={counting(40)}",
                    "--parallel", "10", "--wait", "--follow", url=portal, token=admin_key(fleet_env))
    assert run.proc.returncode == 0, run.text()
    job = Job.objects.get(environment=env)
    assert lines_by_target(run.stdout) == {h.name: [f"line-{i}" for i in range(1, 41)] for h in hosts}
    target_lines = [line.split() for line in run.out if " ** " in line]
    assert sorted(target_lines) == sorted([[h.name, "**", "running"] for h in hosts]
                                          + [[h.name, "**", "ok", "exit=0"] for h in hosts])
    assert run.out.count("-- job running") == 1 and run.out.count("-- job succeeded") == 1
    assert f"job {job.pk} succeeded: {len(hosts)} of {len(hosts)} targets done, 0 failed" in run.stderr
    assert "Traceback" not in run.text()


def test_a_failing_command_exits_with_the_jobs_state(fleet_env, portal, opsportal):
    env, actor, hosts = fleet_env
    key = admin_key(fleet_env)
    run = opsportal("run", "host.command", "-e", env.name, "--hosts", hosts[0].name, "-p",
                    "command=echo about to fail; exit 3", "--wait", "--follow", url=portal, token=key)
    assert run.proc.returncode == 1, run.text()
    assert lines_by_target(run.stdout) == {hosts[0].name: ["about to fail"]}
    assert f"{hosts[0].name} ** failed exit=3" in run.out
    job = Job.objects.get(environment=env)
    assert job.state == "failed" and f"job {job.pk} failed: 1 of 1 targets done, 1 failed" in run.stderr
    assert f"  {hosts[0].name}: failed (exit 3)" in run.stderr
    # Waiting without following polls the API; a relaunch fails the same way.
    again = opsportal("jobs", "relaunch", job.pk, "--wait", url=portal, token=key)
    assert again.proc.returncode == 1 and " failed: 1 of 1 targets done, 1 failed" in again.stderr, again.text()
    assert again.stdout == ""
    # A job canceled while it runs exits 3.
    slow = opsportal("run", "host.command", "-e", env.name, "--hosts", hosts[0].name, "-p", "command=sleep 60",
                     "--wait", "--follow", url=portal, token=key, wait=False)
    wait_until(lambda: any("-- job running" == line for line in slow.out), 60, "the sleeper to run")
    sleeper = Job.objects.filter(environment=env).latest("pk")
    canceled = opsportal("jobs", "cancel", sleeper.pk, url=portal, token=key)
    assert canceled.proc.returncode == 0 and "(cancel requested)" in canceled.stdout, canceled.text()
    assert slow.wait(90) == 3, slow.text()
    assert f"job {sleeper.pk} canceled" in slow.stderr


def test_the_stream_resumes_across_a_dropped_connection_without_gaps_or_duplicates(fleet_env, portal, live_web,
                                                                                  opsportal):
    env, actor, hosts = fleet_env
    proxy = CuttableProxy(int(live_web.url.rsplit(":", 1)[1]))
    try:
        run = opsportal("run", "host.command", "-e", env.name, "--tag", "fleet", "-p",
                        f"command={counting(80, 'sleep 0.05;')}", "--wait", "--follow", url=proxy.url,
                        token=admin_key(fleet_env), wait=False)
        wait_until(lambda: sum(" | line-" in line for line in run.out) >= 20, 90, "20 lines before the cut")
        proxy.cut()
        printed = sum(" | line-" in line for line in run.out)
        wait_until(lambda: any("resuming after event" in line for line in run.err), 30, "the client to notice")
        assert run.wait(120) == 0, run.text()
    finally:
        proxy.close()
    assert printed < 80 * len(hosts)  # the cut came while the hosts were still printing
    assert proxy.websockets >= 2 and proxy.cuts == 1
    assert lines_by_target(run.stdout) == {h.name: [f"line-{i}" for i in range(1, 81)] for h in hosts}
    seqs = [int(m) for m in re.findall(r"resuming after event (\d+)", run.stderr)]
    assert seqs and all(seq > 0 for seq in seqs)


def test_a_job_needing_approval_waits_says_who_may_approve_and_proceeds_once_approved(fleet_env, portal, opsportal):
    env, actor, hosts = fleet_env
    ApprovalPolicy.objects.create(name="fleet-four-eyes", environment=env, all_work=True)
    launcher = person(env, Role.OPERATOR, "launcher-lee")
    approver = person(env, Role.APPROVER, "approver-ann")
    person(env, Role.VIEWER, "viewer-vic")
    launcher_key, approver_key = api_token(launcher)[1], api_token(approver)[1]
    run = opsportal("run", "host.command", "-e", env.name, "--hosts", hosts[0].name, "-p", "command=echo approved",
                    "--follow", "--timeout", "150", url=portal, token=launcher_key, wait=False)
    said = wait_until(lambda: next((line for line in run.err if "waits for approval" in line), None), 60,
                      "the client to say the job waits for approval")
    request = ApprovalRequest.objects.get(environment=env)
    names = said.split("can approve: ", 1)[1].split(" (")[0].split(", ")
    assert "approver-ann" in names and "launcher-lee" not in names and "viewer-vic" not in names
    assert f"request #{request.pk}" in said and "0 of 1 approvals" in said
    assert f"opsportal approvals approve {request.pk}" in said
    assert run.proc.poll() is None and Job.objects.get(environment=env).state == "pending_approval"
    own = opsportal("approvals", "approve", request.pk, url=portal, token=launcher_key)
    assert own.proc.returncode == 12, own.text()
    assert own.stderr == "opsportal: not allowed: Nobody approves their own request (four eyes).\n"
    decided = opsportal("approvals", "approve", request.pk, "-m", "ship it", "-o", "json", url=portal,
                        token=approver_key)
    assert decided.proc.returncode == 0, decided.text()
    assert json.loads(decided.stdout)["state"] == "approved"
    assert run.wait(120) == 0, run.text()
    assert lines_by_target(run.stdout) == {hosts[0].name: ["approved"]}


def openapi_validator(portal, key, component):
    """A JSON Schema validator for one component of the portal's live OpenAPI 3.0 schema."""
    schema = requests.get(portal + "/api/schema/?format=json", headers={"Authorization": f"Token {key}"},
                          timeout=30).json()

    def convert(node):  # OpenAPI 3.0's `nullable` is JSON Schema's null type
        if isinstance(node, list):
            return [convert(n) for n in node]
        if not isinstance(node, dict):
            return node
        node = {k: convert(v) for k, v in node.items()}
        if node.pop("nullable", False):
            if "enum" in node:
                node["enum"] = [*node["enum"], None]
            if "type" in node:
                node["type"] = [node["type"], "null"]
            else:
                node = {"anyOf": [node, {"type": "null"}]}
        return node

    components = convert(schema["components"])
    root = {"$ref": f"#/components/schemas/{component}", "components": components}
    return jsonschema.Draft202012Validator(root)


def test_json_output_validates_against_the_api_schema(fleet_env, portal, opsportal):
    env, actor, hosts = fleet_env
    key = admin_key(fleet_env)
    launched = opsportal("run", "host.command", "-e", env.name, "--tag", "fleet", "-p", "command=true", "--wait",
                         "-o", "json", url=portal, token=key)
    assert launched.proc.returncode == 0, launched.text()
    job = json.loads(launched.stdout)
    openapi_validator(portal, key, "JobDetail").validate(job)
    assert job["state"] == "succeeded" and len(job["targets"]) == len(hosts)
    for args, component in [(("jobs", "show", job["id"]), "JobDetail"), (("hosts", "show", hosts[0].name), "Host")]:
        shown = opsportal(*args, "-o", "json", url=portal, token=key)
        assert shown.proc.returncode == 0, shown.text()
        openapi_validator(portal, key, component).validate(json.loads(shown.stdout))
    for resource, component in [("jobs", "Job"), ("hosts", "Host")]:
        listed = opsportal(resource, "list", "-e", env.name, "-o", "json", url=portal, token=key)
        rows = json.loads(listed.stdout)
        assert rows, listed.text()
        validator = openapi_validator(portal, key, component)
        for row in rows:
            validator.validate(row)
    table = opsportal("hosts", "list", "-e", env.name, url=portal, token=key)
    assert table.out[0].split()[:3] == ["ID", "NAME", "ENVIRONMENT"] and len(table.out) == len(hosts) + 1
