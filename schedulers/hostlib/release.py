"""Deploys and rollbacks: releases side by side, `current` switched with one atomic rename.

Layout on the host, under base_dir:

    releases/<release id>/      unpacked archives (the archive is checked in Python first)
    releases/.<release id>.sha256   the tar content each release came from (a redeploy of the same
                                    id with the same content reuses it, whatever the gzip header
                                    says; other content is refused)
    current -> releases/<id>    switched by `ln -s` to a temporary name and `mv -T` over it
    .deploys                    release ids in deploy order: what "previous" and "keep" go by

A rollback steps back along .deploys from the release `current` points to, without
appending, so rolling back twice goes two releases back. Pruning keeps the last `keep`
releases of that order and never the one `current` points to. Concurrent deploys to one
base_dir are not locked against each other here: the runner's per-target leases serialise them.
"""
import gzip
import hashlib
import io
import posixpath
import secrets
import shlex

from ..base import BackendError, CancelToken, CommandResult
from . import validate
from .command import run_capture, run_command
from .connect import leased
from .files import put_file, read_file

PREPARE = r"""
set -eu
mkdir -p -- "$1/releases"
if [ -e "$1/releases/$2" ]; then
    printf 'exists %s\n' "$(cat -- "$1/releases/.$2.sha256" 2>/dev/null || echo unknown)"
else
    echo new
fi
"""

UNPACK_AND_SWITCH = r"""
set -eu
cd -- "$1"
id=$2 n=$3 sha=$4 up=$5 reuse=$6
if [ "$reuse" = 0 ]; then
    for stale in releases/."$id".partial-*; do
        if [ -e "$stale" ]; then rm -rf -- "$stale"; fi
    done
    tmp="releases/.$id.partial-$n"
    mkdir -- "$tmp"
    tar -xzf "$up" -C "$tmp" --no-same-owner
    rm -f -- "$up"
    printf '%s\n' "$sha" >"releases/.$id.sha256"
    mv -T -- "$tmp" "releases/$id"
fi
prev=$(readlink current 2>/dev/null || true)
if [ "$prev" != "releases/$id" ]; then
    ln -s -- "releases/$id" ".current-$n"
    mv -T -- ".current-$n" current
    printf '%s\n' "$id" >>.deploys
fi
printf 'OPSPORTAL-PREVIOUS %s\n' "$prev"
"""

SWITCH = r"""
set -eu
cd -- "$1"
test -d "releases/$2"
ln -s -- "releases/$2" ".current-$3"
mv -T -- ".current-$3" current
"""


def content_digest(archive):
    """sha256 of the uncompressed tar stream: gzip's header (its timestamp) does not count."""
    digest = hashlib.sha256()
    with gzip.GzipFile(fileobj=io.BytesIO(archive)) as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _release_of(link):
    """The release id a `current` link target names ("releases/v2" -> "v2"), or None."""
    if not link:
        return None
    head, name = posixpath.split(link.rstrip("/"))
    return name if posixpath.basename(head) == "releases" else None


def _history(conn, base_dir):
    """(release ids oldest first, the id `current` names) from .deploys and the releases directory."""
    sftp = conn.sftp()
    try:
        present = {entry.filename for entry in sftp.listdir_attr(posixpath.join(base_dir, "releases"))
                   if validate.RELEASE_ID.fullmatch(entry.filename) and entry.st_mode is not None
                   and (entry.st_mode & 0o170000) == 0o040000}
    except OSError:
        present = set()
    log = (read_file(conn, posixpath.join(base_dir, ".deploys")) or b"").decode("utf-8", "replace").split()
    order = []
    for release in log:
        if release in present:
            if release in order:
                order.remove(release)
            order.append(release)
    unknown = sorted(present - set(order))  # made by hand or an old tool: older than anything logged
    try:
        current = _release_of(sftp.readlink(posixpath.join(base_dir, "current")))
    except OSError:
        current = None
    return unknown + order, current


