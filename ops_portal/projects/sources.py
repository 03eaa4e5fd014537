"""Fetching a project's source onto the portal's machine and handing out pinned, read-only copies.

Layout under <VAR_DIR>/projects/<project id>/: `git/` (a bare repository the branch is fetched
into), `rev/<revision>/` (one read-only working copy per revision: `git archive` of a commit, or a
snapshot of a directory taken when it was synced), `known_hosts` (SSH host keys of the remote,
trusted on first use), `.lock` (one sync or checkout of a project at a time on this machine).

Every git call is an argv list with `--` before values, run through schedulers.local (own process
group, cancel, timeout); the deploy key is written to a 0600 file in a 0700 temporary directory
only for the call and removed after.
"""
import fcntl
import hashlib
import os
import re
import shlex
import shutil
import stat
import subprocess
import tarfile
import tempfile
from contextlib import contextmanager
from pathlib import Path

from schedulers import local
from schedulers.base import BackendError, CancelToken

REVISION = re.compile(r"^(?:[0-9a-f]{40}|[0-9a-f]{64})\Z")
GIT_TIMEOUT = 600
MAX_FILES = 20000
MAX_BYTES = 512 * 1024 * 1024
SKIPPED_DIRS = {".git"}


class UnknownRevision(BackendError):
    """The revision is not a synced revision of the project."""


def project_root(var_dir, project_id) -> Path:
    return Path(var_dir) / "projects" / str(int(project_id))


