"""opsportal limit-exec: apply resource limits, then become the program (same pid).

Installed on a host as /usr/local/lib/opsportal/limit-exec by the supervisord manager and put in
front of a program's command when the program has limits (supervisord has none of its own):

    python3 limit-exec [--nofile N] [--nproc N] [--memory BYTES] -- COMMAND [ARG...]

--nofile and --nproc set RLIMIT_NOFILE and RLIMIT_NPROC (soft and hard; the kernel enforces them;
RLIMIT_NPROC counts all processes of the program's user, and root is exempt). --memory starts a
watchdog beside the program that reads its resident memory (VmRSS of the program's own process)
every 0.2 s and, once it is over the limit, writes one line to the program's stderr and then
kills it with SIGKILL:

    opsportal-limit: killed pid PID: memory RSS BYTES over the limit of LIMIT bytes

The watchdog leaves when the program does. It is double-forked, so the program never has to
reap it, and stays in the program's process group, so a group stop or pause reaches it too.
"""
# Python 3.6 or later on the host.
# ruff: noqa: UP031
import os
import resource
import signal
import sys
import time

POLL = 0.2


def usage(message):
    sys.stderr.write("opsportal-limit: %s\n" % message)
    sys.stderr.write("usage: limit-exec [--nofile N] [--nproc N] [--memory BYTES] -- COMMAND [ARG...]\n")
    sys.exit(126)


def start_time(pid):
    try:
        with open("/proc/%d/stat" % pid, "rb") as fh:
            return fh.read().rpartition(b")")[2].split()[19]
    except (OSError, IndexError):
        return None


def rss(pid):
    try:
        with open("/proc/%d/status" % pid, "rb") as fh:
            for line in fh:
                if line.startswith(b"VmRSS:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        return None
    return 0


def watchdog(pid, limit):
    """Kill pid with SIGKILL once its RSS is over limit; return when pid is gone."""
    started = start_time(pid)
    try:
        with open("/proc/self/comm", "w") as fh:
            fh.write("opsportal-limit")
    except OSError:
        pass
    os.chdir("/")
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(devnull, 1)  # stderr stays: the kill is reported there
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    while start_time(pid) == started and started is not None:
        used = rss(pid)
        if used is not None and used > limit:
            try:
                os.write(2, ("opsportal-limit: killed pid %d: memory RSS %d over the limit of %d bytes\n"
                             % (pid, used, limit)).encode())
            except OSError:
                pass
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
            return
        time.sleep(POLL)


def main(argv):
    limits = {}
    args = list(argv[1:])
    while args and args[0] != "--":
        flag = args.pop(0)
        if flag not in ("--nofile", "--nproc", "--memory") or not args or not args[0].isdigit():
            usage("bad option %r" % flag)
        limits[flag[2:]] = int(args.pop(0))
    if not args or len(args) < 2:
        usage("no command")
    command = args[1:]
    try:
        if "nofile" in limits:
            resource.setrlimit(resource.RLIMIT_NOFILE, (limits["nofile"], limits["nofile"]))
        if "nproc" in limits:
            resource.setrlimit(resource.RLIMIT_NPROC, (limits["nproc"], limits["nproc"]))
    except (ValueError, OSError) as exc:
        usage("cannot set the limits %s: %s" % (limits, exc))
    if "memory" in limits:
        pid = os.getpid()
        child = os.fork()
        if child == 0:
            try:
                if os.fork() == 0:
                    watchdog(pid, limits["memory"])
            finally:
                os._exit(0)
        os.waitpid(child, 0)
    try:
        os.execvp(command[0], command)
    except OSError as exc:
        sys.stderr.write("opsportal-limit: cannot run %s: %s\n" % (command[0], exc.strerror))
        sys.exit(127)


if __name__ == "__main__":
    main(sys.argv)