def releases_to_prune(order, current, keep):
    """The releases to delete: all but the last `keep` of order (oldest first) and the current one."""
    kept = set(order[-keep:]) | ({current} if current else set())
    return [release for release in order if release not in kept]


def _prune(conn, target, base_dir, keep, cancel):
    order, current = _history(conn, base_dir)
    doomed = releases_to_prune(order, current, keep)
    if doomed:
        paths = []
        for release in doomed:
            paths += [posixpath.join(base_dir, "releases", release),
                      posixpath.join(base_dir, "releases", f".{release}.sha256")]
        result, _, err = run_capture(conn, target, shlex.join(["rm", "-rf", "--", *paths]), cancel=cancel,
                                     timeout=300)
        if not result.ok:
            raise BackendError(f"could not remove old releases on {target.name}: {result.error or err}")
    survivors = [release for release in order if release not in doomed]
    put_file(conn, posixpath.join(base_dir, ".deploys"), "".join(f"{r}\n" for r in survivors).encode(), 0o644)
    return doomed, survivors


def _hook(conn, target, hook, *, base_dir, release, previous, on_line, cancel, timeout):
    env = {"RELEASE_ID": release, "RELEASE_DIR": posixpath.join(base_dir, "releases", release),
           "PREVIOUS_RELEASE": previous or "", "BASE_DIR": base_dir}
    return run_command(conn, target, hook, on_line=on_line, cancel=cancel, timeout=timeout, env=env,
                       cwd=env["RELEASE_DIR"])


def deploy_release(pool_or_conn, target, *, base_dir: str, release_id: str, archive: bytes, keep: int = 5,
                   restart_hook: str | None = None, on_line, cancel: CancelToken | None = None,
                   timeout: float | None = 600.0) -> CommandResult:
    """Upload and unpack a tar.gz release, switch `current` to it, run the restart hook, prune.

    Returns CommandResult(changed=True, data={"release", "previous", "pruned", "releases",
    "reused"}); deploying the release `current` already points to (same content) switches
    nothing, runs the hook again and reports changed=False with data["already_current"].
    A failing restart hook leaves `current` on the new release and says so in the result
    (roll back with rollback_release). Raises ValueError for a bad archive or argument
    before anything reaches the host, BackendError when the host is unreachable.
    """
    base_dir = validate.remote_path(base_dir, what="base_dir")
    if base_dir == "/":
        raise ValueError("base_dir '/' is not a deploy directory")
    release_id = validate.release_id(release_id)
    if isinstance(keep, bool) or not isinstance(keep, int) or keep < 1:
        raise ValueError("keep must be a positive integer")
    if restart_hook is not None and (not restart_hook.strip() or "\x00" in restart_hook):
        raise ValueError("restart_hook must be a non-empty command without NUL")
    validate.release_archive(archive)
    cancel = cancel or CancelToken()
    digest = content_digest(archive)
    nonce = secrets.token_hex(6)
    data = {"release": release_id, "previous": None, "pruned": [], "reused": False}
    previous = []

    def stream(stream_name, text):
        if stream_name == "stdout" and text.startswith("OPSPORTAL-PREVIOUS"):
            previous.append(text.partition(" ")[2])
        else:
            on_line(stream_name, text)

    with leased(pool_or_conn, target, cancel=cancel) as conn:
        try:
            result, out, err = run_capture(conn, target, shlex.join(["sh", "-c", PREPARE, "opsportal-deploy",
                                                                     base_dir, release_id]), cancel=cancel)
            if not result.ok:
                return _failed(result, f"could not prepare {base_dir} on {target.name}: {err or out}", data)
            state, _, known = out.strip().partition(" ")
            reuse = state == "exists"
            if reuse and known != digest:
                return CommandResult(error=f"release {release_id} already exists on {target.name} with another "
                                           "archive; deploy under a new release id", data=data)
            data["reused"] = reuse
            upload = posixpath.join(base_dir, "releases", f".{release_id}.upload-{nonce}.tar.gz")
            if cancel.is_set():
                return CommandResult(canceled=True, data=data)
            if not reuse:
                put_file(conn, upload, archive, 0o600)
            if cancel.is_set():
                if not reuse:
                    conn.sftp().remove(upload)
                return CommandResult(canceled=True, data=data)
            argv = ["sh", "-c", UNPACK_AND_SWITCH, "opsportal-deploy", base_dir, release_id, nonce, digest,
                    upload, "1" if reuse else "0"]
            result = run_command(conn, target, shlex.join(argv), on_line=stream, cancel=cancel, timeout=timeout)
            data["previous"] = _release_of(previous[0]) if previous else None
            if not result.ok:
                return _failed(result, f"unpacking release {release_id} on {target.name} failed", data)
            if restart_hook:
                hook = _hook(conn, target, restart_hook, base_dir=base_dir, release=release_id,
                             previous=data["previous"], on_line=on_line, cancel=cancel, timeout=timeout)
                data["hook_exit_code"] = hook.exit_code
                if not hook.ok:
                    return _failed(hook, f"the restart hook failed on {target.name} (exit {hook.exit_code}); "
                                         f"current points to {release_id}", data, changed=True)
            data["pruned"], data["releases"] = _prune(conn, target, base_dir, keep, cancel)
        except BackendError as exc:
            return CommandResult(error=str(exc), changed=None, data=data)
    if data["previous"] == release_id:
        # Deployed again while current: nothing switched (the hook ran, as a retry wants).
        order = data["releases"]
        data["previous"] = order[order.index(release_id) - 1] if order.index(release_id) > 0 else None
        data["already_current"] = True
        return CommandResult(exit_code=0, changed=False, data=data)
    return CommandResult(exit_code=0, changed=True, data=data)


