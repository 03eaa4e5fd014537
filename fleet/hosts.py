"""A fleet run: N sshd hosts in containers, their inventory, and their teardown.

Every object a run makes carries the general label `opsportal.fleet=1` and the run's
own `opsportal.fleet.run=<run id>`, so `down()` finds exactly what the run made and
`cleanup_leftovers()` finds what crashed runs left behind.
"""

import json
import logging
import os
import secrets
import shutil
import socket
import threading
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime

import docker
import paramiko
import psutil

from . import ssh
from .engine import docker_client
from .recipes import HOST_KINDS, image_tags, var_dir

LABEL = "opsportal.fleet"
LABEL_RUN = "opsportal.fleet.run"
LABEL_OWNER = "opsportal.fleet.owner"
LABEL_KEEP = "opsportal.fleet.keep"
LABEL_HOST = "opsportal.fleet.host"
LABEL_KIND = "opsportal.fleet.kind"
SNAPSHOT_REPO = "opsportal/fleet-snapshot"
ADDRESS = "127.0.0.1"
USER = "root"

log = logging.getLogger(__name__)


class FleetError(RuntimeError):
    """The fleet could not be brought up or managed."""


@dataclass(frozen=True)
class Host:
    """One fleet host, as an SSH client reaches it."""

    name: str
    address: str
    port: int
    user: str
    key_path: str
    container_id: str
    host_key: str = ""  # "ssh-ed25519 AAAA…", pinned in the run's known_hosts
    kind: str = "host"  # one of recipes.HOST_KINDS: host (supervisord), systemd, pm2, puppet


def fleet_dir():
    return var_dir() / "fleet"


def _owner():
    """Identify this process for leftover detection: hostname, pid and start time."""
    me = psutil.Process()
    return f"{socket.gethostname()}:{me.pid}:{me.create_time():.2f}"


def _owner_alive(owner):
    try:
        hostname, pid, started = owner.rsplit(":", 2)
        if hostname != socket.gethostname():
            return True  # someone else's engine client: not ours to judge
        return abs(psutil.Process(int(pid)).create_time() - float(started)) < 0.05
    except (ValueError, psutil.Error):
        return False


def _new_run_id():
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}"


def _run_options(kind, public_key):
    """Return the docker run options a host of this kind needs besides name, ports and labels."""
    options = {
        "environment": {"FLEET_AUTHORIZED_KEY": public_key},
        # /run is a tmpfs as on a real host; /mnt/data is small enough to fill in a test.
        "tmpfs": {"/run": "rw,nosuid,nodev,mode=755,size=16m", "/mnt/data": "rw,size=64m"},
    }
    if kind == "systemd":
        # systemd as PID 1 without --privileged and without the machine's /sys/fs/cgroup:
        # SYS_ADMIN lets fleet-boot remount the container's own cgroups (a private cgroup
        # namespace) read-write. systemd refuses to reload with less than 16 MB free on /run.
        options["environment"]["container"] = "docker"
        options.update(cap_add=["SYS_ADMIN"], cgroupns="private", stop_signal="SIGRTMIN+3")
        options["tmpfs"].update({"/run": "rw,nosuid,nodev,mode=755,size=64m",
                                 "/run/lock": "rw,nosuid,nodev,noexec,size=4m"})
    return options


def _names(n, prefix):
    width = max(2, len(str(n)))
    return [f"{prefix}-{i:0{width}d}" for i in range(1, n + 1)]


