"""Run a command on a host: output streamed as it arrives, cancel and timeout that confirm the end.

How a command runs remotely: the SSH exec request starts a fixed wrapper script (`sh -c
WRAPPER`) whose arguments carry the caller's command, working directory and environment,
each shlex-quoted; nothing of the caller's is spliced into script text. The wrapper starts
the command as a background job under `setsid`, so it leads a new session and process group
whose id (its pid) it prints first on stdout as a control line with a per-run nonce; that
line is stripped from the output. When the command ends, the wrapper ends whatever it left
running in its session (TERM, KILL after a grace period), as `schedulers.local` does. That sweep
scans every process of the host (`ps -s`), as much work as a `ps -e`: a caller whose command
starts nothing (a read-only script) passes sweep=False to skip it; cancel and timeout end the
session all the same.

Cancel and timeout: over a second channel of the same connection, a small script sends TERM
to the whole session (process group and `pkill -s`), waits the grace period, sends KILL,
and then confirms with `kill -0`/`pgrep -s` that nothing of the session is left. Only then
does the result say canceled/timed_out; if something survives, the result carries an error
naming it. A command that must outlive its job has to leave the session itself (setsid,
or better, the process manager).

Needs on the host: a POSIX sh, util-linux `setsid`; `pgrep`/`pkill` (procps) make the
session sweep complete, without them the process group alone is ended.
"""
import secrets
import select
import shlex
import time

from ..base import BackendError, CancelToken, CommandResult, split_lines
from . import validate
from .connect import leased

KILL_GRACE = 3.0
DRAIN_AFTER_EXIT = 2.0  # how long output may trail the exit status (a holder outside the session)
MARKER_WAIT = 5.0
MAX_LINE = 64 * 1024

END_SESSION = r"""
# A session is alive while any of its processes is not a zombie (zombies are dead, awaiting their
# parent); without procps ps, the process group alone is checked.
alive() {
    out=$(ps -o stat= -s "$1" 2>/dev/null) || { kill -s 0 -- "-$1" 2>/dev/null; return; }
    printf '%s\n' "$out" | grep -q '^[^Z]'
}
end_session() {
    alive "$1" || return 0
    kill -s TERM -- "-$1" 2>/dev/null; pkill -TERM -s "$1" 2>/dev/null
    i=0; while alive "$1" && [ "$i" -lt "$2" ]; do sleep 0.1; i=$((i + 1)); done
    alive "$1" || return 0
    kill -s KILL -- "-$1" 2>/dev/null; pkill -KILL -s "$1" 2>/dev/null
    i=0; while alive "$1" && [ "$i" -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
    ! alive "$1"
}
"""

# sh -c WRAPPER opsportal-run MARKER GRACE_TENTHS CWD COMMAND [NAME=VALUE...]
# GRACE_TENTHS 0: no sweep of the session once COMMAND has exited (run_command's sweep=False).
WRAPPER = END_SESSION + r"""
m=$1 g=$2 d=$3 c=$4
shift 4
setsid sh -c 'printf "%s %s\n" "$1" "$$"
if [ -n "$2" ]; then cd -- "$2" || exit 126; fi
c=$3; shift 3
exec env -- "$@" sh -c "$c"' opsportal-cmd "$m" "$d" "$c" "$@" </dev/null &
p=$!
wait "$p"
rc=$?
[ "$g" = 0 ] || end_session "$p" "$g" || echo "opsportal: processes of session $p outlived SIGKILL" >&2
exit "$rc"
"""

# The same wrapper for a command that reads the caller's stdin: sh gives a background job
# /dev/null unless it is redirected explicitly, so the channel's stdin is kept on fd 3.
WRAPPER_STDIN = "exec 3<&0\n" + WRAPPER.replace(" </dev/null &", " <&3 3<&- &")

