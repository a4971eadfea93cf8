# -*- coding: utf-8 -*-
# Copyright (c) sre.incident contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The incident record: an append-only event log on the controller, and its replay.

Layout: ``<incident_dir>/<id>/events.jsonl``, one JSON object per line. Nothing is ever
rewritten; the current state of an incident is what :func:`replay` makes of the events.

Event schema (keys in this order; ``host`` only when given)::

    {"seq": 7,                               # line number in events.jsonl, set under the lock
     "ts": "2026-11-27T01:30:45.123Z",       # UTC, ISO 8601, milliseconds
     "type": "opened",                       # opened | event | note | tick | closed |
                                             # reclassified | stage | failure | ...
     "stage": "detect",                      # runbook stage / role name, or null
     "text": "P0 opened for recommendation-service",
     "owner": "alice",                       # who did it (person or 'automation')
     "host": "web1",                         # optional: the managed host concerned
     "data": {...}}                          # free mapping; keys with a meaning:
                                             #   opened: the incident (see build_opened)
                                             #   tick: key, checklist, value, done_at
                                             #   closed: outcome, responded_at
                                             #   reclassified: severity, previous
                                             #   stage: done_at (a stage's start, when later)
                                             #   rung: a recovery-ladder rung tried
                                             #   degraded_mode: mode now active (null: none)

Writers (Ansible forks, the timeline callback) may append at once: each holds ``fcntl.flock`` on
the ``O_APPEND`` file for its whole read-decide-write step, writes each event as one ``os.write`` of
the whole line and ``fsync``-s before unlocking. A torn line (a writer killed, a full disk) is
reported in ``corrupt_lines`` by :func:`read_events`, never dropped; the next append starts afresh.
"""

from __future__ import annotations

import datetime
import fcntl
import json
import os
import re
import secrets

from ansible.module_utils.common.parameters import env_fallback

from ansible_collections.sre.incident.plugins.module_utils._errors import IncidentError
from ansible_collections.sre.incident.plugins.module_utils import _files, _module
from ansible_collections.sre.incident.plugins.module_utils._severity import (
    SLA_KINDS,
    deadline_status,
    deadlines as compute_deadlines,
    normalize_severity,
    sla_for,
    time_left,
    validate_overrides,
)
from ansible_collections.sre.incident.plugins.module_utils._time import format_ts, parse_ts, utc_now

EVENTS_FILE = "events.jsonl"

ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,159}$")
EVENT_TYPE_RE = re.compile(r"^[a-z][a-z0-9_]{0,31}$")

#: Event types written by this module itself; ``state=event`` may not forge them.
RESERVED_TYPES = ("opened", "tick", "closed", "reclassified", "stage")

OUTCOMES = ("resolved", "mitigated", "degraded", "escalated", "false_alarm", "failed")
#: Closing with one of these outcomes counts as resolving the incident (resolve SLA).
RESOLVING_OUTCOMES = ("resolved", "mitigated", "false_alarm")

#: The runbook's P0 response checklist ("P0 事故響應檢查清單"), offsets from the start.
P0_CHECKLIST = (
    {"key": "detect_confirmed", "mark": "t+0", "offset": 0,
     "text": "Alert detected and confirmed: app-side failure confirmed, impact scope (users, features) known"},
    {"key": "response_started", "mark": "t+2m", "offset": 2 * 60,
     "text": "Response started: everyone notified, incident commander named, war room opened"},
    {"key": "quick_diagnosis", "mark": "t+5m", "offset": 5 * 60,
     "text": "Quick diagnosis: application logs, system resources (CPU/memory/disk), dependencies (PostgreSQL/Redis)"},
    {"key": "first_fix", "mark": "t+8m", "offset": 8 * 60,
     "text": "First fix: restart the service; if that fails restart the dependencies; if that fails a full rebuild"},
    {"key": "recovery_verified", "mark": "t+20m", "offset": 20 * 60,
     "text": "Recovery verified: API answers, recommendations valid, resources normal, several users work"},
    {"key": "rca_started", "mark": "t+30m", "offset": 30 * 60,
     "text": "Root-cause analysis started: full logs collected, recent changes checked, first localisation"},
    {"key": "permanent_fix", "mark": "t+1-4h", "offset": 4 * 3600,
     "text": "Detailed analysis and permanent fix: root cause confirmed, permanent fix applied and verified"},
    {"key": "postmortem", "mark": "t+24h", "offset": 24 * 3600,
     "text": "Postmortem: review meeting held, RCA document written, improvements agreed, notice published"},
)

#: The runbook's recovery checklist ("服務恢復檢查清單"); no time marks.
RECOVERY_CHECKLIST = (
    {"key": "health_200", "mark": "verify", "offset": None, "text": "GET /health answers 200 OK"},
    {"key": "recommendations_returned", "mark": "verify", "offset": None,
     "text": "GET /api/recommendations/<user> returns recommendations"},
    {"key": "several_users_ok", "mark": "verify", "offset": None, "text": "Several users get recommendations"},
    {"key": "latency_under_500ms", "mark": "verify", "offset": None, "text": "Response time under 500 ms"},
    {"key": "users_answered_via_edge", "mark": "verify", "offset": None,
     "text": "Users are answered through the edge (what they reach), not only at the service's port"},
    {"key": "no_new_errors", "mark": "verify", "offset": None, "text": "No new ERROR log lines"},
    {"key": "resources_normal", "mark": "verify", "offset": None, "text": "CPU under 50%, memory under 60%"},
    {"key": "watch_every_minute", "mark": "watch", "offset": None, "text": "One API endpoint tested every minute"},
    {"key": "error_rate_no_rebound", "mark": "watch", "offset": None, "text": "Error rate watched: no rebound"},
    {"key": "notify_management", "mark": "notify", "offset": None, "text": "Management told of the incident and the recovery"},
    {"key": "notify_users", "mark": "notify", "offset": None, "text": "Users sent a recovery notice"},
    {"key": "notify_teams", "mark": "notify", "offset": None, "text": "Related teams told the recovery status"},
)

CHECKLISTS = {"p0_response": P0_CHECKLIST, "recovery": RECOVERY_CHECKLIST}
CHECKLIST_ITEMS = dict(
    (item["key"], dict(item, checklist=name)) for name, items in CHECKLISTS.items() for item in items
)

#: The checklist item whose first tick is the incident's response time.
RESPONSE_ITEM = "response_started"
#: The checklist item whose first tick says users are answered again (verified through the edge).
VERIFIED_ITEM = "recovery_verified"
#: Closing with one of these outcomes means users were served again (the mitigation time).
MITIGATING_OUTCOMES = ("resolved", "mitigated", "degraded")

#: An alert's start may lie this many seconds ahead of the controller's clock (skew with the monitoring
#: host); the incident then counts from its detection. Further ahead, the time is refused.
FUTURE_TOLERANCE_S = 60


class RecordError(IncidentError):
    """A record operation that cannot be done; ``details`` go into the module's failure."""