class Fleet:
    """A running fleet of sshd hosts; make one with Fleet.up() or Fleet.load()."""

    def __init__(self, run_id, hosts, *, image, network, client=None, keep=False, created_at=None, images=None):
        self.run_id = run_id
        self.hosts = list(hosts)
        self.image = image  # the image of kind "host"
        self.images = dict(images or {"host": image})  # {kind: image}
        self.network = network
        self.keep = keep
        self.created_at = created_at or datetime.now(UTC).isoformat(timespec="seconds")
        self.client = client or docker_client()
        self.run_dir = fleet_dir() / run_id
        self.key_path = self.run_dir / "id_ed25519"
        self.known_hosts_path = self.run_dir / "known_hosts"
        self.inventory_path = self.run_dir / "inventory.json"
        self.public_key = ""
        self._pkey = None

    def __repr__(self):
        return f"<Fleet {self.run_id}: {len(self.hosts)} hosts>"

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.down()

    # -- bringing up ---------------------------------------------------------------

    @classmethod
    def up(cls, n, run_id=None, name_prefix="host", *, image=None, kinds=None, keep=False, make_current=False,
           ready_timeout=None, client=None, workers=8):
        """Start n hosts in parallel and wait until each accepts an SSH login; return the Fleet.

        The n hosts are of kind "host" (supervisord), named <name_prefix>-01…; kinds adds
        hosts of other kinds, e.g. {"systemd": 1, "pm2": 2} adds systemd-01, pm2-01 and
        pm2-02. sshd is published on 127.0.0.1 at a port the engine chooses. Writes the run's key
        pair, known_hosts and inventory.json under var/fleet/<run id>/ (and points
        var/fleet/current at it when make_current). keep=True marks the run as meant to
        outlive this process, so cleanup_leftovers() leaves it alone. On failure,
        everything made so far is removed and the error raised.
        """
        client = client or docker_client()
        run_id = run_id or _new_run_id()
        counts = {"host": n, **{kind: count for kind, count in (kinds or {}).items() if kind != "host"}}
        if set(counts) - set(HOST_KINDS) or any(count < 0 for count in counts.values()):
            raise FleetError(f"bad fleet shape {counts}: kinds are {', '.join(HOST_KINDS)}, counts at least 0")
        tags = image_tags()
        images = {kind: tags[kind][0] for kind in HOST_KINDS}
        images["host"] = image or images["host"]
        for kind, count in counts.items():
            try:
                if count:
                    client.images.get(images[kind])
            except docker.errors.ImageNotFound:
                raise FleetError(f"image {images[kind]} missing: run `python -m fleet build` (fleet.ensure_images())")
        planned = [(name, kind) for kind in HOST_KINDS
                   for name in _names(counts.get(kind, 0), name_prefix if kind == "host" else kind)]
        fleet = cls(run_id, [], image=images["host"], network=f"opsportal-fleet-{run_id}", client=client, keep=keep,
                    images=images)
        fleet.run_dir.mkdir(parents=True, exist_ok=False)
        try:
            fleet._start(planned, workers, ready_timeout or 30 + len(planned))
        except BaseException:
            fleet.down()
            raise
        if make_current:
            fleet.make_current()
        return fleet

    def _labels(self, name=None):
        labels = {LABEL: "1", LABEL_RUN: self.run_id, LABEL_OWNER: _owner(), LABEL_KEEP: "1" if self.keep else "0"}
        if name:
            labels[LABEL_HOST] = name
        return labels

    def _start(self, planned, workers, ready_timeout):
        self.public_key = ssh.generate_keypair(self.key_path)
        self.client.networks.create(self.network, driver="bridge", labels=self._labels())
        deadline = time.monotonic() + ready_timeout
        pkey = self._private_key()
        abort = threading.Event()

        # Each host's login wait starts as soon as its container runs, so waiting for
        # sshd overlaps with starting the rest (the engine is the bottleneck).
        with ThreadPoolExecutor(max_workers=max(1, min(workers, len(planned)))) as starters, \
                ThreadPoolExecutor(max_workers=max(1, min(16, len(planned)))) as waiters:

            def start(name_and_kind):
                name, kind = name_and_kind
                host = self._run_container(name, kind=kind)
                return host, waiters.submit(ssh.wait_for_login, host, None, deadline, pkey, abort)

            try:
                started = list(starters.map(start, planned))
                self.hosts = [host for host, _ in started]
                self._save()
                for _, waiting in started:
                    waiting.result()
            except BaseException:
                abort.set()
                raise

    def _run_container(self, name, image=None, port=None, kind="host"):
        """Create and start a host container; return its Host once its host key is known."""
        container = self.client.containers.run(
            image or self.images[kind],
            name=f"opsportal-fleet-{self.run_id}-{name}",
            hostname=name,
            labels={**self._labels(name), LABEL_KIND: kind},
            ports={"22/tcp": (ADDRESS, port)},
            network=self.network,
            detach=True,
            **_run_options(kind, self.public_key),
        )
        container.reload()
        bound = int(container.attrs["NetworkSettings"]["Ports"]["22/tcp"][0]["HostPort"])
        return Host(name, ADDRESS, bound, USER, str(self.key_path), container.id, self._read_host_key(container),
                    kind)

    @staticmethod
    def _read_host_key(container, timeout=30):
        """Return the host key fleet-init printed (read from the engine, a trusted channel)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in reversed(container.logs(stdout=True, stderr=True).decode(errors="replace").splitlines()):
                if line.startswith("FLEET-HOSTKEY "):
                    return line.split(" ", 1)[1].strip()
            container.reload()
            if container.status not in ("created", "running"):
                raise FleetError(f"{container.name} stopped: {container.logs().decode(errors='replace')[-2000:]}")
            time.sleep(0.1)
        raise FleetError(f"{container.name} printed no host key within {timeout}s")

    def wait_ready(self, names=None, timeout=60):
        """Wait until the named hosts (default: all) accept an SSH login that runs `true`."""
        hosts = [self.host(n) for n in names] if names else self.hosts
        deadline = time.monotonic() + timeout
        pkey = self._private_key()
        with ThreadPoolExecutor(max_workers=max(1, min(16, len(hosts)))) as pool:
            waits = list(pool.map(lambda h: ssh.wait_for_login(h, self.known_hosts_path, deadline, pkey), hosts))
        return max(waits, default=0.0)

    def _private_key(self):
        if self._pkey is None:
            self._pkey = paramiko.Ed25519Key.from_private_key_file(str(self.key_path))
        return self._pkey

    # -- inventory -----------------------------------------------------------------

    def inventory(self):
        """Return the run's inventory as a JSON-ready dict."""
        return {
            "version": 1,
            "run_id": self.run_id,
            "created_at": self.created_at,
            "image": self.image,
            "images": self.images,
            "network": self.network,
            "keep": self.keep,
            "user": USER,
            "private_key": str(self.key_path),
            "public_key": self.public_key,
            "known_hosts": str(self.known_hosts_path),
            "hosts": [asdict(h) for h in self.hosts],
        }

    def _save(self):
        ssh.write_known_hosts(self.known_hosts_path, self.hosts)
        tmp = self.inventory_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.inventory(), indent=2) + "\n")
        os.replace(tmp, self.inventory_path)

    def make_current(self):
        """Point var/fleet/current at this run (where `make fleet` finds the inventory)."""
        link = fleet_dir() / "current"
        tmp = fleet_dir() / f".current-{os.getpid()}"
        if tmp.is_symlink():
            tmp.unlink()
        tmp.symlink_to(self.run_id)
        os.replace(tmp, link)

    @classmethod
    def load(cls, run_id=None, client=None):
        """Return the Fleet of a run from its inventory (default: var/fleet/current)."""
        path = fleet_dir() / (run_id or "current") / "inventory.json"
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise FleetError(f"no inventory at {path}")
        hosts = [Host(**h) for h in data["hosts"]]
        fleet = cls(data["run_id"], hosts, image=data["image"], network=data["network"], client=client,
                    keep=data.get("keep", False), created_at=data.get("created_at"), images=data.get("images"))
        fleet.public_key = data.get("public_key", "")
        return fleet

    # -- working with hosts --------------------------------------------------------

    def host(self, name):
        for h in self.hosts:
            if h.name == name:
                return h
        raise KeyError(name)

    def of_kind(self, kind):
        """Return the run's hosts of one kind ("host", "systemd", "pm2", "puppet")."""
        return [h for h in self.hosts if h.kind == kind]

    def container(self, name):
        return self.client.containers.get(self.host(name).container_id)

    def ssh(self, name, timeout=10.0):
        """Return a connected paramiko.SSHClient to the host, pinned to its known host key."""
        return ssh.connect_retrying(self.host(name), self.known_hosts_path, timeout=timeout, pkey=self._private_key())

    def run(self, name, command, timeout=60.0):
        """Run a shell command on the host over SSH; return a CommandResult."""
        client = self.ssh(name)
        try:
            return ssh.run(client, command, timeout=timeout)
        finally:
            client.close()

    def exec(self, name, cmd, user="root"):
        """Run cmd in the host's container with docker exec (for test setup); return a CommandResult.

        A string runs through sh -c; a list runs as is.
        """
        argv = ["sh", "-c", cmd] if isinstance(cmd, str) else list(cmd)
        code, (out, err) = self.container(name).exec_run(argv, user=user, demux=True)
        return ssh.CommandResult(code, (out or b"").decode(errors="replace"), (err or b"").decode(errors="replace"))

    def stop_host(self, name, timeout=5):
        """Stop the host's container, as a host that goes down: SSH to it fails until start_host()."""
        self.container(name).stop(timeout=timeout)

    def start_host(self, name, wait=True, timeout=60):
        """Start a stopped host again, at the same port, with the same host key and files; return its Host.

        Docker gives a restarted container a new engine-chosen port, which would leave
        every registered copy of the host stale; so the stopped container is committed
        and run again with its old port bound explicitly (a new container id, like a
        reboot: processes start afresh, files stay). If that port was taken meanwhile,
        the engine chooses one and inventory and known_hosts are rewritten.
        """
        old = self.host(name)
        container = self.client.containers.get(old.container_id)
        if container.status == "running":
            return old
        if container.status == "paused":
            container.unpause()
            return old
        snapshot = container.commit(repository=SNAPSHOT_REPO, tag=f"{self.run_id}-{name}",
                                    conf={"Labels": self._labels(name)})
        container.remove(force=True)
        try:
            new = self._run_container(name, image=snapshot.id, port=old.port, kind=old.kind)
        except docker.errors.APIError as exc:
            if "allocated" not in str(exc) and "in use" not in str(exc):
                raise
            try:
                self.client.containers.get(f"opsportal-fleet-{self.run_id}-{name}").remove(force=True)
            except docker.errors.NotFound:
                pass
            new = self._run_container(name, image=snapshot.id, kind=old.kind)
        new = replace(new, host_key=new.host_key or old.host_key)
        self.hosts = [new if h.name == name else h for h in self.hosts]
        self._save()
        if wait:
            self.wait_ready([name], timeout=timeout)
        return new

    def pause_host(self, name):
        """Freeze the host: connections to it open but hang (an unresponsive host)."""
        self.container(name).pause()

    def unpause_host(self, name):
        self.container(name).unpause()

    def status(self):
        """Return [{name, kind, port, status, container_id}] as the engine sees the run's hosts now."""
        selector = {"label": f"{LABEL_RUN}={self.run_id}"}
        by_id = {c.id: c for c in self.client.containers.list(all=True, filters=selector, sparse=True)}
        return [
            {"name": h.name, "kind": h.kind, "port": h.port, "container_id": h.container_id[:12],
             "status": by_id[h.container_id].status if h.container_id in by_id else "missing"}
            for h in self.hosts
        ]

    # -- tearing down --------------------------------------------------------------

    def down(self):
        """Remove everything the run made: containers, network, snapshots, var/fleet/<run id>."""
        remove_run(self.client, self.run_id)


