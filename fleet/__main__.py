"""Command line: python -m fleet up N | down | status | build | engine | cleanup | light up N|down|status."""

import argparse
import json
import sys
import time

from . import light
from .engine import EngineError, docker_client, ensure_engine, swarm_state
from .hosts import Fleet, FleetError, cleanup_leftovers, fleet_dir, list_runs, remove_run
from .images import ImageBuildError, ensure_images, missing_images
from .recipes import RECIPES


def cmd_engine(args):
    print(ensure_engine())


def cmd_build(args):
    ensure_engine()
    started = time.monotonic()
    todo = sorted(RECIPES) if args.force else missing_images()
    tags = ensure_images(force=args.force)
    for image, tag in tags.items():
        print(f"{image:8} {tag}")
    print(f"built: {', '.join(todo) or 'nothing (all images current)'} in {time.monotonic() - started:.1f}s")


def cmd_up(args):
    ensure_engine()
    ensure_images()
    removed = cleanup_leftovers()
    if removed:
        print(f"removed leftovers of crashed runs: {', '.join(removed)}")
    current = fleet_dir() / "current"
    if not args.no_current and not args.keep_previous and current.is_symlink():
        previous = current.readlink().name
        count = remove_run(docker_client(), previous)
        print(f"removed the previous current run {previous} ({count} containers; --keep-previous keeps it)")
    started = time.monotonic()
    fleet = Fleet.up(args.n, run_id=args.run_id, name_prefix=args.prefix, keep=True,
                     kinds={"systemd": args.systemd, "pm2": args.pm2, "puppet": args.puppet},
                     make_current=not args.no_current)
    elapsed = time.monotonic() - started
    if args.json:
        json.dump(fleet.inventory(), sys.stdout, indent=2)
        print()
        return
    for host in fleet.hosts:
        print(f"{host.name:12} {host.kind:8} {host.user}@{host.address}:{host.port}  {host.container_id[:12]}")
    print(f"{len(fleet.hosts)} hosts accept SSH, {elapsed:.1f}s after start (run {fleet.run_id})")
    print(f"inventory:   {fleet.inventory_path}")
    if not args.no_current:
        print(f"             {fleet_dir() / 'current' / 'inventory.json'}")
    print(f"known_hosts: {fleet.known_hosts_path}")
    print(f"login:       ssh -i {fleet.key_path} -o UserKnownHostsFile={fleet.known_hosts_path} "
          f"-p {fleet.hosts[0].port if fleet.hosts else 22} root@127.0.0.1")


def cmd_down(args):
    client = docker_client()
    if args.all:
        removed = cleanup_leftovers(client, include_kept=True)
        print(f"removed runs: {', '.join(removed) or 'none'}")
        return
    run_id = args.run_id
    if run_id is None:
        current = fleet_dir() / "current"
        if not current.is_symlink():
            print("no current fleet (var/fleet/current); `down --all` removes every fleet run")
            return
        run_id = current.readlink().name
    count = remove_run(client, run_id)
    print(f"removed run {run_id} ({count} containers)")


def cmd_status(args):
    client = docker_client()
    runs = list_runs(client)
    current = fleet_dir() / "current"
    current_id = current.readlink().name if current.is_symlink() else None
    info = {"engine": client.version().get("Version"), "swarm": swarm_state(client), "current": current_id,
            "runs": runs}
    if args.json:
        json.dump(info, sys.stdout, indent=2)
        print()
        return
    print(f"engine {info['engine']}, swarm {info['swarm']}")
    if not runs:
        print("no fleet runs")
    for run_id, run in sorted(runs.items()):
        kind = "kept" if run["keep"] else ("live" if run["alive"] else "leftover")
        mark = "  (current)" if run_id == current_id else ""
        print(f"{run_id}  {run['running']}/{run['containers']} running  {kind}{mark}")
    if current_id:
        try:
            for row in Fleet.load(current_id, client=client).status():
                print(f"  {row['name']:12} {row['kind']:8} 127.0.0.1:{row['port']:<6} {row['status']:8} "
                      f"{row['container_id']}")
        except FleetError as exc:
            print(f"  {exc}")


def cmd_cleanup(args):
    removed = cleanup_leftovers(include_kept=args.all)
    print(f"removed runs: {', '.join(removed) or 'none'}")


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m fleet", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    up = sub.add_parser("up", help="start N sshd hosts (and --systemd/--pm2/--puppet more) and write the inventory")
    up.add_argument("n", type=int, help="hosts of the base kind (supervisord)")
    up.add_argument("--systemd", type=int, default=0, metavar="N", help="add N hosts booting systemd (systemd-01…)")
    up.add_argument("--pm2", type=int, default=0, metavar="N", help="add N hosts running PM2 (pm2-01…)")
    up.add_argument("--puppet", type=int, default=0, metavar="N",
                    help="add N hosts with Debian's puppet-agent (puppet-01…)")
    up.add_argument("--run-id")
    up.add_argument("--prefix", default="host", help="host name prefix (default host: host-01, host-02…)")
    up.add_argument("--json", action="store_true", help="print the inventory as JSON")
    up.add_argument("--no-current", action="store_true", help="leave var/fleet/current alone")
    up.add_argument("--keep-previous", action="store_true", help="keep the run var/fleet/current points at")
    up.set_defaults(func=cmd_up)

    down = sub.add_parser("down", help="remove the current run (or --run-id, or --all runs)")
    group = down.add_mutually_exclusive_group()
    group.add_argument("--run-id")
    group.add_argument("--all", action="store_true")
    down.set_defaults(func=cmd_down)

    status = sub.add_parser("status", help="engine, swarm and fleet runs")
    status.add_argument("--json", action="store_true")
    status.set_defaults(func=cmd_status)

    build = sub.add_parser("build", help="build the images whose recipe changed")
    build.add_argument("--force", action="store_true", help="rebuild all images")
    build.set_defaults(func=cmd_build)

    engine = sub.add_parser("engine", help="make sure dockerd runs, in Swarm mode")
    engine.set_defaults(func=cmd_engine)

    cleanup = sub.add_parser("cleanup", help="remove runs whose process is gone (--all: every run)")
    cleanup.add_argument("--all", action="store_true")
    cleanup.set_defaults(func=cmd_cleanup)

    light.add_parser(sub)

    args = parser.parse_args(argv)
    try:
        args.func(args)
    except (EngineError, ImageBuildError, FleetError, TimeoutError) as exc:
        print(f"fleet: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
