"""opsportal: the command line. Every command ends with an exit code from errors.py and, on
failure, one line in plain words on stderr (never a traceback; OPSPORTAL_DEBUG=1 shows one)."""
import argparse
import json
import os
import sys
import traceback
from dataclasses import dataclass

import yaml

from . import __version__, config, errors, output
from .client import Client
from .watch import GaveUp, watch


@dataclass(frozen=True)
class Resource:
    path: str
    columns: tuple
    by_name: bool = True  # `show NAME` looks the name up (exact match)


RESOURCES = {
    "hosts": Resource("/api/hosts/", ("id", "name", "environment", "address", "port", "transport", "reachability",
                                      "tags", "enabled")),
    "containers": Resource("/api/containers/", ("id", "name", "environment", "engine", "image", "state", "health",
                                                "status", "service_name")),
    "services": Resource("/api/services/", ("id", "name", "environment", "engine", "image", "mode",
                                            "replicas_running", "replicas_desired", "update_state")),
    "programs": Resource("/api/programs/", ("id", "host_name", "environment", "manager", "name", "state", "pids",
                                            "restarts", "crash_loop")),
    "jobs": Resource("/api/jobs/", ("id", "name", "environment", "action", "state", "targets_done",
                                    "targets_total", "targets_failed", "created_by_name", "created"), by_name=False),
    "approvals": Resource("/api/approvals/", ("id", "environment", "title", "state", "approvals", "required",
                                              "requested_by_name", "expires_at"), by_name=False),
    "templates": Resource("/api/job-templates/", ("id", "name", "environment", "action", "description", "version")),
}
JOB_FIELDS = ("id", "name", "environment", "action", "state", "targets_total", "targets_done", "targets_failed",
              "waiting_reason", "error", "created_by_name", "created", "started", "finished")


# Arguments ------------------------------------------------------------------------------------

def _key_value(text):
    """key=value (a string) or key:=JSON (any JSON value), as HTTPie writes them."""
    if ":=" in text and text.index(":=") < text.index("=") + 1:
        key, raw = text.split(":=", 1)
        try:
            return key, json.loads(raw)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{key}:= takes JSON, not {raw!r}") from None
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"write key=value (or key:=JSON), not {text!r}")
    key, value = text.split("=", 1)
    if not key:
        raise argparse.ArgumentTypeError(f"a name is missing before = in {text!r}")
    return key, value


def _json_object(text):
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not valid JSON ({exc})") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("give a JSON object ({...})")
    return value


