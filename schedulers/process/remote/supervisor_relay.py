"""Runs ON a host (sent as `python3 -c`): talk to supervisord's XML-RPC interface on its unix socket.

Needs only python3 (3.6 or later). Never opens a TCP port: the HTTP connection goes over the
unix socket named by supervisord's configuration ([unix_http_server] file=).

Usage:
    supervisor_relay.py batch          ops as JSON on stdin, results as a payload on stdout
    supervisor_relay.py follow NAME stdout|stderr
                                       print the lines the process writes until killed

A batch is {"ops": [[op, args...], ...]}; ops run in order and the batch stops at the first
one that fails. Each result is {"ok": value}, {"fault": code, "msg": text} (supervisord's
fault) or {"down": text} (supervisord not reachable). Ops:
    ["rpc", method, args...]           any XML-RPC method, e.g. supervisor.getAllProcessInfo
    ["specs"]                          the portal's program specs, {name: spec}
    ["status", log_bytes]              process infos with their /proc state, stderr tails of
                                       troubled processes, history from supervisord's log, the
                                       portal's program specs
    ["apply", name, content, stamp]    write conf_dir/NAME.conf (.ini on Red Hat) when it differs, apply it
                                       (reloadConfig, then add or replace group NAME); restored
                                       as it was on any failure
    ["remove", name, stamp]            stop and remove group NAME and its conf file (portal's only)
    ["install", path, content]         write a helper file under /usr/local/lib/opsportal
    ["kill", name, signal]             signal a running process's whole process group (pause, resume)
The answer also carries "env": config, socket, conf_dir, logfile and python paths.
"""
# Python 3.6 or later on the host: %-formatting, no dataclasses, no walrus.
# ruff: noqa: UP031
import base64
import configparser
import glob
import gzip
import http.client
import json
import os
import re
import signal
import socket
import sys
import time
import xmlrpc.client

CONFIGS = ("/etc/supervisor/supervisord.conf", "/etc/supervisord.conf", "/etc/supervisor.conf")
HELPER_DIR = "/usr/local/lib/opsportal"
NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}\Z")
LOG_LINE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),\d+ \w+ (.*)\Z")
EVENTS = [
    ("spawned", re.compile(r"^spawned: '(.+)' with pid (\d+)\Z")),
    ("exited", re.compile(r"^exited: (\S+) \((.+); (not expected|expected)\)\Z")),
    ("stopped", re.compile(r"^stopped: (\S+) \((.+)\)\Z")),
    ("running", re.compile(r"^success: (\S+) entered RUNNING state")),
    ("fatal", re.compile(r"^gave up: (\S+) entered FATAL state")),
]
KEEP_EVENTS = 40
TAIL_BYTES = 2048


class Down(Exception):
    pass


class UnixConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout):
        http.client.HTTPConnection.__init__(self, "localhost", timeout=timeout)
        self.socket_path = path

    def connect(self):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self.socket_path)
        self.sock = sock


class UnixTransport(xmlrpc.client.Transport):
    def __init__(self, path, timeout=60.0):
        xmlrpc.client.Transport.__init__(self)
        self.socket_path = path
        self.timeout = timeout

    def make_connection(self, host):
        return UnixConnection(self.socket_path, self.timeout)


