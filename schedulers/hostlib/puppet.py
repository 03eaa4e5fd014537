"""Puppet on a host: `puppet apply` of a manifest directory sent from the portal, or `puppet agent -t`.

A run of `apply`:
1. one round trip checks that `puppet` is on the host and makes a private directory (mktemp -d,
   mode 0700) under /tmp; a host without Puppet fails here with a plain reason, before anything
   is sent;
2. the manifest directory (a project checkout on the portal's machine: modules/, manifests/,
   ...) goes over as a tar stream on the command's stdin, built here from regular files and
   directories only (a symlink or a special file is refused, so nothing outside the tree leaves
   the portal);
3. `puppet apply --detailed-exitcodes --logdest console --color false [--noop] --modulepath ...
   --lastrunfile <dir>/last_run_summary.yaml <manifest>` runs with its argv shlex-quoted, its
   output streamed line by line; cancel and timeout end the command's whole remote session
   (hostlib/command.py), puppet included;
4. the run's summary (last_run_summary.yaml) is read back over SFTP and parsed into resource
   counts; the private directory is removed whatever happened.

`--detailed-exitcodes`: 0 nothing to do, 2 changes made, 4 failures, 6 changes and failures,
1 the catalog could not be compiled (a syntax error, a missing class: puppet's `Error:` lines say
which). With `--noop` nothing changes: resources that differ count as out of sync (drift).
"""
import io
import os
import posixpath
import re
import shlex
import stat as statmod
import tarfile

import yaml

from ..base import BackendError, CancelToken, CommandResult
from .command import run_capture, run_command
from .connect import leased
from .files import read_file

PUPPET = "puppet"
MAX_TREE_BYTES = 64 * 1024 * 1024
MAX_TREE_FILES = 20000
SUMMARY = "last_run_summary.yaml"
# Debian's puppet-agent looks for modules here besides the project's own modules/.
SYSTEM_MODULE_PATHS = ("/etc/puppet/code/modules", "/usr/share/puppet/modules")
COUNTS = ("total", "changed", "failed", "out_of_sync", "skipped", "failed_to_restart", "restarted", "scheduled",
          "corrective_change")
# A relative path of plain segments: no leading '/', no '..', no hidden tricks in the manifest path.
MANIFEST_PATH = re.compile(r"(?!.*(^|/)\.\.?(/|$))[A-Za-z0-9_.@+-]+(/[A-Za-z0-9_.@+-]+)*\.pp")

# Fixed text (nothing of the caller's is in it): is puppet there, and a private directory for the run.
PREPARE = r"""
command -v puppet >/dev/null 2>&1 || { echo "opsportal: no-puppet"; exit 3; }
umask 077
mktemp -d /tmp/opsportal-puppet.XXXXXXXXXX
"""


# sh -c SWEEP opsportal-sweep NAME=VALUE: end every process whose environment carries NAME=VALUE. Puppet
# runs an exec resource's command in a session of its own (setsid), out of reach of the command's session
# sweep; the run's tag in the environment, which its children inherit, still finds them.
SWEEP = r"""
tag=$1
tagged() {
    for e in /proc/[0-9]*/environ; do
        p=${e#/proc/}; p=${p%/environ}
        [ "$p" = "$$" ] && continue
        if tr '\0' '\n' < "$e" 2>/dev/null | grep -qxF -- "$tag"; then echo "$p"; fi
    done
}
pids=$(tagged)
[ -n "$pids" ] || exit 0
kill -s TERM $pids 2>/dev/null
i=0; while [ -n "$(tagged)" ] && [ "$i" -lt 30 ]; do sleep 0.1; i=$((i + 1)); done
pids=$(tagged)
[ -n "$pids" ] || exit 0
kill -s KILL $pids 2>/dev/null
sleep 0.5
pids=$(tagged)
[ -n "$pids" ] || exit 0
ps -o pid=,args= -p "$(echo $pids | tr ' ' ',')" 2>/dev/null | head -n 5
exit 1
"""


class PuppetMissing(BackendError):
    """The host has no `puppet` command."""


def manifest_path(value):
    """Return the manifest path (relative to the manifest directory, ending .pp) or raise ValueError."""
    if not isinstance(value, str) or not MANIFEST_PATH.fullmatch(value) or len(value) > 500:
        raise ValueError(f"manifest path {value!r} must be a relative path to a .pp file inside the project "
                         "(plain names, no '..')")
    return value