def _positive(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"give a number of seconds, not {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError("give 0 (no limit) or more")
    return value


def _names(text):
    return [n for n in (part.strip() for part in text.split(",")) if n]


def add_output(parser):
    parser.add_argument("-o", "--output", choices=output.FORMATS, default="table",
                        help="table for people; json or yaml (the API's objects) for scripts")


def add_wait(parser, default_wait=False):
    group = parser.add_argument_group("waiting")
    if default_wait:
        group.add_argument("--no-wait", dest="wait", action="store_false", help="return once the job is launched")
    else:
        group.add_argument("--wait", action="store_true", help="wait for the job to end; exit with its result")
    group.add_argument("-f", "--follow", action="store_true",
                       help="print the job's output live, each line prefixed by its target (implies --wait)")
    group.add_argument("--timeout", type=_positive, default=3600.0,
                       help="give up waiting after this many seconds, exit 8 (default 3600; 0: no limit)")
    group.add_argument("--cancel-on-timeout", action="store_true", help="cancel the job when giving up")
    group.add_argument("-q", "--quiet", action="store_true", help="no progress messages on stderr")
    parser.set_defaults(wait=default_wait)


def add_params(parser):
    parser.add_argument("-p", "--param", dest="params", action="append", type=_key_value, default=[],
                        metavar="KEY=VALUE", help="a parameter: key=text or key:=JSON (repeat)")
    parser.add_argument("--params-file", metavar="FILE", help="parameters from a YAML or JSON file (- for stdin)")


def build_parser():
    parser = argparse.ArgumentParser(
        prog="opsportal", description="The ops portal from a terminal or a pipeline. Configure with PORTAL_URL and "
        "PORTAL_TOKEN (or ~/.config/opsportal/config.toml); see docs/CLI.md for the exit codes.")
    parser.add_argument("--version", action="version", version=f"opsportal {__version__}")
    parser.add_argument("--profile", help="a [profiles.NAME] of the config file (or PORTAL_PROFILE)")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    whoami = commands.add_parser("whoami", help="who the token signs in as, and where you may do what")
    add_output(whoami)

    for name, resource in RESOURCES.items():
        res = commands.add_parser(name, aliases=[name[:-1]], help=f"list and show {name}")
        verbs = res.add_subparsers(dest="verb", metavar="VERB", required=True)
        listing = verbs.add_parser("list", aliases=["ls"], help=f"list {name}")
        listing.add_argument("-e", "--environment", help="only this environment")
        listing.add_argument("--filter", action="append", type=_key_value, default=[], metavar="KEY=VALUE",
                             help="an API filter (see /api/docs/), e.g. state=running (repeat)")
        listing.add_argument("--ordering", help="a field, or -field for descending")
        listing.add_argument("--limit", type=int, default=50, help="at most this many rows (0: all; default 50)")
        if name in ("jobs", "approvals"):
            listing.add_argument("--state", action="append", help="only in this state (repeat)")
        add_output(listing)
        listing.set_defaults(handler=cmd_list, resource=name)
        show = verbs.add_parser("show", aliases=["get"], help=f"one of the {name}")
        show.add_argument("ref", help="id" + (" or name" if resource.by_name else ""))
        show.add_argument("-e", "--environment", help="the environment, when the name is in several")
        add_output(show)
        show.set_defaults(handler=cmd_show, resource=name)
        if name == "jobs":
            _job_verbs(verbs)
        if name == "approvals":
            for verb in ("approve", "reject"):
                decide = verbs.add_parser(verb, help=f"{verb} a request (never your own: four eyes)")
                decide.add_argument("id", type=int)
                decide.add_argument("-m", "--comment", default="", help="a comment kept with the decision")
                add_output(decide)
                decide.set_defaults(handler=cmd_decide, decision=verb)
        if name == "services":
            _service_verbs(verbs)

    launch = commands.add_parser("launch", help="launch a job template")
    launch.add_argument("template", help="the template's id or name")
    launch.add_argument("-e", "--environment", help="the template's environment, when the name is in several")
    add_params(launch)
    launch.add_argument("--limit", metavar="NAMES", help="only some of the template's targets: names or patterns, "
                                                         "comma-separated (web-1,db-*)")
    launch.add_argument("--emergency", metavar="REASON", help="run during a freeze (administrators), saying why")
    add_wait(launch)
    add_output(launch)
    launch.set_defaults(handler=cmd_launch)

    run = commands.add_parser("run", help="launch an ad-hoc job: an action on the targets a selector picks")
    run.add_argument("action", help="the action, e.g. host.command (opsportal actions lists them)")
    run.add_argument("-e", "--environment", required=True)
    add_params(run)
    selector = run.add_argument_group("targets (combine: AND across kinds, OR inside a list)")
    selector.add_argument("--hosts", "--names", dest="names", action="append", type=_names, default=[],
                          metavar="A,B", help="these names")
    selector.add_argument("--pattern", help="names matching a shell pattern, e.g. 'web-*'")
    selector.add_argument("--group", dest="groups", action="append", default=[], help="members of a group (repeat)")
    selector.add_argument("--tag", dest="tags", action="append", default=[], help="hosts with a tag (repeat)")
    selector.add_argument("--all", action="store_true", help="every enabled host of the environment")
    selector.add_argument("--kind", help="target kind when not host (process, program, container, service...)")
    selector.add_argument("--selector", type=_json_object, help="the whole selector as JSON")
    strategy = run.add_argument_group("strategy")
    strategy.add_argument("--parallel", type=int, metavar="N", help="all targets, N at a time")
    strategy.add_argument("--batch-size", type=int, metavar="N", help="rolling batches of N")
    strategy.add_argument("--max-failures", type=int, metavar="N", help="stop the rollout after N failed targets")
    strategy.add_argument("--strategy", type=_json_object, help="the whole strategy as JSON")
    run.add_argument("--name", default="", help="a name for the job")
    run.add_argument("--job-timeout", type=int, help="the job's own time limit in seconds (the portal's)")
    run.add_argument("--emergency", metavar="REASON", help="run during a freeze (administrators), saying why")
    add_wait(run)
    add_output(run)
    run.set_defaults(handler=cmd_run)

    actions = commands.add_parser("actions", help="what jobs can do, with their parameters")
    add_output(actions)
    actions.set_defaults(handler=cmd_actions)
    whoami.set_defaults(handler=cmd_whoami)
    return parser


def _job_verbs(verbs):
    for verb, text in (("wait", "wait for a job to end; exit with its result"),
                       ("follow", "print a job's output live until it ends; exit with its result")):
        wait = verbs.add_parser(verb, help=text)
        wait.add_argument("id", type=int)
        add_wait(wait, default_wait=True)
        add_output(wait)
        wait.set_defaults(handler=cmd_job_wait, force_follow=verb == "follow")
    cancel = verbs.add_parser("cancel", help="cancel a job (queued: at once; running: once its processes are gone)")
    cancel.add_argument("id", type=int)
    add_wait(cancel)
    add_output(cancel)
    cancel.set_defaults(handler=cmd_cancel)
    relaunch = verbs.add_parser("relaunch", help="run a job's plan again as a new job")
    relaunch.add_argument("id", type=int)
    add_wait(relaunch)
    add_output(relaunch)
    relaunch.set_defaults(handler=cmd_relaunch)
    out = verbs.add_parser("output", help="a job's whole output as text")
    out.add_argument("id", type=int)
    out.set_defaults(handler=cmd_output)


def _service_verbs(verbs):
    scale = verbs.add_parser("scale", help="set a service's replicas and wait until it converged")
    scale.add_argument("name", help="the service's id or name")
    scale.add_argument("replicas", type=int)
    scale.add_argument("-e", "--environment", help="the environment, when the name is in several")
    add_wait(scale, default_wait=True)
    add_output(scale)
    scale.set_defaults(handler=cmd_service_scale)
    update = verbs.add_parser("update", help="roll a service out to a new image and wait until it converged")
    update.add_argument("name", help="the service's id or name")
    update.add_argument("--image", required=True)
    update.add_argument("-e", "--environment", help="the environment, when the name is in several")
    update.add_argument("--parallelism", type=int, help="tasks updated at once")
    update.add_argument("--delay", help="between batches, seconds or a Go duration (10s)")
    update.add_argument("--order", choices=["stop-first", "start-first"])
    update.add_argument("--failure-action", choices=["pause", "continue", "rollback"])
    update.add_argument("--monitor", help="how long each task is watched after its update (5s)")
    update.add_argument("--max-failure-ratio", type=float)
    update.add_argument("--force", action="store_true", help="update even when nothing changed")
    add_wait(update, default_wait=True)
    add_output(update)
    update.set_defaults(handler=cmd_service_update)


# Commands -------------------------------------------------------------------------------------

def emit(args, data, columns=()):
    sys.stdout.write(output.render(data, args.output, columns))
    sys.stdout.flush()


def lookup(client, resource_name, ref, environment=None):
    """The object of `resource_name` with this id or (exact) name."""
    resource = RESOURCES[resource_name]
    if ref.isdigit():
        return client.get(f"{resource.path}{ref}/")
    if not resource.by_name:
        raise errors.Invalid(f"give the id (a number) of the {resource_name[:-1]}, not {ref!r}.")
    rows = [row for row in client.list(resource.path, {"name": ref, "environment": environment}, limit=0)
            if row.get("name") == ref]
    if not rows:
        where = f" in {environment}" if environment else ""
        raise errors.NotFound(f"no {resource_name[:-1]} named {ref!r}{where} that you may see.")
    if len(rows) > 1:
        envs = ", ".join(sorted({str(r.get("environment")) for r in rows}))
        raise errors.Invalid(f"{len(rows)} {resource_name} are named {ref!r} (environments: {envs}): "
                             "give -e ENVIRONMENT or the id.")
    if resource_name in ("services", "hosts", "containers", "programs"):
        return client.get(f"{resource.path}{rows[0]['id']}/")
    return rows[0]


def cmd_whoami(client, args):
    emit(args, client.get("/api/me/"))


def cmd_list(client, args):
    resource = RESOURCES[args.resource]
    params = dict(args.filter)
    if args.environment:
        params["environment"] = args.environment
    if args.ordering:
        params["ordering"] = args.ordering
    if getattr(args, "state", None):
        params["state"] = args.state
    emit(args, client.list(resource.path, params, limit=max(0, args.limit)), resource.columns)


def cmd_show(client, args):
    emit(args, lookup(client, args.resource, args.ref, args.environment))


def cmd_decide(client, args):
    emit(args, client.post(f"/api/approvals/{args.id}/{args.decision}/", {"comment": args.comment}))


def cmd_actions(client, args):
    emit(args, client.get("/api/actions/"), ("name", "target_kind", "mutating", "label"))


def _params(args):
    values = {}
    if args.params_file:
        try:
            text = sys.stdin.read() if args.params_file == "-" else open(args.params_file).read()  # noqa: SIM115
            loaded = yaml.safe_load(text) or {}
        except OSError as exc:
            raise errors.Invalid(f"cannot read {args.params_file}: {exc.strerror}") from None
        except yaml.YAMLError as exc:
            raise errors.Invalid(f"{args.params_file} is not YAML or JSON: {exc}") from None
        if not isinstance(loaded, dict):
            raise errors.Invalid(f"{args.params_file} must hold a mapping of parameter names to values.")
        values.update(loaded)
    values.update(dict(args.params))
    return values


def _selector(args):
    selector = dict(args.selector or {})
    if args.kind:
        selector["kind"] = args.kind
    names = [n for group in args.names for n in group]
    for key, value in (("names", names), ("groups", args.groups), ("tags", args.tags)):
        if value:
            selector[key] = value
    if args.pattern:
        selector["pattern"] = args.pattern
    if args.all:
        selector["all"] = True
    if set(selector) <= {"kind"}:
        raise errors.Invalid("say which targets: --hosts, --pattern, --group, --tag, --all or --selector.")
    return selector


def _strategy(args):
    strategy = dict(args.strategy or {})
    if args.parallel is not None:
        strategy.update(kind="parallel", limit=args.parallel)
    if args.batch_size is not None:
        strategy.update(kind="rolling", batch_size=args.batch_size)
    if args.max_failures is not None:
        strategy["max_failures"] = args.max_failures
    return strategy or None


def launched(client, args, job):
    """After a launch: print the job, or wait for it (and follow) and exit with its result."""
    if not (args.wait or args.follow):
        if args.output == "table":
            sys.stdout.write(f"job {job['id']} {job['state']}: {client.config.url}/jobs/{job['id']}/\n")
        else:
            emit(args, job)
        return 0
    if not args.quiet:
        sys.stderr.write(f"job {job['id']} launched: {client.config.url}/jobs/{job['id']}/\n")
    return wait_job(client, args, job)


def wait_job(client, args, job):
    """Wait for the job (following its output if asked) and return its exit code."""
    if "targets" not in job or "last_seq" not in job:
        job = client.get(f"/api/jobs/{job['id']}/")
    try:
        job = watch(client, job, follow=args.follow, timeout=args.timeout or None, quiet=args.quiet)
    except GaveUp as gave_up:
        job = gave_up.job
        message = f"gave up after {args.timeout:g}s: job {job['id']} is still {job['state']}"
        if args.cancel_on_timeout:
            client.post(f"/api/jobs/{job['id']}/cancel/")
            message += "; cancel requested"
        else:
            message += f" (it goes on; cancel with: opsportal jobs cancel {job['id']})"
        sys.stderr.write(message + "\n")
        return errors.GAVE_UP
    if args.output != "table":
        emit(args, job)
    sys.stderr.write(summary(job) + "\n")
    return errors.job_exit_code(job["state"])


def summary(job):
    state = job["state"]
    text = (f"job {job['id']} {state}: {job.get('targets_done', 0)} of {job.get('targets_total', 0)} targets done, "
            f"{job.get('targets_failed', 0)} failed")
    if job.get("error"):
        text += f"; {job['error']}"
    failed = [t for t in job.get("targets") or [] if t.get("state") not in ("ok", "skipped", "pending")]
    for target in failed[:10]:
        detail = target.get("error") or (f"exit {target['exit_code']}" if target.get("exit_code") is not None else "")
        text += f"\n  {target['name']}: {target['state']}" + (f" ({detail})" if detail else "")
    if len(failed) > 10:
        text += f"\n  ... and {len(failed) - 10} more"
    return text


def _launch_extra(args, body):
    if args.emergency:
        body.update(emergency=True, emergency_reason=args.emergency)
    return body


def cmd_launch(client, args):
    template = lookup(client, "templates", args.template, args.environment)
    body = {"params": _params(args)}
    if args.limit:
        body["limit"] = args.limit
    job = client.post(f"/api/job-templates/{template['id']}/launch/", _launch_extra(args, body))
    return launched(client, args, job)


def cmd_run(client, args):
    body = {"environment": args.environment, "action": args.action, "params": _params(args),
            "selector": _selector(args), "name": args.name}
    strategy = _strategy(args)
    if strategy is not None:
        body["strategy"] = strategy
    if args.job_timeout is not None:
        body["timeout_seconds"] = args.job_timeout
    return launched(client, args, client.post("/api/jobs/", _launch_extra(args, body)))


def cmd_job_wait(client, args):
    if args.force_follow:
        args.follow = True
    return wait_job(client, args, client.get(f"/api/jobs/{args.id}/"))


def cmd_cancel(client, args):
    job = client.post(f"/api/jobs/{args.id}/cancel/")
    if args.wait or args.follow:
        return wait_job(client, args, job)
    emit(args, job, JOB_FIELDS) if args.output != "table" else sys.stdout.write(
        f"job {job['id']} {job['state']}" + (" (cancel requested)" if job.get("cancel_requested") else "") + "\n")
    return 0


def cmd_relaunch(client, args):
    return launched(client, args, client.post(f"/api/jobs/{args.id}/relaunch/"))


def cmd_output(client, args):
    for piece in client.stream_text(f"/api/jobs/{args.id}/output/"):
        sys.stdout.write(piece)
    sys.stdout.flush()


def _service_done(client, args, service, code):
    if code == 0 and not args.quiet:
        now = client.get(f"/api/services/{service['id']}/")
        sys.stderr.write(f"service {now['name']}: {now['replicas_running']}/{now['replicas_desired']} running, "
                         f"image {now['image']}\n")
    return code


def cmd_service_scale(client, args):
    service = lookup(client, "services", args.name, args.environment)
    job = client.post(f"/api/services/{service['id']}/scale/", {"replicas": args.replicas})
    return _service_done(client, args, service, launched(client, args, job))


def cmd_service_update(client, args):
    service = lookup(client, "services", args.name, args.environment)
    body = {"image": args.image, "force": args.force}
    for field in ("parallelism", "delay", "order", "failure_action", "monitor", "max_failure_ratio"):
        if getattr(args, field) is not None:
            body[field] = getattr(args, field)
    job = client.post(f"/api/services/{service['id']}/update/", body)
    return _service_done(client, args, service, launched(client, args, job))


# Entry point ----------------------------------------------------------------------------------

def main(argv=None, env=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    env = os.environ if env is None else env
    client = None
    try:
        client = Client(config.load(env, args.profile))
        code = args.handler(client, args)
        return 0 if code is None else code
    except errors.CLIError as exc:
        sys.stderr.write(f"opsportal: {exc}\n")
        return exc.exit_code
    except KeyboardInterrupt:
        sys.stderr.write("opsportal: interrupted (a launched job goes on; see opsportal jobs list)\n")
        return errors.INTERRUPTED
    except BrokenPipeError:
        return 0
    except Exception as exc:  # never a traceback for users; OPSPORTAL_DEBUG=1 shows it
        if env.get("OPSPORTAL_DEBUG"):
            traceback.print_exc()
        sys.stderr.write(f"opsportal: unexpected error ({type(exc).__name__}: {exc}); "
                         "run again with OPSPORTAL_DEBUG=1 for details\n")
        return errors.INTERNAL
    finally:
        if client is not None:
            client.close()
