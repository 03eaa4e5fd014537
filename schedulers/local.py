"""Run commands on the portal's own machine as real subprocesses, each in its own process group."""
import os
import selectors
import signal
import subprocess
import time

from .base import CancelToken, CommandResult, split_lines

KILL_GRACE = 3.0


def _group_alive(pgid):
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def end_process_group(pgid, grace=KILL_GRACE, reap=None):
    """TERM the group, KILL what is left after `grace`, and return True once the group is gone.

    `reap` collects our own child (the group leader) so a zombie does not count as alive.
    """
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            return True
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if reap is not None:
                reap()
            if not _group_alive(pgid):
                return True
            time.sleep(0.05)
    if reap is not None:
        reap()
    return not _group_alive(pgid)


def run(argv, *, on_line, cancel: CancelToken | None = None, timeout=None, env=None, cwd=None, stdin=None):
    """Run argv (a list: no shell unless the caller asks for ["sh", "-c", script]) and stream its output.

    Returns when the process exits, or after the whole process group was ended on cancel/timeout.
    """
    cancel = cancel or CancelToken()
    try:
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
                                start_new_session=True, env=env, cwd=cwd)
    except OSError as exc:
        return CommandResult(error=f"could not start {argv[0]}: {exc.strerror or exc}")
    if stdin is not None:
        try:
            proc.stdin.write(stdin if isinstance(stdin, bytes) else stdin.encode())
        except BrokenPipeError:
            pass
        proc.stdin.close()
    pgid = proc.pid
    selector = selectors.DefaultSelector()
    buffers = {"stdout": b"", "stderr": b""}
    selector.register(proc.stdout, selectors.EVENT_READ, "stdout")
    selector.register(proc.stderr, selectors.EVENT_READ, "stderr")
    deadline = time.monotonic() + timeout if timeout else None
    outcome = None
    while selector.get_map():
        if cancel.is_set():
            outcome = "canceled"
            break
        if deadline is not None and time.monotonic() > deadline:
            outcome = "timed_out"
            break
        for key, _ in selector.select(timeout=0.1):
            chunk = os.read(key.fileobj.fileno(), 65536)
            if not chunk:
                selector.unregister(key.fileobj)
                lines, buffers[key.data] = split_lines(buffers[key.data], final=True)
            else:
                lines, buffers[key.data] = split_lines(buffers[key.data] + chunk)
            for line in lines:
                on_line(key.data, line)
    if outcome is not None:
        gone = end_process_group(pgid, reap=proc.poll)
        proc.wait(timeout=10)
        selector.close()
        for stream in (proc.stdout, proc.stderr):
            stream.close()
        if not gone:
            return CommandResult(exit_code=proc.returncode, error="the process group did not end after SIGKILL")
        return CommandResult(exit_code=proc.returncode, canceled=outcome == "canceled",
                             timed_out=outcome == "timed_out",
                             error="timed out" if outcome == "timed_out" else "")
    selector.close()
    exit_code = proc.wait()
    # Children left running in the group after the leader exited are ended too.
    if _group_alive(pgid):
        end_process_group(pgid, reap=proc.poll)
    return CommandResult(exit_code=exit_code)
