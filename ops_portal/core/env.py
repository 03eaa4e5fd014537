"""Strict parsing of settings from the environment, on environs and dj-database-url.

Every reader raises ImproperlyConfigured naming the variable, so a typo in a deployment fails at
start-up instead of silently falling back to a default. A blank value counts as unset (compose
writes `VAR: ${VAR:-}`), and values are stripped.
"""
import os
from pathlib import Path
from urllib.parse import urlsplit

import dj_database_url
from django.core.exceptions import ImproperlyConfigured
from environs import Env, EnvError, EnvValidationError
from marshmallow.validate import OneOf, Range

_MISSING = ...  # environs' marker for "no default: the variable is required"


class _StrippedEnv(Env):
    """environs reading os.environ only (no .env files), with blank values treated as unset."""

    def _get_value(self, env_key, default):
        value = os.environ.get(env_key, "").strip()
        return value if value else default


_env = _StrippedEnv(expand_vars=False)


def _read(name, parse, default):
    """Parse with environs; turn its errors into ImproperlyConfigured in the portal's words."""
    try:
        return parse(name, default)
    except EnvValidationError as error:
        messages = error.error_messages
        raise ImproperlyConfigured(messages[0] if isinstance(messages, list) else str(error)) from None
    except EnvError:
        raise ImproperlyConfigured(f"{name} must be set in the environment.") from None


def env_str(name, default=_MISSING):
    return _read(name, _env.str, default)


def env_bool(name, default=_MISSING):
    invalid = f"{name} must be a boolean (true/false), got {{input!r}}."
    return _read(name, lambda key, fallback: _env.bool(key, fallback, error_messages={"invalid": invalid}), default)


def env_int(name, default=_MISSING, *, minimum=None, maximum=None):
    invalid = f"{name} must be an integer, got {{input!r}}."
    bounds = None
    if minimum is not None or maximum is not None:
        limit = (f"between {minimum} and {maximum}" if minimum is not None and maximum is not None
                 else f"at least {minimum}" if minimum is not None else f"at most {maximum}")
        bounds = Range(min=minimum, max=maximum, error=f"{name} must be {limit}, got {{input}}.")
    return _read(name, lambda key, fallback: _env.int(key, fallback, validate=bounds,
                                                      error_messages={"invalid": invalid}), default)


def env_list(name, default=_MISSING):
    value = _read(name, _env.list, default)
    return [item.strip() for item in value if item.strip()] if value is not None else []


def env_choice(name, choices, default=_MISSING):
    one_of = OneOf(choices, error=f"{name} must be one of {', '.join(choices)}, got {{input!r}}.")
    value = _read(name, lambda key, fallback: _env.str(key, fallback, validate=one_of), default)
    if value not in choices:  # environs returns a default as it is
        raise ImproperlyConfigured(f"{name} must be one of {', '.join(choices)}, got {value!r}.")
    return value


_SQLITE = ("sqlite",)
_POSTGRES = ("postgres", "postgresql", "pgsql")


def parse_database_url(url, *, base_dir: Path):
    """Turn postgres://user:pass@host:port/name?opt=v or sqlite:///path into a DATABASES entry.

    dj-database-url does the parsing; the portal adds what it relies on: only PostgreSQL and
    SQLite, a relative SQLite path under base_dir, SQLite's IMMEDIATE transactions and lock
    timeout, and for PostgreSQL persistent connections (60 s, or ?conn_max_age=N) with health
    checks.
    """
    scheme = urlsplit(url).scheme
    if scheme not in _SQLITE + _POSTGRES:
        raise ImproperlyConfigured(
            f"DATABASE_URL scheme {scheme!r} is not supported (use postgres:// or sqlite:///)."
        )
    try:
        config = dj_database_url.parse(url)
    except ValueError:
        raise ImproperlyConfigured("DATABASE_URL is not a valid URL (quote special characters).") from None
    options = config.setdefault("OPTIONS", {})
    if scheme in _SQLITE:
        name = config.get("NAME", "")
        if not name or name == ":memory:" or urlsplit(url).netloc:
            raise ImproperlyConfigured("DATABASE_URL for sqlite needs a file path.")
        config["NAME"] = str(Path(name) if Path(name).is_absolute() else base_dir / name)
        options.update({"timeout": 20, "transaction_mode": "IMMEDIATE"})
        return config
    if not config.get("NAME"):
        raise ImproperlyConfigured("DATABASE_URL for PostgreSQL needs a database name.")
    conn_max_age = options.pop("conn_max_age", 60)
    if isinstance(conn_max_age, bool) or not isinstance(conn_max_age, int):  # dj-database-url casts digits
        raise ImproperlyConfigured("DATABASE_URL conn_max_age must be an integer.")
    config["PORT"] = str(config.get("PORT") or "")
    config.update({"CONN_MAX_AGE": conn_max_age, "CONN_HEALTH_CHECKS": True})
    return config