def discover():
    """Where supervisord's config, socket, program configs and log are, from its configuration."""
    env = {"config": "", "socket": "", "conf_dir": "", "conf_ext": "", "include": [], "logfile": "", "auth": None,
           "python": sys.executable}
    for path in CONFIGS:
        if os.path.exists(path):
            env["config"] = path
            break
    if not env["config"]:
        return env
    parser = configparser.RawConfigParser(inline_comment_prefixes=(";", "#"), strict=False)
    try:
        parser.read(env["config"])
    except configparser.Error:
        return env
    here = os.path.dirname(env["config"])

    def get(section, key):
        try:
            return parser.get(section, key).replace("%(here)s", here).strip()
        except (configparser.Error, KeyError):
            return ""

    env["socket"] = get("unix_http_server", "file")
    if not env["socket"] and get("supervisorctl", "serverurl").startswith("unix://"):
        env["socket"] = get("supervisorctl", "serverurl")[len("unix://"):]
    if get("unix_http_server", "username"):
        env["auth"] = [get("unix_http_server", "username"), get("unix_http_server", "password")]
    env["include"] = [os.path.join(here, f) for f in get("include", "files").split()]
    for pattern in env["include"]:
        if pattern.endswith(("/*.conf", "/*.ini")):  # Debian's conf.d/*.conf, Red Hat's supervisord.d/*.ini
            env["conf_dir"], env["conf_ext"] = os.path.dirname(pattern), pattern.rpartition("*")[2]
            break
    env["logfile"] = get("supervisord", "logfile")
    return env


