"""Ansible playbooks through ansible-runner, without Django: the caller hands over the project's
checkout, the hosts (addresses, pinned host keys, private keys), groups and variables; this module
writes them into a private directory, runs ansible-playbook once and turns runner events into
per-host lines and results as they arrive.

What is written where: a 0700 directory (removed after the run) holds the inventory (JSON, read
by the yaml inventory plugin), `env/extravars` (YAML whose every value is tagged `!unsafe`: Ansible
never templates it, so extra vars stay data), one 0600 file per private key (decrypted there when
it has a passphrase), and the known_hosts of the pinned keys, each host under its own name
(HostKeyAlias). Strict host key checking, no ssh config, no agent, no ControlMaster (nothing
outlives the run). Connection variables come last, so an inventory variable cannot redirect them.

ansible-playbook starts in a session of its own (ansible-runner's pexpect); on cancel or timeout
ansible-runner kills that process group (ansible's forks and their ssh clients), and
end_leftovers() then ends whatever still names the run's private directory, until nothing does.
"""
import difflib
import os
import re
import shlex
import shutil
import signal
import sys
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import ansible_runner
import psutil
import yaml
from cryptography.hazmat.primitives import serialization

from .base import BackendError, CancelToken

# A playbook: a relative .yml/.yaml path inside the project (no leading /, no ..).
PLAYBOOK_PATTERN = r"(?!/)(?!.*(?:^|/)\.\.(?:/|$))[A-Za-z0-9_./-]{1,255}\.ya?ml"
PLAYBOOK = re.compile(rf"^{PLAYBOOK_PATTERN}\Z")
TAG = re.compile(r"^[A-Za-z0-9_.-]{1,64}\Z")
# One Ansible host pattern: a name, group or glob, ! to exclude (no @file, no ~regex, no lists).
LIMIT = re.compile(r"^!?[A-Za-z0-9_.*?\[\]-]{1,200}\Z")
# Variables that say how Ansible reaches a host: the portal sets them, the inventory may not.
CONNECTION_VARS = ("ansible_host", "ansible_port", "ansible_user", "ansible_connection", "ansible_ssh_host",
                   "ansible_ssh_port", "ansible_ssh_user", "ansible_ssh_private_key_file", "ansible_private_key_file",
                   "ansible_ssh_common_args", "ansible_ssh_extra_args", "ansible_ssh_args", "ansible_ssh_executable",
                   "ansible_ssh_pass", "ansible_password", "ansible_ssh_host_key_checking", "ansible_host_key_checking")
SSH_ARGS = "-F /dev/null -o ControlMaster=no -o BatchMode=yes -o IdentitiesOnly=yes -o ForwardAgent=no"
KILL_GRACE = 3.0
# What a host's diffs (--diff, check mode's "would change") may keep: the text of each, in total.
DIFF_LIMIT = 64 * 1024
# The environment variable tagging a run's processes, and its value: "<job id>.<random hex>".
RUN_VARIABLE = "OPSPORTAL_RUN"
RUN_TAG = re.compile(r"^[0-9]{1,18}\.[0-9a-f]{8,64}\Z")
STATS_KEYS = (("ok", "ok"), ("changed", "changed"), ("failures", "failed"), ("skipped", "skipped"),
              ("dark", "unreachable"), ("rescued", "rescued"), ("ignored", "ignored"))


@dataclass
class Host:
    name: str
    local: bool = False  # the portal's own machine: ansible_connection local
    address: str = ""
    port: int = 22
    user: str = "root"
    private_key: str = ""
    passphrase: str = ""
    host_key: str = ""  # the pinned public key line ("ssh-ed25519 AAAA...")
    variables: dict = field(default_factory=dict)
    groups: list = field(default_factory=list)


@dataclass
class Playbook:
    project_dir: Path
    playbook: str
    extravars: dict = field(default_factory=dict)
    tags: list = field(default_factory=list)
    skip_tags: list = field(default_factory=list)
    limit: str = ""  # an extra host pattern, intersected with the hosts given
    forks: int = 5
    check: bool = False
    diff: bool = False
    timeout: int | None = None
    verbosity: int = 0
    run_tag: str = ""  # OPSPORTAL_RUN of ansible-playbook and everything it starts ("<job id>.<random>")


