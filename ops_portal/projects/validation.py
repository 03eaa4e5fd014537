"""What a project's source may look like: Git URLs git itself will not read as options or as a
remote helper command, branch names git accepts, absolute directories."""
import re
from urllib.parse import urlsplit

from django.core.exceptions import ValidationError

MAX_URL = 500
MAX_PATH = 500
# https://host/path, ssh://[user@]host[:port]/path, git://host/path, file:///abs/path.
SCHEMES = ("https", "http", "ssh", "git", "file")
# user@host:path, the scp-like form of SSH URLs (no "::": that would be a remote helper).
SCP_LIKE = re.compile(r"^[A-Za-z0-9_.-]{1,64}@[A-Za-z0-9.-]{1,253}:(?!:)[A-Za-z0-9_./~+-]{1,400}\Z")
URL_CHARS = re.compile(r"^[A-Za-z0-9_./:@~+%=-]{1,500}\Z")
BRANCH = re.compile(r"^(?!-)(?!.*\.\.)(?!.*//)(?!.*@\{)[A-Za-z0-9._/+-]{1,200}(?<![./])\Z")
PATH = re.compile(r"^/[^\x00-\x1f]{0,499}\Z")


def git_url(value):
    """A Git remote the portal may fetch: no option-looking value, no `ext::` or other remote helper,
    no spaces or quotes; a local repository only as file:///absolute/path."""
    if not isinstance(value, str) or not URL_CHARS.match(value) or value.startswith("-"):
        raise ValidationError("Give a Git URL: https://host/repo.git, ssh://user@host/repo.git, user@host:repo.git "
                              "or file:///path/to/repo (letters, digits and ./:@~+%=_- only).")
    if SCP_LIKE.match(value):
        return
    if "::" in value:
        raise ValidationError("Remote helpers (transport::address) are not allowed.")
    parts = urlsplit(value)
    if parts.scheme not in SCHEMES:
        raise ValidationError(f"The URL's scheme must be one of {', '.join(SCHEMES)}.")
    if parts.scheme == "file":
        if parts.netloc or not parts.path.startswith("/") or ".." in parts.path.split("/"):
            raise ValidationError("A local repository is file:///absolute/path (no host, no ..).")
    elif not parts.hostname or not parts.path.strip("/"):
        raise ValidationError("The URL needs a host and a repository path.")


def is_local_url(value):
    return isinstance(value, str) and value.startswith("file:")


def branch(value):
    if not isinstance(value, str) or not BRANCH.match(value) or value.endswith(".lock"):
        raise ValidationError("Give a branch name git accepts (letters, digits and ._/+-, not starting with -).")


def directory(value):
    if not isinstance(value, str) or not PATH.match(value) or ".." in value.split("/"):
        raise ValidationError("Give an absolute directory on the portal's machine (no ..).")
