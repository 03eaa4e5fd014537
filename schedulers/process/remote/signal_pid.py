"""Runs ON a host (sent as `python3 -c`): act on one process, only while it is still the process
the portal saw: the same pid with the same start time.

Usage: signal_pid.py PID START_TIME ACTION [SIGNAL] [GRACE]
    ACTION  check | signal | stop | kill | pause | resume
    SIGNAL  a signal name without SIG (signal only), e.g. HUP
    GRACE   seconds between TERM and KILL (stop only)

Output: one line "OPSPORTAL-RESULT <json>": {"ok": true, "pid", "state" (letter after the action,
"" when the process ended), "ended", "sent" (signal names in order), "after" (seconds), "user",
"name"} or {"ok": false, "refused": true|false, "error": "plain words"}. Exit status 0 either way;
anything else is a failure of the script itself.

A process is identified by pid and start time (seconds since the epoch, computed as the portal's
collector does: boot time + the start field of /proc/<pid>/stat, two decimals). Where the host's
Python has os.pidfd_open (3.9+, Linux 5.3+) the check and the signal are race-free: the pidfd is
opened first, the start time checked after, and the signal sent through the pidfd, so a pid reused
in between gets nothing. Elsewhere a pid reused between the check and kill() (microseconds) could
be hit; the output says which way was used ("pidfd").

Refused before anything is sent: PID 1 (the host's init), kernel threads, and this script's own
ancestors (the SSH session or the portal worker that runs it).
"""
# Python 3.6 compatible (runs on managed hosts): no f-strings with =, no walrus, no dataclasses.
# ruff: noqa: UP031
import json
import os
import pwd
import signal
import sys
import time

TOLERANCE = 0.05  # start times are rounded to 10 ms on both sides
SIGNALS = ("TERM", "HUP", "INT", "QUIT", "KILL", "USR1", "USR2", "STOP", "CONT", "ABRT", "ALRM", "WINCH", "PIPE")


def _read(path):
    with open(path, "rb") as fh:
        return fh.read()


def boot_time():
    for line in _read("/proc/stat").split(b"\n"):
        if line.startswith(b"btime "):
            return float(line.split()[1])
    return 0.0


class Info:
    def __init__(self, state, ppid, start, uid, name):
        self.state, self.ppid, self.start, self.uid, self.name = state, ppid, start, uid, name


def info(pid, btime, hz):
    """The process's state letter, parent, start time, owner and name, or None when it is gone."""
    try:
        stat = _read("/proc/%d/stat" % pid)
        uid = os.stat("/proc/%d" % pid).st_uid
    except OSError:
        return None
    head, _, rest = stat.rpartition(b")")
    fields = rest.split()
    name = head.partition(b"(")[2].decode("utf-8", "replace")
    return Info(fields[0].decode(), int(fields[1]), round(btime + int(fields[19]) / float(hz), 2), uid, name)


def ancestors(pid):
    found = set()
    while pid > 1 and pid not in found:
        found.add(pid)
        try:
            rest = _read("/proc/%d/stat" % pid).rpartition(b")")[2].split()
        except OSError:
            break
        pid = int(rest[1])
    return found


def user_name(uid):
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def answer(document):
    sys.stdout.write("OPSPORTAL-RESULT " + json.dumps(document, separators=(",", ":")) + "\n")
    return 0


def refuse(message, refused=True):
    return answer({"ok": False, "refused": refused, "error": message})


