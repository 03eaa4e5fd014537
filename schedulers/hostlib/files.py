"""Files on a host over SFTP: atomic writes, reads, stat, and idempotent configuration files.

SFTP takes paths as data, never through a shell, so odd characters in a path cannot run
anything; paths are still validated (absolute, no NUL or control characters, no `..`).
The helpers that take `conn` want a HostConnection leased to the calling thread.
"""
import difflib
import errno
import hashlib
import posixpath
import secrets
import shlex
import stat as statmod

from ..base import BackendError, CommandResult
from . import validate
from .command import run_capture
from .connect import leased

MAX_READ = 64 * 1024 * 1024
DIFF_MAX_LINES = 2000


def _sftp_error(exc, action, path):
    code = getattr(exc, "errno", None)
    reasons = {errno.ENOENT: "no such file or directory", errno.EACCES: "permission denied",
               errno.EPERM: "operation not permitted"}
    return BackendError(f"could not {action} {path}: {reasons.get(code) or str(exc) or type(exc).__name__}")


def _kind(mode):
    if statmod.S_ISREG(mode):
        return "file"
    if statmod.S_ISDIR(mode):
        return "directory"
    if statmod.S_ISLNK(mode):
        return "symlink"
    return "other"


def stat(conn, path) -> dict | None:
    """Return {type, mode, size, uid, gid, mtime[, link_target]} of path (not following a symlink), or None."""
    path = validate.remote_path(path)
    sftp = conn.sftp()
    try:
        attrs = sftp.lstat(path)
    except OSError as exc:
        if getattr(exc, "errno", None) == errno.ENOENT:
            return None
        raise _sftp_error(exc, "stat", path)
    info = {"type": _kind(attrs.st_mode), "mode": statmod.S_IMODE(attrs.st_mode), "size": attrs.st_size,
            "uid": attrs.st_uid, "gid": attrs.st_gid, "mtime": attrs.st_mtime}
    if info["type"] == "symlink":
        info["link_target"] = sftp.readlink(path)
    return info


def read_file(conn, path, *, max_bytes=MAX_READ) -> bytes | None:
    """Return the content of a remote file, or None when it does not exist."""
    path = validate.file_path(path)
    sftp = conn.sftp()
    try:
        with sftp.open(path, "rb") as fh:
            if fh.stat().st_size > max_bytes:
                raise BackendError(f"{path} is larger than {max_bytes} bytes")
            fh.prefetch()
            return fh.read(max_bytes + 1)
    except OSError as exc:
        if getattr(exc, "errno", None) == errno.ENOENT:
            return None
        raise _sftp_error(exc, "read", path)


def put_file(conn, path, data: bytes, mode: int | None = None, *, uid: int | None = None,
             gid: int | None = None):
    """Write data to path atomically: a temporary file beside it, then one rename over it.

    mode defaults to the existing file's mode (0644 for a new file); uid/gid default to the
    existing file's owner, kept when running as root. Readers see the old or the new content,
    never a part. The temporary file is 0600 until it is complete.
    """
    path = validate.file_path(path)
    mode = validate.file_mode(mode)
    if not isinstance(data, bytes | bytearray):
        raise TypeError("data must be bytes")
    sftp = conn.sftp()
    directory, name = posixpath.split(path)
    existing = None
    try:
        existing = sftp.stat(path)
    except OSError as exc:
        if getattr(exc, "errno", None) != errno.ENOENT:
            raise _sftp_error(exc, "stat", path)
    if mode is None:
        mode = statmod.S_IMODE(existing.st_mode) if existing is not None else 0o644
    if existing is not None:
        uid = existing.st_uid if uid is None else uid
        gid = existing.st_gid if gid is None else gid
    stem = name if len(name) < 180 else "file"
    tmp = posixpath.join(directory, f".{stem}.opsportal-{secrets.token_hex(6)}.tmp")
    try:
        with sftp.open(tmp, "wb") as fh:
            fh.chmod(0o600)
            fh.set_pipelined(True)
            fh.write(bytes(data))
        if uid is not None or gid is not None:
            current = sftp.stat(tmp)
            wanted = (current.st_uid if uid is None else uid, current.st_gid if gid is None else gid)
            if wanted != (current.st_uid, current.st_gid):
                sftp.chown(tmp, *wanted)
        sftp.chmod(tmp, mode)
        sftp.posix_rename(tmp, path)
    except OSError as exc:
        try:
            sftp.remove(tmp)
        except OSError:
            pass
        if getattr(exc, "errno", None) == errno.ENOENT:
            raise BackendError(f"could not write {path}: the directory {directory} does not exist")
        raise _sftp_error(exc, "write", path)