class Relay:
    def __init__(self, env):
        self.env = env
        self._proxy = None

    @property
    def rpc(self):
        if self._proxy is None:
            if not self.env["socket"]:
                raise Down("supervisord is not installed here (no %s)" % " or ".join(CONFIGS)
                           if not self.env["config"] else "supervisord's configuration names no unix socket")
            url = "http://localhost/RPC2"
            if self.env["auth"]:
                url = "http://%s:%s@localhost/RPC2" % tuple(self.env["auth"])
            self._proxy = xmlrpc.client.ServerProxy(url, transport=UnixTransport(self.env["socket"]),
                                                    allow_none=True)
        return self._proxy

    def call(self, method, *args):
        target = self.rpc
        for part in method.split("."):
            target = getattr(target, part)
        try:
            return target(*args)
        except (OSError, http.client.HTTPException) as exc:
            raise Down("supervisord is not running (its socket %s: %s)" % (
                self.env["socket"], getattr(exc, "strerror", None) or exc))

    # Ops ---------------------------------------------------------------------------------------

    def op_rpc(self, method, *args):
        return self.call(method, *args)

    def op_status(self, log_bytes):
        infos = self.call("supervisor.getAllProcessInfo")
        history = self.history(int(log_bytes)) if int(log_bytes) > 0 else {}
        for info in infos:
            info["pstate"] = proc_state(info.get("pid") or 0)
            seen = history.get(info["name"], {})
            if info["statename"] in ("BACKOFF", "FATAL", "EXITED") or seen.get("exits"):
                key = "%s:%s" % (info["group"], info["name"])
                try:
                    info["stderr_tail"] = self.call("supervisor.readProcessStderrLog", key, -TAIL_BYTES, 0)
                except xmlrpc.client.Fault:
                    info["stderr_tail"] = ""
        return {"infos": infos, "history": history, "specs": self.specs()}

    def history(self, log_bytes):
        """Per process name since supervisord last started: events and automatic restarts."""
        try:
            text = self.call("supervisor.readLog", -log_bytes, 0)
        except xmlrpc.client.Fault:
            return {}
        found = {}
        lines = text.split("\n")
        if len(text) >= log_bytes and lines:
            lines = lines[1:]  # the first line is likely cut
        for line in lines:
            match = LOG_LINE.match(line)
            if not match:
                continue
            message = match.group(2)
            if message.startswith("supervisord started with pid"):
                found = {}
                continue
            kind, event = parse_event(message)
            if event is None:
                continue
            at = time.mktime(time.strptime(match.group(1), "%Y-%m-%d %H:%M:%S"))
            item = found.setdefault(event.group(1), {"events": [], "restarts": 0, "spawns": 0, "exits": 0,
                                                     "pid": 0, "last": ""})
            detail, pid = "", item["pid"]
            if kind == "spawned":
                pid = int(event.group(2))
                item["spawns"] += 1
                if item["last"] == "exited":
                    item["restarts"] += 1
                item["pid"] = pid
            elif kind == "exited":
                detail = "%s; %s" % (event.group(2), event.group(3))
                item["exits"] += 1
            elif kind == "stopped":
                detail = event.group(2)
            item["last"] = kind if kind != "running" else item["last"]
            item["events"].append([at, kind, pid, detail])
            del item["events"][:-KEEP_EVENTS]
        return found

    def op_specs(self):
        return self.specs()

    def specs(self):
        """{name: spec} of the programs whose config the portal wrote (see supervisor.py)."""
        found = {}
        if not self.env["conf_dir"]:
            return found
        for path in sorted(glob.glob(os.path.join(self.env["conf_dir"], "*" + self.env["conf_ext"]))):
            head = read(path, 65536) or ""
            for line in head.split("\n")[:4]:
                if line.startswith("; opsportal-spec: "):
                    try:
                        spec = json.loads(line[len("; opsportal-spec: "):])
                        found[spec["name"]] = spec
                    except (ValueError, KeyError, TypeError):
                        pass
        return found

    def conf_path(self, name, stamp):
        if not NAME.match(name) or not self.env["conf_dir"]:
            raise ValueError("no program config directory, or a bad name")
        path = os.path.join(self.env["conf_dir"], name + self.env["conf_ext"])
        for other in self.defined_in(name):
            if other != path:
                raise RuntimeError("program %s is defined in %s, which the portal does not manage" % (name, other))
        current = read(path)
        if current is not None and stamp not in current.split("\n", 1)[0]:
            raise RuntimeError("%s exists and was not written by the portal" % path)
        return path, current

    def defined_in(self, name):
        files = []
        for pattern in self.env["include"]:
            for path in sorted(glob.glob(pattern)):
                text = read(path) or ""
                if re.search(r"^\[(program|group|fcgi-program|eventlistener):%s\]" % re.escape(name), text, re.M):
                    files.append(path)
        return files

    def op_apply(self, name, content, stamp):
        path, current = self.conf_path(name, stamp)
        if current == content:
            return {"changed": False}
        write(path, content, 0o600)
        try:
            added, changed, _ = self.call("supervisor.reloadConfig")[0]
            if name in changed:
                self.stop_group(name)
                self.call("supervisor.removeProcessGroup", name)
                self.call("supervisor.addProcessGroup", name)
            elif name in added:
                self.call("supervisor.addProcessGroup", name)
        except Exception:
            self.restore(name, path, current)
            raise
        return {"changed": True, "created": current is None}

    def restore(self, name, path, previous):
        """Put the config back as it was and make supervisord run it again (best effort)."""
        if previous is None:
            os.unlink(path)
        else:
            write(path, previous, 0o600)
        try:
            added, changed, removed = self.call("supervisor.reloadConfig")[0]
            if name in changed or name in removed:
                self.stop_group(name)
                self.call("supervisor.removeProcessGroup", name)
            if name in changed or name in added:
                self.call("supervisor.addProcessGroup", name)
        except (xmlrpc.client.Fault, Down):
            pass

    def stop_group(self, name):
        try:
            self.call("supervisor.stopProcessGroup", name, True)
        except xmlrpc.client.Fault as fault:
            if fault.faultCode not in (10, 70):  # BAD_NAME, NOT_RUNNING
                raise

    def op_remove(self, name, stamp):
        path, current = self.conf_path(name, stamp)
        if current is None:
            return {"existed": False}
        self.stop_group(name)
        try:
            self.call("supervisor.removeProcessGroup", name)
        except xmlrpc.client.Fault as fault:
            if fault.faultCode != 10:
                raise
        os.unlink(path)
        self.call("supervisor.reloadConfig")
        return {"existed": True}

    def op_install(self, path, content):
        if os.path.dirname(path) != HELPER_DIR or not NAME.match(os.path.basename(path)):
            raise ValueError("helpers go to %s" % HELPER_DIR)
        if read(path) == content:
            return {"changed": False}
        if not os.path.isdir(HELPER_DIR):
            os.makedirs(HELPER_DIR, 0o755)
        write(path, content, 0o755)
        return {"changed": True}

    def op_kill(self, name, signame):
        """Signal the current process of `name` and its process group; return its /proc state after."""
        info = self.call("supervisor.getProcessInfo", name)
        pid = info.get("pid") or 0
        if info.get("statename") != "RUNNING" or not pid:
            raise RuntimeError("%s is not running (%s)" % (name, info.get("statename", "unknown").lower()))
        number = getattr(signal, "SIG" + signame)
        try:
            os.killpg(pid, number)  # a supervisord child leads its own process group
        except OSError:
            os.kill(pid, number)
        for _ in range(50):  # a stop or continue takes effect at the next scheduling of the process
            state = proc_state(pid)
            if (state == "T") == (signame == "STOP"):
                break
            time.sleep(0.02)
        return {"pid": pid, "pstate": proc_state(pid)}