def rollback_release(pool_or_conn, target, *, base_dir: str, on_line, cancel: CancelToken | None = None,
                     restart_hook: str | None = None, timeout: float | None = 600.0) -> CommandResult:
    """Switch `current` back to the release deployed before the one it points to.

    Returns CommandResult(changed=True, data={"release": the one now current, "previous":
    the one rolled back from}); an error result when there is no earlier release.
    """
    base_dir = validate.remote_path(base_dir, what="base_dir")
    cancel = cancel or CancelToken()
    data = {"release": None, "previous": None}
    with leased(pool_or_conn, target, cancel=cancel) as conn:
        try:
            order, current = _history(conn, base_dir)
            data.update(previous=current, releases=order)
            if current not in order:
                return CommandResult(error=f"{base_dir}/current on {target.name} names no known release", data=data)
            index = order.index(current)
            if index == 0:
                return CommandResult(error=f"no release before {current} on {target.name} to roll back to",
                                     changed=False, data=data)
            release = order[index - 1]
            data["release"] = release
            argv = ["sh", "-c", SWITCH, "opsportal-rollback", base_dir, release, secrets.token_hex(6)]
            result = run_command(conn, target, shlex.join(argv), on_line=on_line, cancel=cancel, timeout=timeout)
            if not result.ok:
                return _failed(result, f"switching {base_dir}/current to {release} on {target.name} failed", data)
            on_line("stdout", f"current -> releases/{release} (rolled back from {current})")
            if restart_hook:
                hook = _hook(conn, target, restart_hook, base_dir=base_dir, release=release, previous=current,
                             on_line=on_line, cancel=cancel, timeout=timeout)
                data["hook_exit_code"] = hook.exit_code
                if not hook.ok:
                    return _failed(hook, f"the restart hook failed on {target.name} (exit {hook.exit_code})",
                                   data, changed=True)
        except BackendError as exc:
            return CommandResult(error=str(exc), data=data)
    return CommandResult(exit_code=0, changed=True, data=data)


def _failed(result, message, data, changed=None):
    """Carry a step's outcome (canceled, timed out, exit code) with a message saying which step failed."""
    if result.canceled:
        error = ""
    elif result.error:
        error = f"{message}: {result.error}"
    else:
        error = message
    return CommandResult(exit_code=result.exit_code, canceled=result.canceled, timed_out=result.timed_out,
                         error=error, changed=changed, data=data)
