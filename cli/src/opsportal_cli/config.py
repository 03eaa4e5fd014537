"""Where the portal is and the token that reaches it.

From the environment (PORTAL_URL, PORTAL_TOKEN or PORTAL_TOKEN_FILE, PORTAL_CA_BUNDLE), else from
a TOML file: $OPSPORTAL_CONFIG, or $XDG_CONFIG_HOME/opsportal/config.toml (~/.config/...).
The environment wins key by key. A file that holds a token must belong to the user and be readable
by nobody else (as ssh insists on for keys); there is no command-line option for the token, so it
never lands in a shell's history or a process list.
"""
import os
import stat
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from .errors import ConfigError

KEYS = ("url", "token", "token_file", "ca_bundle", "timeout")


@dataclass(frozen=True)
class Config:
    url: str
    token: str = field(repr=False)
    ca_bundle: str | None = None
    timeout: float = 30.0
    source: str = "environment"

    @property
    def ws_url(self):
        scheme = "wss" if self.url.startswith("https://") else "ws"
        return scheme + self.url[self.url.index("://"):] + "/ws/"


def config_path(env):
    if env.get("OPSPORTAL_CONFIG"):
        return Path(env["OPSPORTAL_CONFIG"])
    base = env.get("XDG_CONFIG_HOME") or os.path.join(env.get("HOME") or os.path.expanduser("~"), ".config")
    return Path(base) / "opsportal" / "config.toml"


def _private(path, what):
    """Refuse a secret-bearing file others may read or that belongs to someone else."""
    info = path.stat()
    if hasattr(os, "getuid") and info.st_uid != os.getuid():
        raise ConfigError(f"{path} holds {what} but belongs to another user: it must be yours.")
    if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(f"{path} holds {what} and others may read it (mode {stat.S_IMODE(info.st_mode):04o}): "
                          f"run chmod 600 {path}")


def read_file(path, profile=None):
    """The settings of a config file (its top level, or [profiles.<profile>] over it)."""
    try:
        with open(path, "rb") as handle:
            data = tomllib.load(handle)
    except FileNotFoundError:
        if profile:
            raise ConfigError(f"profile {profile!r} asked for, but there is no config file at {path}.") from None
        return {}
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    values = {k: v for k, v in data.items() if k in KEYS}
    if profile:
        profiles = data.get("profiles") or {}
        if profile not in profiles:
            raise ConfigError(f"{path} has no [profiles.{profile}] (it has: {', '.join(profiles) or 'none'}).")
        values.update({k: v for k, v in profiles[profile].items() if k in KEYS})
    unknown = sorted(set(data) - set(KEYS) - {"profiles"})
    if unknown:
        raise ConfigError(f"{path}: unknown keys {', '.join(unknown)} (known: {', '.join(KEYS)}, [profiles.NAME]).")
    if "token" in values:
        _private(Path(path), "a token")
    return values


def _read_token_file(name):
    path = Path(os.path.expanduser(name))
    try:
        _private(path, "a token")
        token = path.read_text().strip()
    except FileNotFoundError:
        raise ConfigError(f"token file {path} does not exist.") from None
    except OSError as exc:
        raise ConfigError(f"cannot read token file {path}: {exc.strerror}") from None
    if not token:
        raise ConfigError(f"token file {path} is empty.")
    return token


def check_url(url):
    url = (url or "").strip().rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"the portal's URL must look like https://ops.example.com, not {url!r}.")
    if parts.query or parts.fragment:
        raise ConfigError("the portal's URL takes no query or fragment.")
    return url


def load(env=None, profile=None):
    """The configuration: environment variables over the config file."""
    env = os.environ if env is None else env
    profile = profile or env.get("PORTAL_PROFILE") or None
    path = config_path(env)
    values = read_file(path, profile)
    source = str(path) if values else "environment"
    mapping = {"url": "PORTAL_URL", "token": "PORTAL_TOKEN", "token_file": "PORTAL_TOKEN_FILE",
               "ca_bundle": "PORTAL_CA_BUNDLE", "timeout": "PORTAL_HTTP_TIMEOUT"}
    for key, var in mapping.items():
        if env.get(var, "").strip():
            values[key] = env[var].strip()
            if key == "token":
                values.pop("token_file", None)
            if key == "token_file":
                values.pop("token", None)
    if not values.get("url"):
        raise ConfigError(f"where is the portal? Set PORTAL_URL or url in {path}.")
    token = values.get("token") or (_read_token_file(values["token_file"]) if values.get("token_file") else "")
    if not token:
        raise ConfigError(f"no API token: set PORTAL_TOKEN (or PORTAL_TOKEN_FILE) or token in {path} "
                          "(create one on your profile page or with POST /api/tokens/).")
    if any(c.isspace() for c in token):
        raise ConfigError("the API token contains whitespace: copy it again (it looks like opt_...).")
    try:
        timeout = float(values.get("timeout", 30))
    except (TypeError, ValueError):
        raise ConfigError("timeout must be a number of seconds.") from None
    if not 0 < timeout <= 600:
        raise ConfigError("timeout must be between 0 and 600 seconds.")
    return Config(url=check_url(values["url"]), token=token, ca_bundle=values.get("ca_bundle") or None,
                  timeout=timeout, source=source)