def remove_run(client, run_id):
    """Remove every container, network and image labelled with run_id, and its run directory."""
    selector = {"label": f"{LABEL_RUN}={run_id}"}
    containers = client.containers.list(all=True, filters=selector, sparse=True)
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(_remove_container, containers))
    for network in client.networks.list(filters=selector):
        _remove_network(network)
    for image in client.images.list(filters=selector):
        try:
            client.images.remove(image.id, force=True)
        except docker.errors.NotFound:
            pass
    run_dir = fleet_dir() / run_id
    shutil.rmtree(run_dir, ignore_errors=True)
    current = fleet_dir() / "current"
    if current.is_symlink() and os.readlink(current) == run_id:
        current.unlink()
    return len(containers)


def _remove_network(network, attempts=5):
    """Remove a network; endpoints left behind (a removed container's endpoint released late by the
    engine, or a container some test attached) are disconnected first. Docker 20.10 sometimes keeps
    a stale endpoint of no container, which only an engine restart clears: such a network is left
    (it holds nothing) with a warning rather than failing the run that found it. True if removed."""
    for attempt in range(attempts):
        try:
            network.remove()
            return True
        except docker.errors.NotFound:
            return True
        except docker.errors.APIError as exc:
            if "active endpoints" not in str(exc):
                raise
        network.reload()
        if attempt == attempts - 1:
            if network.attrs.get("Containers"):
                raise FleetError(f"network {network.name} still has containers attached")
            log.warning("network %s keeps a stale endpoint of no container; left in place (an engine "
                        "restart clears it)", network.name)
            return False
        for container_id in (network.attrs.get("Containers") or {}):
            try:
                network.disconnect(container_id, force=True)
            except docker.errors.APIError:
                pass
        time.sleep(0.5)