@contextmanager
def locked(root: Path):
    root.mkdir(parents=True, exist_ok=True, mode=0o700)
    with open(root / ".lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


# Git ---------------------------------------------------------------------------------------------

@contextmanager
def _git_env(root: Path, deploy_key: str):
    """The environment of a git call: no prompts, no system or user config, the deploy key (if any)
    in a private file for the call's life, host keys of the remote pinned on first use."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "GIT_TERMINAL_PROMPT": "0", "GIT_CONFIG_NOSYSTEM": "1",
           "GIT_CONFIG_GLOBAL": "/dev/null", "HOME": str(root), "LC_ALL": "C", "GIT_ALLOW_PROTOCOL":
           "https:http:ssh:git:file"}
    private = tempfile.mkdtemp(prefix="project-key-")  # 0700
    try:
        ssh = ["ssh", "-F", "/dev/null", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=accept-new",
               "-o", f"UserKnownHostsFile={root / 'known_hosts'}"]
        if deploy_key:
            key_file = Path(private) / "key"
            fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(deploy_key if deploy_key.endswith("\n") else deploy_key + "\n")
            ssh += ["-o", "IdentitiesOnly=yes", "-i", str(key_file)]
        env["GIT_SSH_COMMAND"] = shlex.join(ssh)  # git runs it through sh: every part is quoted
        yield env
    finally:
        shutil.rmtree(private, ignore_errors=True)


def _git(args, *, env, cancel=None, on_line=None, timeout=GIT_TIMEOUT, what="git"):
    lines = []

    def collect(stream, line):
        lines.append(line)
        if on_line is not None:
            on_line(stream, line)

    result = local.run(["git", "-c", "protocol.ext.allow=never", *args], on_line=collect, cancel=cancel,
                       timeout=timeout, env=env)
    if result.canceled or result.timed_out:
        raise BackendError(f"{what} {'was canceled' if result.canceled else 'timed out'}")
    if not result.ok:
        detail = " ".join(line.strip() for line in lines[-5:] if line.strip()) or result.error
        raise BackendError(f"{what} failed: {detail or f'exit {result.exit_code}'}")
    return "\n".join(lines)


def sync_git(root: Path, *, url, branch, deploy_key="", cancel: CancelToken | None = None, on_line=None) -> str:
    """Fetch `branch` of `url` into the project's bare repository; return the commit it points at."""
    repo = root / "git"
    with locked(root), _git_env(root, deploy_key) as env:
        if not (repo / "HEAD").exists():
            _git(["init", "--quiet", "--bare", "--", str(repo)], env=env, what="git init")
        ref = f"refs/heads/{branch}"
        _git(["--git-dir", str(repo), "fetch", "--no-tags", "--prune", "--progress", "--", url, f"+{ref}:{ref}"],
             env=env, cancel=cancel, on_line=on_line, what=f"fetching {branch} of {url}")
        return _git(["--git-dir", str(repo), "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"],
                    env=env, what="reading the branch's commit").strip()


def _extract_commit(root: Path, revision: str, destination: Path):
    """`git archive` of one commit, unpacked (tarfile's "data" filter: no absolute names, no links
    out of the tree, no devices) into `destination`."""
    repo = str(root / "git")
    with _git_env(root, "") as env:
        exists = subprocess.run(["git", "--git-dir", repo, "cat-file", "-e", f"{revision}^{{commit}}"],
                                capture_output=True, env=env, timeout=60)
        if exists.returncode != 0:
            raise UnknownRevision(f"revision {revision} is not in the project's synced history: sync it first")
        with tempfile.TemporaryFile() as archive:
            made = subprocess.run(["git", "--git-dir", repo, "archive", "--format=tar", revision], stdout=archive,
                                  stderr=subprocess.PIPE, env=env, timeout=GIT_TIMEOUT)
            if made.returncode != 0:
                raise BackendError(f"git archive of {revision} failed: {made.stderr.decode(errors='replace')[-500:]}")
            archive.seek(0)
            with tarfile.open(fileobj=archive) as tar:
                tar.extractall(destination, filter="data")


# Directories -------------------------------------------------------------------------------------

def _walk(source: Path):
    """(relative path, absolute path, lstat) of everything under `source`, sorted, bounded; symbolic
    links that leave the tree are refused."""
    if not source.is_dir():
        raise BackendError(f"{source} is not a directory on the portal's machine")
    entries, total = [], 0
    for dirpath, dirnames, filenames in os.walk(source):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIPPED_DIRS)
        for name in sorted(dirnames + filenames):
            full = Path(dirpath) / name
            info = full.lstat()
            if stat.S_ISLNK(info.st_mode):
                target = (full.parent / os.readlink(full)).resolve()
                if source.resolve() not in (target, *target.parents):
                    raise BackendError(f"{full.relative_to(source)} links outside the project directory")
            elif not (stat.S_ISDIR(info.st_mode) or stat.S_ISREG(info.st_mode)):
                raise BackendError(f"{full.relative_to(source)} is neither a file, a directory nor a link")
            total += info.st_size if stat.S_ISREG(info.st_mode) else 0
            entries.append((full.relative_to(source).as_posix(), full, info))
            if len(entries) > MAX_FILES or total > MAX_BYTES:
                raise BackendError(f"the directory holds more than {MAX_FILES} files or {MAX_BYTES >> 20} MiB")
    return sorted(entries, key=lambda entry: entry[0])


def content_hash(source: Path) -> str:
    """SHA-256 over the tree: each entry's relative name, type, executable bit and content (a link's
    target). The same files give the same revision wherever and whenever they are read."""
    digest = hashlib.sha256()
    for relative, full, info in _walk(Path(source)):
        if stat.S_ISLNK(info.st_mode):
            kind, body = b"l", os.readlink(full).encode()
        elif stat.S_ISDIR(info.st_mode):
            kind, body = b"d", b""
        else:
            kind, body = (b"x" if info.st_mode & 0o111 else b"f"), full.read_bytes()
        digest.update(relative.encode() + b"\0" + kind + b"\0" + hashlib.sha256(body).digest())
    return digest.hexdigest()