def _ids(conn, target, owner, group):
    """Resolve owner and group names to numeric ids on the host: (uid|None, gid|None)."""
    if owner is None and group is None:
        return None, None
    names = [name if name is not None and not name.isdigit() else "" for name in (owner, group)]
    uid = int(owner) if owner is not None and owner.isdigit() else None
    gid = int(group) if group is not None and group.isdigit() else None
    if any(names):
        script = ('u=; g=; [ -n "$1" ] && u=$(getent passwd "$1" | cut -d: -f3); '
                  '[ -n "$2" ] && g=$(getent group "$2" | cut -d: -f3); printf "%s %s\\n" "${u:--}" "${g:--}"')
        command = shlex.join(["sh", "-c", script, "opsportal-ids", *names])
        result, out, err = run_capture(conn, target, command, timeout=30)
        if not result.ok:
            raise BackendError(f"could not look up users on {target.name}: {result.error or err or out}")
        found_uid, _, found_gid = out.strip().partition(" ")
        if names[0]:
            if not found_uid.isdigit():
                raise BackendError(f"no user {owner!r} on {target.name}")
            uid = int(found_uid)
        if names[1]:
            if not found_gid.isdigit():
                raise BackendError(f"no group {group!r} on {target.name}")
            gid = int(found_gid)
    return uid, gid


def unified_diff(path, old: bytes | None, new: bytes):
    """A unified diff of two versions of a file (text), or a one-line note for binary content."""
    try:
        old_text = (old or b"").decode("utf-8")
        new_text = new.decode("utf-8")
    except UnicodeDecodeError:
        return f"Binary files {path} differ\n" if old != new else ""
    lines = list(difflib.unified_diff(old_text.splitlines(keepends=True), new_text.splitlines(keepends=True),
                                      fromfile=path if old is not None else "/dev/null", tofile=path))
    lines = [line if line.endswith("\n") else line + "\n\\ No newline at end of file\n" for line in lines]
    if len(lines) > DIFF_MAX_LINES:
        lines = lines[:DIFF_MAX_LINES] + [f"… diff cut at {DIFF_MAX_LINES} lines\n"]
    return "".join(lines)


def _check_directory(conn, target, path):
    """Refuse a path whose directory is reached through a symlink: the file would land (or be read)
    wherever the link points, e.g. /etc/app -> /root/.ssh. The server resolves it (SFTP realpath)."""
    directory = posixpath.dirname(path)
    try:
        resolved = conn.sftp().normalize(directory)
    except OSError as exc:
        if getattr(exc, "errno", None) == errno.ENOENT:
            raise BackendError(f"could not write {path}: the directory {directory} does not exist")
        raise _sftp_error(exc, "resolve", directory)
    if resolved != directory:
        raise BackendError(f"{directory} on {target.name} is reached through a symlink (it is {resolved}); "
                           f"refusing to follow it: name the real path")


def apply_file(pool_or_conn, target, *, path: str, content: bytes, mode: int | None = None,
               owner: str | None = None, group: str | None = None, dry_run: bool = False,
               cancel=None) -> CommandResult:
    """Make path hold content (and mode/owner/group when given); report what changed and its diff.

    Idempotent: a second run reports changed=False. dry_run reports the same without
    changing anything. Content is written atomically (temporary file and rename); a mode or
    owner change alone is applied in place. A symlink, directory or missing parent directory
    is an error, not something to replace or create; so is a directory reached through a symlink.
    """
    path = validate.file_path(path)
    mode = validate.file_mode(mode)
    owner = validate.posix_name(owner, what="owner") if owner is not None else None
    group = validate.posix_name(group, what="group") if group is not None else None
    if not isinstance(content, bytes | bytearray):
        raise TypeError("content must be bytes")
    content = bytes(content)
    data = {"path": path, "dry_run": dry_run, "sha256": hashlib.sha256(content).hexdigest()}
    with leased(pool_or_conn, target, cancel=cancel) as conn:
        try:
            _check_directory(conn, target, path)
            uid, gid = _ids(conn, target, owner, group)
            current = stat(conn, path)
            if current is not None and current["type"] != "file":
                return CommandResult(error=f"{path} on {target.name} is a {current['type']}, not a regular file; "
                                           "refusing to replace it", data=data)
            old = read_file(conn, path) if current is not None else None
            changes = []
            if old != content:
                changes.append("created" if current is None else "content")
            if current is not None:
                if mode is not None and current["mode"] != mode:
                    changes.append(f"mode {current['mode']:04o} -> {mode:04o}")
                if uid is not None and current["uid"] != uid:
                    changes.append(f"owner {current['uid']} -> {uid} ({owner})")
                if gid is not None and current["gid"] != gid:
                    changes.append(f"group {current['gid']} -> {gid} ({group})")
            data.update(changes=changes, diff=unified_diff(path, old, content) if old != content else "")
            if dry_run or not changes:
                return CommandResult(exit_code=0, changed=bool(changes), data=data)
            if old != content:
                put_file(conn, path, content, mode, uid=uid, gid=gid)
            else:
                sftp = conn.sftp()
                if uid is not None or gid is not None:
                    sftp.chown(path, current["uid"] if uid is None else uid, current["gid"] if gid is None else gid)
                if mode is not None:
                    sftp.chmod(path, mode)
            after = stat(conn, path)
        except BackendError as exc:
            return CommandResult(error=str(exc), data=data)
        except OSError as exc:
            return CommandResult(error=str(_sftp_error(exc, "change", path)), data=data)
    wrong = [name for name, want in (("mode", mode), ("uid", uid), ("gid", gid))
             if want is not None and (after or {}).get(name) != want]
    if after is None or wrong:
        return CommandResult(error=f"{path} on {target.name} does not hold what was written ({', '.join(wrong)})",
                             changed=True, data=data)
    return CommandResult(exit_code=0, changed=True, data=data)