# ---------------------------------------------------------------------------------------------
# Ids and paths
# ---------------------------------------------------------------------------------------------

def validate_id(incident_id):
    """Return ``incident_id`` if it is a safe file name, else raise ``RecordError`` naming it."""
    if not isinstance(incident_id, str) or not ID_RE.fullmatch(incident_id):
        raise RecordError(
            "bad incident id %r: use letters, digits, '.', '_' and '-' only, starting with a letter "
            "or digit, at most 160 characters" % (incident_id,))
    return incident_id


def generate_id(severity, service, now=None, suffix=None):
    """A new id like ``INC-20261127-013045-p0-recommendation-service-3f9a``; the random ``suffix``
    (4 hex digits unless given) keeps apart two incidents of a service opened in the same second."""
    sev = normalize_severity(severity).lower()
    when = parse_ts(now or utc_now(), "now")
    tail = suffix if suffix is not None else secrets.token_hex(2)
    return validate_id("INC-%s-%s-%s-%s" % (when.strftime("%Y%m%d-%H%M%S"), sev, _files.slug(service, "service"), tail))


def record_paths(incident_dir, incident_id):
    """``(record_dir, events_path)`` of an incident (absolute)."""
    validate_id(incident_id)
    record_dir = os.path.join(os.path.abspath(os.path.expanduser(str(incident_dir))), incident_id)
    return record_dir, os.path.join(record_dir, EVENTS_FILE)


# ---------------------------------------------------------------------------------------------
# Events
# ---------------------------------------------------------------------------------------------

def default_owner():
    return os.environ.get("USER") or os.environ.get("LOGNAME") or "automation"


def make_event(event_type, text="", stage=None, owner=None, host=None, data=None, ts=None):
    """Build (and validate) one event. ``seq`` is added when it is written."""
    if not isinstance(event_type, str) or not EVENT_TYPE_RE.fullmatch(event_type):
        raise RecordError("bad event type %r: lower-case letters, digits and '_' only" % (event_type,))
    if data is not None and not isinstance(data, dict):
        raise RecordError("event data must be a mapping, got %r" % (data,))
    event = {
        "ts": format_ts(ts if ts is not None else utc_now()),
        "type": event_type,
        "stage": None if stage is None else str(stage),
        "text": "" if text is None else str(text),
        "owner": str(owner) if owner else default_owner(),
    }
    if host:
        event["host"] = str(host)
    event["data"] = dict(data or {})
    return event


def parse_lines(raw):
    """``(events, corrupt_lines)`` of an events file's bytes; ``corrupt_lines``: ``{"line", "error", "text"}``
    of each line that is not a JSON object with ``ts`` and ``type`` (a torn last line included)."""
    events, corrupt = [], []
    lines = raw.split(b"\n")
    torn_tail = lines[-1] != b""
    if not torn_tail:
        lines = lines[:-1]
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            corrupt.append({"line": number, "error": "empty line", "text": ""})
            continue
        text = line.decode("utf-8", errors="replace")
        try:
            event = json.loads(text)
        except ValueError as exc:
            error = "not valid JSON (%s)" % exc
            if number == len(lines) and torn_tail:
                error = "torn last line, no newline: " + error
            corrupt.append({"line": number, "error": error, "text": text[:200]})
            continue
        if not isinstance(event, dict) or "ts" not in event or "type" not in event:
            corrupt.append({"line": number, "error": "not an event (needs ts and type)", "text": text[:200]})
            continue
        event.setdefault("seq", number)
        events.append(event)
    return events, corrupt


