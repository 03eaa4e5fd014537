"""Wait for a job to finish, and with `follow` print its events live from the websocket.

The job's event stream is ordered by `seq`: the client keeps the last one it printed, subscribes
with `since` set to it after a dropped connection, skips anything at or below it and fills a hole
from the REST API (`/api/jobs/{id}/events/?after=`), so every line is printed once and in order.
A job's state is read from the REST API (every few seconds, and at once when the stream says the
job ended); once it has finished, the events up to its `last_seq` are fetched before returning.
"""
import json
import ssl
import sys
import time

from websockets.exceptions import InvalidStatus, WebSocketException
from websockets.sync.client import connect

from .errors import FINISHED_STATES, TRANSIENT, CLIError, Forbidden, Unauthorized

POLL_SECONDS = 2.0
APPROVAL_POLL_SECONDS = 5.0
EVENT_PAGE = 5000
MAX_BACKOFF = 5.0


class GaveUp(Exception):
    """--timeout passed before the job finished."""

    def __init__(self, job):
        super().__init__(job.get("state"))
        self.job = job


class EventPrinter:
    """Events as lines: `name | text` for output (`name ! text` from stderr), `name ** state` for a
    target's end, `-- text` for the runner's messages."""

    def __init__(self, names, out):
        self.names = dict(names)
        self.width = max((len(n) for n in self.names.values()), default=0)
        self.out = out

    def who(self, event):
        target = event.get("target")
        if target is None:
            return ""
        return str(self.names.get(target, f"#{target}")).ljust(self.width)

    def line(self, event):
        kind, text, data = event.get("kind"), event.get("text", ""), event.get("data") or {}
        who = self.who(event)
        if kind == "output":
            marker = "!" if event.get("stream") == "stderr" else "|"
            return f"{who} {marker} {text}"
        if kind == "target":
            exit_code = f" exit={data['exit_code']}" if data.get("exit_code") is not None else ""
            error = f" error={data['error']}" if data.get("error") else ""
            return f"{who} ** {data.get('state')}{exit_code}{error}"
        if kind == "state":
            return f"-- job {data.get('state') or text}"
        if not text and data:
            text = json.dumps(data, separators=(",", ":"), default=str)
        return f"{who} -- {text}" if who else f"-- {text}"

    def print(self, event):
        self.out.write(self.line(event) + "\n")
        self.out.flush()