@dataclass
class HostResult:
    ok: int = 0
    changed: int = 0
    failed: int = 0
    skipped: int = 0
    unreachable: int = 0
    rescued: int = 0
    ignored: int = 0
    error: str = ""  # the first failure's message
    # --diff: what each changed task changed (or, in check mode, would change), as unified diff
    # text: [{"task": name, "diff": text}], at most DIFF_LIMIT characters in all (then "truncated").
    diffs: list = field(default_factory=list)
    diffs_truncated: bool = False

    def counts(self):
        return {name: getattr(self, name) for _, name in STATS_KEYS}

    @property
    def bad(self):
        return bool(self.failed or self.unreachable)


@dataclass
class Outcome:
    status: str  # ansible-runner's: successful, failed, canceled, timeout
    rc: int | None
    hosts: dict  # {name: HostResult} of hosts the playbook touched
    error: str = ""  # what ansible said when it failed before or outside any host


def check_playbook(project_dir: Path, playbook: str) -> Path:
    """The playbook's path inside the checkout, or BackendError in plain words."""
    if not isinstance(playbook, str) or not PLAYBOOK.match(playbook):
        raise BackendError(f"{playbook!r} is not a playbook path: a relative .yml or .yaml file of the project")
    path = (project_dir / playbook).resolve()
    if project_dir.resolve() not in path.parents:
        raise BackendError(f"playbook {playbook} is outside the project")
    if not path.is_file():
        raise BackendError(f"the project has no playbook {playbook} at this revision")
    return path


def check_limit(limit: str):
    if limit and not LIMIT.match(limit):
        raise BackendError("the limit must be one Ansible host pattern: a host, a group or a glob such as web-*, "
                           "with ! in front to leave them out")


def check_tags(tags):
    bad = [t for t in tags if not TAG.match(t)]
    if bad:
        raise BackendError(f"not tag names: {', '.join(bad)}")


class _Unsafe(str):
    """A string Ansible must never template (written as !unsafe)."""


def _unsafe(value):
    if isinstance(value, str):
        return _Unsafe(value)
    if isinstance(value, dict):
        return {str(k): _unsafe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_unsafe(v) for v in value]
    return value


class _Dumper(yaml.SafeDumper):
    pass


_Dumper.add_representer(_Unsafe, lambda dumper, value: dumper.represent_scalar("!unsafe", str(value), style="'"))


def extravars_text(extravars: dict) -> str:
    return yaml.dump(_unsafe(dict(extravars)), Dumper=_Dumper, default_flow_style=False, allow_unicode=True)


def _private_file(path: Path, text: str):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)


def _key_text(private_key: str, passphrase: str) -> str:
    if not passphrase:
        return private_key if private_key.endswith("\n") else private_key + "\n"
    try:
        key = serialization.load_ssh_private_key(private_key.encode(), passphrase.encode())
    except ValueError:
        try:
            key = serialization.load_pem_private_key(private_key.encode(), passphrase.encode())
        except (ValueError, TypeError) as exc:
            raise BackendError(f"the private key cannot be opened: {exc}") from None
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                             serialization.NoEncryption()).decode()


def write_inventory(directory: Path, hosts: list[Host], groups: dict) -> Path:
    """The inventory file (with keys and known_hosts beside it) for `hosts` and `groups`
    ({name: variables}); returns its path."""
    keys_dir = directory / "keys"
    keys_dir.mkdir(mode=0o700)
    known_hosts = directory / "known_hosts"
    key_files, lines, entries = {}, [], {}
    for host in hosts:
        variables = {k: v for k, v in (host.variables or {}).items() if k not in CONNECTION_VARS}
        if host.local:
            variables.update(ansible_connection="local")
        else:
            if not host.host_key:
                raise BackendError(f"host {host.name} has no pinned host key yet (gather its facts once)")
            if not host.private_key:
                raise BackendError(f"host {host.name} has no SSH credential")
            material = (host.private_key, host.passphrase)
            if material not in key_files:
                key_files[material] = keys_dir / f"key-{len(key_files)}"
                _private_file(key_files[material], _key_text(*material))
            lines.append(f"{host.name} {host.host_key.strip()}")
            variables.update(
                ansible_connection="ssh", ansible_host=host.address, ansible_port=host.port, ansible_user=host.user,
                ansible_ssh_private_key_file=str(key_files[material]),
                ansible_ssh_common_args=shlex.join(["-o", f"HostKeyAlias={host.name}", "-o",
                                                    f"UserKnownHostsFile={known_hosts}", "-o",
                                                    "GlobalKnownHostsFile=/dev/null", "-o",
                                                    "StrictHostKeyChecking=yes"]))
        entries[host.name] = _unsafe(variables)
    _private_file(known_hosts, "".join(f"{line}\n" for line in lines))
    children = {}
    for name, group_vars in sorted(groups.items()):
        members = {h.name: None for h in hosts if name in h.groups}
        if members:
            clean = {k: v for k, v in (group_vars or {}).items() if k not in CONNECTION_VARS}
            children[name] = {"hosts": members, "vars": _unsafe(clean)}
    inventory = {"all": {"hosts": entries, "children": children}}
    path = directory / "inventory" / "hosts.yml"
    path.parent.mkdir(mode=0o700)
    path.write_text(yaml.dump(inventory, Dumper=_Dumper, default_flow_style=False, allow_unicode=True))
    return path