def pack_tree(root) -> bytes:
    """Return a tar (uncompressed) of the directory root: regular files and directories, no owners."""
    root = os.path.realpath(root)
    if not os.path.isdir(root):
        raise BackendError(f"the manifest directory {root} does not exist on the portal's machine")
    buffer = io.BytesIO()
    count = size = 0
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = sorted(d for d in dirnames if d != ".git")
            for name in sorted(dirnames) + sorted(filenames):
                full = os.path.join(dirpath, name)
                rel = os.path.relpath(full, root)
                info = os.lstat(full)
                if statmod.S_ISLNK(info.st_mode) or not (statmod.S_ISREG(info.st_mode)
                                                         or statmod.S_ISDIR(info.st_mode)):
                    raise BackendError(f"{rel} in the manifest directory is a symlink or a special file; "
                                       "only regular files and directories are sent to hosts")
                count += 1
                size += info.st_size if statmod.S_ISREG(info.st_mode) else 0
                if count > MAX_TREE_FILES or size > MAX_TREE_BYTES:
                    raise BackendError(f"the manifest directory is larger than {MAX_TREE_FILES} files or "
                                       f"{MAX_TREE_BYTES // (1024 * 1024)} MiB")
                member = tar.gettarinfo(full, arcname=rel)
                member.uid = member.gid = 0
                member.uname = member.gname = ""
                member.mode = 0o700 if member.isdir() else 0o600
                if member.isdir():
                    tar.addfile(member)
                else:
                    with open(full, "rb") as fh:
                        tar.addfile(member, fh)
    return buffer.getvalue()


def apply_argv(workdir, manifest, *, noop, has_modules):
    """The argv of `puppet apply` in workdir (also used by tests to see what runs)."""
    own = [posixpath.join(workdir, "tree", "modules")] if has_modules else []
    modulepath = ":".join(own + list(SYSTEM_MODULE_PATHS))
    argv = [PUPPET, "apply", "--detailed-exitcodes", "--logdest", "console", "--color", "false",
            "--modulepath", modulepath, "--lastrunfile", posixpath.join(workdir, SUMMARY)]
    if noop:
        argv.append("--noop")
    # The manifest's path is absolute (under workdir), so it cannot read as an option.
    return argv + [posixpath.join(workdir, "tree", manifest)]


def agent_argv(workdir, *, noop):
    """The argv of `puppet agent -t` (one run against the host's configured server)."""
    argv = [PUPPET, "agent", "--test", "--detailed-exitcodes", "--color", "false", "--waitforcert", "0",
            "--lastrunfile", posixpath.join(workdir, SUMMARY)]
    return argv + (["--noop"] if noop else ["--no-noop"])


def parse_summary(text):
    """Return {resource counts..., unchanged, puppet_version, config_version, events} from a summary's YAML."""
    try:
        doc = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise BackendError(f"puppet's run summary is not YAML: {exc}") from None
    if not isinstance(doc, dict):
        raise BackendError("puppet's run summary is not a mapping")
    resources = doc.get("resources") or {}
    counts = {key: int(resources.get(key) or 0) for key in COUNTS}
    # A resource is out of sync when it differed from the catalog, whether it was then changed, failed or
    # (with --noop) left alone; the rest of the catalog's resources were already as declared.
    counts["unchanged"] = max(0, counts["total"] - counts["out_of_sync"] - counts["skipped"])
    version = doc.get("version") or {}
    events = doc.get("events") or {}
    counts.update(puppet_version=str(version.get("puppet") or ""), config_version=str(version.get("config") or ""),
                  events={k: int(v or 0) for k, v in events.items() if isinstance(v, int | float)})
    return counts


def _prepare(pool, target, cancel):
    result, out, err = run_capture(pool, target, shlex.join(["sh", "-c", PREPARE]), cancel=cancel, timeout=60,
                                   sweep=False)
    if result.canceled:
        raise BackendError(f"puppet on {target.name}: canceled")
    if result.exit_code == 3 and "opsportal: no-puppet" in out:
        raise PuppetMissing(f"puppet is not installed on {target.name}: install Debian's puppet-agent first "
                            "(the job action host.install_puppet), then gather facts")
    if not result.ok:
        raise BackendError(f"could not prepare a directory for puppet on {target.name}: "
                           f"{result.error or err.strip()[-300:] or f'exit {result.exit_code}'}")
    workdir = out.strip().splitlines()[-1] if out.strip() else ""
    if not re.fullmatch(r"/tmp/opsportal-puppet\.[A-Za-z0-9]{10}", workdir):
        raise BackendError(f"mktemp on {target.name} answered {workdir!r}")
    return workdir