def parse_event(message):
    for kind, pattern in EVENTS:
        event = pattern.match(message)
        if event:
            return kind, event
    return None, None


def proc_state(pid):
    if not pid:
        return ""
    try:
        with open("/proc/%d/stat" % pid, "rb") as fh:
            return fh.read().rpartition(b")")[2].split()[0].decode()
    except (OSError, IndexError):
        return ""


def read(path, size=-1):
    try:
        with open(path, encoding="utf-8") as fh:
            return fh.read(size)
    except (OSError, UnicodeDecodeError):
        return None


def write(path, content, mode):
    tmp = "%s.opsportal-%d" % (path, os.getpid())
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(content)
    os.chmod(tmp, mode)
    os.rename(tmp, path)


def batch(relay, ops):
    results = []
    for op in ops:
        try:
            results.append({"ok": getattr(relay, "op_" + op[0])(*op[1:])})
        except xmlrpc.client.Fault as fault:
            results.append({"fault": fault.faultCode, "msg": fault.faultString})
        except Down as exc:
            results.append({"down": str(exc)})
        except (ValueError, RuntimeError, OSError, TypeError, AttributeError) as exc:
            results.append({"error": str(exc) or type(exc).__name__})
        if "ok" not in results[-1]:
            break
    return results


def follow(relay, name, stream):
    """Print each new line of a process's log file until killed, following rotation."""
    info = relay.call("supervisor.getProcessInfo", name)
    path = info.get(stream + "_logfile") or ""
    if not path or path == "/dev/null" or not os.path.exists(path):
        sys.stderr.write("%s has no %s log file to follow\n" % (name, stream))
        return 3
    fh = open(path, "rb")
    fh.seek(0, 2)
    rest = b""
    while True:
        chunk = fh.read(65536)
        if chunk:
            lines = (rest + chunk).split(b"\n")
            rest = lines.pop()
            for line in lines:
                sys.stdout.write(line.decode("utf-8", "replace") + "\n")
            sys.stdout.flush()
            continue
        time.sleep(0.2)
        try:
            st = os.stat(path)
        except OSError:
            continue
        if st.st_ino != os.fstat(fh.fileno()).st_ino or st.st_size < fh.tell():
            fh.close()  # rotated or truncated: start over on the new file
            fh = open(path, "rb")


def main(argv):
    relay = Relay(discover())
    if len(argv) == 4 and argv[1] == "follow" and argv[3] in ("stdout", "stderr"):
        try:
            return follow(relay, argv[2], argv[3])
        except Down as exc:
            sys.stderr.write("%s\n" % exc)
            return 4
        except xmlrpc.client.Fault as fault:
            sys.stderr.write("%s\n" % fault.faultString)
            return 5
    if len(argv) != 2 or argv[1] != "batch":
        sys.stderr.write("usage: supervisor_relay.py batch | follow NAME stdout|stderr\n")
        return 2
    request = json.loads(sys.stdin.read() or "{}")
    document = {"env": relay.env, "results": batch(relay, request.get("ops", []))}
    document["env"].pop("auth", None)
    sys.stdout.write("OPSPORTAL-PAYLOAD\n")
    sys.stdout.write(base64.encodebytes(gzip.compress(json.dumps(document).encode(), 6)).decode())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
