"""python -m bench <name> [options]: run one benchmark against live portal processes.

    python -m bench containers  # Swarm scale/update vs the docker CLI, 200-container snapshot (issue 11)
    python -m bench events   # job output: 100k lines to 20 websocket clients (issue 4)
    python -m bench hosts    # uname -a on fleet hosts vs ansible and bare Fabric (issue 6)
    python -m bench light    # uname -a on 1,000-5,000 light hosts: portal vs bare backend, CPU, rows (issue 15)
    python -m bench writer   # what one EventWriter flush costs (rows, commits, publishes)
    python -m bench processes  # process inventory of fleet hosts and this machine vs ps (issue 12)
    python -m bench lists    # every list page and endpoint at 10k hosts, 200k processes, 10M audit rows (issue 13)
    python -m bench playbooks  # a one-task playbook on fleet hosts: the portal vs ansible-playbook alone (issue 14)
    python -m bench launch   # launching a job of 5,000 targets: the caller's wall and CPU time, queries (issue 15)
    python -m bench warm     # a second job over warm SSH connections vs the cold floor and warm ansible (issue 15)
    python -m bench states   # an outage of 5,000 of 50,000 containers: its alerts fired and resolved (issue 13)
    python -m bench sampling  # the minute's container sampling job vs docker stats --no-stream (issue 13)
    python -m bench jobpage  # a job page with 100,000 log lines in Chromium: first paint, load, scrolling (issue 13)

Each runs on a private database and Redis namespace (events and hosts start their own daphne
and/or Celery worker) and removes what it made on exit, Ctrl-C included. Results:
var/bench/<name>-<run id>.json.
"""
import argparse
import sys

from . import runtime


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="name", required=True)
    from . import (
        containers,
        events,
        hosts,
        jobpage,
        launch,
        light,
        lists,
        playbooks,
        processes,
        sampling,
        states,
        warm,
        writer,
    )

    for module in (containers, events, hosts, light, writer, processes, lists, playbooks, jobpage, launch, warm,
                   states, sampling):
        name = module.__name__.rsplit(".", 1)[1]
        p = sub.add_parser(name, help=module.__doc__.splitlines()[0])
        module.add_arguments(p)
        p.set_defaults(func=module.main)
    args = parser.parse_args(argv)
    runtime.install_signal_handlers()
    try:
        args.func(args)
    except KeyboardInterrupt:
        print("\ninterrupted: cleaning up", file=sys.stderr)
        return 130
    finally:
        runtime.cleanup.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