def _cleanup(pool, target, workdir):
    try:
        run_capture(pool, target, shlex.join(["rm", "-rf", "--", workdir]), timeout=60, sweep=False)
    except BackendError:
        pass  # the host went away; /tmp is cleaned with it


def _run_tag(workdir):
    return f"OPSPORTAL_PUPPET_RUN={posixpath.basename(workdir)}"


def _sweep(pool, target, workdir, result):
    """After a cancel or timeout: end what the run started in sessions of its own (exec resources)."""
    try:
        swept, out, _ = run_capture(pool, target, shlex.join(["sh", "-c", SWEEP, "opsportal-sweep", _run_tag(workdir)]),
                                    timeout=60, sweep=False)
    except BackendError as exc:
        swept, out = None, str(exc)
    if swept is None or not swept.ok:
        result.error = (f"{result.error + '; ' if result.error else ''}processes of the puppet run on {target.name} "
                        f"outlived SIGKILL: {out.strip()[:300]}")
    return result


def _execute(pool, target, workdir, argv, *, on_line, cancel, timeout, env, cwd=None, on_session=None):
    """Run puppet (argv) tagged with the run's name, end what it started if it is canceled or times out, and
    read its summary otherwise: (CommandResult, summary or None, puppet's error lines)."""
    errors = []
    name, _, value = _run_tag(workdir).partition("=")
    result = run_command(pool, target, shlex.join(argv), on_line=_collect_errors(on_line, errors, workdir),
                         cancel=cancel, timeout=timeout, env={**(env or {}), name: value}, cwd=cwd,
                         on_session=on_session)
    if result.canceled or result.timed_out:
        return _sweep(pool, target, workdir, result), None, errors
    return result, _read_summary(pool, target, workdir, cancel), errors


def _read_summary(pool, target, workdir, cancel):
    with leased(pool, target, cancel=cancel) as conn:
        data = read_file(conn, posixpath.join(workdir, SUMMARY), max_bytes=1024 * 1024)
    return parse_summary(data.decode("utf-8", "replace")) if data else None


def _outcome(target, result, summary, errors, *, noop):
    """Turn puppet's exit code and summary into the target's CommandResult."""
    data = {"noop": noop, "puppet_exit": result.exit_code, **(result.data or {})}
    if summary is not None:
        data["resources"] = {k: summary[k] for k in (*COUNTS, "unchanged")}
        data["puppet_version"] = summary["puppet_version"]
        data["config_version"] = summary["config_version"]
    if result.canceled or result.timed_out or (result.error and result.exit_code is None):
        return CommandResult(exit_code=result.exit_code, error=result.error, canceled=result.canceled,
                             timed_out=result.timed_out, data=data)
    code = result.exit_code
    resources = data.get("resources") or {}
    changed = bool(resources.get("changed")) if summary is not None else code in (2, 6)
    if noop:
        changed = False
    if code in (0, 2):
        return CommandResult(exit_code=0, changed=changed, data=data)
    if code in (4, 6):
        failed = resources.get("failed", 0)
        detail = "; ".join(errors[-5:]) or "see the log"
        return CommandResult(exit_code=code, changed=changed, data=data,
                             error=f"puppet failed on {target.name}: {failed} resource(s) failed ({detail})"[:2000])
    detail = "; ".join(errors[-5:]) or f"exit {code}"
    return CommandResult(exit_code=code if code else 1, changed=False, data=data,
                         error=f"puppet could not apply the catalog on {target.name}: {detail}"[:2000])


def _collect_errors(on_line, errors, workdir):
    """on_line that also keeps puppet's `Error:` lines, with paths relative to the project."""
    prefix = posixpath.join(workdir, "tree") + "/"

    def emit(stream, text):
        text = text.replace(prefix, "")
        if text.startswith("Error:"):
            errors.append(text[len("Error:"):].strip())
        on_line(stream, text)
    return emit


