# -*- coding: utf-8 -*-
# Copyright (c) sre.incident contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Outgoing incident notifications (SPEC P0-2), sent with the collection's HTTP client (``_http``).

Channel types: ``slack`` (incoming webhook), ``dingtalk`` (robot webhook; with a ``secret`` the URL
is signed; it reports errors as HTTP 200 with a non-zero ``errcode``, so the body is checked too) and
``webhook`` (generic JSON, optional extra secret headers); :func:`build_payload` makes the bodies.

Sending never raises because a channel is unwell: each channel gets a :func:`channel_result`. Every
channel is sent to at once, in its own thread. One message has one budget (``budget`` seconds): every
attempt's connect and read timeouts and every backoff sleep are cut to what is left of it, an attempt
that would not fit is not started, and a channel still busy at the deadline is given up on. Retries
on connection errors, timeouts, HTTP 5xx and 429, never on other 4xx (``_http.send_retrying``).
URLs, secrets and header values never appear in a result (:func:`scrub`; a URL becomes the
channel's name). Only bad input raises (:class:`NotifyError`), before the first request. Sending in
the background is ``_outbox.py``'s job.
"""

from __future__ import annotations

import base64
import datetime as _dt
import hashlib
import hmac
import json
import threading
import time
import urllib.parse

from ansible_collections.sre.incident.plugins.module_utils import _http
from ansible_collections.sre.incident.plugins.module_utils._errors import InputError
from ansible_collections.sre.incident.plugins.module_utils._oncall import OncallError, who_is_on_call
from ansible_collections.sre.incident.plugins.module_utils._time import format_ts, parse_ts, utc_now

CHANNEL_TYPES = ("slack", "dingtalk", "webhook")
NOTICES = ("started", "mitigated", "resolved", "degraded", "escalate", "update")

NOTICE_HEADLINES = {
    "started": "Incident started",
    "mitigated": "Incident mitigated",
    "resolved": "Incident resolved",
    "degraded": "Service running degraded",
    "escalate": "Escalation: a human is needed",
    "update": "Incident update",
}

DEFAULT_CONNECT_TIMEOUT = 2.0  # a chat service answers a TCP/TLS connect in well under a second
DEFAULT_READ_TIMEOUT = 5.0     # and its answer to a webhook POST in one or two
DEFAULT_ATTEMPTS = 3
DEFAULT_BUDGET = 10.0          # everything about one message ends within this many seconds
MAX_ATTEMPTS = 10
MAX_CONNECT_TIMEOUT = 60.0
MAX_READ_TIMEOUT = 300.0
MAX_BUDGET = 600.0
JOIN_GRACE_S = 0.25            # how long past the deadline a channel's thread may take to report

READ_TIMED_OUT = "connected, but no answer within the read timeout"
UNSET = "unassigned"


class NotifyError(InputError):
    """Bad input; the message names the bad value (never a URL or a secret)."""


# ---------------------------------------------------------------------------------------------
# Validation
# ---------------------------------------------------------------------------------------------

def validate_channels(channels):
    """Check channel definitions; return normalised copies. Raises NotifyError naming the channel."""
    if channels is None:
        return []
    if not isinstance(channels, (list, tuple)):
        raise NotifyError("channels must be a list of channel definitions")
    result = []
    seen = set()
    for index, channel in enumerate(channels):
        if not isinstance(channel, dict):
            raise NotifyError("channels[%d] must be a mapping with name, type and url" % index)
        name = channel.get("name")
        label = name.strip() if isinstance(name, str) and name.strip() else "channels[%d]" % index
        if label in seen:
            raise NotifyError("channel name %r is used twice; names must be unique" % label)
        seen.add(label)
        ctype = channel.get("type")
        if ctype not in CHANNEL_TYPES:
            raise NotifyError(
                "channel %s has unknown type %r (expected one of %s)" % (label, ctype, ", ".join(CHANNEL_TYPES))
            )
        url = channel.get("url")
        enabled = channel.get("enabled", True)
        enabled = True if enabled is None else bool(enabled)
        if not isinstance(url, str) or not url.strip():
            if enabled:
                raise NotifyError("channel %s has no url" % label)
            url = ""  # a disabled placeholder channel may have no url yet
        else:
            parsed = urllib.parse.urlsplit(url.strip())
            if parsed.scheme not in ("http", "https") or not parsed.netloc:
                # Name the channel and what is wrong, never the URL itself.
                raise NotifyError("channel %s has a malformed url (expected http:// or https:// with a host)" % label)
        secret = channel.get("secret")
        if secret is not None and not isinstance(secret, str):
            raise NotifyError("channel %s: secret must be a string" % label)
        if secret and ctype != "dingtalk":
            raise NotifyError("channel %s: secret is only used by dingtalk channels (use headers for %s)" % (label, ctype))
        headers = channel.get("headers") or {}
        if not isinstance(headers, dict):
            raise NotifyError("channel %s: headers must be a mapping" % label)
        at_mobiles = list(channel.get("at_mobiles") or [])
        at_user_ids = list(channel.get("at_user_ids") or [])
        at_all = bool(channel.get("at_all"))
        if (at_mobiles or at_user_ids or at_all) and ctype != "dingtalk":
            raise NotifyError("channel %s: at_mobiles, at_user_ids and at_all are only used by dingtalk channels" % label)
        result.append({
            "name": label,
            "type": ctype,
            "url": url.strip(),
            "secret": secret or None,
            "headers": dict((str(k), str(v)) for k, v in headers.items()),
            "enabled": enabled,
            "at_mobiles": [str(m) for m in at_mobiles],
            "at_user_ids": [str(u) for u in at_user_ids],
            "at_all": at_all,
        })
    return result


def parse_time(value, where):
    """Parse an ISO 8601 date-time; a value without offset is taken as UTC. None stays None."""
    if value is None or value == "":
        return None
    try:
        return parse_ts(value, where)
    except ValueError as exc:
        raise NotifyError(str(exc)) from None


def _check_seconds(name, value, maximum):
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0 < value <= maximum:
        raise NotifyError("%s must be a number of seconds above 0 and at most %s, got %r"
                          % (name, _http.seconds_text(maximum), value))


def validate_limits(retries, connect_timeout, read_timeout, budget):
    """Check the attempts, timeouts and budget of a message (and of a collect)."""
    if not isinstance(retries, int) or isinstance(retries, bool) or not 1 <= retries <= MAX_ATTEMPTS:
        raise NotifyError("retries must be an integer from 1 to %d, got %r" % (MAX_ATTEMPTS, retries))
    _check_seconds("connect_timeout", connect_timeout, MAX_CONNECT_TIMEOUT)
    _check_seconds("read_timeout", read_timeout, MAX_READ_TIMEOUT)
    _check_seconds("budget", budget, MAX_BUDGET)


def validate_inputs(notice, incident, oncall, retries, connect_timeout, read_timeout, budget):
    """Check everything but the channels; return (incident, oncall) normalised."""
    if notice not in NOTICES:
        raise NotifyError("notice %r is not one of %s" % (notice, ", ".join(NOTICES)))
    incident = dict(incident or {})
    for key in ("response_deadline", "resolve_deadline", "started_at"):
        parse_time(incident.get(key), "incident.%s" % key)
    validate_limits(retries, connect_timeout, read_timeout, budget)
    return incident, resolve_oncall(oncall)


def resolve_oncall(oncall):
    """Accept either the oncall filter's output or a rotation (with ``shifts``) and return the former."""
    if not oncall:
        return {}
    if not isinstance(oncall, dict):
        raise NotifyError("oncall must be a mapping (the output of the sre.incident.oncall filter)")
    if "shifts" in oncall:
        try:
            return who_is_on_call(oncall)
        except OncallError as exc:
            raise NotifyError("oncall: %s" % exc)
    return dict(oncall)


# ---------------------------------------------------------------------------------------------
# Rendering
# ---------------------------------------------------------------------------------------------

def format_duration(seconds):
    """``27m 10s``, ``3m``, ``45s``, ``2h 05m``, ``3d 4h``."""
    seconds = int(round(abs(seconds)))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return "%dd %dh" % (days, hours) if hours else "%dd" % days
    if hours:
        return "%dh %02dm" % (hours, minutes) if minutes else "%dh" % hours
    if minutes:
        return "%dm %02ds" % (minutes, secs) if secs else "%dm" % minutes
    return "%ds" % secs


def format_deadline(label, deadline, now):
    """``resolve deadline in 27m 10s`` or ``resolve deadline passed 3m ago``."""
    delta = (deadline - now).total_seconds()
    if delta >= 0:
        return "%s deadline in %s" % (label, format_duration(delta))
    return "%s deadline passed %s ago" % (label, format_duration(delta))


def _text(value):
    return None if value is None else (str(value).strip() or None)


def sla_summary(incident, now):
    """The time left on the SLA, from the incident's deadlines (None without deadlines)."""
    parts = []
    for key, label in (("response_deadline", "response"), ("resolve_deadline", "resolve")):
        deadline = parse_time(incident.get(key), "incident.%s" % key)
        if deadline is not None:
            parts.append(format_deadline(label, deadline, now))
    return "; ".join(parts) if parts else None


def render_fields(notice, incident, oncall=None, text=None, now=None):
    """The message as data: ``{"title", "headline", "fields": [(label, value), ...], "note"}`` (``notice``
    one of :data:`NOTICES`, checked by :func:`validate_inputs`)."""
    now = now or utc_now()
    incident = incident or {}
    oncall = oncall or {}
    contacts = oncall.get("contacts") or {}

    severity = _text(incident.get("severity")) or "P?"
    service = _text(incident.get("service")) or "unknown service"
    incident_id = _text(incident.get("id")) or "no id"
    commander = _text(incident.get("commander")) or _text(contacts.get("incident_commander")) or UNSET
    handle = _text(oncall.get("handle"))
    if handle and _text(oncall.get("shift")):
        oncall_text = "%s (%s)" % (handle, oncall["shift"])
    else:
        oncall_text = handle or UNSET

    headline = NOTICE_HEADLINES[notice]
    title = "[%s] %s: %s (%s)" % (severity, headline, service, incident_id)
    fields = [
        ("Severity", severity),
        ("Service", service),
        ("Incident", incident_id),
        ("Commander", commander),
        ("On-call", oncall_text),
    ]
    war_room = _text(incident.get("war_room"))
    if war_room:
        fields.append(("War room", war_room))
    sla = sla_summary(incident, now)
    if sla:
        fields.append(("SLA", sla))
    if notice == "escalate":
        escalate_to = list(dict.fromkeys(filter(None, map(_text, (contacts.get("incident_commander"), contacts.get("tech_lead"))))))
        if commander != UNSET and commander not in escalate_to:
            escalate_to.insert(0, commander)
        fields.append(("Escalate to", ", ".join(escalate_to) if escalate_to else UNSET))
    return {"title": title, "headline": headline, "fields": fields, "note": _text(text)}


def render_plain(rendered):
    lines = [rendered["title"]]
    lines.extend("%s: %s" % (label, value) for label, value in rendered["fields"])
    if rendered["note"]:
        lines.extend(["", rendered["note"]])
    return "\n".join(lines)


def render_slack(rendered):
    lines = ["*%s*" % rendered["title"]]
    lines.extend("*%s:* %s" % (label, value) for label, value in rendered["fields"])
    if rendered["note"]:
        lines.append(rendered["note"])
    return "\n".join(lines)


def render_dingtalk(rendered, at_mobiles=(), at_user_ids=()):
    lines = ["### %s" % rendered["title"], ""]
    lines.extend("- **%s**: %s" % (label, value) for label, value in rendered["fields"])
    if rendered["note"]:
        lines.extend(["", rendered["note"]])
    mentions = ["@%s" % m for m in list(at_mobiles) + list(at_user_ids)]
    if mentions:
        lines.extend(["", " ".join(mentions)])
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# Requests
# ---------------------------------------------------------------------------------------------

def dingtalk_sign(secret, timestamp_ms):
    """The DingTalk robot signature for ``timestamp_ms`` (already URL-quoted)."""
    string_to_sign = "%d\n%s" % (timestamp_ms, secret)
    digest = hmac.new(secret.encode("utf-8"), string_to_sign.encode("utf-8"), digestmod=hashlib.sha256).digest()
    return urllib.parse.quote_plus(base64.b64encode(digest))


def signed_dingtalk_url(url, secret, timestamp_ms):
    sep = "&" if urllib.parse.urlsplit(url).query else ("" if url.endswith("?") else "?")
    return "%s%stimestamp=%d&sign=%s" % (url, sep, timestamp_ms, dingtalk_sign(secret, timestamp_ms))


def incident_payload(incident):
    """The incident as plain, JSON-safe data for the generic webhook."""
    keys = ("id", "severity", "service", "commander", "war_room", "response_deadline", "resolve_deadline", "started_at")
    return {key: format_ts(value) if isinstance(value, _dt.datetime) else value
            for key, value in zip(keys, map(incident.get, keys))}


def build_payload(channel, notice, incident, oncall, rendered, now):
    """Return the JSON body (a dict) for one channel."""
    ctype = channel["type"]
    if ctype == "slack":
        text = render_slack(rendered)
        return {
            "text": text,
            "blocks": [
                {"type": "section", "text": {"type": "mrkdwn", "text": text}},
            ],
        }
    if ctype == "dingtalk":
        body = {
            "msgtype": "markdown",
            "markdown": {
                "title": rendered["title"],
                "text": render_dingtalk(rendered, channel["at_mobiles"], channel["at_user_ids"]),
            },
        }
        if channel["at_mobiles"] or channel["at_user_ids"] or channel["at_all"]:
            body["at"] = {"atMobiles": channel["at_mobiles"], "atUserIds": channel["at_user_ids"], "isAtAll": channel["at_all"]}
        return body
    return {
        "event": notice,
        "incident": incident_payload(incident),
        "oncall": {
            "shift": oncall.get("shift"),
            "handle": oncall.get("handle"),
            "contacts": oncall.get("contacts") or {},
        },
        "title": rendered["title"],
        "text": render_plain(rendered),
        "sent_at": format_ts(now),
    }


# ---------------------------------------------------------------------------------------------
# Sending
# ---------------------------------------------------------------------------------------------

def scrub(text, channel):
    """``text`` without the channel's URL, secret and header values, nor any URL (``_http.scrub``)."""
    secrets = [channel.get("secret")] + [v for v in (channel.get("headers") or {}).values() if len(v) >= 4]
    return _http.scrub(text, channel["name"], url=channel.get("url"), secrets=secrets)


def judge(channel):
    """How an answer of ``channel`` is worded and whether the channel is tried again (``_http.send_retrying``)."""
    def judged(answer):
        status = answer["status"]
        if status is None:
            failure = answer["failure"]
            if failure == "connect_timeout":
                return answer["detail"], True
            if failure == "send_timeout":
                return "timed out sending the request", True
            if failure == "read_timeout":
                armed = answer.get("read_timeout")
                return (READ_TIMED_OUT if armed is None else "%s (%s s)" % (READ_TIMED_OUT, _http.seconds_text(armed))), True
            if failure == "connection":
                return "connection failed: %s" % answer["detail"], True
            return answer["error"], False
        text = answer["body"].decode("utf-8", "replace")
        if 200 <= status < 300:
            return (_dingtalk_body_error(text) if channel["type"] == "dingtalk" else None), False
        if 300 <= status < 400:
            return "HTTP %d: redirect not followed" % status, False
        error = "HTTP %d %s" % (status, answer["reason"] if isinstance(answer["reason"], str) else "")
        detail = text.strip().splitlines()[0][:200] if text.strip() else ""
        if detail:
            error += ": %s" % detail
        return error.strip(), status >= 500 or status in _http.RETRY_STATUSES
    return judged


def _dingtalk_body_error(text):
    """DingTalk reports errors with HTTP 200 and ``{"errcode": n, "errmsg": ...}``."""
    try:
        data = json.loads(text)
    except ValueError:
        return None
    if isinstance(data, dict) and data.get("errcode") not in (None, 0, "0"):
        return "dingtalk errcode %s: %s" % (data.get("errcode"), str(data.get("errmsg", ""))[:200])
    return None


def channel_result(channel, ok=None, error=None, attempts=0, status=None, budget_spent=False, finished=False):
    """A channel's outcome: ``{name, type, enabled, ok, status, attempts, error, finished_at,
    budget_spent}`` (``ok`` None: nothing sent, for a disabled channel or in check mode;
    ``finished``: ``finished_at`` is now)."""
    return {
        "name": channel["name"],
        "type": channel["type"],
        "enabled": channel["enabled"],
        "ok": ok,
        "status": status,
        "attempts": attempts,
        "error": error,
        "finished_at": format_ts(utc_now()) if finished else None,
        "budget_spent": budget_spent,
    }


def send_channel(channel, payload, deadline, connect_timeout=DEFAULT_CONNECT_TIMEOUT,
                 read_timeout=DEFAULT_READ_TIMEOUT, attempts=DEFAULT_ATTEMPTS, clock=None, sleep=None,
                 backoff_base=_http.BACKOFF_BASE):
    """POST ``payload`` to one validated channel with retries, all by ``deadline`` (a ``clock()`` value).
    Returns :func:`channel_result`, ``budget_spent`` when the budget, not the attempts, ended the tries."""
    def url():
        if channel["type"] == "dingtalk" and channel.get("secret"):
            return signed_dingtalk_url(channel["url"], channel["secret"], int(round(time.time() * 1000)))
        return channel["url"]

    headers = dict({"Content-Type": "application/json; charset=utf-8", "User-Agent": "sre.incident-notify/1.0"}, **channel["headers"])
    answer = _http.send_retrying(
        url, deadline, attempts=attempts, connect_timeout=connect_timeout, read_timeout=read_timeout,
        judge=judge(channel), clock=clock or time.monotonic, sleep=sleep or time.sleep, backoff_base=backoff_base,
        method="POST", data=json.dumps(payload, ensure_ascii=False, default=str).encode("utf-8"), headers=headers,
        max_body=65535)
    tried = bool(answer["attempts"])
    return channel_result(
        channel, ok=tried and answer["error"] is None, attempts=answer["attempts"], status=answer["status"],
        error=scrub(answer["error"], channel) if tried else "not tried: the budget was spent before this channel's turn",
        budget_spent=answer["budget_spent"], finished=True)


def send_all(channels, payload_for, deadline, connect_timeout=DEFAULT_CONNECT_TIMEOUT,
             read_timeout=DEFAULT_READ_TIMEOUT, attempts=DEFAULT_ATTEMPTS, clock=None, sleep=None,
             backoff_base=_http.BACKOFF_BASE, before_send=None, on_result=None):
    """Send to every enabled channel at once, one thread each; one result per channel (in order) by
    ``deadline`` (+ :data:`JOIN_GRACE_S`), whatever they do: a channel still busy then (a hanging DNS
    lookup, a trickling answer) is given up on and its daemon thread abandoned.

    ``before_send(channel)`` runs first in the channel's thread and returns a warning for the message
    or None (the outbox keeps each channel's messages in order with it); ``on_result(channel,
    result)`` is called once per channel as soon as its outcome is known.
    """
    clock = clock or time.monotonic
    lock = threading.Lock()
    results = [None] * len(channels)
    closed = []

    def settle(index, channel, result):
        with lock:
            if closed or results[index] is not None:
                return
            results[index] = result
        if on_result is not None:
            on_result(channel, result)

    def work(index, channel):
        try:
            warning = before_send(channel) if before_send is not None else None
            result = send_channel(channel, payload_for(channel, warning), deadline, connect_timeout, read_timeout,
                                  attempts, clock=clock, sleep=sleep, backoff_base=backoff_base)
            if warning:
                result["warning"] = warning
        except Exception as exc:  # pragma: no cover - defensive: a channel never raises
            result = channel_result(channel, ok=False, error=scrub("%s: %s" % (type(exc).__name__, exc), channel),
                                    finished=True)
        settle(index, channel, result)

    threads = []
    for index, channel in enumerate(channels):
        if not channel["enabled"]:
            results[index] = channel_result(channel)
            continue
        thread = threading.Thread(target=work, args=(index, channel), name="notify-%s" % channel["name"], daemon=True)
        thread.start()
        threads.append(thread)
    for thread in threads:
        thread.join(max(0.0, deadline + JOIN_GRACE_S - clock()))
    late = []
    with lock:
        closed.append(True)
        for index, channel in enumerate(channels):
            if results[index] is None:
                results[index] = channel_result(channel, ok=False, error="gave up: still no outcome at the deadline",
                                                budget_spent=True, finished=True)
                late.append((channel, results[index]))
    if on_result is not None:
        for channel, result in late:
            on_result(channel, result)
    return results


def with_warning(rendered, warning):
    """The rendered message with a warning line first (e.g. that earlier messages may be missing)."""
    if not warning:
        return rendered
    return dict(rendered, fields=[("Warning", warning)] + list(rendered["fields"]))


def prepare(channels, notice, incident=None, oncall=None, text=None, connect_timeout=DEFAULT_CONNECT_TIMEOUT,
            read_timeout=DEFAULT_READ_TIMEOUT, attempts=DEFAULT_ATTEMPTS, budget=DEFAULT_BUDGET, now=None):
    """Validate everything and render the message; raises :class:`NotifyError` before anything is sent.

    Returns ``{"channels", "incident", "oncall", "rendered", "now"}``."""
    checked = validate_channels(channels)
    incident, oncall = validate_inputs(notice, incident, oncall, attempts, connect_timeout, read_timeout, budget)
    now = now or utc_now()
    return {"channels": checked, "incident": incident, "oncall": oncall, "notice": notice,
            "rendered": render_fields(notice, incident, oncall, text, now), "now": now}


def payload_builder(prepared):
    """``payload_for(channel, warning)`` for :func:`send_all`."""
    def payload_for(channel, warning):
        return build_payload(channel, prepared["notice"], prepared["incident"], prepared["oncall"],
                             with_warning(prepared["rendered"], warning), prepared["now"])
    return payload_for


def summarise(prepared, results):
    """What the module returns about one message."""
    return {
        "results": results,
        "sent": sum(1 for r in results if r["ok"] is True),
        # not "failed": Ansible reads a truthy "failed" key as a failed task
        "failed_count": sum(1 for r in results if r["ok"] is False),
        "message": render_plain(prepared["rendered"]),
        "title": prepared["rendered"]["title"],
        "channels": [c["name"] for c in prepared["channels"] if c["enabled"]],
        "oncall": prepared["oncall"],
    }


def unsent(prepared):
    """:func:`summarise` of a message not sent here (check mode, no enabled channel, a background
    sender): every channel's ``ok`` None, ``attempts`` 0."""
    return summarise(prepared, [channel_result(c) for c in prepared["channels"]])


def send(prepared, connect_timeout, read_timeout, attempts, budget, check_mode=False, sleep=None, clock=None,
         backoff_base=_http.BACKOFF_BASE):
    """Send a :func:`prepare`d message to every enabled channel at once; :func:`summarise` within
    ``budget`` seconds (with ``check_mode``: :func:`unsent`)."""
    if check_mode:
        return unsent(prepared)
    clock = clock or time.monotonic
    results = send_all(prepared["channels"], payload_builder(prepared), clock() + float(budget),
                       float(connect_timeout), float(read_timeout), attempts, clock=clock, sleep=sleep,
                       backoff_base=backoff_base)
    return summarise(prepared, results)


def notify(channels, notice, incident=None, oncall=None, text=None, connect_timeout=DEFAULT_CONNECT_TIMEOUT,
           read_timeout=DEFAULT_READ_TIMEOUT, attempts=DEFAULT_ATTEMPTS, budget=DEFAULT_BUDGET,
           check_mode=False, now=None, **sending):
    """:func:`prepare`, then :func:`send` (``sending``: its ``sleep``, ``clock`` and ``backoff_base``)."""
    limits = dict(connect_timeout=connect_timeout, read_timeout=read_timeout, attempts=attempts, budget=budget)
    return send(prepare(channels, notice, incident, oncall, text, now=now, **limits), check_mode=check_mode,
                **limits, **sending)