def _remove_container(container):
    try:
        container.remove(force=True, v=True)
    except docker.errors.NotFound:
        pass


def list_runs(client=None):
    """Return {run id: {"containers": n, "running": n, "keep": bool, "alive": bool}} for every run found."""
    client = client or docker_client()
    runs = {}
    objects = client.containers.list(all=True, filters={"label": LABEL}, sparse=True)
    objects += client.networks.list(filters={"label": LABEL})
    objects += client.images.list(filters={"label": LABEL})  # snapshots made by start_host()
    for obj in objects:
        labels = obj.attrs.get("Labels") or (obj.attrs.get("Config") or {}).get("Labels") or {}
        run_id = labels.get(LABEL_RUN)
        if not run_id:
            continue
        run = runs.setdefault(run_id, {"containers": 0, "running": 0, "keep": False, "alive": False})
        run["keep"] |= labels.get(LABEL_KEEP) == "1"
        run["alive"] |= _owner_alive(labels.get(LABEL_OWNER, ""))
        if isinstance(obj, docker.models.containers.Container):
            run["containers"] += 1
            run["running"] += obj.status == "running"
    for path in fleet_dir().glob("*/inventory.json"):
        if path.parent.is_symlink():
            continue
        runs.setdefault(path.parent.name, {"containers": 0, "running": 0, "keep": False, "alive": False})
    return runs


def cleanup_leftovers(client=None, include_kept=False):
    """Remove the runs that crashed runs left behind; return their ids.

    A run is a leftover when the process that made it is gone and it was not made to
    outlive that process (keep=False, as the test fixture's). include_kept=True also
    removes kept runs (the demo fleet): everything the fleet tool ever made.
    """
    client = client or docker_client()
    removed = []
    for run_id, run in list_runs(client).items():
        if run["alive"] and not include_kept:
            continue
        if run["keep"] and not include_kept:
            continue
        try:
            remove_run(client, run_id)
        except docker.errors.APIError as exc:
            # Docker 20.10 can keep a stale endpoint on a dead run's network until the engine
            # restarts ("has active endpoints" with no container attached): the rest of the run is
            # gone, and a new run makes a network of its own, so this must not stop it.
            warnings.warn(f"fleet: leftover run {run_id} not fully removed: {exc}", stacklevel=2)
            continue
        removed.append(run_id)
    return sorted(removed)