def _environment(directory: Path, runner_env: dict) -> dict:
    """What ansible-playbook sees: ansible-runner's own settings, ours, and nothing of the worker's
    (its database URL and encryption keys stay out of reach of lookups)."""
    env = {k: v for k, v in runner_env.items() if k.startswith(("ANSIBLE_", "AWX_", "RUNNER_"))}
    env.update({
        "PATH": f"{Path(sys.executable).parent}:/usr/local/bin:/usr/bin:/bin", "HOME": str(directory),
        "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "ANSIBLE_NOCOLOR": "1", "ANSIBLE_FORCE_COLOR": "0",
        "ANSIBLE_HOST_KEY_CHECKING": "True", "ANSIBLE_SSH_ARGS": SSH_ARGS, "ANSIBLE_PIPELINING": "False",
        "ANSIBLE_RETRY_FILES_ENABLED": "False", "ANSIBLE_LOCAL_TEMP": str(directory / "tmp"),
        "ANSIBLE_PYTHON_INTERPRETER": "auto_silent", "ANSIBLE_TIMEOUT": "10", "ANSIBLE_GATHERING": "explicit",
        "ANSIBLE_DEPRECATION_WARNINGS": "False", "ANSIBLE_SSH_RETRIES": "0",
    })
    return env


def _lines(text):
    return [line.rstrip("\r") for line in (text or "").replace("\r\n", "\n").split("\n") if line.strip()]


def _message(event_data):
    result = event_data.get("res") or {}
    for key in ("msg", "stderr", "module_stderr", "reason"):
        value = result.get(key)
        if value:
            return str(value).strip()[:1000]
    return ""


def _side(value):
    """One side of an Ansible diff as lines of text (a dict or list, such as a file's state, as YAML)."""
    if value is None:
        return []
    if not isinstance(value, str):
        value = yaml.safe_dump(value, default_flow_style=False, allow_unicode=True, sort_keys=True)
    return value.splitlines(keepends=True)