def read_events(events_path):
    """``(events, corrupt_lines)`` of an events file (raises ``FileNotFoundError`` if missing)."""
    with open(events_path, "rb") as handle:
        return parse_lines(handle.read())


def _fsync_dir(path):
    try:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:
        pass


def transact(events_path, plan, create=False):
    """Append what ``plan(events, corrupt_lines)`` returns under ``flock``, each new event with ``seq`` =
    its line number. Returns ``(events, corrupt_lines, written)``: the whole log after the write and the
    written events. ``create``: make the file, which must not exist yet (``FileExistsError``)."""
    flags = os.O_RDWR | os.O_APPEND | (os.O_CREAT | os.O_EXCL if create else 0)
    fd = os.open(events_path, flags, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        raw = b"".join(iter(lambda: os.read(fd, 1 << 16), b""))
        events, corrupt = parse_lines(raw)
        # the next line's number; a torn last line (no newline) is ended first
        next_line = raw.count(b"\n") + 1
        lead = b""
        if raw and not raw.endswith(b"\n"):
            next_line, lead = next_line + 1, b"\n"
        written = []
        for event in plan(events, corrupt):
            event = dict([("seq", next_line)] + [(k, v) for k, v in event.items() if k != "seq"])
            text = json.dumps(event, ensure_ascii=False, default=str, separators=(", ", ": "))
            line = memoryview(lead + text.encode("utf-8") + b"\n")
            while line:  # one os.write for the whole line; a rare short write goes on under the same flock
                line = line[os.write(fd, line):]
            lead = b""
            written.append(event)
            next_line += 1
        if written:
            os.fsync(fd)
        return events + written, corrupt, written
    finally:
        os.close(fd)  # closing drops the flock


def create_record(events_path, opened_event):
    """Create the record with its ``opened`` event. Returns False if it already existed."""
    record_dir = os.path.dirname(events_path)
    os.makedirs(record_dir, mode=0o755, exist_ok=True)
    try:
        transact(events_path, lambda _events, _corrupt: [opened_event], create=True)
    except FileExistsError:
        return False
    _fsync_dir(record_dir)
    return True


# ---------------------------------------------------------------------------------------------
# The incident: opening event and replay
# ---------------------------------------------------------------------------------------------

def alert_start(value, name="alert_started_at", now=None):
    """An alert's start as an aware UTC datetime; ``RecordError`` naming ``name`` for a value that is not
    ISO 8601 or more than :data:`FUTURE_TOLERANCE_S` seconds after ``now``."""
    start = _checked(parse_ts, value, name)
    now = parse_ts(now or utc_now(), "now")
    ahead = (start - now).total_seconds()
    if ahead > FUTURE_TOLERANCE_S:
        raise RecordError("%s %r is in the future (%s s after now, %s): an incident cannot start later than it is "
                          "handled; check the clock of the alert's source" % (
                              name, value, int(round(ahead)), format_ts(now)))
    return start


def _alert_info(alert):
    """The alert fields kept in the record (``clock.alert``): name, fingerprint, source, starts_at."""
    if alert is None:
        return None
    if not isinstance(alert, dict):
        raise RecordError("alert must be a mapping (name, fingerprint, source, starts_at), got %r" % (alert,))
    unknown = sorted(str(k) for k in alert if k not in ("name", "fingerprint", "source", "starts_at", "labels"))
    if unknown:
        raise RecordError("alert has unknown key(s) %s: expected name, fingerprint, source, starts_at, labels"
                          % ", ".join(unknown))
    info = {k: (None if alert.get(k) in (None, "") else str(alert.get(k)))
            for k in ("name", "fingerprint", "source", "starts_at")}
    labels = alert.get("labels")
    if labels is not None and not isinstance(labels, dict):
        raise RecordError("alert.labels must be a mapping, got %r" % (labels,))
    info["labels"] = {str(k): str(v) for k, v in (labels or {}).items()}
    return info


def alert_clock(alert_started_at=None, alert=None, now=None):
    """The start of a run's incident from what started the run (SPEC MON-1), validated.

    ``alert_started_at``: a time given by hand or by AWX; ``alert``: an Alertmanager alert as EDA
    hands it on (``sre_alert``), a mapping or its JSON text. The given time wins over the alert's
    ``startsAt``. Returns ``{"started_at": ISO or None, "alert": the fields kept or None}``; a
    malformed or future time raises ``RecordError`` naming its variable.
    """
    info = None
    if isinstance(alert, str) and alert.strip():
        try:
            alert = json.loads(alert)
        except ValueError:
            alert = alert[:200]  # not an alert: refused below
    if alert not in (None, "", {}):
        if not isinstance(alert, dict):
            raise RecordError("sre_alert %r is not an alert (a mapping with startsAt and labels)" % (alert,))
        labels = alert.get("labels") if isinstance(alert.get("labels"), dict) else {}
        info = _alert_info({"name": labels.get("alertname"), "fingerprint": alert.get("fingerprint"),
                            "source": alert.get("source") or "alertmanager", "starts_at": alert.get("startsAt"),
                            "labels": labels})
    if alert_started_at not in (None, ""):
        started = alert_start(alert_started_at, "alert_started_at", now)
    elif info and info.get("starts_at"):
        started = alert_start(info["starts_at"], "sre_alert.startsAt", now)
    else:
        started = None
    return {"started_at": format_ts(started) if started else None, "alert": info}


def build_opened(incident_id, service, severity, started_at=None, detected_at=None, commander=None,
                 war_room=None, oncall=None, impact=None, sla=None, owner=None, host=None, now=None, alert=None):
    """The ``opened`` event carrying the whole (validated) incident.

    The clock (SPEC MON-1): ``started_at`` (an alert's start or a time given by hand; default: the
    detection) is what the SLA deadlines and the P0 checklist count from; ``detected_at`` is when the
    automation first looked. A start in the future is refused (:func:`alert_start`); one later than
    the detection counts from the detection and ``clock.note`` says so. ``alert`` is kept in
    ``clock.alert`` and makes ``clock.started_from`` ``alert``.
    """
    validate_id(incident_id)
    if not service or not isinstance(service, str):
        raise RecordError("service is required to open an incident, got %r" % (service,))
    sev = _checked(normalize_severity, severity)
    overrides = _checked(validate_overrides, sla)
    now = parse_ts(now or utc_now(), "now")
    detected = _checked(parse_ts, detected_at, "detected_at") if detected_at else now
    alert_info = _alert_info(alert)
    if not started_at and alert_info and alert_info.get("starts_at"):
        started_at = alert_info["starts_at"]
    clock = {"started_from": "detection", "alert_started_at": None, "alert": alert_info, "note": None}
    started = detected
    if started_at:
        given = alert_start(started_at, "started_at", now)
        clock.update(started_from="alert" if alert_info else "given", alert_started_at=format_ts(given))
        started = min(given, detected)
        if given > detected:
            clock["note"] = ("started_at %s is after the detection %s (clock skew): the incident counts from its "
                             "detection" % (format_ts(given), format_ts(detected)))
    for name, value in (("oncall", oncall), ("impact", impact)):
        if value is not None and not isinstance(value, dict):
            raise RecordError("%s must be a mapping, got %r" % (name, value))
    incident = {
        "id": incident_id,
        "service": service,
        "severity": sev,
        "started_at": format_ts(started),
        "detected_at": format_ts(detected),
        "clock": clock,
        "commander": commander,
        "war_room": war_room,
        "oncall": dict(oncall or {}),
        "impact": dict(impact or {}),
        "sla": sla_for(sev, overrides),
        "sla_overrides": overrides,
        "deadlines": compute_deadlines(sev, started, overrides),
    }
    return make_event("opened", text="%s incident opened for %s" % (sev, service), stage="detect",
                      owner=owner, host=host, data=incident, ts=now)


def _checked(func, *args):
    """``func(*args)``, its ``ValueError`` (bad input) raised as ``RecordError``."""
    try:
        return func(*args)
    except ValueError as exc:
        raise RecordError(str(exc)) from None


def event_data(event):
    """The event's ``data`` mapping (empty when it has none or it is not a mapping)."""
    return event.get("data") if isinstance(event.get("data"), dict) else {}


def _earliest(values):
    present = [v for v in values if v]
    return min(present, key=parse_ts) if present else None


def elapsed(later, earlier):
    """Seconds from timestamp ``earlier`` to ``later`` (milliseconds kept), None if either is missing."""
    if not later or not earlier:
        return None
    return round((parse_ts(later) - parse_ts(earlier)).total_seconds(), 3)


def incident_times(state):
    """The incident's durations in seconds from ``started_at`` (SPEC MON-1), ``None`` where not reached:
    ``time_to_detect_s`` to ``detected_at``; ``mtta_s`` to ``responded_at`` (what the respond SLA
    judges); ``mttm_s`` to ``mitigated_at`` (users served again); ``mttr_s`` to ``resolved_at`` (what
    the resolve SLA judges). For one incident each "mean" is its own figure.
    """
    started = state.get("started_at")
    return {
        "time_to_detect_s": elapsed(state.get("detected_at"), started),
        "mtta_s": elapsed(state.get("responded_at"), started),
        "mttm_s": elapsed(state.get("mitigated_at"), started),
        "mttr_s": elapsed(state.get("resolved_at"), started),
    }


def replay(events, corrupt_lines=(), now=None):
    """Fold the events into the current state of the incident.

    Besides the incident's own keys: ``sla_status`` (respond/resolve: met, missed, open, none),
    ``time_left`` (seconds, while open), ``checklists``, ``ticked`` (key -> ts), ``rungs``,
    ``degraded_mode`` (active, or None), the histories, ``events`` and ``corrupt_lines``.

    Responded: the earliest of the first tick of ``response_started``, a ``responded_at`` given when
    closing, and the first close. Mitigated: the earliest of the first tick of ``recovery_verified``,
    a degraded mode switched on, and a close in ``MITIGATING_OUTCOMES``. Resolved: the first close in
    ``RESOLVING_OUTCOMES``; a record closed otherwise has missed its resolve deadline.
    """
    now = parse_ts(now or utc_now(), "now")
    events = list(events)
    opened = next((e for e in events if e.get("type") == "opened"), None)
    if opened is None:
        raise RecordError("the record has no 'opened' event", corrupt_lines=list(corrupt_lines))
    incident = dict(opened.get("data") or {})
    state = {key: incident.get(key) for key in (
        "id", "service", "severity", "started_at", "detected_at", "clock", "commander", "war_room",
        "oncall", "impact", "sla", "deadlines")}
    overrides = incident.get("sla_overrides") or {}
    state.update({
        "opened_at": opened.get("ts"), "status": "open", "outcome": None, "closed_at": None,
        "responded_at": None, "mitigated_at": None, "resolved_at": None,
        "severity_history": [{"ts": opened.get("ts"), "severity": state["severity"]}],
        "rungs": [], "last_rung": None, "degraded_mode": None, "degraded_history": [],
    })
    ticked, first_close, close_responded, mitigations = {}, None, [], []
    for event in events:
        etype = event.get("type")
        data = event_data(event)
        if etype == "tick" and data.get("key") and data["key"] not in ticked:
            # done_at: when the item was done, if the tick was written later (e.g. a background notification)
            ticked[data["key"]] = {"ts": data.get("done_at") or event.get("ts"), "value": data.get("value"),
                                   "owner": event.get("owner")}
        elif etype == "closed":
            state.update(status="closed", outcome=data.get("outcome"), closed_at=event.get("ts"))
            if first_close is None:
                first_close = event.get("ts")
            if data.get("responded_at"):
                close_responded.append(data["responded_at"])
            if state["resolved_at"] is None and data.get("outcome") in RESOLVING_OUTCOMES:
                state["resolved_at"] = event.get("ts")
            if data.get("outcome") in MITIGATING_OUTCOMES:
                mitigations.append(event.get("ts"))
        elif etype == "reclassified" and data.get("severity"):
            state["severity"] = data["severity"]
            state["severity_history"].append({"ts": event.get("ts"), "severity": data["severity"]})
            state["sla"] = sla_for(data["severity"], overrides)
            state["deadlines"] = compute_deadlines(data["severity"], state["started_at"], overrides)
        if etype != "opened" and "rung" in data:
            state["rungs"].append({"rung": data["rung"], "ts": event.get("ts"), "stage": event.get("stage"),
                                   "text": event.get("text"), "host": event.get("host"),
                                   "result": data.get("result", data.get("ok"))})
            state["last_rung"] = data["rung"]
        if etype != "opened" and "degraded_mode" in data:
            mode = data["degraded_mode"]
            mode = None if mode in (None, "", False, "none", "off") else mode
            state["degraded_mode"] = mode
            state["degraded_history"].append({"ts": event.get("ts"), "mode": mode, "host": event.get("host")})
            if mode:
                mitigations.append(event.get("ts"))

    response_tick = ticked.get(RESPONSE_ITEM, {}).get("ts")
    state["responded_at"] = _earliest([response_tick] + close_responded + [first_close])
    state["mitigated_at"] = _earliest([ticked.get(VERIFIED_ITEM, {}).get("ts")] + mitigations)
    state["times"] = incident_times(state)
    status = {
        "respond": deadline_status(state["deadlines"].get("respond"), state["responded_at"], now),
        "resolve": deadline_status(state["deadlines"].get("resolve"), state["resolved_at"], now),
    }
    if state["status"] == "closed" and state["resolved_at"] is None and status["resolve"] == "open":
        status["resolve"] = "missed"
    state["sla_status"] = status
    state["time_left"] = {
        kind: (time_left(state["deadlines"].get(kind), now) if status[kind] == "open" else None)
        for kind in SLA_KINDS
    }
    started = parse_ts(state["started_at"])
    state["checklists"] = checklists = {}
    for name, items in CHECKLISTS.items():
        checklists[name] = rows = []
        for item in items:
            tick = ticked.get(item["key"]) or {}
            due = None if item["offset"] is None else format_ts(started + datetime.timedelta(seconds=item["offset"]))
            rows.append({
                "key": item["key"], "mark": item["mark"], "text": item["text"], "due": due, "done": bool(tick),
                "ts": tick.get("ts"), "value": tick.get("value"), "owner": tick.get("owner"),
                "on_time": (deadline_status(due, tick["ts"]) == "met") if (tick and due) else None,
            })
    state.update(ticked={key: value["ts"] for key, value in ticked.items()}, events=events,
                 event_count=len(events), corrupt_lines=list(corrupt_lines))
    return state


def summary(state):
    """The part of a state shown in a diff."""
    if state is None:
        return {"status": "absent", "severity": None, "outcome": None, "ticked": [], "event_count": 0}
    return {
        "status": state["status"], "severity": state["severity"], "outcome": state["outcome"],
        "ticked": sorted(state["ticked"]), "event_count": state["event_count"],
    }


# ---------------------------------------------------------------------------------------------
# Planning: which events a request adds (nothing is written here)
# ---------------------------------------------------------------------------------------------

def validate_items(items, values=None):
    """Check checklist keys (and the ``values`` mapping) before anything is written."""
    if not items:
        raise RecordError("items is required to tick: give one or more of %s" % ", ".join(CHECKLIST_ITEMS))
    unknown = [key for key in items if key not in CHECKLIST_ITEMS]
    if unknown:
        raise RecordError("unknown checklist item(s) %s: known items are %s"
                          % (", ".join(repr(k) for k in unknown), ", ".join(CHECKLIST_ITEMS)))
    values = values or {}
    if not isinstance(values, dict):
        raise RecordError("values must be a mapping of item -> value, got %r" % (values,))
    stray = [key for key in values if key not in items]
    if stray:
        raise RecordError("values given for item(s) not being ticked: %s" % ", ".join(repr(k) for k in stray))
    return values


def done_time(state, done_at, now, floor="opened_at"):
    """``done_at`` (a step written later) kept within [the incident's ``floor``, now], so a host clock
    ahead or behind the controller's cannot put a step in the future or before the incident."""
    if not done_at:
        return None
    when = min(_checked(parse_ts, done_at, "done_at"), parse_ts(now or utc_now(), "now"))
    if state.get(floor):
        when = max(when, parse_ts(state[floor]))
    return format_ts(when)


def plan_ticks(state, items, values=None, stage=None, owner=None, host=None, now=None, done_at=None):
    """Tick events for the items not ticked yet (ticking twice adds nothing)."""
    values = validate_items(items, values)
    done_at = done_time(state, done_at, now)
    new = []
    for key in dict.fromkeys(items):
        if key in state["ticked"]:
            continue
        item = CHECKLIST_ITEMS[key]
        data = {"key": key, "checklist": item["checklist"]}
        if key in values:
            data["value"] = values[key]
        if done_at:
            data["done_at"] = done_at
        new.append(make_event("tick", text=item["text"], stage=stage or "checklist", owner=owner,
                              host=host, data=data, ts=now))
    return new


def plan_close(state, outcome, responded_at=None, text=None, stage=None, owner=None, host=None,
               data=None, now=None):
    """The ``closed`` event, or nothing if already closed with the same outcome."""
    if outcome not in OUTCOMES:
        raise RecordError("unknown outcome %r: expected one of %s" % (outcome, ", ".join(OUTCOMES)))
    payload = dict(data or {})
    payload["outcome"] = outcome
    if responded_at:
        payload["responded_at"] = format_ts(_checked(parse_ts, responded_at, "responded_at"))
    if state["status"] == "closed" and state["outcome"] == outcome:
        return []
    return [make_event("closed", text=text or "incident closed: %s" % outcome, stage=stage or "close",
                       owner=owner, host=host, data=payload, ts=now)]


def plan_event(state, event_type="event", text=None, stage=None, owner=None, host=None, data=None,
               severity=None, now=None):
    """A free event; if ``severity`` differs from the current one, a ``reclassified`` event."""
    if severity is not None:
        sev = _checked(normalize_severity, severity)
        if sev != state["severity"]:
            return [make_event("reclassified", text=text or "severity %s -> %s" % (state["severity"], sev),
                               stage=stage, owner=owner, host=host,
                               data=dict(data or {}, severity=sev, previous=state["severity"]), ts=now)]
    if event_type in RESERVED_TYPES:
        raise RecordError("event type %r is written by state=%s only" % (event_type, event_type))
    if not text:
        raise RecordError("text is required for state=event")
    return [make_event(event_type, text=text, stage=stage, owner=owner, host=host, data=data, ts=now)]


def plan_stage(state, stage, owner=None, host=None, now=None, done_at=None):
    """The ``stage`` event that starts runbook stage ``stage`` (at ``done_at`` when it started earlier)."""
    if not stage:
        raise RecordError("stage is required for state=stage: the runbook stage that starts (a role's name)")
    done_at = done_time(state, done_at, now, floor="detected_at")
    data = {"done_at": done_at} if done_at else {}
    return [make_event("stage", text="stage %s started" % stage, stage=stage, owner=owner, host=host, data=data,
                       ts=now)]


def stages(events):
    """The runbook stages in the order they started: ``[{"name", "start", "end", "duration_s",
    "failed_tasks", "complete"}]``.

    A ``stage`` event starts a stage (at its ``done_at``, if any) that lasts until the next one starts;
    the last lasts until the last event and is complete once the record is closed. ``failed_tasks``
    counts the stage's ``failure`` events while it ran.
    """
    if any(event_data(e).get("phase") for e in events if e.get("type") == "stage"):
        return _stages_with_ends(events)
    bars, current = [], None
    for event in events:
        etype, name = event.get("type"), event.get("stage")
        if etype == "stage" and name:
            start = event_data(event).get("done_at") or event.get("ts")
            if current:
                current.update(end=start, complete=True)
                bars.append(current)
            current = {"name": name, "start": start, "end": None, "failed_tasks": 0, "complete": False}
        elif etype == "failure" and current and name == current["name"]:
            current["failed_tasks"] += 1
        elif etype == "closed" and current:
            current["complete"] = True
    if current:
        current["end"] = _last_ts(events)
        bars.append(current)
    return _with_durations(bars)


def _stages_with_ends(events):
    """The stages of an earlier release's record: a start and an end event each (``data.phase``, the end
    with its failed tasks). A stage without its end lasts until the last event and is not complete."""
    bars, open_at = [], {}
    for event in events:
        name, data = event.get("stage"), event_data(event)
        if event.get("type") != "stage" or not name:
            continue
        if data.get("phase") == "end":
            start = open_at.pop(name, None) or data.get("started_at") or event.get("ts")
            bars.append({"name": name, "start": start, "end": event.get("ts"),
                         "failed_tasks": int(data.get("failed_tasks") or 0), "complete": True})
        else:
            open_at[name] = event.get("ts")
    bars += [{"name": name, "start": start, "end": _last_ts(events), "failed_tasks": 0, "complete": False}
             for name, start in open_at.items()]
    return _with_durations(bars)


def _last_ts(events):
    return max((e["ts"] for e in events if e.get("ts")), key=parse_ts)


def _with_durations(bars):
    for stage in bars:
        stage["duration_s"] = elapsed(stage["end"], stage["start"])
    return bars


# ---------------------------------------------------------------------------------------------
# The module's work
# ---------------------------------------------------------------------------------------------

def _plan(state_name, params, current, owner, host, now):
    """The events ``state_name`` adds to the incident in state ``current`` (validated, not written)."""
    get = params.get
    if state_name == "tick":
        return plan_ticks(current, get("items"), get("values"), get("stage"), owner, host, now, get("done_at"))
    if state_name == "closed":
        return plan_close(current, get("outcome"), get("responded_at"), get("text"), get("stage"), owner, host,
                          get("data"), now)
    if state_name == "event":
        return plan_event(current, get("event_type") or "event", get("text"), get("stage"), owner, host,
                          get("data"), get("severity"), now)
    if state_name == "stage":
        return plan_stage(current, get("stage"), owner, host, now, get("done_at"))
    return []


def _result(changed, incident_id, incident_dir, state, appended, before):
    """The module's result, with the hand-offs ``stats`` and ``sre_incident_record`` (None without an
    incident: ``incident_id`` None). ``state`` and ``before`` are None where there is no record."""
    result = {
        "changed": changed, "id": incident_id, "record_dir": None, "events_path": None,
        "incident": state, "corrupt_lines": state["corrupt_lines"] if state else [], "appended": appended,
        "diff": {"before": summary(before), "after": summary(state)}, "stats": None, "sre_incident_record": None,
    }
    if incident_id is not None:
        record_dir, events_path = record_paths(incident_dir, incident_id)
        result.update(
            record_dir=record_dir, events_path=events_path,
            stats={"incident_id": incident_id, "incident_dir": incident_dir, "record_dir": record_dir,
                   "severity": state["severity"] if state else None},
            sre_incident_record={"id": incident_id, "record_dir": record_dir, "incident_dir": incident_dir,
                                 "events_path": events_path})
    return result


def _load(events_path, incident_id, incident_dir, now):
    try:
        events, corrupt = read_events(events_path)
    except FileNotFoundError:
        raise RecordError("incident %s not found in %s (no %s there)" % (incident_id, incident_dir, EVENTS_FILE),
                          id=incident_id, incident_dir=incident_dir) from None
    return replay(events, corrupt, now), events, corrupt


def run(params, check_mode=False, now=None):
    """The ``sre.incident.record`` module's result; ``RecordError`` (nothing written) on bad input or a
    missing incident."""
    now = parse_ts(now or utc_now(), "now")
    state_name = params.get("state") or "present"
    incident_dir = os.path.abspath(os.path.expanduser(str(params.get("incident_dir") or "incidents")))
    owner = params.get("owner") or default_owner()
    host = params.get("host")
    incident_id = params.get("id")
    if incident_id is not None:
        validate_id(incident_id)
    if state_name == "opened":
        return _run_open(params, incident_dir, incident_id, owner, host, check_mode, now)
    if not incident_id and state_name == "stage":
        # a stage role runs outside incidents too (diagnose.yml, a notification without an incident)
        return dict(_result(False, None, incident_dir, None, [], None),
                    msg="no incident here: stage %s not recorded" % params.get("stage"))
    if not incident_id:
        raise RecordError("id is required for state=%s" % state_name)
    _record_dir, events_path = record_paths(incident_dir, incident_id)
    if check_mode and not os.path.exists(events_path):
        # In a dry run the record is usually opened by an earlier task of the same run, which wrote
        # nothing; failing here would make every dry run fail. The input is still validated.
        blank = {"ticked": {}, "status": "open", "outcome": None, "severity": None}
        planned = _plan(state_name, params, blank, owner, host, now)
        result = _result(bool(planned), incident_id, incident_dir, None, planned, None)
        result["warnings"] = ["check mode: incident %s not found in %s; nothing read (expected when it is opened "
                              "earlier in the same dry run)" % (incident_id, incident_dir)]
        return result
    before, events, corrupt = _load(events_path, incident_id, incident_dir, now)
    # Validate against the state read without the lock first: bad input fails before any write.
    planned = _plan(state_name, params, before, owner, host, now)
    if check_mode or not planned:
        after = replay(events + planned, corrupt, now) if planned else before
    else:
        events, corrupt, planned = transact(
            events_path, lambda locked, bad: _plan(state_name, params, replay(locked, bad, now), owner, host, now))
        after = replay(events, corrupt, now)
    return _result(bool(planned), incident_id, incident_dir, after, planned, before)


def _run_open(params, incident_dir, incident_id, owner, host, check_mode, now):
    if params.get("severity") is None:
        raise RecordError("severity is required for state=opened (one of P0, P1, P2, P3)")
    severity = _checked(normalize_severity, params["severity"])
    if not params.get("service"):
        raise RecordError("service is required for state=opened")
    new_id = incident_id or generate_id(severity, params["service"], now)
    _record_dir, events_path = record_paths(incident_dir, new_id)
    opened = build_opened(new_id, params["service"], severity, params.get("started_at"), params.get("detected_at"),
                          params.get("commander"), params.get("war_room"), params.get("oncall"),
                          params.get("impact"), params.get("sla"), owner, host, now, alert=params.get("alert"))
    if params.get("text"):
        opened["text"] = str(params["text"])
    if params.get("data"):
        opened["data"]["extra"] = dict(params["data"])

    changed = not os.path.exists(events_path)
    if changed and not check_mode:
        changed = create_record(events_path, opened)
    if changed and check_mode:
        state = replay([dict(opened, seq=1)], (), now)
    else:
        state = _load(events_path, new_id, incident_dir, now)[0]
    return _result(changed, new_id, incident_dir, state, [opened] if changed else [], None if changed else state)


# The options of sre.incident.record, shared by the module and its action plugin (which runs
# the same code in the controller's process: the record lives on the controller).
ARGUMENT_SPEC = dict(
    state=dict(type="str", choices=["opened", "event", "stage", "tick", "closed", "present"], default="present"),
    incident_dir=dict(type="path", default="incidents", fallback=(env_fallback, ["SRE_INCIDENT_DIR"])),
    id=dict(type="str"),
    service=dict(type="str"),
    severity=dict(type="str", choices=["P0", "P1", "P2", "P3"]),
    commander=dict(type="str"),
    war_room=dict(type="str"),
    oncall=dict(type="dict"),
    impact=dict(type="dict"),
    sla=dict(type="dict"),
    detected_at=dict(type="str"),
    started_at=dict(type="str"),
    alert=dict(type="dict"),
    responded_at=dict(type="str"),
    done_at=dict(type="str"),
    stage=dict(type="str"),
    text=dict(type="str"),
    event_type=dict(type="str", default="event"),
    owner=dict(type="str"),
    host=dict(type="str"),
    data=dict(type="dict"),
    items=dict(type="list", elements="str"),
    values=dict(type="dict"),
    outcome=dict(type="str", choices=list(OUTCOMES)),
)
REQUIRED_IF = [
    ("state", "opened", ("service", "severity")),
    ("state", "event", ("id",)),
    ("state", "stage", ("stage",)),
    ("state", "tick", ("id", "items")),
    ("state", "closed", ("id", "outcome")),
    ("state", "present", ("id",)),
]


def run_checked(params, check_mode=False, diff=False, now=None):
    """:func:`run` as the task reports it (``_module.outcome``): errors become ``failed``/``msg``, torn
    lines a warning, the diff only when asked for. Never raises for bad input or an unwritable record."""
    def work():
        result = run(params, check_mode=check_mode, now=now)
        if result["corrupt_lines"]:
            result.setdefault("warnings", []).append("%s has %d unreadable line(s): %s" % (
                result["events_path"], len(result["corrupt_lines"]),
                ", ".join(str(c["line"]) for c in result["corrupt_lines"])))
        return result
    return _module.outcome(work, diff=diff, context="incident record in %s" % params.get("incident_dir"),
                           wrap=(OSError, ValueError))