# sh -c KILLER opsportal-kill SID GRACE_TENTHS [NAME=VALUE]
# With NAME=VALUE, the session is ended only if one of its processes carries it in its environment:
# a session id remembered from earlier (a dead worker's) must not end somebody else's processes.
KILLER = END_SESSION + r"""
if [ -n "${3:-}" ] && alive "$1"; then
    ours=no
    for p in $(ps -o pid= -s "$1" 2>/dev/null); do
        if tr '\0' '\n' < "/proc/$p/environ" 2>/dev/null | grep -qxF -- "$3"; then ours=yes; break; fi
    done
    if [ "$ours" = no ]; then
        echo "foreign"
        ps -o pid=,stat=,args= -s "$1" 2>/dev/null | head -n 5
        exit 2
    fi
fi
if end_session "$1" "$2"; then echo gone; exit 0; fi
echo alive
ps -o pid=,stat=,args= -s "$1" 2>/dev/null | head -n 5
exit 1
"""


def remote_line(argv, *, sudo=False, username="root"):
    """Quote argv into the one command line an SSH exec request carries."""
    line = shlex.join(argv)
    if sudo and username != "root":
        line = "sudo -n -- " + line
    return line


class ConnectionLost(BackendError):
    """The connection to the host went away while a command ran (host stopped, network down)."""


def run_command(pool_or_conn, target, command: str, *, on_line, cancel: CancelToken | None = None,
                timeout: float | None = None, env: dict | None = None, sudo: bool = False,
                cwd: str | None = None, kill_grace: float = KILL_GRACE, stdin: bytes | None = None,
                on_session=None, sweep: bool = True) -> CommandResult:
    """Run a shell command on target, streaming each line to on_line(stream, text) as it arrives.

    pool_or_conn is an SSHPool (a connection is leased for the command) or a HostConnection.
    stdin, when given, is sent to the command's standard input (then end of file); without it
    the command reads /dev/null.
    on_session(sid), if given, learns the id of the remote session the command runs in as soon
    as it starts (end_remote_session() ends it from elsewhere, e.g. after the worker died).
    sweep=False: the command starts nothing that could outlive it, so its session is not swept
    once it has exited (see the module's docstring).
    Raises BackendError when the host cannot be reached, ConnectionLost when the connection
    drops while the command runs; anything else that happens once the command runs is in the
    CommandResult.
    """
    if not isinstance(command, str) or not command.strip() or "\x00" in command:
        raise ValueError("the command must be a non-empty string without NUL")
    if stdin is not None and not isinstance(stdin, bytes | bytearray):
        raise ValueError("stdin must be bytes")
    env = validate.env_names(env)
    cwd = validate.remote_path(cwd, what="working directory") if cwd else ""
    cancel = cancel or CancelToken()
    with leased(pool_or_conn, target, cancel=cancel) as conn:
        result = _Run(conn, target, command, on_line=on_line, cancel=cancel, timeout=timeout, env=env,
                      sudo=sudo, cwd=cwd, grace=kill_grace, stdin=stdin, on_session=on_session, sweep=sweep).run()
        if conn.trusted_on_first_use:
            result.data.setdefault("host_key", conn.host_key)
        if conn.reused:  # a warm connection of an earlier job (hostlib/warm.py): no handshake
            result.data.setdefault("reused_connection", True)
    return result


def end_remote_session(pool_or_conn, target, sid: int, *, tag: str, grace: float = KILL_GRACE,
                       sudo: bool = False):
    """End a command's remote session by its id (from on_session), e.g. one a dead worker left.

    tag is a NAME=VALUE the command's environment carries (env= of run_command); a session
    without it is left alone. Returns (gone, evidence): gone is True when nothing of the session
    is left (also when it had ended already). Raises BackendError when the host cannot be reached.
    """
    if not isinstance(sid, int) or isinstance(sid, bool) or sid <= 1:
        raise ValueError("the session id must be a process id above 1")
    name, _, value = tag.partition("=")
    validate.env_names({name: value})
    with leased(pool_or_conn, target) as conn:
        return _kill_session(conn, target, sid, grace=grace, sudo=sudo, tag=tag)