def diff_text(diff) -> str:
    """Unified diff text of one of Ansible's diff entries: {before, after, before_header,
    after_header} or {prepared: text} (what the module already wrote out); "" when nothing differs."""
    if not isinstance(diff, dict):
        return ""
    if diff.get("prepared"):
        return str(diff["prepared"]).rstrip("\n") + "\n"
    if "before" not in diff and "after" not in diff:
        return ""
    before, after = _side(diff.get("before")), _side(diff.get("after"))
    if before == after:
        return ""
    lines = difflib.unified_diff(before, after, fromfile=str(diff.get("before_header") or "before"),
                                 tofile=str(diff.get("after_header") or "after"))
    return "".join(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n" for line in lines)


def event_diffs(event_data) -> list[str]:
    """The diff texts of a task's result (a loop's items each have their own)."""
    result = event_data.get("res") or {}
    found = []
    for item in [result, *(r for r in (result.get("results") or []) if isinstance(r, dict))]:
        entries = item.get("diff")
        for entry in entries if isinstance(entries, list) else [entries]:
            text = diff_text(entry)
            if text:
                found.append(text)
    return found


def _keep_diffs(result: HostResult, task: str, texts: list[str]):
    used = sum(len(d["diff"]) for d in result.diffs)
    for text in texts:
        if result.diffs_truncated:
            return
        if used + len(text) > DIFF_LIMIT:
            text = text[:max(0, DIFF_LIMIT - used)]
            result.diffs_truncated = True
            if not text:
                return
        result.diffs.append({"task": task, "diff": text})
        used += len(text)


def run_playbook(playbook: Playbook, hosts: list[Host], groups: dict, *, cancel: CancelToken,
                 on_line: Callable[[str | None, str, str], None],
                 on_host_failed: Callable[[str, HostResult], None] | None = None) -> Outcome:
    """Run the playbook on `hosts` (--limit to them, intersected with playbook.limit).

    on_line(host name or None, stream, text) gets Ansible's own lines as they come, each under
    the host it is about; on_host_failed(name, result) is called as soon as a host fails or is
    unreachable (Ansible drops it from the play then). The outcome carries every host's counts
    and, with playbook.diff, the diffs of its tasks (HostResult.diffs).
    """
    check_playbook(playbook.project_dir, playbook.playbook)
    check_limit(playbook.limit)
    check_tags(list(playbook.tags) + list(playbook.skip_tags))
    directory = Path(tempfile.mkdtemp(prefix="opsportal-ansible-"))
    names = {h.name for h in hosts}
    results = {}
    told_failed = set()
    loose = []  # lines about no host (ansible's own errors among them)
    stats = {}
    lock = threading.Lock()
    try:
        (directory / "tmp").mkdir(mode=0o700)
        inventory = write_inventory(directory, hosts, groups)
        (directory / "env").mkdir(mode=0o700)
        _private_file(directory / "env" / "extravars", extravars_text(playbook.extravars))
        limit = ",".join(sorted(names))
        if playbook.limit:  # one pattern: hosts of the batch that also match it (or, with !, do not)
            limit += f",{playbook.limit}" if playbook.limit.startswith("!") else f",&{playbook.limit}"
        cmdline = " ".join([*(["--check"] if playbook.check else []), *(["--diff"] if playbook.diff else [])])

        def on_event(event):
            data = event.get("event_data") or {}
            host = data.get("host") if data.get("host") in names else None
            kind = event.get("event", "")
            if host is not None and kind == "runner_on_ok" and playbook.diff:
                texts = event_diffs(data)
                if texts:
                    with lock:
                        _keep_diffs(results.setdefault(host, HostResult()), str(data.get("task") or "task"), texts)
            if kind == "playbook_on_stats":
                stats.update({key: data.get(key) or {} for key, _ in STATS_KEYS})
            stream = "stderr" if kind in ("runner_on_failed", "runner_on_unreachable") else "stdout"
            for line in _lines(event.get("stdout")):
                if host is None and kind != "playbook_on_stats":
                    with lock:
                        loose.append(line)
                on_line(host, stream, line)
            if host is not None and kind in ("runner_on_failed", "runner_on_unreachable") \
                    and not data.get("ignore_errors"):
                with lock:
                    result = results.setdefault(host, HostResult())
                    if kind == "runner_on_failed":
                        result.failed += 1
                    else:
                        result.unreachable += 1
                    result.error = result.error or (f"{data.get('task', 'task')}: {_message(data)}".strip(": "))
                    first = host not in told_failed
                    told_failed.add(host)
                if first and on_host_failed is not None:
                    on_host_failed(host, result)
            return False  # events are not kept on disk beyond the run

        runner = ansible_runner.interface.init_runner(
            private_data_dir=str(directory), project_dir=str(playbook.project_dir), playbook=playbook.playbook,
            inventory=str(inventory), limit=limit, tags=",".join(playbook.tags) or None,
            skip_tags=",".join(playbook.skip_tags) or None, forks=max(1, playbook.forks), cmdline=cmdline or None,
            verbosity=playbook.verbosity or None, event_handler=on_event, quiet=True, timeout=playbook.timeout,
            cancel_callback=cancel.is_set, suppress_env_files=True, settings={"pexpect_timeout": 0.5})
        runner.config.env = _environment(directory, runner.config.env)
        if playbook.run_tag:
            if not RUN_TAG.match(playbook.run_tag):
                raise BackendError(f"{playbook.run_tag!r} is not a run tag")
            runner.config.env[RUN_VARIABLE] = playbook.run_tag
        runner.config.cwd = str(playbook.project_dir)
        try:
            runner.run()
        finally:
            # On cancel and timeout ansible-runner has killed the process group of ansible-playbook
            # (a session of its own); this also catches anything that left the group.
            end_leftovers(directory)
        for key, name in STATS_KEYS:
            for host, count in (stats.get(key) or {}).items():
                if host in names:
                    result = results.setdefault(host, HostResult())
                    setattr(result, name, max(getattr(result, name), int(count)))
        status = runner.status
        error = ""
        if status not in ("successful", "canceled", "timeout") and not stats:
            error = _tool_error(loose, runner.rc)
        return Outcome(status=status, rc=runner.rc, hosts=results, error=error)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def live_processes():
    """Every process of this machine, each a Process made now: psutil.process_iter() yields the
    objects it cached at an earlier call, and one whose pid another process took since raises
    NoSuchProcess, so a long-lived worker would skip that process."""
    for pid in psutil.pids():
        try:
            yield psutil.Process(pid)
        except psutil.NoSuchProcess:
            continue


def leftovers(directory: Path):
    """Processes whose command line names the run's private directory: ansible-playbook, its forks
    (by their inventory) and their ssh clients (by key and known_hosts files)."""
    mark = str(directory)
    found = []
    for proc in live_processes():
        try:
            if mark in " ".join(proc.cmdline() or ()):
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


def end_leftovers(directory: Path, grace=KILL_GRACE):
    """TERM, then KILL, whatever of the run is still alive, until nothing is."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        procs = leftovers(directory)
        if not procs:
            return
        for proc in procs:
            try:
                proc.send_signal(sig)
            except psutil.NoSuchProcess:
                continue
        psutil.wait_procs(procs, timeout=grace)


def tagged(job_id):
    """Processes of this machine whose environment carries a run tag of the job (OPSPORTAL_RUN=
    "<job id>.…"): an ansible-playbook, its forks and their ssh clients. Processes whose environment
    cannot be read (another user's, gone) are skipped."""
    prefix = f"{int(job_id)}."
    found = []
    for proc in live_processes():
        try:
            value = proc.environ().get(RUN_VARIABLE, "")
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess, OSError):
            continue
        if value.startswith(prefix) and RUN_TAG.match(value):
            found.append(proc)
    return found


def _run_directories(procs):
    """The private directories of the runs (their HOME: opsportal-ansible-* in the temporary directory)."""
    found = set()
    temp = Path(tempfile.gettempdir()).resolve()
    for proc in procs:
        try:
            home = Path(proc.environ().get("HOME", ""))
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess, OSError):
            continue
        if home.is_absolute() and home.parent == temp and home.name.startswith("opsportal-ansible-"):
            found.add(home)
    return found


