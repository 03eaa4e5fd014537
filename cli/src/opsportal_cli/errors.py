"""Exit codes and the errors that carry them: one table, documented in docs/CLI.md."""

# A finished job's state -> the exit code of --wait.
SUCCEEDED = 0
JOB_EXIT_CODES = {
    "succeeded": 0,
    "failed": 1,
    "canceled": 3,
    "timed_out": 4,
    "lost": 5,
    "rejected": 6,
    "expired": 7,
}
FINISHED_STATES = frozenset(JOB_EXIT_CODES)
USAGE = 2  # argparse's own
GAVE_UP = 8  # --timeout passed and the job had not finished (it keeps going on the portal)
CONFIG = 9
UNREACHABLE = 10
UNAUTHORIZED = 11
FORBIDDEN = 12
NOT_FOUND = 13
INVALID = 14
CONFLICT = 15
PORTAL_FAILED = 16
INTERRUPTED = 130
INTERNAL = 70


def job_exit_code(state):
    """The exit code for a finished job's state."""
    return JOB_EXIT_CODES[state]


class CLIError(Exception):
    """An error told to the user in plain words, ending the command with `exit_code`."""

    exit_code = INTERNAL

    def __init__(self, message, exit_code=None):
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code


class ConfigError(CLIError):
    exit_code = CONFIG


class Unreachable(CLIError):
    exit_code = UNREACHABLE


class Unauthorized(CLIError):
    exit_code = UNAUTHORIZED


class Forbidden(CLIError):
    exit_code = FORBIDDEN


class NotFound(CLIError):
    exit_code = NOT_FOUND


class Invalid(CLIError):
    exit_code = INVALID


class Conflict(CLIError):
    exit_code = CONFLICT


class PortalFailed(CLIError):
    exit_code = PORTAL_FAILED


# Errors worth trying again while waiting for a job (the portal restarting, a proxy hiccup).
TRANSIENT = (Unreachable, PortalFailed)