def _kill_session(conn, target, sid, *, grace, sudo, tag=""):
    argv = ["sh", "-c", KILLER, "opsportal-kill", str(sid), str(max(1, round(grace * 10))), tag]
    try:
        chan = conn.channel()
    except BackendError as exc:
        return False, f"cannot confirm: {exc}"
    try:
        chan.settimeout(grace + 15.0)
        chan.exec_command(remote_line(argv, sudo=sudo, username=target.username))
        output = b""
        while True:
            chunk = chan.recv(4096)
            if not chunk:
                break
            output += chunk
        text = output.decode("utf-8", "replace").strip()
        status = chan.recv_exit_status()
    except (OSError, EOFError) as exc:
        return False, f"cannot confirm: {exc or type(exc).__name__}"
    finally:
        chan.close()
    if status == 0 and text.startswith("gone"):
        return True, ""
    if text.startswith("foreign"):
        return False, (f"session {sid} runs processes without {tag.partition('=')[0]} of this command; "
                       f"left alone: {text[len('foreign'):].strip()}")
    return False, text or f"the check exited with {status}"


def run_capture(pool_or_conn, target, command, *, cancel=None, timeout=120.0, **kwargs):
    """run_command collecting the output: (CommandResult, stdout text, stderr text)."""
    out, err = [], []

    def collect(stream, text):
        (out if stream == "stdout" else err).append(text)

    result = run_command(pool_or_conn, target, command, on_line=collect, cancel=cancel, timeout=timeout, **kwargs)
    return result, "\n".join(out), "\n".join(err)


def _pieces(line):
    return [line[i:i + MAX_LINE] for i in range(0, len(line), MAX_LINE)] or [line]