def end_tagged(job_id, grace=KILL_GRACE):
    """End the processes of the job's runs left on this machine (their worker died): TERM, KILL after
    `grace`, until none is left; then remove the runs' private directories (inventory, private keys).
    Returns (ended: [(pid, name)], left: [(pid, name)])."""
    ended, directories = {}, set()
    for sig in (signal.SIGTERM, signal.SIGKILL):
        procs = tagged(job_id)
        if not procs:
            break
        directories |= _run_directories(procs)
        for proc in procs:
            try:
                ended.setdefault(proc.pid, proc.name())
                proc.send_signal(sig)
            except psutil.Error:
                continue
        psutil.wait_procs(procs, timeout=grace)
    left = []
    for proc in tagged(job_id):
        try:
            left.append((proc.pid, proc.name()))
        except psutil.Error:
            continue
    if not left:
        for directory in directories:
            shutil.rmtree(directory, ignore_errors=True)
    gone = sorted((pid, name) for pid, name in ended.items() if pid not in {p for p, _ in left})
    return gone, left


def _tool_error(lines, rc):
    """Ansible's own words when it stopped before any host (a syntax error, a missing role)."""
    wanted = [line for line in lines if line.startswith(("ERROR", "[ERROR]")) or "ERROR!" in line]
    start = lines.index(wanted[0]) if wanted else max(0, len(lines) - 8)
    text = " ".join(line.strip() for line in lines[start:start + 8])
    return (text or f"ansible-playbook exited with {rc}")[:2000]
