# -*- coding: utf-8 -*-
# Copyright (c) sre.incident contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The postmortem report (SPEC PM-1, PM-2, P0-10), written from the incident record.

* :func:`build_model`: a replayed record (:func:`_record.replay`) as plain data: summary, timeline,
  stages, watch samples, RCA facts, lessons, action items, checklists, agenda, due date.
* Human-written parts: blocks between ``<!-- sre.incident:human:begin NAME -->`` and
  ``<!-- sre.incident:human:end NAME -->`` in the existing file are carried over verbatim.
* :func:`report_view`: the model as the templates show it (display text, the Mermaid ``gantt``, the
  SVG geometry). The Jinja2 templates (``plugins/plugin_utils/templates/postmortem.*``) are
  rendered on the controller by the action plugin.
* :func:`run`: read, render, compare, write only what changed.

The templates escape everything from the record (HTML: autoescape; Markdown: :func:`md`), so an
event text can neither break a table nor forge a human-section marker. Only ``now`` (the SLA status
of an open incident) depends on the clock: an unchanged record re-renders to the same bytes.
"""

from __future__ import annotations

import datetime
import os
import re

from ansible.module_utils.common.parameters import env_fallback

from ansible_collections.sre.incident.plugins.module_utils import _files
from ansible_collections.sre.incident.plugins.module_utils._record import (
    EVENTS_FILE,
    RecordError,
    elapsed,
    event_data,
    incident_times,
    read_events,
    record_paths,
    replay,
    stages as record_stages,
    validate_id,
)
from ansible_collections.sre.incident.plugins.module_utils._severity import DAY, HOUR
from ansible_collections.sre.incident.plugins.module_utils._time import format_ts, parse_ts, utc_now

FORMATS = ("md", "html")
#: The report file of each format; its template (plugins/plugin_utils/templates) is that name + ``.j2``.
FILE_NAMES = {"md": "postmortem.md", "html": "postmortem.html"}

#: The options of sre.incident.postmortem (the module documents them, the action plugin runs them).
ARGUMENT_SPEC = dict(
    incident_dir=dict(type="path", default="incidents", fallback=(env_fallback, ["SRE_INCIDENT_DIR"])),
    id=dict(type="str", required=True),
    formats=dict(type="list", elements="str", choices=list(FORMATS), default=list(FORMATS)),
    owner=dict(type="str"),
    now=dict(type="str"),
)

#: Events of the postmortem's own runs (the timeline callback records the stage ``postmortem``)
#: are left out of the report; otherwise every run would change the report it writes.
OWN_STAGE = "postmortem"

#: PM-1: when the postmortem is due, counted from the recovery.
DUE_AFTER = {"P0": 24 * HOUR, "P1": 3 * DAY, "P2": 0}
DUE_RULE = {
    "P0": "within 24 h of the recovery",
    "P1": "within 3 days of the recovery",
    "P2": "after the fix",
    "P3": "no postmortem required (P3: improvements and documentation)",
}

#: The recovery ladder of the runbook (SPEC P0-4); a rung is recorded by number or by name.
RUNGS = (
    (1, ("restart_service", "restart", "service"), "restart the service"),
    (2, ("restart_dependencies", "dependencies", "restart_deps"), "restart PostgreSQL and Redis, then the service"),
    (3, ("rebuild", "full_rebuild", "down_up"), "full rebuild (down, then up -d)"),
)

ACTION_ITEM_KEYS = ("item", "description", "priority", "owner", "deadline")

#: The meeting agenda of the runbook (事後總結會議), minutes per item.
AGENDA = (
    ("Incident overview", 5),
    ("Timeline review", 10),
    ("Root-cause discussion", 15),
    ("Improvements discussion", 20),
    ("Confirm the action items", 10),
)

HUMAN_RE = re.compile(
    r"<!-- sre\.incident:human:begin ([a-z0-9][a-z0-9-]{0,63}) -->\n?(.*?)<!-- sre\.incident:human:end \1 -->",
    re.S)

#: Human sections: name -> the prompt shown until someone writes there.
HUMAN_PROMPTS = {
    "summary-notes": "anything the summary misses: customer impact in words, business impact",
    "rca-direct-cause": "what happened, in a sentence or two",
    "rca-root-cause": "why it happened (ask why five times)",
    "rca-contributing-factors": "which safeguards were missing or did not work",
    "rca-why-not-detected": "which monitoring or alert was missing",
    "lessons-went-well": "what the team did well",
    "lessons-to-improve": "what the team should do differently",
    "action-items-extra": "further action items: item, description, priority, owner, deadline",
    "meeting-notes": "attendees, decisions and notes of the review meeting",
}


class PostmortemError(RecordError):
    """The report cannot be written; ``details`` go into the module's failure."""


# ---------------------------------------------------------------------------------------------
# Small helpers
# ---------------------------------------------------------------------------------------------