def sync_directory(root: Path, *, path) -> str:
    """Hash the directory and keep a snapshot of it as that revision (so a job pinned to it later
    runs exactly what was synced, even after the directory changed)."""
    source = Path(path)
    with locked(root):
        revision = content_hash(source)
        final = root / "rev" / revision
        if not final.exists():
            _publish(root, revision, lambda staging: shutil.copytree(source, staging, symlinks=True,
                                                                     ignore=shutil.ignore_patterns(*SKIPPED_DIRS),
                                                                     dirs_exist_ok=True))
            if content_hash(final) != revision:  # changed while it was copied: try again later
                _remove(final)
                raise BackendError(f"{source} changed while it was copied: sync again")
        return revision


# Pinned working copies ---------------------------------------------------------------------------

def _read_only(tree: Path):
    for dirpath, _dirnames, filenames in os.walk(tree):
        for name in filenames:
            full = Path(dirpath) / name
            if not full.is_symlink():
                full.chmod(full.stat().st_mode & 0o555)
        Path(dirpath).chmod(0o555)


def _remove(tree: Path):
    for dirpath, _, _ in os.walk(tree):
        os.chmod(dirpath, 0o755)
    shutil.rmtree(tree, ignore_errors=True)


def _publish(root: Path, revision: str, fill):
    """Fill a staging directory, make it read-only and move it to rev/<revision> in one rename."""
    (root / "rev").mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{revision[:12]}-", dir=root / "rev"))
    try:
        fill(staging)
        _read_only(staging)
        staging.chmod(0o555)
        os.rename(staging, root / "rev" / revision)
    except BaseException:
        _remove(staging)
        raise


def checkout(root: Path, revision: str, *, git: bool) -> Path:
    """The read-only working copy of `revision` (made from the bare repository when missing)."""
    if not isinstance(revision, str) or not REVISION.match(revision):
        raise UnknownRevision(f"{revision!r} is not a revision (a commit id or a content hash)")
    final = root / "rev" / revision
    if final.is_dir():
        return final
    if not git:
        raise UnknownRevision(f"revision {revision} of the directory was not synced on this machine")
    with locked(root):
        if not final.is_dir():
            _publish(root, revision, lambda staging: _extract_commit(root, revision, staging))
    return final


# Pruning old revisions -----------------------------------------------------------------------------

SET_ASIDE = ".pruned-"


def revisions(root: Path) -> list[str]:
    """The revisions with a working copy under rev/, the most recently made first."""
    rev = root / "rev"
    if not rev.is_dir():
        return []
    found = [(entry.stat().st_mtime, entry.name) for entry in rev.iterdir()
             if REVISION.match(entry.name) and entry.is_dir() and not entry.is_symlink()]
    return [name for _, name in sorted(found, reverse=True)]


def restore_set_aside(root: Path) -> list[str]:
    """Put back copies a prune set aside but did not get to remove (it died before its transaction
    ended): they are judged again. Call with the project's lock held."""
    rev, restored = root / "rev", []
    if not rev.is_dir():
        return restored
    for entry in rev.iterdir():
        name = entry.name[len(SET_ASIDE):]
        if entry.name.startswith(SET_ASIDE) and REVISION.match(name):
            if (rev / name).exists():
                _remove(entry)
            else:
                os.rename(entry, rev / name)
                restored.append(name)
    return restored


def set_aside(root: Path, doomed) -> list[Path]:
    """Rename the working copies of `doomed` out of checkout's sight (one rename each, in the same
    directory); `put_back` undoes it, `discard` removes them. Call with the project's lock held."""
    moved = []
    try:
        for revision in doomed:
            if not REVISION.match(revision):
                raise ValueError(f"{revision!r} is not a revision")
            aside = root / "rev" / f"{SET_ASIDE}{revision}"
            os.rename(root / "rev" / revision, aside)
            moved.append(aside)
    except BaseException:
        put_back(moved)
        raise
    return moved


def put_back(moved):
    for aside in moved:
        os.rename(aside, aside.parent / aside.name[len(SET_ASIDE):])


def discard(moved):
    for aside in moved:
        _remove(aside)


def forget(root: Path):
    """Remove everything the portal keeps of a project."""
    if root.exists():
        _remove(root)