class JobWatcher:
    def __init__(self, client, job, *, out=None, err=None, follow=False, timeout=None, quiet=False,
                 clock=time.monotonic, sleep=time.sleep):
        self.client = client
        self.job = job
        self.job_id = job["id"]
        self.out = out or sys.stdout
        self.err = err or sys.stderr
        self.follow = follow
        self.quiet = quiet
        self.clock, self.sleep = clock, sleep
        self.deadline = None if not timeout else clock() + timeout
        self.last_seq = 0
        self.printer = None
        self.said = {}
        self.approval_checked = None
        self.reconnects = 0

    # Messages about the wait (stderr, so stdout carries only the job's own lines) ---------

    def say(self, key, text):
        """Print `text` once per distinct value of `key` (a state, an approval's count...)."""
        if self.quiet or self.said.get(key) == text:
            return
        self.said[key] = text
        self.err.write(text + "\n")
        self.err.flush()

    def report(self, job):
        state = job["state"]
        if state == "pending_approval":
            self.report_approval(job)
        elif state == "queued":
            reason = job.get("waiting_reason") or ""
            self.say("state", f"job {self.job_id} queued" + (f": {reason}" if reason else ""))
        elif state not in FINISHED_STATES:
            self.say("state", f"job {self.job_id} {state}" + (" (cancel requested)" if job.get("cancel_requested")
                                                               else ""))

    def report_approval(self, job):
        now = self.clock()
        if self.approval_checked is not None and now - self.approval_checked < APPROVAL_POLL_SECONDS:
            return
        self.approval_checked = now
        try:
            pending = self.client.list("/api/approvals/", {"subject_type": "job", "subject_id": self.job_id,
                                                           "state": "pending"}, limit=5)
            request = self.client.get(f"/api/approvals/{pending[0]['id']}/") if pending else None
        except TRANSIENT:
            return
        if request is None:
            self.say("state", f"job {self.job_id} waits for approval")
            return
        approvers = request.get("approvers")
        if approvers:
            who = "can approve: " + ", ".join(approvers)
        elif approvers is not None:
            who = f"nobody else may approve in {request['environment']} yet: ask an administrator"
        else:
            who = f"ask someone who may approve in {request['environment']}"
        self.say("state", (
            f"job {self.job_id} waits for approval: request #{request['id']} \"{request['title']}\", "
            f"{request.get('approvals', 0)} of {request['required']} approvals, expires {request['expires_at']}; "
            f"{who} (opsportal approvals approve {request['id']})"))

    # Reading the job ----------------------------------------------------------------------

    def time_left(self):
        return None if self.deadline is None else self.deadline - self.clock()

    def check_deadline(self):
        left = self.time_left()
        if left is not None and left <= 0:
            raise GaveUp(self.job)

    def poll(self):
        """The job read again (None when the portal cannot be reached for now)."""
        try:
            self.job = self.client.get(f"/api/jobs/{self.job_id}/")
        except TRANSIENT:
            return None
        self.report(self.job)
        return self.job

    def finished(self):
        return self.job["state"] in FINISHED_STATES

    def names(self):
        targets = self.job.get("targets")
        if targets is None:
            targets = self.client.get(f"/api/jobs/{self.job_id}/")["targets"]
        return {t["index"]: t["name"] for t in targets}

    def deliver(self, events):
        for event in events:
            seq = event.get("seq")
            if seq is None or seq <= self.last_seq:
                continue  # already printed (a replay after reconnecting)
            if seq > self.last_seq + 1:
                self.fetch_events(upto=seq - 1)  # never a hole
            if seq <= self.last_seq:
                continue
            self.printer.print(event)
            self.last_seq = seq

    def fetch_events(self, upto=None):
        """Print events after last_seq from the REST API, up to `upto` (default: all stored)."""
        while upto is None or self.last_seq < upto:
            page = self.client.get(f"/api/jobs/{self.job_id}/events/", after=self.last_seq, limit=EVENT_PAGE)
            if not page:
                return
            for event in page:
                if upto is not None and event["seq"] > upto:
                    return
                if event["seq"] > self.last_seq:
                    self.printer.print(event)
                    self.last_seq = event["seq"]

    def drain(self):
        """Every event the finished job stored, through the REST API (retrying a passing outage)."""
        while True:
            try:
                return self.fetch_events(upto=self.job.get("last_seq") or None)
            except TRANSIENT:
                self.check_deadline()
                self.sleep(1)

    # Waiting ------------------------------------------------------------------------------

    def run(self):
        """The finished job (a dict); raises GaveUp after the timeout."""
        self.report(self.job)
        if self.follow:
            self.printer = EventPrinter(self.names(), self.out)
            self.follow_stream()
        else:
            self.wait_polling()
        return self.job

    def wait_polling(self):
        delay = 0.5
        while not self.finished():
            self.check_deadline()
            left = self.time_left()
            self.sleep(delay if left is None else max(0, min(delay, left)))
            delay = min(POLL_SECONDS, delay * 1.5)
            self.poll()

    def follow_stream(self):
        backoff = 0.5
        while True:
            if self.finished():
                self.drain()
                return
            self.check_deadline()
            try:
                with self.open_socket() as ws:
                    backoff = 0.5
                    if self.read_socket(ws):
                        self.drain()
                        return
            except (WebSocketException, OSError, *TRANSIENT) as exc:
                if _why(exc) == REVOKED_TEXT:
                    raise Unauthorized(f"the portal closed the live stream: {REVOKED_TEXT}") from None
                if isinstance(exc, InvalidStatus):
                    status = exc.response.status_code
                    if status in (401, 403):
                        raise Unauthorized(f"the portal refused the live stream (HTTP {status}): "
                                           "is the API token still valid?") from None
                self.reconnects += 1
                self.say("reconnect", f"live stream of job {self.job_id} interrupted ({_why(exc)}); "
                         f"resuming after event {self.last_seq} (attempt {self.reconnects})")
                self.sleep(backoff)
                backoff = min(MAX_BACKOFF, backoff * 2)
                self.poll()

    def open_socket(self):
        config = self.client.config
        context = None
        if config.ws_url.startswith("wss://"):
            context = ssl.create_default_context(cafile=config.ca_bundle) if config.ca_bundle else True
        return connect(config.ws_url, additional_headers={"Authorization": f"Token {config.token}"},
                       open_timeout=min(config.timeout, 15), close_timeout=2, max_size=2 ** 26,
                       ssl=context, user_agent_header="opsportal-cli")

    def read_socket(self, ws):
        """Subscribe after last_seq and print events; True once the job finished."""
        hello = json.loads(ws.recv(timeout=15))
        if hello.get("type") != "hello":
            raise CLIError(f"unexpected first message on the live stream: {hello.get('type')!r}")
        ws.send(json.dumps({"action": "subscribe", "id": "job", "stream": "job", "params": {"job": self.job_id},
                            "since": self.last_seq}))
        polled = self.clock()
        while True:
            self.check_deadline()
            left = self.time_left()
            wait = POLL_SECONDS if left is None else max(0.05, min(POLL_SECONDS, left))
            try:
                message = json.loads(ws.recv(timeout=wait))
            except TimeoutError:
                message = None
            ended = False
            if message is not None:
                kind = message.get("type")
                if kind == "events":
                    self.deliver(message.get("items") or [])
                    ended = any(e.get("kind") == "state" and (e.get("data") or {}).get("state") in FINISHED_STATES
                                for e in message.get("items") or [])
                elif kind == "error":
                    if message.get("code") == "forbidden":
                        raise Forbidden(f"not allowed to follow job {self.job_id}: {message.get('message')}")
                    raise CLIError(f"the live stream refused: {message.get('message')}")
            if message is None or ended or self.clock() - polled >= POLL_SECONDS:
                polled = self.clock()
                if self.poll() is not None and self.finished():
                    return True
                if ended:  # the runner said so; the row follows within moments
                    self.sleep(0.2)


REVOKED_TEXT = "the API token no longer holds (revoked, expired or its user deactivated)"


def _why(exc):
    code = getattr(getattr(exc, "rcvd", None), "code", None)
    if code == 4401:
        return REVOKED_TEXT
    text = str(exc) or type(exc).__name__
    return text[:120]


def watch(client, job, **kwargs):
    return JobWatcher(client, job, **kwargs).run()
