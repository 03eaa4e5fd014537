"""Sending one delivery: a signed webhook POST or an email. No database writes here.

Nothing this module logs or returns carries the channel secret, the payload or a webhook URL's
path and query (tokens travel there): errors name the host only.
"""
import json
import logging
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import requests
from django.conf import settings
from django.core.mail import get_connection, send_mail
from django.core.serializers.json import DjangoJSONEncoder
from django.utils import timezone

from . import conf, registry, signing
from .choices import ChannelKind

log = logging.getLogger(__name__)
USER_AGENT = "ops-portal-notifications/1"
# How much of a failing receiver's answer is kept in last_error.
ERROR_BODY_CHARS = 200
MAX_ERROR = 500


@dataclass(frozen=True)
class Outcome:
    ok: bool
    response_status: int | None = None
    error: str = ""
    duration_ms: int = 0


def redact_url(url: str) -> str:
    """The URL for logs: scheme, host and port; the path and query may hold tokens, so they are elided."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return "<unparseable URL>"
    if ":" in host:
        host = f"[{host}]"
    shown = f"{parts.scheme}://{host}" + (f":{port}" if port else "")
    if parts.path not in ("", "/"):
        shown += "/…"
    if parts.query:
        shown += "?…"
    return shown


def encode_body(delivery, sent_at) -> bytes:
    """The webhook body; its exact bytes are what the signature covers."""
    document = {
        "event": delivery.event,
        "environment": delivery.environment_name,
        "subject": delivery.subject,
        "payload": delivery.payload,
        "delivery_id": delivery.pk,
        "sent_at": sent_at.isoformat(),
    }
    return json.dumps(document, cls=DjangoJSONEncoder, separators=(",", ":"), ensure_ascii=False).encode()


def _plain(text, limit):
    return " ".join(text.split())[:limit]


def _answer_snippet(response):
    try:
        data = response.raw.read(ERROR_BODY_CHARS * 4, decode_content=True) or b""
    except Exception:  # the body is only a hint for the operator
        return ""
    return _plain(data.decode("utf-8", errors="replace"), ERROR_BODY_CHARS)


def send_webhook(delivery, channel) -> Outcome:
    timeout = float(conf.get("NOTIFICATION_TIMEOUT_SECONDS"))
    sent_at = timezone.now()
    body = encode_body(delivery, sent_at)
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        signing.EVENT_HEADER: delivery.event,
        signing.DELIVERY_HEADER: str(delivery.pk),
        signing.SIGNATURE_HEADER: signing.sign(channel.secret, body, int(sent_at.timestamp())),
    }
    host = urlsplit(channel.url).netloc.rpartition("@")[2]
    started = time.monotonic()

    def elapsed():
        return int((time.monotonic() - started) * 1000)

    try:
        # Redirects are not followed: the signed body would go to a host nobody configured.
        with requests.post(channel.url, data=body, headers=headers, timeout=timeout, allow_redirects=False,
                           stream=True) as response:
            status = response.status_code
            if 200 <= status < 300:
                return Outcome(True, status, "", elapsed())
            if 300 <= status < 400:
                error = (f"The receiver answered with a redirect (HTTP {status}), which is not followed; "
                         "point the channel at the final URL.")
            else:
                snippet = _answer_snippet(response)
                error = f"The receiver answered HTTP {status}" + (f": {snippet}" if snippet else ".")
            return Outcome(False, status, error[:MAX_ERROR], elapsed())
    except requests.Timeout:
        error = f"No answer from {host} within {timeout:g} s."
    except requests.exceptions.SSLError:
        error = f"The TLS connection to {host} failed (certificate or protocol)."
    except requests.ConnectionError:
        error = f"Could not connect to {host}."
    except requests.RequestException as exc:
        error = f"The request to {host} failed ({type(exc).__name__})."
    return Outcome(False, None, error[:MAX_ERROR], elapsed())


def _value(value):
    if isinstance(value, (dict, list)):
        return json.dumps(value, cls=DjangoJSONEncoder, ensure_ascii=False)
    return "" if value is None else str(value)


def render_text(delivery) -> str:
    """The plain-text email body: what happened, where, when, and the payload as key: value lines."""
    event = registry.EVENTS.get(delivery.event)
    description = f" ({event.description})" if event else ""
    lines = [
        delivery.subject,
        "",
        f"Event:        {delivery.event}{description}",
        f"Environment:  {delivery.environment_name}",
        f"Time:         {delivery.created:%Y-%m-%d %H:%M:%S %Z}",
    ]
    payload = dict(delivery.payload or {})
    listed = payload.pop("alerts", None) if payload.get("kind") == "alert_group" else None
    if listed is not None:  # one notification about many alerts: a line each
        lines += ["", "Alerts:"]
        lines += [f"  - [{_value(alert.get('severity'))}] {_value(alert.get('summary'))}" for alert in listed]
        if payload.get("unlisted"):
            lines.append(f"  … and {payload['unlisted']} more")
    if payload:
        lines += ["", "Details:"]
        lines += [f"  {key}: {_value(value)}" for key, value in payload.items()]
    lines += ["", f"Sent by the ops portal (delivery {delivery.pk})."]
    return "\n".join(lines) + "\n"


def email_subject(delivery) -> str:
    return _plain(f"[{delivery.environment_name}] {delivery.subject}", 250)


def send_email(delivery, channel) -> Outcome:
    started = time.monotonic()
    try:
        connection = get_connection(timeout=float(conf.get("NOTIFICATION_TIMEOUT_SECONDS")))
        send_mail(email_subject(delivery), render_text(delivery), settings.DEFAULT_FROM_EMAIL, list(channel.emails),
                  connection=connection)
    except Exception as exc:  # SMTP errors, refused connections, bad headers: all retried the same way
        error = _plain(f"Sending the email failed: {type(exc).__name__}: {exc}", MAX_ERROR)
        return Outcome(False, None, error, int((time.monotonic() - started) * 1000))
    return Outcome(True, None, "", int((time.monotonic() - started) * 1000))


def send(delivery, channel) -> Outcome:
    if channel.kind == ChannelKind.WEBHOOK:
        return send_webhook(delivery, channel)
    if channel.kind == ChannelKind.EMAIL:
        return send_email(delivery, channel)
    return Outcome(False, None, f"Unknown channel kind {channel.kind!r}.")
