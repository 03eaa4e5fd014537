"""Settings come from the environment, strictly; production-like settings pass check --deploy."""
import os
import subprocess
import sys

import pytest
from django.core.exceptions import ImproperlyConfigured

from ops_portal.core import env
from tests.helpers import ROOT


def run_manage(*args, env_overrides, drop=()):
    environment = {k: v for k, v in os.environ.items() if k not in drop}
    environment.update(env_overrides)
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=environment, capture_output=True,
                          text=True, timeout=120)


@pytest.mark.parametrize("value, expected", [("true", True), ("1", True), ("off", False), ("No", False)])
def test_booleans_parse(monkeypatch, value, expected):
    monkeypatch.setenv("X_FLAG", value)
    assert env.env_bool("X_FLAG") is expected


def test_a_misspelt_boolean_is_a_startup_error(monkeypatch):
    monkeypatch.setenv("X_FLAG", "maybe")
    with pytest.raises(ImproperlyConfigured, match="X_FLAG must be a boolean"):
        env.env_bool("X_FLAG", False)


def test_integers_are_bounded(monkeypatch):
    monkeypatch.setenv("X_NUM", "0")
    with pytest.raises(ImproperlyConfigured, match="between 1"):
        env.env_int("X_NUM", 5, minimum=1, maximum=10)


def test_integers_name_the_variable_and_the_bad_value(monkeypatch):
    monkeypatch.setenv("X_NUM", "12x")
    with pytest.raises(ImproperlyConfigured, match=r"X_NUM must be an integer, got '12x'"):
        env.env_int("X_NUM", 5)
    monkeypatch.setenv("X_NUM", "0")
    with pytest.raises(ImproperlyConfigured, match="X_NUM must be at least 1, got 0"):
        env.env_int("X_NUM", 5, minimum=1)
    monkeypatch.setenv("X_NUM", " 7 ")
    assert env.env_int("X_NUM", 5, minimum=1, maximum=10) == 7


def test_a_blank_value_counts_as_unset(monkeypatch):
    """compose writes `VAR: ${VAR:-}`: an empty value takes the default, or is missing when required."""
    for name in ("X_FLAG", "X_NUM", "X_LIST", "X_TEXT"):
        monkeypatch.setenv(name, "  ")
    assert env.env_bool("X_FLAG", True) is True
    assert env.env_int("X_NUM", 5) == 5
    assert env.env_list("X_LIST", ["a"]) == ["a"]
    assert env.env_str("X_TEXT", None) is None
    with pytest.raises(ImproperlyConfigured, match="X_TEXT must be set in the environment"):
        env.env_str("X_TEXT")


def test_lists_are_stripped_and_choices_are_strict(monkeypatch):
    monkeypatch.setenv("X_LIST", " a, ,b ,")
    assert env.env_list("X_LIST", []) == ["a", "b"]
    monkeypatch.setenv("X_CHOICE", "jsno")
    with pytest.raises(ImproperlyConfigured, match="X_CHOICE must be one of text, json, got 'jsno'"):
        env.env_choice("X_CHOICE", ("text", "json"), "text")
    monkeypatch.setenv("X_CHOICE", "json")
    assert env.env_choice("X_CHOICE", ("text", "json"), "text") == "json"


def test_database_urls_parse(tmp_path):
    pg = env.parse_database_url("postgres://ops:s%40cret@db.example:6543/portal?sslmode=require", base_dir=tmp_path)
    assert (pg["ENGINE"], pg["NAME"], pg["USER"], pg["PASSWORD"], pg["HOST"], pg["PORT"]) == (
        "django.db.backends.postgresql", "portal", "ops", "s@cret", "db.example", "6543")
    assert pg["OPTIONS"] == {"sslmode": "require"}
    lite = env.parse_database_url("sqlite:///var/x.sqlite3", base_dir=tmp_path)
    assert lite["NAME"] == str(tmp_path / "var/x.sqlite3")
    with pytest.raises(ImproperlyConfigured, match="not supported"):
        env.parse_database_url("mysql://x/y", base_dir=tmp_path)


def test_database_connections_are_tuned_per_engine(tmp_path):
    """SQLite: IMMEDIATE transactions and a lock timeout; PostgreSQL: persistent, health-checked."""
    lite = env.parse_database_url("sqlite:////srv/portal.sqlite3", base_dir=tmp_path)
    assert lite["NAME"] == "/srv/portal.sqlite3"
    assert lite["OPTIONS"] == {"timeout": 20, "transaction_mode": "IMMEDIATE"}
    pg = env.parse_database_url("postgres://ops@db/portal", base_dir=tmp_path)
    assert (pg["CONN_MAX_AGE"], pg["CONN_HEALTH_CHECKS"], pg["OPTIONS"]) == (60, True, {})
    short = env.parse_database_url("postgresql://ops@db/portal?conn_max_age=0&connect_timeout=5", base_dir=tmp_path)
    assert (short["CONN_MAX_AGE"], short["OPTIONS"]) == (0, {"connect_timeout": 5})


