"""The small shared interface of the level backends.

A backend runs one action on one target and reports through callbacks: `on_line(stream, text)`
for each line of output as it arrives. Cancellation is cooperative through a CancelToken the
runner sets; backends end the whole remote or local process group and report `canceled` only once
the group is confirmed gone.
"""
import threading
from dataclasses import dataclass, field


class CancelToken:
    """Set by the runner when the job is canceled or times out; backends poll or wait on it."""

    def __init__(self):
        self._event = threading.Event()
        self.reason = ""

    def cancel(self, reason="canceled"):
        self.reason = reason
        self._event.set()

    def is_set(self):
        return self._event.is_set()

    def wait(self, timeout=None):
        return self._event.wait(timeout)


@dataclass
class CommandResult:
    """How a command ended on one target."""

    exit_code: int | None = None
    error: str = ""  # plain words: why it failed to run (not the command's own stderr)
    canceled: bool = False
    timed_out: bool = False
    changed: bool | None = None
    data: dict = field(default_factory=dict)  # structured output (facts, diffs, check results)

    @property
    def ok(self):
        return self.exit_code == 0 and not (self.error or self.canceled or self.timed_out)


class BackendError(Exception):
    """A target could not be acted on (unreachable, refused, bad credentials): one target fails."""


def split_lines(buffer: bytes, final=False):
    """Split complete lines off a byte buffer; returns (lines, rest). Undecodable bytes are replaced."""
    *lines, rest = buffer.split(b"\n")
    if final and rest:
        lines.append(rest)
        rest = b""
    return [line.rstrip(b"\r").decode("utf-8", "replace") for line in lines], rest
