"""Argument checks for the host backend, done before anything reaches a host.

Everything a caller hands in that ends up in a remote path or command is checked here;
what passes is still shlex-quoted where it meets a shell. Failures raise ValueError.
"""
import io
import re
import tarfile

RELEASE_ID = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}")
# POSIX portable user/group names (useradd's default rule, plus upper case), or a numeric id.
POSIX_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,31}\$?|[0-9]{1,10}")
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
MAX_SYMLINK_HOPS = 40


def remote_path(path, *, what="path"):
    """Return a normalised absolute path; refuse relative paths, NUL or control characters and `..`."""
    if not isinstance(path, str) or not path:
        raise ValueError(f"{what} is empty")
    if _CONTROL.search(path):
        raise ValueError(f"{what} {path!r} contains NUL or control characters")
    if not path.startswith("/"):
        raise ValueError(f"{what} {path!r} is not absolute")
    parts = [part for part in path.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise ValueError(f"{what} {path!r} contains '..'")
    return "/" + "/".join(parts)


def file_path(path, *, what="path"):
    """A remote_path() that names a file: not the root directory."""
    path = remote_path(path, what=what)
    if path == "/":
        raise ValueError(f"{what} '/' is not a file")
    return path


def release_id(value):
    if not isinstance(value, str) or not RELEASE_ID.fullmatch(value):
        raise ValueError(f"release id {value!r} must match [A-Za-z0-9._-]+ (at most 128, not starting with '.' or '-')")
    return value


def posix_name(value, *, what="owner"):
    if not isinstance(value, str) or not POSIX_NAME.fullmatch(value):
        raise ValueError(f"{what} {value!r} is not a POSIX user or group name")
    return value


def env_names(env):
    """Check an environment mapping: names are identifiers, values are strings without NUL."""
    for name, value in (env or {}).items():
        if not isinstance(name, str) or not ENV_NAME.fullmatch(name):
            raise ValueError(f"environment variable name {name!r} is not an identifier")
        if not isinstance(value, str) or "\x00" in value:
            raise ValueError(f"environment variable {name} must be a string without NUL")
    return dict(env or {})


def file_mode(mode):
    if mode is None:
        return None
    if isinstance(mode, bool) or not isinstance(mode, int) or not 0 <= mode <= 0o7777:
        raise ValueError(f"mode {mode!r} is not a permission mode (0 to 0o7777)")
    return mode


def _member_parts(name, *, what):
    if not name or "\x00" in name or _CONTROL.search(name):
        raise ValueError(f"archive member {name!r}: empty name or control characters")
    if name.startswith("/"):
        raise ValueError(f"archive member {name!r}: absolute path")
    parts = [part for part in name.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise ValueError(f"archive member {name!r}: '..' in {what}")
    return parts


def _resolve(parts, links, origin):
    """Follow the archive's own symlinks along parts; raise when the path leaves the release directory."""
    queue = list(parts)
    stack = []
    hops = 0
    while queue:
        part = queue.pop(0)
        if part in ("", "."):
            continue
        if part == "..":
            if not stack:
                raise ValueError(f"archive member {origin!r} resolves outside the release directory")
            stack.pop()
            continue
        stack.append(part)
        target = links.get(tuple(stack))
        if target is not None:
            hops += 1
            if hops > MAX_SYMLINK_HOPS:
                raise ValueError(f"archive member {origin!r}: too many symlink levels")
            stack.pop()
            queue = target.split("/") + queue
    return stack


def release_archive(data):
    """Check a tar.gz release archive; return its member names or raise ValueError.

    Refused: absolute names, `..` components, devices and FIFOs, duplicate names, symlinks
    that are absolute or resolve (through the archive's own symlinks) outside the release
    directory, and hard links to anything but a regular file of the archive.
    """
    if not isinstance(data, bytes | bytearray) or not data:
        raise ValueError("the release archive is empty")
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
            members = archive.getmembers()
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise ValueError(f"the release archive is not a readable tar.gz: {exc}")
    links, files, seen = {}, set(), set()
    for member in members:
        parts = tuple(_member_parts(member.name, what="name"))
        if parts in seen and parts:
            raise ValueError(f"archive member {member.name!r} appears twice")
        seen.add(parts)
        if member.issym():
            if not member.linkname or member.linkname.startswith("/") or _CONTROL.search(member.linkname):
                raise ValueError(f"archive member {member.name!r}: symlink to {member.linkname!r} is absolute")
            links[parts] = member.linkname
        elif member.isfile():
            files.add(parts)
        elif not (member.isdir() or member.islnk()):
            raise ValueError(f"archive member {member.name!r}: devices and FIFOs are not allowed")
    for member in members:
        parts = _member_parts(member.name, what="name")
        if not parts:
            continue
        parent = _resolve(parts[:-1], links, member.name)
        if member.issym():
            _resolve(parent + member.linkname.split("/"), links, member.name)
        elif member.islnk():
            target = tuple(_member_parts(member.linkname, what="hard link target"))
            if target not in files:
                raise ValueError(f"archive member {member.name!r}: hard link to {member.linkname!r}, "
                                 "which is not a regular file of the archive")
    return [member.name for member in members]

