"""Environment for the test suite, loaded as a plugin (-p tests.testenv) before Django starts.

Tests run against the real PostgreSQL (database `test`; pytest-django creates test_test) and the
real Redis, in their own Redis database and key prefix so a running portal is not disturbed.
"""
import os

DEFAULTS = {
    "DJANGO_SETTINGS_MODULE": "ops_portal.settings",
    "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/test",
    "REDIS_URL": "redis://127.0.0.1:6379/13",
    # Unique per run: several runs on one machine (developers, CI, benchmarks) never share a test
    # database, queues, channel groups or heartbeats.
    "REDIS_PREFIX": f"opsportal-test-{os.getpid()}",
    "TEST_DATABASE_NAME": f"test_opsportal_{os.getpid()}",
    "DEBUG": "true",
    "SECRET_KEY": "test-secret-key-not-for-production-0123456789abcdefghijklmnop",
    # A fixed Fernet key so encrypted columns are readable by worker subprocesses.
    "ENCRYPTION_KEYS": "hCkNoW9Y3rqzx0gk5yR9JrZ2sHkq3m4E0b7mQJkV1pA=",
    "EMAIL_BACKEND": "django.core.mail.backends.locmem.EmailBackend",
    "HEARTBEAT_INTERVAL": "1",
    "HEARTBEAT_TTL": "3",
    "LOGIN_THROTTLE_ATTEMPTS": "5",
    "JOB_LOST_AFTER_SECONDS": "6",
    "BUILTIN_SCHEDULES_ENABLED": "false",
    # Local hosts stand in for real targets of operators here (tests/jobs/test_validation.py checks
    # that the default refuses them).
    "LOCAL_TARGETS_NEED_GLOBAL_ADMIN": "false",
    # Users are created by the hundred; PBKDF2's million rounds would dominate the run.
    "PASSWORD_HASHERS": "django.contrib.auth.hashers.MD5PasswordHasher",
}
for name, value in DEFAULTS.items():
    os.environ.setdefault(name, value)
