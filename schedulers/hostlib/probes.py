"""Facts, metrics and compliance checks: each one remote Python script, one round trip.

The script is remote/probe.py (standard library only), sent as `python3 -c`; the host needs
python3 (3.6 or later). Its output is one JSON document.
"""
import json
import shlex
from functools import cache
from importlib import resources

from ..base import BackendError, CancelToken
from .command import run_capture

PYTHON = "python3"


@cache
def probe_source():
    return resources.files(__package__).joinpath("remote/probe.py").read_text(encoding="utf-8")


def _probe(pool_or_conn, target, *args, cancel=None, timeout=60.0):
    command = shlex.join([PYTHON, "-c", probe_source(), *args])
    result, out, err = run_capture(pool_or_conn, target, command, cancel=cancel, timeout=timeout)
    if result.canceled:
        raise BackendError(f"{args[0]} on {target.name}: canceled")
    if not result.ok:
        detail = result.error or err.strip()[-500:] or f"exit {result.exit_code}"
        if result.exit_code == 127:
            detail = f"{PYTHON} is not installed ({detail})"
        raise BackendError(f"{args[0]} on {target.name} failed: {detail}")
    try:
        return json.loads(out.strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise BackendError(f"{args[0]} on {target.name} returned no JSON: {out[-300:]!r}")


def gather_facts(pool_or_conn, target, *, cancel: CancelToken | None = None) -> dict:
    """Return what the host is: os, kernel, architecture, hostname, cpus, memory, disks, uptime,
    addresses, listening TCP ports, pending reboot, python version, and `tools`: the host tools the
    portal drives that are installed ({"python3"|"puppet"|"facter"|"ansible": {version, path}}, puppet
    with `agent_server`, the server its agent is configured for or "") (see remote/probe.py)."""
    return _probe(pool_or_conn, target, "facts", cancel=cancel)


def collect_metrics(pool_or_conn, target, *, cancel: CancelToken | None = None) -> dict:
    """Return load1/5/15, cpu_percent (two /proc/stat samples 0.5 s apart), mem_percent and
    disks {mount: percent} (the same mounts as the facts)."""
    return _probe(pool_or_conn, target, "metrics", cancel=cancel)


def run_compliance_checks(pool_or_conn, target, *, allowed_ports=(22,), cancel: CancelToken | None = None) -> list:
    """Return [{"check", "passed": True|False|None, "evidence"}]; None means the host could not tell.

    Checks: sshd PermitRootLogin and PasswordAuthentication (effective, `sshd -T`),
    world-writable regular files under /etc, pending apt security updates, and TCP ports
    listening on non-loopback addresses that are not in allowed_ports.
    """
    ports = []
    for port in allowed_ports:
        if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
            raise ValueError(f"allowed port {port!r} is not a TCP port number")
        ports.append(str(port))
    return _probe(pool_or_conn, target, "compliance", *ports, cancel=cancel, timeout=180.0)