class _Run:
    """One command on one channel, and the session sweep when it is canceled or times out."""

    def __init__(self, conn, target, command, *, on_line, cancel, timeout, env, sudo, cwd, grace, stdin=None,
                 on_session=None, sweep=True):
        self.conn = conn
        self.on_session = on_session
        self.target = target
        self.on_line = on_line
        self.cancel = cancel
        self.timeout = timeout
        self.sudo = sudo
        self.grace = grace
        self.marker = f"OPSPORTAL-SID-{secrets.token_hex(8)}"
        self.stdin = stdin
        wrapper = WRAPPER if stdin is None else WRAPPER_STDIN
        tenths = str(max(1, round(grace * 10))) if sweep else "0"
        self.argv = ["sh", "-c", wrapper, "opsportal-run", self.marker, tenths, cwd,
                     command, *(f"{name}={value}" for name, value in env.items())]
        self.buffers = {"stdout": b"", "stderr": b""}
        self.sid = None
        self.marker_done = False
        self.chan = None

    def run(self):
        self.chan = self.conn.channel()
        try:
            try:
                self.chan.exec_command(remote_line(self.argv, sudo=self.sudo, username=self.target.username))
                if self.stdin:
                    self.chan.sendall(bytes(self.stdin))
                self.chan.shutdown_write()
            except (OSError, EOFError) as exc:
                raise BackendError(f"could not start the command on {self.target.name}: {exc}")
            return self._watch()
        except BaseException:
            # A failing callback or an interrupt must not leave the command running remotely.
            if self.sid is not None and not self.chan.exit_status_ready():
                self._end_session()
            raise
        finally:
            self.chan.close()

    def _watch(self):
        chan = self.chan
        deadline = time.monotonic() + self.timeout if self.timeout else None
        exited_at = None
        outcome = None
        while True:
            got = self._pump()
            if chan.exit_status_ready():
                exited_at = exited_at or time.monotonic()
                if chan.eof_received and not got:
                    break
                if time.monotonic() - exited_at > DRAIN_AFTER_EXIT:
                    break
            elif chan.closed:
                self._lost()
            # Once the exit status is in, the command has ended: only its last output is awaited.
            if exited_at is None and self.cancel.is_set():
                outcome = "canceled"
                break
            if exited_at is None and deadline is not None and time.monotonic() > deadline:
                outcome = "timed_out"
                break
            if not got:
                if chan.eof_received:
                    # No more output can come, only the exit status (or the close). The channel's
                    # pipe stays readable after EOF, so wait on the status itself: it often comes
                    # a moment after EOF, and a fixed sleep here added up to 20 ms to every command.
                    chan.status_event.wait(0.02)
                else:
                    select.select([chan], [], [], 0.1)
        if outcome is None:
            self._pump()
            self._flush()
            if chan.exit_status == -1:  # paramiko's value until an exit-status message arrives
                if self._connection_dropped():
                    self._lost()
                return CommandResult(data=self._data(), error="the command ended without an exit status "
                                                              "(its shell was killed by a signal)")
            return CommandResult(exit_code=chan.recv_exit_status(), data=self._data())
        return self._stop(outcome)

    def _connection_dropped(self):
        """True when the channel ended because the connection did, not because the command did: a
        command that ends sends end-of-file before its channel closes, a dropped connection does not."""
        transport = self.chan.get_transport()
        return not self.chan.eof_received or transport is None or not transport.is_active()

    def _lost(self):
        self._flush()
        where = f" (session {self.sid})" if self.sid is not None else ""
        raise ConnectionLost(f"connection to {self.target.name} lost during the command{where}: the host stopped "
                             "or the network failed; the command may still be running there")

    def _stop(self, outcome):
        """End the remote session after cancel/timeout and confirm it is gone."""
        waited = time.monotonic() + MARKER_WAIT
        while self.sid is None and not self.chan.exit_status_ready() and time.monotonic() < waited:
            if not self._pump():
                select.select([self.chan], [], [], 0.1)
        if self.sid is None and not self.chan.exit_status_ready():
            self._flush()
            return CommandResult(error=f"could not learn the command's session on {self.target.name}, "
                                       "so it cannot be confirmed ended; it may still be running")
        gone, evidence = (True, "") if self.sid is None else self._end_session()
        # The wrapper exits once its session is gone: collect the last output and the exit code.
        until = time.monotonic() + 3.0
        while not (self.chan.exit_status_ready() and self.chan.eof_received) and time.monotonic() < until:
            if not self._pump():
                select.select([self.chan], [], [], 0.1)
        self._pump()
        self._flush()
        exit_code = self.chan.recv_exit_status() if self.chan.exit_status_ready() else None
        if not gone:
            return CommandResult(exit_code=exit_code, data=self._data(),
                                 error=f"the command's process group {self.sid} on {self.target.name} "
                                       f"did not end after SIGKILL: {evidence}")
        if outcome == "timed_out":
            return CommandResult(exit_code=exit_code, timed_out=True, data=self._data(),
                                 error=f"timed out after {self.timeout:g}s")
        return CommandResult(exit_code=exit_code, canceled=True, data=self._data())

    def _end_session(self):
        """TERM, KILL after the grace period, confirm; over a second channel. Returns (gone, evidence)."""
        return _kill_session(self.conn, self.target, self.sid, grace=self.grace, sudo=self.sudo)

    def _pump(self):
        """Read what has arrived on both streams and emit complete lines; True when anything was read."""
        got = False
        while self.chan.recv_ready():
            self._feed("stdout", self.chan.recv(65536))
            got = True
        while self.chan.recv_stderr_ready():
            self._feed("stderr", self.chan.recv_stderr(65536))
            got = True
        return got

    def _feed(self, stream, data):
        lines, rest = split_lines(self.buffers[stream] + data)
        # A "line" that never ends (binary output, a progress bar without newlines) is cut
        # into pieces rather than held in memory until the command exits.
        while len(rest) > MAX_LINE:
            lines.append(rest[:MAX_LINE].decode("utf-8", "replace"))
            rest = rest[MAX_LINE:]
        self.buffers[stream] = rest
        self._emit(stream, [piece for line in lines for piece in _pieces(line)])

    def _emit(self, stream, lines):
        for line in lines:
            if stream == "stdout" and not self.marker_done:
                self.marker_done = True
                head, _, sid = line.partition(" ")
                if head == self.marker and sid.isdigit():
                    self.sid = int(sid)
                    if self.on_session is not None:
                        self.on_session(self.sid)
                    continue
            self.on_line(stream, line)

    def _flush(self):
        for stream in ("stdout", "stderr"):
            lines, self.buffers[stream] = split_lines(self.buffers[stream], final=True)
            self._emit(stream, [piece for line in lines for piece in _pieces(line)])

    def _data(self):
        return {"session": self.sid} if self.sid is not None else {}