@pytest.mark.parametrize("url, message", [
    ("postgres://ops@db/portal?conn_max_age=soon", "conn_max_age must be an integer"),
    ("postgres://ops@db/", "PostgreSQL needs a database name"),
    ("postgres://ops@db:port/portal", "not a valid URL"),
    ("sqlite://", "sqlite needs a file path"),
    ("sqlite://:memory:", "sqlite needs a file path"),
])
def test_bad_database_urls_are_startup_errors(tmp_path, url, message):
    with pytest.raises(ImproperlyConfigured, match=message):
        env.parse_database_url(url, base_dir=tmp_path)


def test_a_misspelt_value_stops_startup_with_the_variables_name():
    result = run_manage("check", env_overrides={"LOG_FORMAT": "jsno"})
    assert result.returncode != 0
    assert "ImproperlyConfigured: LOG_FORMAT must be one of text, json, got 'jsno'." in result.stderr
    result = run_manage("check", env_overrides={"HEARTBEAT_INTERVAL": "ten"})
    assert "ImproperlyConfigured: HEARTBEAT_INTERVAL must be an integer, got 'ten'." in result.stderr


def test_a_missing_metrics_directory_stops_startup(tmp_path):
    result = run_manage("check", env_overrides={"PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "nowhere")})
    assert result.returncode != 0
    assert "PROMETHEUS_MULTIPROC_DIR must be an existing directory" in result.stderr


def test_missing_secret_key_stops_startup_when_debug_is_off():
    result = run_manage("check", env_overrides={"DEBUG": "false"}, drop=("SECRET_KEY",))
    assert result.returncode != 0
    assert "SECRET_KEY must be set when DEBUG is off" in result.stderr


def test_missing_encryption_key_stops_startup_when_debug_is_off():
    result = run_manage("check", env_overrides={"DEBUG": "false"}, drop=("ENCRYPTION_KEYS",))
    assert result.returncode != 0
    assert "ENCRYPTION_KEYS must be set" in result.stderr


@pytest.mark.parametrize("overrides, message", [
    ({"TRUSTED_PROXIES": "10.0.0.0/8,proxy.example.com"}, "TRUSTED_PROXIES: 'proxy.example.com' is not an IP"),
    ({"BEHIND_PROXY": "true"}, "BEHIND_PROXY is gone: list the proxies' addresses in TRUSTED_PROXIES"),
])
def test_proxy_settings_that_would_trust_the_wrong_peers_stop_startup(overrides, message):
    result = run_manage("check", env_overrides=overrides)
    assert result.returncode != 0 and message in result.stderr, result.stderr


def test_check_deploy_is_clean_for_a_production_like_environment():
    result = run_manage("check", "--deploy", "--fail-level", "WARNING", env_overrides={
        "DEBUG": "false", "ALLOWED_HOSTS": "ops.example.com", "HTTPS": "true",
        "SECRET_KEY": "a-long-random-production-secret-key-for-the-check-0123456789-abcdefghij",
    })
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_embedded_sqlite_default_migrates_and_bootstraps(tmp_path):
    """Without DATABASE_URL the portal uses SQLite under its var directory."""
    overrides = {"OPS_PORTAL_VAR_DIR": str(tmp_path)}
    result = run_manage("migrate", "--no-input", "-v0", env_overrides=overrides, drop=("DATABASE_URL",))
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "portal.sqlite3").exists()
    result = run_manage("bootstrap", env_overrides=overrides, drop=("DATABASE_URL",))
    assert result.returncode == 0, result.stderr
    assert "Sign in as  admin  with password" in result.stdout
    assert "Registered this machine" in result.stdout
    again = run_manage("bootstrap", env_overrides=overrides, drop=("DATABASE_URL",))
    assert again.returncode == 0 and "Administrator created" not in again.stdout
    script = (
        "from ops_portal.audit.models import AuditEvent; from ops_portal.inventory.models import Host;"
        "print(Host.objects.get(transport='local').environment.name, AuditEvent.objects.filter("
        "action='user.create').count(), AuditEvent.objects.filter(action='host.create').count())"
    )
    result = run_manage("shell", "--no-imports", "-c", script, env_overrides=overrides, drop=("DATABASE_URL",))
    assert result.stdout.split() == ["development", "1", "1"], result.stderr


def test_the_web_server_loads_its_views_and_freezes_start_up_objects_out_of_the_collectors_walk():
    """A full garbage-collector pass walked the ~200,000 objects of start-up (about 180 ms), landing
    on whichever request triggered it; ops_portal.asgi imports the views and freezes them first."""
    script = ("import gc, sys; before = gc.get_freeze_count(); import ops_portal.asgi; "
              "print(before, gc.get_freeze_count(), 'ops_portal.jobs.views' in sys.modules)")
    environment = {**os.environ, "DEBUG": "1", "DJANGO_SETTINGS_MODULE": "ops_portal.settings"}
    answer = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=environment, capture_output=True,
                            text=True, timeout=120)
    assert answer.returncode == 0, answer.stderr
    before, frozen, views_loaded = answer.stdout.split()
    assert before == "0" and int(frozen) > 50_000
    assert views_loaded == "True"