def main(argv):
    if len(argv) < 4:
        sys.stderr.write("usage: signal_pid.py PID START_TIME ACTION [SIGNAL] [GRACE]\n")
        return 2
    pid, expected, action = int(argv[1]), float(argv[2]), argv[3]
    name = argv[4] if len(argv) > 4 else "TERM"
    grace = min(max(float(argv[5]), 0.0), 600.0) if len(argv) > 5 else 10.0
    if action not in ("check", "signal", "stop", "kill", "pause", "resume") or name not in SIGNALS:
        sys.stderr.write("unknown action or signal\n")
        return 2
    btime, hz = boot_time(), os.sysconf("SC_CLK_TCK")
    if pid <= 1:
        return refuse("pid %d is the host's init: signaling it would stop the whole host" % pid)
    if pid in ancestors(os.getpid()):
        return refuse("pid %d runs the portal's own session on this host (its SSH login or the worker); "
                      "the portal does not signal itself" % pid)
    fd = None
    pidfd_open = getattr(os, "pidfd_open", None)
    if pidfd_open is not None and hasattr(signal, "pidfd_send_signal"):
        try:
            fd = pidfd_open(pid)
        except ProcessLookupError:
            return refuse("pid %d has ended: nothing was sent" % pid)
        except OSError:
            fd = None  # an old kernel (ENOSYS): fall back to kill()
    try:
        return run(pid, expected, action, name, grace, fd, btime, hz)
    finally:
        if fd is not None:
            os.close(fd)


def same(pid, expected, btime, hz):
    """The process now at pid if it is still the expected one (not ended, not a zombie), else None."""
    now = info(pid, btime, hz)
    if now is None or abs(now.start - expected) > TOLERANCE or now.state in ("Z", "X"):
        return None
    return now


def run(pid, expected, action, name, grace, fd, btime, hz):
    first = info(pid, btime, hz)
    if first is None:
        return refuse("pid %d has ended: nothing was sent" % pid)
    if abs(first.start - expected) > TOLERANCE:
        return refuse("pid %d is now another process (%s, started at %.2f, not %.2f): nothing was sent"
                      % (pid, first.name, first.start, expected))
    if first.ppid == 2 or pid == 2:
        return refuse("pid %d (%s) is a kernel thread: it takes no signals" % (pid, first.name))
    if first.state in ("Z", "X"):
        return refuse("pid %d (%s) has ended and waits for its parent to collect it: nothing was sent"
                      % (pid, first.name))
    sent = []
    started = time.time()

    def send(signame):
        number = getattr(signal, "SIG" + signame)
        if fd is not None:
            signal.pidfd_send_signal(fd, number)
        else:
            os.kill(pid, number)
        sent.append(signame)

    def wait(condition, seconds):
        deadline = time.time() + seconds
        while True:
            if condition():
                return True
            if time.time() >= deadline:
                return False
            time.sleep(0.02)

    def ended():
        return same(pid, expected, btime, hz) is None

    def stopped():
        now = same(pid, expected, btime, hz)
        return now is not None and now.state in ("T", "t")

    try:
        if action == "signal":
            send(name)
            wait(ended, 0.2)
        elif action == "pause":
            send("STOP")
            wait(lambda: ended() or stopped(), 2.0)
        elif action == "resume":
            send("CONT")
            wait(lambda: not stopped(), 2.0)
        elif action == "kill":
            send("KILL")
            wait(ended, 5.0)
        elif action == "stop":
            send("TERM")
            if first.state in ("T", "t"):
                send("CONT")  # a stopped process handles TERM only once it runs again
            if not wait(ended, grace):
                send("KILL")
                wait(ended, 5.0)
    except ProcessLookupError:
        pass  # ended meanwhile: reported below
    except PermissionError:
        return refuse("not permitted to signal pid %d (%s runs as %s; the portal logs in as %s)"
                      % (pid, first.name, user_name(first.uid), user_name(os.geteuid())))
    now = same(pid, expected, btime, hz)
    return answer({"ok": True, "pid": pid, "name": first.name, "user": user_name(first.uid),
                   "state": now.state if now is not None else "", "ended": now is None, "sent": sent,
                   "after": round(time.time() - started, 2), "pidfd": fd is not None,
                   "before": first.state})


if __name__ == "__main__":
    sys.exit(main(sys.argv))
