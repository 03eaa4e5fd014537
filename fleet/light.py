"""Light hosts: one asyncssh process serving many SSH hosts on loopback ports (issue 15).

The sshd fleet (fleet/hosts.py) costs a container per host, about 200 on this machine. A light
fleet is one Python process that listens on N ports of 127.0.0.1 (from LIGHT_PORT_LOW up, below
the kernel's ephemeral range where Docker and test servers get their ports), each port a host
with its own ed25519 host key and hostname. It speaks real SSH (asyncssh: key exchange, host key,
public key authentication with the run's client key, session channels), so the portal's SSH
backend (schedulers/hostlib) runs against it unchanged. It runs no shell: each exec request is
parsed with shlex and served from a small command set:

    uname [-a|-n|-s|-r|-m], hostname, true, false, exit N, sleep N, seq [FIRST] LAST, echo [-n] ...,
    joined by `;`, `&&` and `||`, optionally behind `exec`, `env [--] NAME=VALUE...` or NAME=VALUE;

plus the shapes the backend wraps around a command: `sh -c WRAPPER opsportal-run MARKER GRACE CWD
COMMAND [NAME=VALUE...]` (hostlib/command.py: the session id control line, then COMMAND),
`sh -c KILLER opsportal-kill SID GRACE [TAG]` (cancel: ends the session if it carries TAG),
`sh -c COMMAND`, and `python3 -c PROBE facts|metrics` (hostlib/probes.py: a JSON document). Anything
else exits 127 with "light host: command not served: …" on stderr. No SFTP, no forwarding.

Files under var/fleet/light/: host_keys (one hex ed25519 seed per line, line i is host i's key,
generated once and kept, so a host keeps its key across runs), id_ed25519 (+ .pub, the client key
the hosts accept), and per run <run id>/ with inventory.json (the shape of the sshd fleet's, so
`manage.py register_fleet` registers it), known_hosts, server.pid and server.log; `current` points
at the run `python -m fleet light up` started last.

    python -m fleet light up N [--base-port P] | down [--run-id ID] | status
"""

import argparse
import asyncio
import fcntl
import functools
import json
import logging
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

from . import ssh
from .hosts import ADDRESS, USER, FleetError, Host, _new_run_id, fleet_dir

LIGHT_PORT_LOW = 20000
LIGHT_PORT_HIGH = 32767  # the kernel's ephemeral range starts at 32768 here (ip_local_port_range)
KIND = "light"
KERNEL = "6.1.0-light"
UNAME_VERSION = "#1 SMP PREEMPT_DYNAMIC Debian 6.1.0-light (2026-01-01)"
MAX_SLEEP = 3600.0
MAX_SEQ = 1_000_000
WRAP_MARK, KILL_MARK = "opsportal-run", "opsportal-kill"

log = logging.getLogger(__name__)


def light_dir():
    return fleet_dir() / "light"


# Keys -------------------------------------------------------------------------------------------