def fmt_duration(seconds):
    """``14.2`` -> ``'14 s'``, ``125`` -> ``'2 min 05 s'``, ``3720`` -> ``'1 h 02 min'``."""
    if seconds is None:
        return "-"
    sign = "-" if seconds < 0 else ""
    total = abs(seconds)
    if total < 10:
        return "%s%.1f s" % (sign, total) if total % 1 else "%s%d s" % (sign, total)
    total = int(round(total))
    if total < 60:
        return "%s%d s" % (sign, total)
    if total < HOUR:
        return "%s%d min %02d s" % (sign, total // 60, total % 60) if total % 60 else "%s%d min" % (sign, total // 60)
    if total < DAY:
        return "%s%d h %02d min" % (sign, total // HOUR, (total % HOUR) // 60) if total % HOUR else "%s%d h" % (sign, total // HOUR)
    return "%s%d d %d h" % (sign, total // DAY, (total % DAY) // HOUR) if total % DAY else "%s%d d" % (sign, total // DAY)


def fmt_offset(seconds):
    """Offset from the start of the incident: ``'+0:14'``, ``'+1:02:05'``."""
    if seconds is None:
        return "-"
    sign = "-" if seconds < 0 else "+"
    total = int(abs(seconds))
    hours, rest = divmod(total, HOUR)
    if hours:
        return "%s%d:%02d:%02d" % (sign, hours, rest // 60, rest % 60)
    return "%s%d:%02d" % (sign, rest // 60, rest % 60)


def fmt_time(ts):
    """``2026-11-27T01:30:45.123Z`` -> ``'2026-11-27 01:30:45Z'``."""
    if not ts:
        return "-"
    return parse_ts(ts).strftime("%Y-%m-%d %H:%M:%SZ")


def fmt_sla(seconds):
    return "none" if seconds is None else fmt_duration(seconds)


def md(text):
    """Escape text from the record for Markdown (table cells included)."""
    text = "" if text is None else str(text)
    text = text.replace("\\", "\\\\").replace("|", "\\|").replace("`", "\\`")
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return " ".join(text.split())


def _scalar(value):
    if isinstance(value, float):
        return ("%.3f" % value).rstrip("0").rstrip(".")
    if isinstance(value, dict):
        return ", ".join("%s=%s" % (k, _scalar(v)) for k, v in value.items())
    if isinstance(value, list):
        return ", ".join(_scalar(v) for v in value)
    return str(value)


def _positive(value):
    """Whether ``value`` is a (non-boolean) integer above zero."""
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _walk(value, path=(), depth=0):
    """Yield ``(path, key, value)`` for every mapping entry below ``value`` (bounded)."""
    if depth > 8:
        return
    if isinstance(value, dict):
        for key, item in value.items():
            yield path, str(key), item
            yield from _walk(item, path + (str(key),), depth + 1)
    elif isinstance(value, list):
        for index, item in enumerate(value[:200]):
            yield from _walk(item, path + (str(index),), depth + 1)


# ---------------------------------------------------------------------------------------------
# The report model
# ---------------------------------------------------------------------------------------------

def rung_info(rung):
    """``(number or None, description)`` of a rung recorded as a number or a name."""
    if isinstance(rung, bool):
        return None, str(rung)
    if isinstance(rung, int) or (isinstance(rung, str) and rung.strip().isdigit()):
        number = int(rung)
        return number, next((text for num, _names, text in RUNGS if num == number), "rung %d" % number)
    name = str(rung).strip().lower().replace("-", "_").replace(" ", "_")
    return next(((num, text) for num, names, text in RUNGS if name in names), (None, str(rung)))


def rung_label(rung):
    number, text = rung_info(rung)
    return "rung %d (%s)" % (number, text) if number is not None else "rung %s" % text


def _succeeded(result):
    if isinstance(result, bool):
        return result
    if isinstance(result, str):
        word = result.strip().lower().replace(" ", "_")
        if word in ("ok", "success", "succeeded", "healthy", "fixed", "passed", "true", "yes"):
            return True
        if word in ("not_fixed", "failed", "failure", "unhealthy", "error", "false", "no", "timeout", "timed_out"):
            return False
        return None
    if isinstance(result, dict):
        for key in ("healthy", "ok", "passed", "fixed"):
            if key in result:
                return _succeeded(result[key])
    return None


def _fixing_rung(state):
    """The rung that fixed it: the last rung that says it worked, else the last one tried
    when the incident was resolved."""
    rungs = state.get("rungs") or []
    ok = [r for r in rungs if _succeeded(r.get("result"))]
    if ok:
        return ok[-1]
    if rungs and state.get("resolved_at") and _succeeded(rungs[-1].get("result")) is not False:
        return rungs[-1]
    return None


def _event_text(event):
    etype = event.get("type")
    data = event_data(event)
    text = event.get("text") or ""
    extra = []
    if etype == "stage" and data.get("phase") == "end":
        if data.get("duration_s") is not None:
            extra.append("took %s" % fmt_duration(data["duration_s"]))
        if data.get("failed_tasks"):
            extra.append("%s failed task(s)" % data["failed_tasks"])
    if etype == "tick" and data.get("value") is not None:
        extra.append("value %s" % _scalar(data["value"]))
    if "rung" in data and etype != "opened":
        extra.append(rung_label(data["rung"]))
        if "result" in data or "ok" in data:
            extra.append("result %s" % _scalar(data.get("result", data.get("ok"))))
    sample = data.get("watch_sample")
    if isinstance(sample, dict):
        extra.append(", ".join("%s %s" % (k, _scalar(v)) for k, v in sample.items()))
    if etype == "closed" and data.get("outcome"):
        extra.append("outcome %s" % data["outcome"])
    if "degraded_mode" in data and etype != "opened":
        extra.append("degraded mode %s" % _scalar(data["degraded_mode"]))
    if isinstance(data.get("p1_case"), (str, dict)):
        case = data["p1_case"]
        extra.append("P1 case %s" % (case.get("name") or case.get("case") if isinstance(case, dict) else case))
    body = text + (" (%s)" % "; ".join(str(x) for x in extra) if extra else "")
    return "%s: %s" % (etype, body) if etype and etype != "event" else body


def _timeline(events, t0):
    return [{"seq": event.get("seq"), "ts": event.get("ts"), "time": fmt_time(event.get("ts")),
             "offset_s": elapsed(event.get("ts"), t0), "offset": fmt_offset(elapsed(event.get("ts"), t0)),
             "type": event.get("type"), "stage": event.get("stage") or "", "event": _event_text(event),
             "owner": event.get("owner") or "-", "host": event.get("host") or ""} for event in events]


def _stages(events):
    """Stage bars: the record's stages (:func:`_record.stages`), else, for a record without stage
    events, the span of each stage's events."""
    bars = record_stages(events)
    if not bars:
        spans = {}
        for event in events:
            name = event.get("stage")
            if not name or not event.get("ts"):
                continue
            first, last = spans.get(name, (event["ts"], event["ts"]))
            spans[name] = (min(first, event["ts"], key=parse_ts), max(last, event["ts"], key=parse_ts))
        bars = [{"name": n, "start": s, "end": e, "failed_tasks": 0, "complete": True,
                 "duration_s": elapsed(e, s)} for n, (s, e) in spans.items()]
    return sorted(bars, key=lambda b: (parse_ts(b["start"]), b["name"]))


def _watch(events):
    samples = []
    for event in events:
        data = event_data(event)
        sample = data.get("watch_sample")
        if not isinstance(sample, dict):
            continue
        row = {"ts": sample.get("ts") or event.get("ts"), "seq": event.get("seq")}
        for key in ("latency_ms", "error_rate"):
            value = sample.get(key)
            row[key] = float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None
        samples.append(row)
    return samples


def _action_items(events):
    items = []
    for event in events:
        data = event_data(event)
        found = data.get("action_item")
        for item in (found if isinstance(found, list) else [found]):
            if isinstance(item, str) and item:
                item = {"item": item, "description": ""}
            if isinstance(item, dict):
                items.append(dict({k: item.get(k) for k in ACTION_ITEM_KEYS}, source="event #%s" % event.get("seq")))
    return items


def _evidence(events):
    """Facts the automation knows: exit codes, OOM kills, restarts, recent changes, P1 cases."""
    found = {"exit_codes": [], "oom": [], "restarts": [], "recent_changes": [], "p1_cases": [], "errors": []}
    for event in events:
        data = event_data(event)
        where = "event #%s" % event.get("seq")
        case = data.get("p1_case")
        if case:  # a mapping, or a name whose fix is the event's quick_fix
            case = case if isinstance(case, dict) else {"name": case, "quick_fix": data.get("quick_fix")}
            found["p1_cases"].append({"name": str(case.get("name") or case.get("case") or "?"),
                                      "hint": case.get("root_cause_hint") or case.get("hint") or data.get("root_cause_hint"),
                                      "fix": case.get("fix") or case.get("quick_fix"), "where": where})
        if event.get("type") == "failure":
            found["errors"].append({"text": event.get("text") or "", "rc": data.get("rc"), "where": where})
        for path, key, value in _walk(data):
            low = key.lower().replace("-", "_")
            dotted = ".".join(path + (key,))
            if low in ("exit_code", "exitcode") and isinstance(value, int) and not isinstance(value, bool) and value:
                found["exit_codes"].append({"code": value, "path": dotted, "where": where})
            elif low in ("oomkilled", "oom_killed") and value is True:
                found["oom"].append({"path": dotted, "count": 1, "where": where})
            elif low in ("oom_kills", "oom_kill_count") and _positive(value):
                found["oom"].append({"path": dotted, "count": value, "where": where})
            elif low in ("restart_count", "restartcount") and _positive(value):
                found["restarts"].append({"count": value, "path": dotted, "where": where})
            elif low == "recent_changes" and value:
                found["recent_changes"] += [{"text": _scalar(entry), "where": where}
                                            for entry in (value if isinstance(value, list) else [value])[:10]]
    return found


def _exit_meaning(code):
    signal = {9: "SIGKILL", 15: "SIGTERM", 6: "SIGABRT", 11: "SIGSEGV"}.get(code - 128) if code > 128 else None
    return " (%d = 128 + signal %d, %s)" % (code, code - 128, signal) if signal else ""


def _rca(state, evidence, fixed, events):
    direct, root, contributing, detection = [], [], [], []
    impact = state.get("impact") or {}
    opened = next((e for e in events if e.get("type") == "opened"), {})
    direct.append("%s opened for %s: %s%s" % (
        state.get("severity"), state.get("service"), opened.get("text") or "",
        ("; impact: " + _scalar(impact)) if impact else ""))
    for item in evidence["exit_codes"]:
        direct.append("Exit code %s%s at %s (%s)" % (item["code"], _exit_meaning(item["code"]), item["path"], item["where"]))
    for item in evidence["oom"]:
        direct.append("OOM kill%s at %s (%s)" % (" x%d" % item["count"] if item["count"] > 1 else "", item["path"],
                                                 item["where"]))
        root.append("Memory exhausted: the kernel's OOM killer stopped the process (%s)" % item["where"])
    for item in evidence["restarts"]:
        contributing.append("Restart count %s at %s (%s)" % (item["count"], item["path"], item["where"]))
    for case in evidence["p1_cases"]:
        direct.append("P1 case detected: %s (%s)" % (case["name"], case["where"]))
        if case.get("hint"):
            root.append("Root-cause hint of the P1 case %s: %s" % (case["name"], _scalar(case["hint"])))
    for item in evidence["recent_changes"]:
        contributing.append("Recent change: %s (%s)" % (item["text"], item["where"]))
    if fixed:
        direct.append("Fixed by %s at %s (%s)" % (rung_label(fixed["rung"]), fmt_time(fixed["ts"]),
                                                  fmt_offset(elapsed(fixed["ts"], state.get("started_at")))))
    for rung in [r for r in state.get("rungs") or [] if _succeeded(r.get("result")) is False]:
        contributing.append("%s did not fix it (%s)" % (rung_label(rung["rung"]).capitalize(), fmt_time(rung["ts"])))
    for item in evidence["errors"][:10]:
        contributing.append("Automation failure: %s (%s)" % (item["text"], item["where"]))
    for entry in state.get("degraded_history") or []:
        if entry.get("mode"):
            contributing.append("Degraded mode %s was needed (%s)" % (entry["mode"], fmt_time(entry["ts"])))
    gap = elapsed(state.get("detected_at"), state.get("started_at"))
    alert = (state.get("clock") or {}).get("alert") or {}
    if gap is not None and gap > 0 and alert:
        detection.append("Alert %s fired at %s; the automation looked at it %s later (%s)" % (
            alert.get("name") or "?", fmt_time(state.get("started_at")), fmt_duration(gap),
            fmt_time(state.get("detected_at"))))
    elif gap is not None and gap > 0:
        detection.append("Detected %s after the incident started (started %s, detected %s)" % (
            fmt_duration(gap), fmt_time(state.get("started_at")), fmt_time(state.get("detected_at"))))
    elif state.get("detected_at"):
        detection.append("Detected at %s by %s; the start of the incident before detection is not known to the "
                         "automation" % (fmt_time(state.get("detected_at")), opened.get("owner") or "automation"))
    return {"direct_cause": direct, "root_cause": root, "contributing_factors": contributing,
            "why_not_detected": detection}


def _lessons(state, fixed, stages, samples, evidence):
    good, improve = [], []
    sla = state.get("sla") or {}
    status = state.get("sla_status") or {}
    started = state.get("started_at")
    if fixed:
        recovered = state.get("resolved_at") or fixed["ts"]
        took = elapsed(recovered, started)
        if status.get("resolve") == "met" or (status.get("resolve") == "open" and sla.get("resolve") and
                                              took is not None and took <= sla["resolve"]):
            good.append("Recovered by %s in %s, within the %s resolve SLA" % (
                rung_label(fixed["rung"]), fmt_duration(took), fmt_sla(sla.get("resolve"))))
        else:
            improve.append("Recovered by %s in %s%s" % (
                rung_label(fixed["rung"]), fmt_duration(took),
                (", over the %s resolve SLA" % fmt_sla(sla.get("resolve"))) if sla.get("resolve") else ""))
    for kind, word, at_key in (("respond", "Responded", "responded_at"), ("resolve", "Resolved", "resolved_at")):
        value, at = status.get(kind), state.get(at_key)
        if value == "met" and not (kind == "resolve" and fixed):
            good.append("%s in %s, within the %s %s SLA" % (word, fmt_duration(elapsed(at, started)),
                                                            fmt_sla(sla.get(kind)), kind))
        elif value == "missed":
            improve.append("%s SLA missed: deadline %s, %s" % (
                kind.capitalize(), fmt_time((state.get("deadlines") or {}).get(kind)),
                ("done at %s" % fmt_time(at)) if at else "not done"))
    p0 = (state.get("checklists") or {}).get("p0_response") or []
    late = [i["key"] for i in p0 if i.get("on_time") is False]
    on_time = [i["key"] for i in p0 if i.get("on_time")]
    if on_time:
        good.append("P0 checklist items ticked on time: %s" % ", ".join(on_time))
    if late:
        improve.append("P0 checklist items ticked late: %s" % ", ".join(late))
    failed = [s for s in stages if s["failed_tasks"]]
    if stages and not failed:
        good.append("Every automated stage ran without a failed task (%s)" % ", ".join(s["name"] for s in stages))
    for stage in failed:
        improve.append("Stage %s had %d failed task(s)" % (stage["name"], stage["failed_tasks"]))
    rates = [s["error_rate"] for s in samples if s["error_rate"] is not None]
    if rates:
        if max(rates) == 0:
            good.append("No errors during the watch (%d samples)" % len(rates))
        elif rates[-1] > rates[0]:
            improve.append("The error rate rebounded during the watch (%s -> %s)" % (_scalar(rates[0]), _scalar(rates[-1])))
    if evidence["oom"]:
        improve.append("The service ran out of memory: review its memory limit and usage")
    if any(entry.get("mode") for entry in state.get("degraded_history") or []):
        improve.append("A degraded mode was needed: the recovery ladder did not restore full service")
    return {"went_well": good, "to_improve": improve}


def _due(sev, recovered):
    if sev not in DUE_AFTER:
        return None, DUE_RULE.get(sev, "no rule")
    if not recovered:
        return None, DUE_RULE[sev] + " (not recovered yet)"
    due = parse_ts(recovered) + datetime.timedelta(seconds=DUE_AFTER[sev])
    return format_ts(due), DUE_RULE[sev]


def build_model(state, owner=None, events_file=EVENTS_FILE):
    """The report as plain data, from a replayed record (see :func:`_record.replay`)."""
    events = [e for e in state.get("events") or []
              if not (e.get("stage") == OWN_STAGE and e.get("type") in ("stage", "failure"))]
    started = state.get("started_at")
    last_ts = max((e["ts"] for e in events if e.get("ts")), key=parse_ts, default=started)
    t0 = min([started] + [e["ts"] for e in events if e.get("ts")], key=parse_ts)
    recovered = state.get("resolved_at") or (state.get("closed_at") if state.get("status") == "closed" else None)
    end = recovered or last_ts
    fixed = _fixing_rung(state)
    stages = _stages(events)
    samples = _watch(events)
    evidence = _evidence(events)
    due, due_rule = _due(state.get("severity"), recovered)
    commander = state.get("commander")
    default_owner = owner or commander or "@incident-commander"
    items = _action_items(events)
    for item in items:
        item["owner"] = item["owner"] or default_owner
        item["priority"] = item["priority"] or state.get("severity")
    items.append({"item": "Complete the postmortem", "priority": state.get("severity"),
                  "description": "Fill the marked sections of this report, hold the review meeting and publish the notice",
                  "owner": default_owner, "deadline": fmt_time(due) if due else due_rule, "source": "PM-1"})
    if (state.get("sla_status") or {}).get("resolve") == "missed":
        items.append({"item": "Faster recovery", "priority": "P1", "owner": default_owner, "deadline": "1 week",
                      "description": "The resolve SLA was missed: review the recovery ladder and its windows",
                      "source": "sla"})
    if evidence["oom"]:
        items.append({"item": "Memory limit", "priority": "P1", "owner": default_owner, "deadline": "1 week",
                      "description": "Review the service's memory limit and usage; alert on memory above 60%",
                      "source": "evidence"})
    tried = [rung_label(r["rung"]) for r in state.get("rungs") or []]
    summary = {
        "id": state.get("id"), "service": state.get("service"), "severity": state.get("severity"),
        "status": state.get("status"), "outcome": state.get("outcome"), "impact": state.get("impact") or {},
        "commander": commander, "war_room": state.get("war_room"),
        "started_at": started, "detected_at": state.get("detected_at"), "responded_at": state.get("responded_at"),
        "resolved_at": state.get("resolved_at"), "closed_at": state.get("closed_at"), "recovered_at": recovered,
        "last_event_at": last_ts, "duration_s": elapsed(end, started), "ongoing": recovered is None,
        "time_to_respond_s": elapsed(state.get("responded_at"), started),
        "time_to_resolve_s": elapsed(state.get("resolved_at"), started),
        "mitigated_at": state.get("mitigated_at"),
        "times": incident_times(state),
        "clock": state.get("clock") or {},
        "sla": state.get("sla") or {}, "deadlines": state.get("deadlines") or {},
        "sla_status": state.get("sla_status") or {},
        "fixed_by": ({"rung": fixed["rung"], "label": rung_label(fixed["rung"]), "number": rung_info(fixed["rung"])[0],
                      "ts": fixed["ts"]} if fixed else None),
        "rungs_tried": [label for index, label in enumerate(tried) if index == 0 or tried[index - 1] != label],
        "degraded_mode": state.get("degraded_mode"),
        "event_count": len(events), "last_seq": max((e.get("seq") or 0 for e in events), default=0),
        "due": due, "due_rule": due_rule, "action_item_count": len(items),
    }
    return {
        "summary": summary, "t0": t0, "end": end, "last_ts": last_ts,
        "timeline": _timeline(events, started), "stages": stages, "watch": samples,
        "rca": _rca(state, evidence, fixed, events), "evidence": evidence,
        "lessons": _lessons(state, fixed, stages, samples, evidence),
        "action_items": items, "checklists": state.get("checklists") or {},
        "participants": list(dict.fromkeys(e["owner"] for e in events if e.get("owner"))),
        "agenda": [{"item": name, "minutes": minutes} for name, minutes in AGENDA],
        "events_file": events_file,
    }


# ---------------------------------------------------------------------------------------------
# Human-written parts
# ---------------------------------------------------------------------------------------------

def extract_human_blocks(text):
    """``{name: content}`` of the marked human sections in an existing report (first wins)."""
    blocks = {}
    for match in HUMAN_RE.finditer(text or ""):
        blocks.setdefault(match.group(1), match.group(2))
    return blocks


# ---------------------------------------------------------------------------------------------
# The view: what the templates show, as plain data (plugins/plugin_utils/templates/postmortem.*)
# ---------------------------------------------------------------------------------------------

def _sla_line(summary, kind):
    sla = summary["sla"].get(kind)
    if sla is None:
        return "none"
    at = summary["responded_at"] if kind == "respond" else summary["resolved_at"]
    status = summary["sla_status"].get(kind) or "open"
    return "%s: %s (deadline %s%s)" % (
        fmt_sla(sla), status.upper(), fmt_time(summary["deadlines"].get(kind)),
        (", done at %s, after %s" % (fmt_time(at), fmt_duration(elapsed(at, summary["started_at"])))) if at else "")


def _clock_text(clock):
    """Where the start came from: the alert (name, fingerprint), a given time, or the detection."""
    source = clock.get("started_from")
    if source == "alert":
        alert = clock.get("alert") or {}
        text = " (alert %s started%s)" % (alert.get("name") or "?",
                                          (", fingerprint %s" % alert["fingerprint"]) if alert.get("fingerprint") else "")
    else:
        text = {"given": " (given start)", "detection": " (no alert: the detection)"}.get(source, "")
    if clock.get("note"):
        text += "; " + clock["note"]
    return text


def _due_text(summary):
    return "%s (%s)" % (fmt_time(summary["due"]), summary["due_rule"]) if summary["due"] else summary["due_rule"]


def _summary_rows(model):
    """``{key, value, status}``: status (met, missed, open) only on the two SLA rows."""
    s = model["summary"]
    impact = ", ".join("%s: %s" % (k, _scalar(v)) for k, v in s["impact"].items()) or "not recorded"
    duration = fmt_duration(s["duration_s"]) + (" (ongoing: up to the last event)" if s["ongoing"] else "")
    rows = [
        ("Incident", s["id"]), ("Severity", s["severity"]), ("Service", s["service"]), ("Impact", impact),
        ("Status", "%s%s" % (s["status"], (", outcome " + s["outcome"]) if s["outcome"] else "")),
        ("Started", fmt_time(s["started_at"]) + _clock_text(s["clock"])), ("Detected", fmt_time(s["detected_at"])),
        ("Responded", fmt_time(s["responded_at"])), ("Mitigated", fmt_time(s["mitigated_at"])),
        ("Resolved", fmt_time(s["resolved_at"])),
        ("Duration", duration),
        ("Time to detect", fmt_duration(s["times"]["time_to_detect_s"])),
        ("Time to acknowledge (MTTA)", fmt_duration(s["times"]["mtta_s"])),
        ("Time to mitigate (MTTM)", fmt_duration(s["times"]["mttm_s"])),
        ("Time to resolve (MTTR)", fmt_duration(s["times"]["mttr_s"])),
        ("Respond SLA", _sla_line(s, "respond")), ("Resolve SLA", _sla_line(s, "resolve")),
        ("Fixed by", s["fixed_by"]["label"] if s["fixed_by"] else "not recorded"),
        ("Rungs tried", ", ".join(s["rungs_tried"]) or "none recorded"),
        ("Degraded mode", s["degraded_mode"] or "none active"),
        ("Incident commander", s["commander"] or "not recorded"), ("War room", s["war_room"] or "not recorded"),
        ("Postmortem due", _due_text(s)),
    ]
    status = {"Respond SLA": s["sla_status"].get("respond") or "open", "Resolve SLA": s["sla_status"].get("resolve") or "open"}
    return [{"key": key, "value": value, "status": status.get(key)} for key, value in rows]


def _stage_state(stage_bar):
    return "failed" if stage_bar["failed_tasks"] else ("done" if stage_bar["complete"] else "open")


def _mermaid_name(text):
    return re.sub(r"[^A-Za-z0-9 _.()+-]", " ", str(text)).strip() or "stage"


def _gantt(model):
    """The Mermaid ``gantt`` of the Markdown: stage bars, the incident, the SLA deadlines."""
    s = model["summary"]

    def day_time(ts):
        return parse_ts(ts).strftime("%Y-%m-%dT%H:%M:%S")

    return {
        "title": _mermaid_name("%s %s %s" % (s["severity"], s["service"], s["id"])),
        "stages": [{"name": _mermaid_name(b["name"]), "state": _stage_state(b), "start": day_time(b["start"]),
                    "secs": max(1, int(round(b["duration_s"] or 0)))} for b in model["stages"]],
        "incident": {"state": "open" if s["ongoing"] else "done", "start": day_time(s["started_at"]),
                     "secs": max(1, int(round(s["duration_s"] or 0)))},
        "deadlines": [{"kind": kind, "at": day_time(s["deadlines"][kind])}
                      for kind in ("respond", "resolve") if s["deadlines"].get(kind)],
    }


def _timeline_picture(model, t0, t1, with_ids, title, svg_id):
    """Geometry of a timeline SVG (viewBox 1100 wide): time axis, incident and stage bars, the
    recovery and the SLA deadlines (a line where inside the view, else a note under it)."""
    s = model["summary"]
    left, width, row_h, top = 170, 900, 26, 50
    bottom = top + (len(model["stages"]) + 1) * row_h + 8
    span = max(elapsed(t1, t0) or 0, 1.0)

    def x_of(ts):
        return left + width * max(0.0, min(1.0, (elapsed(ts, t0) or 0) / span))

    beyond = [k for k, d in s["deadlines"].items() if d and not 0 <= (elapsed(d, t0) or 0) <= span]
    y = top + 4
    x1, x2 = x_of(s["started_at"]), x_of(model["end"])
    picture = {
        "id": svg_id, "title": title, "with_ids": with_ids, "height": bottom + 40 + 13 * len(beyond),
        "left": left, "right": left + width, "top": top, "bottom": bottom,
        "ticks": [{"x": left + width * index / 5, "offset": fmt_offset(span * index / 5),
                   "clock": (parse_ts(t0) + datetime.timedelta(seconds=span * index / 5)).strftime("%H:%M:%S")}
                  for index in range(6)],
        "incident": {"y": y, "x": x1, "width": max(x2 - x1, 3), "recovered": not s["ongoing"],
                     "title": "incident %s: %s" % ("ongoing" if s["ongoing"] else "recovered", fmt_duration(s["duration_s"]))},
        "stages": [], "deadlines": [],
        "recovered_x": None if s["ongoing"] else x_of(s["recovered_at"]),
    }
    for stage_bar in model["stages"]:
        y += row_h
        bx1, bx2 = x_of(stage_bar["start"]), x_of(stage_bar["end"])
        picture["stages"].append({
            "name": stage_bar["name"], "state": _stage_state(stage_bar), "y": y, "x": bx1, "width": max(bx2 - bx1, 3),
            "duration": fmt_duration(stage_bar["duration_s"]), "label_inside": bx2 - bx1 > 60,
            "label_x": bx1 + 4 if bx2 - bx1 > 60 else max(bx2, bx1 + 3) + 4,
            "title": "%s: %s to %s (%s)" % (stage_bar["name"], fmt_time(stage_bar["start"]), fmt_time(stage_bar["end"]),
                                            fmt_duration(stage_bar["duration_s"]))})
    for index, kind in enumerate(("respond", "resolve")):
        deadline = s["deadlines"].get(kind)
        if not deadline:
            continue
        line = {"kind": kind, "at": deadline,
                "text": "%s deadline %s (%s)" % (kind, fmt_time(deadline)[11:], fmt_sla(s["sla"].get(kind)))}
        if 0 <= elapsed(deadline, t0) <= span:
            x = x_of(deadline)
            right = x > left + width / 2
            line.update(x=x, label_y=30 + 12 * index, anchor="end" if right else "start", label_x=x - 4 if right else x + 4)
        else:
            line.update(x=None, note_y=bottom + 44 + 13 * beyond.index(kind))
        picture["deadlines"].append(line)
    return picture


def _watch_chart(samples, key, title, unit, svg_id, threshold=None):
    """Geometry of a watch chart (viewBox 520 x 170): axes, three value ticks, the threshold, the samples."""
    points = [(s["ts"], s[key]) for s in samples if s[key] is not None]
    left, width, top, height = 60, 440, 26, 110
    chart = {"id": svg_id, "title": title, "unit": unit, "err": key == "error_rate", "left": left, "right": left + width,
             "top": top, "bottom": top + height, "points": []}
    if not points:
        return chart
    t0, t1 = points[0][0], points[-1][0]
    span = max(elapsed(t1, t0) or 0, 1.0)
    low, high = 0.0, max(v for _t, v in points)
    if threshold is not None and high >= threshold / 2:
        high = max(high, threshold)
    high = high * 1.15 if high > 0 else 1.0

    def ypos(value):
        return top + height - height * (value - low) / (high - low)

    chart.update(
        ticks=[{"y": ypos(low + (high - low) * frac), "label": "%.3g" % (low + (high - low) * frac)} for frac in (0, 0.5, 1)],
        threshold={"y": ypos(threshold), "label": "%s %s" % (_scalar(threshold), unit)}
        if threshold is not None and threshold <= high else None,
        points=[{"x": left + width * (elapsed(ts, t0) or 0) / span if len(points) > 1 else left + width / 2, "y": ypos(value),
                 "title": "%s: %s %s" % (fmt_time(ts), _scalar(value), unit)} for ts, value in points],
        first=fmt_time(t0)[11:], last=fmt_time(t1)[11:])
    return chart


def _checklists(model):
    out = []
    for name, title in (("p0_response", "P0 response checklist"), ("recovery", "Recovery checklist")):
        out.append({"name": name, "title": title, "rows": [{
            "key": item.get("key"), "done": bool(item.get("done")), "mark": item.get("mark"), "text": item.get("text"),
            "due": fmt_time(item.get("due")), "ticked": fmt_time(item.get("ts")), "on_time": item.get("on_time"),
            "value": _scalar(item["value"]) if item.get("value") is not None else "-", "owner": item.get("owner") or "-",
        } for item in model["checklists"].get(name) or []]})
    return out


def report_view(model, existing=""):
    """Everything the templates show: the model's facts as display text, the SVG geometry, and
    the human sections of ``existing`` (the current file) to carry over."""
    s = model["summary"]
    # the human sections of the current file, each non-empty one ending with a newline
    blocks = {name: content + "\n" if content and not content.endswith("\n") else content
              for name, content in extract_human_blocks(existing).items()}
    end = max(model["end"], model["last_ts"], key=parse_ts)
    sla_end = max([model["end"], model["last_ts"]] + [d for d in s["deadlines"].values() if d], key=parse_ts)
    return {
        "s": s, "title": "Postmortem: %s %s incident %s" % (s["severity"], s["service"], s["id"]),
        "events_file": model["events_file"], "due_text": _due_text(s), "last_time": fmt_time(model["last_ts"]),
        "summary_rows": _summary_rows(model),
        "timeline": [dict(row, who=row["owner"] + ((" (%s)" % row["host"]) if row["host"] else ""))
                     for row in model["timeline"]],
        "rca": model["rca"], "lessons": model["lessons"], "gantt": _gantt(model),
        "stages": [{"name": b["name"], "start": fmt_time(b["start"]), "end": fmt_time(b["end"]),
                    "duration": fmt_duration(b["duration_s"]), "failed_tasks": b["failed_tasks"]} for b in model["stages"]],
        "watch": [{"time": fmt_time(w["ts"]),
                   "latency_ms": _scalar(w["latency_ms"]) if w["latency_ms"] is not None else "-",
                   "error_rate": _scalar(w["error_rate"]) if w["error_rate"] is not None else "-"} for w in model["watch"]],
        "pictures": [_timeline_picture(model, model["t0"], sla_end, True,
                                       "Against the SLA: stages, respond and resolve deadlines", "timeline-sla"),
                     _timeline_picture(model, model["t0"], end, False, "Stages in detail", "timeline-detail")],
        "charts": [_watch_chart(model["watch"], "latency_ms", "Watch: latency", "ms", "watch-latency", threshold=500),
                   _watch_chart(model["watch"], "error_rate", "Watch: error rate", "ratio", "watch-error-rate")],
        "action_items": [{k: item.get(k) or "-" for k in ACTION_ITEM_KEYS}
                         for item in model["action_items"]],
        "checklists": _checklists(model),
        "commander": s["commander"] or "to be named", "participants": ", ".join(model["participants"]) or "-",
        "agenda": model["agenda"],
        "human_blocks": blocks, "prompts": HUMAN_PROMPTS, "orphans": [name for name in blocks if name not in HUMAN_PROMPTS],
    }


# ---------------------------------------------------------------------------------------------
# The module's work
# ---------------------------------------------------------------------------------------------

def load_state(incident_dir, incident_id, now=None):
    """Read and replay the record (``incident_dir`` absolute); fail clearly for a missing, unknown or corrupt one."""
    if not incident_id:
        raise PostmortemError("incident id is required: give the id of an incident in %s" % incident_dir,
                              incident_dir=incident_dir)
    try:
        validate_id(incident_id)
    except RecordError as exc:
        raise PostmortemError(exc.msg, id=incident_id, incident_dir=incident_dir) from None
    record_dir, events_path = record_paths(incident_dir, incident_id)
    try:
        events, corrupt = read_events(events_path)
    except FileNotFoundError:
        known = []
        if os.path.isdir(incident_dir):
            known = sorted(n for n in os.listdir(incident_dir) if os.path.isfile(os.path.join(incident_dir, n, EVENTS_FILE)))
        hint = ("known incidents there: %s" % ", ".join(known[-5:])) if known else (
            "no incidents there at all" if os.path.isdir(incident_dir) else "that directory does not exist")
        raise PostmortemError("unknown incident id %s: no record %s in %s (%s)" % (incident_id, EVENTS_FILE, incident_dir, hint),
                              id=incident_id, incident_dir=incident_dir, events_path=events_path) from None
    if corrupt:
        raise PostmortemError(
            "the record of incident %s is corrupt: %s has %d unreadable line(s) (%s); repair them before writing the "
            "postmortem" % (incident_id, events_path, len(corrupt),
                            "; ".join("line %s: %s" % (c["line"], c["error"]) for c in corrupt[:5])),
            id=incident_id, incident_dir=incident_dir, events_path=events_path, corrupt_lines=corrupt)
    try:
        state = replay(events, corrupt, now)
    except RecordError as exc:
        raise PostmortemError("the record of incident %s in %s cannot be read: %s" % (incident_id, incident_dir, exc.msg),
                              id=incident_id, incident_dir=incident_dir, events_path=events_path) from None
    return state, record_dir, events_path


def run(params, render, check_mode=False, now=None):
    """Render the requested formats, write those that changed; returns the module result.
    ``render(template_name, view)``: a template's text (``plugin_utils._render.render``)."""
    formats = list(params.get("formats") or FORMATS)
    bad = [f for f in formats if f not in FORMATS]
    if bad:
        raise PostmortemError("unknown format(s) %s: expected %s" % (", ".join(map(str, bad)), ", ".join(FORMATS)))
    try:
        now = parse_ts(params.get("now") or now or utc_now(), "now")
    except ValueError as exc:
        raise PostmortemError(str(exc)) from None
    incident_dir = os.path.abspath(os.path.expanduser(str(params.get("incident_dir") or "incidents")))
    state, record_dir, events_path = load_state(incident_dir, params.get("id"), now)
    model = build_model(state, owner=params.get("owner"))
    paths, written, diffs = {}, [], []
    for fmt in formats:
        path = os.path.join(record_dir, FILE_NAMES[fmt])
        paths[fmt] = path
        before = _files.read_text(path)
        after = render(FILE_NAMES[fmt] + ".j2", report_view(model, before or ""))
        if after == before:
            continue
        written.append(path)
        diffs.append({"before": before or "", "after": after, "before_header": path if before is not None else "/dev/null",
                      "after_header": path})
        if not check_mode:
            _files.write_atomic(path, after, mode=0o644)
    return {
        "changed": bool(written), "id": state.get("id"), "record_dir": record_dir, "events_path": events_path,
        "paths": paths, "written": written, "summary": model["summary"], "due": model["summary"]["due"],
        "due_rule": model["summary"]["due_rule"], "diff": diffs,
    }