def apply_manifest(pool, target, *, tree: str, manifest: str, noop: bool = False, on_line,
                   cancel: CancelToken | None = None, timeout: float | None = None, env: dict | None = None,
                   on_session=None) -> CommandResult:
    """`puppet apply` of tree/manifest on target (tree: a directory on the portal's machine).

    Returns a CommandResult: exit_code 0 when puppet succeeded (changed says whether it changed
    anything), puppet's code (4/6) with the failed count when resources failed, 1 with puppet's
    error lines when the catalog did not compile. data: noop, puppet_exit, resources {total,
    changed, failed, out_of_sync, unchanged, ...}, puppet_version. Raises PuppetMissing (a
    BackendError) when the host has no puppet, BackendError when it cannot be reached.
    """
    manifest = manifest_path(manifest)
    if not os.path.isfile(os.path.join(tree, manifest)):
        raise BackendError(f"the manifest {manifest} is not in the project")
    archive = pack_tree(tree)
    cancel = cancel or CancelToken()
    workdir = _prepare(pool, target, cancel)
    try:
        tree_dir = posixpath.join(workdir, "tree")
        unpack = shlex.join(["sh", "-c", 'mkdir -m 700 -- "$1" && tar -x -f - -C "$1" --no-same-owner',
                             "opsportal-unpack", tree_dir])
        result, _, err = run_capture(pool, target, unpack, cancel=cancel, timeout=300, stdin=archive)
        if not result.ok:
            if result.canceled:
                return CommandResult(canceled=True, data={"noop": noop})
            raise BackendError(f"could not send the manifest directory to {target.name}: "
                               f"{result.error or err.strip()[-300:] or f'exit {result.exit_code}'}")
        has_modules = os.path.isdir(os.path.join(tree, "modules"))
        argv = apply_argv(workdir, manifest, noop=noop, has_modules=has_modules)
        result, summary, errors = _execute(pool, target, workdir, argv, on_line=on_line, cancel=cancel,
                                           timeout=timeout, env=env, cwd=tree_dir, on_session=on_session)
        return _outcome(target, result, summary, errors, noop=noop)
    finally:
        _cleanup(pool, target, workdir)


def run_agent(pool, target, *, noop: bool = False, on_line, cancel: CancelToken | None = None,
              timeout: float | None = None, env: dict | None = None, on_session=None) -> CommandResult:
    """One `puppet agent -t` run against the server the host's puppet.conf names (see apply_manifest for
    the result)."""
    cancel = cancel or CancelToken()
    workdir = _prepare(pool, target, cancel)
    try:
        result, summary, errors = _execute(pool, target, workdir, agent_argv(workdir, noop=noop), on_line=on_line,
                                           cancel=cancel, timeout=timeout, env=env, on_session=on_session)
        return _outcome(target, result, summary, errors, noop=noop)
    finally:
        _cleanup(pool, target, workdir)


INSTALL = r"""
export DEBIAN_FRONTEND=noninteractive
if dpkg-query -W -f '${Status}' puppet-agent 2>/dev/null | grep -q 'install ok installed'; then
    echo "opsportal: puppet-agent is installed already ($(dpkg-query -W -f '${Version}' puppet-agent))"
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "apt-get is not on this host: only Debian's puppet-agent is installed" >&2
    exit 3
fi
apt-get update -q || exit $?
apt-get install -y -q --no-install-recommends puppet-agent || exit $?
echo "opsportal: installed puppet-agent $(dpkg-query -W -f '${Version}' puppet-agent)"
echo "opsportal: changed"
"""


def install_agent(pool, target, *, on_line, cancel: CancelToken | None = None, timeout: float | None = None,
                  env: dict | None = None, on_session=None) -> CommandResult:
    """Install Debian's puppet-agent with apt-get (nothing when it is installed already): changed says
    whether it was installed now."""
    lines = []

    def emit(stream, text):
        lines.append(text)
        on_line(stream, text)

    result = run_command(pool, target, shlex.join(["sh", "-c", INSTALL]), on_line=emit, cancel=cancel,
                         timeout=timeout or 900, env=env, on_session=on_session)
    result.changed = result.ok and "opsportal: changed" in lines
    if result.exit_code == 3:
        result.error = f"{target.name} has no apt-get: only Debian's puppet-agent package is installed by the portal"
    return result