def host_key_seeds(n, directory=None):
    """Return the first n host key seeds (bytes), generating and appending the missing ones."""
    directory = Path(directory or light_dir())
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "host_keys"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    with os.fdopen(fd, "r+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        seeds = [bytes.fromhex(line) for line in fh.read().split()]
        if len(seeds) < n:
            new = [os.urandom(32) for _ in range(n - len(seeds))]
            fh.seek(0, os.SEEK_END)
            fh.write("".join(seed.hex() + "\n" for seed in new))
            fh.flush()
            os.fsync(fh.fileno())
            seeds += new
    return seeds[:n]


def client_key(directory=None):
    """Return (private key path, public key line) of the client key light hosts accept; made once."""
    directory = Path(directory or light_dir())
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "id_ed25519"
    lock = os.open(directory / ".client-key.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not path.exists() or not Path(f"{path}.pub").exists():
            ssh.generate_keypair(path)
    finally:
        os.close(lock)
    return path, Path(f"{path}.pub").read_text().strip()


def _asyncssh_key(seed):
    import asyncssh
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    private = Ed25519PrivateKey.from_private_bytes(seed).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption())
    return asyncssh.import_private_key(private)


def public_line(seed):
    """The "ssh-ed25519 AAAA…" line of a host key seed."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    public = Ed25519PrivateKey.from_private_bytes(seed).public_key()
    return public.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()


def host_names(n, prefix=KIND):
    width = max(4, len(str(n)))
    return [f"{prefix}-{i:0{width}d}" for i in range(1, n + 1)]


# Commands ---------------------------------------------------------------------------------------

class Refused(Exception):
    """The command is not one a light host serves (exit 127)."""


class Session:
    """One running command line: its id (a fake process id), its environment, its task."""

    def __init__(self, sid, env):
        self.sid = sid
        self.env = env
        self.task = None
        self.killed = False


class Server:
    """The state shared by all hosts of the process: sessions by id, counters."""

    def __init__(self, hosts):
        self.hosts = hosts  # [(name, port)]
        self.sessions = {}
        self.next_sid = 1000
        self.started = time.time()
        self.connections = 0
        self.commands = 0

    def new_session(self, env):
        self.next_sid += 1
        session = Session(self.next_sid, env)
        self.sessions[session.sid] = session
        return session


def split_commands(line):
    """Split a command line into [(joiner, argv)], joiner None/";"/"&&"/"||"; Refused on anything else.

    A line without ; & | or one that starts a shell or python3 (the backend's wrappers, whose quoted
    scripts hold those characters) is one simple command. Elsewhere a quoted ";" counts as a joiner:
    light hosts do not serve commands that need one.
    """
    try:
        argv = shlex.split(line)
    except ValueError as exc:
        raise Refused(f"cannot parse: {exc}")
    if not set(line) & set(";&|") or (argv and argv[0].rsplit("/", 1)[-1] in ("sh", "bash", "python3", "python")):
        if not argv:
            raise Refused("empty command")
        return [(None, argv)]
    lexer = shlex.shlex(line, posix=True, punctuation_chars=";&|")
    lexer.whitespace_split = True
    try:
        tokens = list(lexer)
    except ValueError as exc:
        raise Refused(f"cannot parse: {exc}")
    parts, argv, joiner = [], [], None
    for token in tokens:
        if token in (";", "&&", "||"):
            if not argv:
                raise Refused(f"empty command before {token!r}")
            parts.append((joiner, argv))
            argv, joiner = [], token
        elif token and set(token) <= set(";&|"):
            raise Refused(f"{token!r} is not served")
        else:
            argv.append(token)
    if argv:
        parts.append((joiner, argv))
    elif joiner not in (None, ";"):
        raise Refused(f"nothing after {joiner!r}")
    if not parts:
        raise Refused("empty command")
    return parts


def _strip_prefixes(argv, env):
    """Drop `exec`, `env [--] NAME=VALUE…` and leading NAME=VALUE words, noting the variables in env."""
    while argv:
        head = argv[0]
        if head == "exec":
            argv = argv[1:]
        elif head == "env":
            argv = argv[1:]
            if argv and argv[0] == "--":
                argv = argv[1:]
        elif "=" in head and head.split("=", 1)[0].isidentifier():
            name, value = head.split("=", 1)
            env[name] = value
            argv = argv[1:]
        else:
            break
    return argv


def _number(text, what):
    try:
        value = float(text)
    except ValueError:
        raise Refused(f"{what}: invalid number {text!r}")
    if value != value or value < 0:
        raise Refused(f"{what}: invalid number {text!r}")
    return value


class Run:
    """Serve one exec request on one host: write to out/err, return the exit code."""

    def __init__(self, server, name, out, err):
        self.server = server
        self.name = name
        self.out = out
        self.err = err

    async def line(self, line, env):
        code = 0
        for joiner, argv in split_commands(line):
            if (joiner == "&&" and code != 0) or (joiner == "||" and code == 0):
                continue
            code = await self.simple(list(argv), env)
        return code

    async def simple(self, argv, env):
        argv = _strip_prefixes(argv, env)
        if not argv:
            return 0
        cmd, args = argv[0].rsplit("/", 1)[-1], argv[1:]
        if cmd in ("sh", "bash") and len(args) >= 2 and args[0] == "-c":
            return await self.shell(args[1], args[2:], env)
        if cmd in ("python3", "python") and len(args) == 3 and args[0] == "-c" and args[2] in ("facts", "metrics"):
            self.out(json.dumps(self.facts() if args[2] == "facts" else self.metrics()) + "\n")
            return 0
        for arg in argv:
            # No shell behind: an expansion or a redirection would be printed literally, not done.
            if "$" in arg or "`" in arg or arg.lstrip("0123456789&")[:1] in ("<", ">"):
                raise Refused(f"{shlex.join(argv)} (no expansion or redirection here)")
        if cmd == "true" or cmd == ":":
            return 0
        if cmd == "false":
            return 1
        if cmd == "exit":
            return int(_number(args[0], "exit")) % 256 if args else 0
        if cmd == "hostname" and not args:
            self.out(self.name + "\n")
            return 0
        if cmd == "uname":
            return self.uname(args)
        if cmd == "echo":
            newline = "\n"
            if args and args[0] == "-n":
                newline, args = "", args[1:]
            self.out(" ".join(args) + newline)
            return 0
        if cmd == "seq" and 1 <= len(args) <= 2:
            first, last = (1, args[0]) if len(args) == 1 else args
            first, last = int(_number(str(first), "seq")), int(_number(last, "seq"))
            if last - first >= MAX_SEQ:
                raise Refused(f"seq: at most {MAX_SEQ} numbers")
            for start in range(first, last + 1, 10000):
                self.out("".join(f"{i}\n" for i in range(start, min(last, start + 9999) + 1)))
                await asyncio.sleep(0)
            return 0
        if cmd == "sleep" and len(args) == 1:
            seconds = _number(args[0], "sleep")
            if seconds > MAX_SLEEP:
                raise Refused(f"sleep: at most {MAX_SLEEP:g} s")
            await asyncio.sleep(seconds)
            return 0
        raise Refused(shlex.join(argv))

    def uname(self, args):
        fields = {"-s": "Linux", "-n": self.name, "-r": KERNEL, "-v": UNAME_VERSION, "-m": "x86_64",
                  "-o": "GNU/Linux"}
        if not args:
            args = ["-s"]
        if args == ["-a"]:
            args = ["-s", "-n", "-r", "-v", "-m", "-o"]
        if any(a not in fields for a in args):
            raise Refused(shlex.join(["uname", *args]))
        self.out(" ".join(fields[a] for a in args) + "\n")
        return 0

    async def shell(self, script, args, env):
        """sh -c SCRIPT ARGS: the backend's wrapper and killer by their $0, else SCRIPT as a command line."""
        if args[:1] == [WRAP_MARK] and len(args) >= 5:
            marker, _grace, cwd, command, *pairs = args[1:]
            wrapped = dict(env)
            for pair in pairs:
                name, sep, value = pair.partition("=")
                if not sep or not name.isidentifier():
                    raise Refused(f"bad environment entry {pair!r}")
                wrapped[name] = value
            if cwd and not cwd.startswith("/"):
                self.err(f"sh: cd: {cwd}: No such file or directory\n")
                return 126
            return await self.session(marker, command, wrapped)
        if args[:1] == [KILL_MARK] and len(args) >= 3:
            return self.kill(int(_number(args[1], "kill")), args[3] if len(args) > 3 else "")
        return await self.line(script, env)

    async def session(self, marker, command, env):
        session = self.server.new_session(env)
        self.out(f"{marker} {session.sid}\n")
        session.task = asyncio.ensure_future(self.line(command, env))
        try:
            return await session.task
        except asyncio.CancelledError:
            if session.killed:
                return 128 + signal.SIGTERM
            session.task.cancel()
            raise
        finally:
            self.server.sessions.pop(session.sid, None)

    def kill(self, sid, tag):
        session = self.server.sessions.get(sid)
        if session is None or session.task is None or session.task.done():
            self.out("gone\n")
            return 0
        if tag:
            name, _, value = tag.partition("=")
            if session.env.get(name) != value:
                self.out(f"foreign\n{sid} S light-session\n")
                return 2
        session.killed = True
        session.task.cancel()
        self.out("gone\n")
        return 0

    def facts(self):
        return {
            "os": {"id": "debian", "name": "Debian GNU/Linux", "version": "12", "codename": "bookworm",
                   "pretty_name": "Debian GNU/Linux 12 (bookworm), light host"},
            "kernel": KERNEL, "architecture": "x86_64", "hostname": self.name, "cpu_count": 1, "cpu_usable": 1,
            "memory": {"total": 1 << 30, "available": 1 << 29}, "disks": [],
            "uptime_seconds": round(time.time() - self.server.started, 1), "interfaces": [],
            "addresses_source": "light", "ipv4": [], "ipv6": [], "listening_tcp": [], "pending_reboot": False,
            "pending_reboot_packages": [], "python_version": "3.11.2",
            "tools": {"python3": {"version": "3.11.2", "path": "/usr/bin/python3"}}, "collected_at": time.time(),
        }

    def metrics(self):
        return {"load1": 0.0, "load5": 0.0, "load15": 0.0, "cpu_percent": 0.0, "cpu_count": 1, "mem_percent": 50.0,
                "memory": {"total": 1 << 30, "available": 1 << 29}, "disks": {}, "collected_at": time.time()}


async def handle_process(server, name, process):
    """asyncssh process_factory: serve one exec request (a shell request gets a refusal)."""
    server.commands += 1
    command = process.command
    run = Run(server, name, process.stdout.write, process.stderr.write)
    if command is None:
        process.stderr.write("light host: no interactive shell\n")
        _finish(process, 127)
        return
    try:
        code = await run.line(command, {})
    except Refused as exc:
        process.stderr.write(f"light host: command not served: {exc}\n")
        code = 127
    except Exception as exc:  # a bug here must not take the host down: report it like a shell would
        log.exception("light host %s: %r failed", name, command)
        process.stderr.write(f"light host: internal error: {exc}\n")
        code = 70
    _finish(process, code)


def _finish(process, code):
    """End-of-file, then the exit status, then close: the order sshd uses (the client waits for all)."""
    try:
        process.channel.write_eof()
    except OSError:
        pass
    process.exit(code)


def _server_class(client_public):
    import asyncssh

    accepted = asyncssh.import_public_key(client_public)

    class LightSSHServer(asyncssh.SSHServer):
        def begin_auth(self, username):
            return True

        def password_auth_supported(self):
            return False

        def public_key_auth_supported(self):
            return True

        def validate_public_key(self, username, key):
            return username == USER and key.public_data == accepted.public_data

    return LightSSHServer


async def serve(run_dir, names, base_port, seeds, client_public, ready):
    """Listen for every host, then call ready(); serve until cancelled."""
    import asyncssh

    server = Server(list(zip(names, range(base_port, base_port + len(names)), strict=True)))
    factory = _server_class(client_public)
    listeners = []
    for index, name in enumerate(names):
        listener = await asyncssh.create_server(
            factory, ADDRESS, base_port + index, server_host_keys=[_asyncssh_key(seeds[index])],
            process_factory=functools.partial(handle_process, server, name), sftp_factory=None,
            allow_scp=False, agent_forwarding=False, x11_forwarding=False, login_timeout=30,
            reuse_address=True)
        listeners.append(listener)
    ready()
    try:
        await asyncio.Event().wait()
    finally:
        for listener in listeners:
            listener.close()


def serve_main(argv):
    parser = argparse.ArgumentParser(prog="python -m fleet.light serve")
    parser.add_argument("--run-dir", type=Path, required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("asyncssh").setLevel(logging.WARNING)
    spec = json.loads((args.run_dir / "spec.json").read_text())
    seeds = host_key_seeds(len(spec["names"]), spec["keys_dir"])
    client_public = Path(spec["public_key_path"]).read_text().strip()

    def ready():
        tmp = args.run_dir / ".ready.tmp"
        tmp.write_text(f"{os.getpid()}\n")
        os.replace(tmp, args.run_dir / "ready")

    loop = asyncio.new_event_loop()
    task = loop.create_task(serve(args.run_dir, spec["names"], spec["base_port"], seeds, client_public, ready))
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, task.cancel)
    try:
        loop.run_until_complete(task)
    except asyncio.CancelledError:
        pass
    except OSError as exc:
        print(f"light fleet: cannot listen: {exc}", file=sys.stderr)
        return 1
    finally:
        loop.close()
    return 0


# The run ----------------------------------------------------------------------------------------

def ports_free(base, count):
    """True when every port base..base+count-1 of 127.0.0.1 can be bound now."""
    for port in range(base, base + count):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((ADDRESS, port))
            except OSError:
                return False
    return True


def find_base_port(count, low=LIGHT_PORT_LOW, high=LIGHT_PORT_HIGH, step=250):
    for base in range(low, high - count + 2, step):
        if ports_free(base, count):
            return base
    raise FleetError(f"no {count} free consecutive ports of {ADDRESS} between {low} and {high}")


def _pid_alive(pid, run_dir):
    """True when pid is this run's server (not a recycled pid)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return b"fleet.light" in cmdline and str(run_dir).encode() in cmdline


class LightFleet:
    """A running light fleet: its server process, hosts and files; make one with up() or load()."""

    def __init__(self, run_id, hosts, *, pid, base_port, key_path, public_key, created_at=None):
        self.run_id = run_id
        self.hosts = list(hosts)
        self.pid = pid
        self.base_port = base_port
        self.key_path = Path(key_path)
        self.public_key = public_key
        self.created_at = created_at or datetime.now(UTC).isoformat(timespec="seconds")
        self.run_dir = light_dir() / run_id
        self.known_hosts_path = self.run_dir / "known_hosts"
        self.inventory_path = self.run_dir / "inventory.json"

    def __repr__(self):
        return f"<LightFleet {self.run_id}: {len(self.hosts)} hosts on {ADDRESS}:{self.base_port}+ pid {self.pid}>"

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.down()

    @classmethod
    def up(cls, n, run_id=None, name_prefix=KIND, *, base_port=None, make_current=False, ready_timeout=None):
        """Start the server process for n hosts, wait until every port listens; return the LightFleet."""
        if n < 1:
            raise FleetError("a light fleet needs at least one host")
        if n > LIGHT_PORT_HIGH - LIGHT_PORT_LOW + 1:
            raise FleetError(f"at most {LIGHT_PORT_HIGH - LIGHT_PORT_LOW + 1} light hosts")
        run_id = run_id or f"light-{_new_run_id()}"
        run_dir = light_dir() / run_id
        run_dir.mkdir(parents=True, exist_ok=False)
        seeds = host_key_seeds(n)
        key_path, public = client_key()
        names = host_names(n, name_prefix)
        low = LIGHT_PORT_LOW
        attempts = 5
        for attempt in range(attempts):
            base = base_port or find_base_port(n, low=low)
            hosts = [Host(name=name, address=ADDRESS, port=base + i, user=USER, key_path=str(key_path),
                          container_id="", host_key=public_line(seeds[i]), kind=KIND) for i, name in enumerate(names)]
            proc = cls._start(run_dir, names, base, key_path)
            fleet = cls(run_id, hosts, pid=proc.pid, base_port=base, key_path=key_path, public_key=public)
            deadline = time.monotonic() + (ready_timeout or 30 + n / 50)
            while not (run_dir / "ready").exists() and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.05)
            if (run_dir / "ready").exists():
                break
            tail = (run_dir / "server.log").read_text(errors="replace")[-1500:].strip()
            if base_port is None and attempt < attempts - 1 and proc.poll() is not None and "cannot listen" in tail:
                # Another process took a port of the window between the check and the bind (another light
                # server still binding its ports upwards, a few hundred a second): try well above it.
                proc.wait()
                low = base + 1000
                continue
            fleet.down()
            raise FleetError(f"the light server for {n} hosts did not come up (exit {proc.poll()}): {tail}")
        fleet._save()
        if make_current:
            link, tmp = light_dir() / "current", light_dir() / f".current-{os.getpid()}"
            if tmp.is_symlink():
                tmp.unlink()
            tmp.symlink_to(run_id)
            os.replace(tmp, link)
        return fleet

    @staticmethod
    def _start(run_dir, names, base, key_path):
        (run_dir / "spec.json").write_text(json.dumps({
            "names": names, "base_port": base, "keys_dir": str(light_dir()),
            "public_key_path": f"{key_path}.pub"}))
        with open(run_dir / "server.log", "wb") as log_file:
            proc = subprocess.Popen([sys.executable, "-m", "fleet.light", "serve", "--run-dir", str(run_dir)],
                                    stdin=subprocess.DEVNULL, stdout=log_file, stderr=log_file,
                                    start_new_session=True, cwd=str(Path(__file__).resolve().parent.parent))
        (run_dir / "server.pid").write_text(f"{proc.pid}\n")
        return proc

    @classmethod
    def load(cls, run_id=None):
        path = light_dir() / (run_id or "current") / "inventory.json"
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise FleetError(f"no light inventory at {path}")
        return cls(data["run_id"], [Host(**h) for h in data["hosts"]], pid=data["pid"], base_port=data["base_port"],
                   key_path=data["private_key"], public_key=data["public_key"], created_at=data.get("created_at"))

    def inventory(self):
        return {"version": 1, "kind": KIND, "run_id": self.run_id, "created_at": self.created_at, "pid": self.pid,
                "base_port": self.base_port, "user": USER, "private_key": str(self.key_path),
                "public_key": self.public_key, "known_hosts": str(self.known_hosts_path),
                "hosts": [asdict(h) for h in self.hosts]}

    def _save(self):
        ssh.write_known_hosts(self.known_hosts_path, self.hosts)
        tmp = self.inventory_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.inventory(), indent=2) + "\n")
        os.replace(tmp, self.inventory_path)

    def host(self, name):
        for h in self.hosts:
            if h.name == name:
                return h
        raise KeyError(name)

    @property
    def alive(self):
        return _pid_alive(self.pid, self.run_dir)

    def process(self):
        """The server's psutil.Process (for its CPU and memory)."""
        import psutil

        return psutil.Process(self.pid)

    def down(self, timeout=10.0):
        """Stop the server (TERM, KILL after timeout) and remove the run's directory."""
        import shutil

        if _pid_alive(self.pid, self.run_dir):
            os.kill(self.pid, signal.SIGTERM)
            deadline = time.monotonic() + timeout
            while _pid_alive(self.pid, self.run_dir) and time.monotonic() < deadline:
                time.sleep(0.05)
            if _pid_alive(self.pid, self.run_dir):
                os.kill(self.pid, signal.SIGKILL)
        try:  # reap it when it is our child
            os.waitpid(self.pid, os.WNOHANG)
        except ChildProcessError:
            pass
        current = light_dir() / "current"
        if current.is_symlink() and current.readlink().name == self.run_id:
            current.unlink()
        shutil.rmtree(self.run_dir, ignore_errors=True)


def list_runs():
    """{run_id: {"hosts", "base_port", "pid", "alive"}} of the light runs on disk."""
    runs = {}
    if not light_dir().is_dir():
        return runs
    for path in sorted(light_dir().glob("*/inventory.json")):
        try:
            fleet = LightFleet.load(path.parent.name)
        except (FleetError, ValueError, KeyError):
            continue
        runs[fleet.run_id] = {"hosts": len(fleet.hosts), "base_port": fleet.base_port, "pid": fleet.pid,
                              "alive": fleet.alive}
    return runs


# Command line (python -m fleet light …) ----------------------------------------------------------

def cmd_up(args):
    started = time.monotonic()
    fleet = LightFleet.up(args.n, run_id=args.run_id, name_prefix=args.prefix, base_port=args.base_port,
                          make_current=not args.no_current)
    if args.json:
        json.dump(fleet.inventory(), sys.stdout, indent=2)
        print()
        return
    last = fleet.hosts[-1]
    print(f"{len(fleet.hosts)} light hosts listen on {ADDRESS}:{fleet.base_port}-{last.port} "
          f"({time.monotonic() - started:.1f}s; server pid {fleet.pid}, run {fleet.run_id})")
    print(f"inventory:   {fleet.inventory_path}")
    print(f"known_hosts: {fleet.known_hosts_path}")
    print(f"login:       ssh -i {fleet.key_path} -o UserKnownHostsFile={fleet.known_hosts_path} "
          f"-p {fleet.base_port} root@{ADDRESS} uname -a")
    print(f"register:    manage.py register_fleet {fleet.inventory_path} --tag light")


def cmd_down(args):
    run_ids = list(list_runs()) if args.all else [args.run_id]
    if run_ids == [None]:
        current = light_dir() / "current"
        if not current.is_symlink():
            print("no current light fleet (var/fleet/light/current); `down --all` stops every light run")
            return
        run_ids = [current.readlink().name]
    for run_id in run_ids:
        fleet = LightFleet.load(run_id)
        fleet.down()
        print(f"stopped light run {run_id} ({len(fleet.hosts)} hosts, pid {fleet.pid})")


def cmd_status(args):
    runs = list_runs()
    current = light_dir() / "current"
    current_id = current.readlink().name if current.is_symlink() else None
    if args.json:
        json.dump({"current": current_id, "runs": runs}, sys.stdout, indent=2)
        print()
        return
    if not runs:
        print("no light runs")
    for run_id, run in runs.items():
        mark = "  (current)" if run_id == current_id else ""
        state = "running" if run["alive"] else "dead (python -m fleet light down --run-id to clean up)"
        print(f"{run_id}  {run['hosts']} hosts on {ADDRESS}:{run['base_port']}+  pid {run['pid']} {state}{mark}")


def add_parser(sub):
    light = sub.add_parser("light", help="light hosts: one asyncssh process serving N SSH hosts on loopback ports")
    lsub = light.add_subparsers(dest="light_command", required=True)
    up = lsub.add_parser("up", help="start a light fleet of N hosts (a background server process)")
    up.add_argument("n", type=int)
    up.add_argument("--base-port", type=int, help=f"first port (default: the first free window from {LIGHT_PORT_LOW})")
    up.add_argument("--run-id")
    up.add_argument("--prefix", default=KIND, help="host name prefix (default light: light-0001…)")
    up.add_argument("--json", action="store_true")
    up.add_argument("--no-current", action="store_true", help="leave var/fleet/light/current alone")
    up.set_defaults(func=cmd_up)
    down = lsub.add_parser("down", help="stop the current light run (or --run-id, or --all)")
    group = down.add_mutually_exclusive_group()
    group.add_argument("--run-id")
    group.add_argument("--all", action="store_true")
    down.set_defaults(func=cmd_down)
    status = lsub.add_parser("status", help="light runs and their server processes")
    status.add_argument("--json", action="store_true")
    status.set_defaults(func=cmd_status)


if __name__ == "__main__":
    if sys.argv[1:2] == ["serve"]:
        sys.exit(serve_main(sys.argv[2:]))
    print("usage: python -m fleet light up N | down | status", file=sys.stderr)
    sys.exit(2)
