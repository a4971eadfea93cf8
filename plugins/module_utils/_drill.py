# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Drill measurements (SPEC DR-2): an outside watch of the service, and the score of one drill.

The drill does not take the severity playbook's word for anything. It reads:

* the **watch** (:func:`watch`, module ``sre.incident.drill_watch``): from before the injection
  until the severity playbook has ended, a round every ``interval`` seconds of what users see
  (through the edge when there is one): ``/health`` answers 200, every sample user gets at least
  ``min_recommendations`` items, the median answer is not slower than ``latency_ms``;
* the **incident record** (``events.jsonl`` of ``sre.incident.record``): when the incident was
  opened (the response confirmed it), its severity, which rung, quick fix or degraded mode acted,
  and how it was closed;
* after the severity playbook, itself: whether the fault was still injected (the rollback's own
  observation) and whether a degraded mode was on (leaving it changed something).

:func:`score` turns those into the drill's line; its rules are written once, for operators, in
``plugins/filter/drill_score.yml`` (``ansible-doc -t filter sre.incident.drill_score``).
"""

from __future__ import annotations

import json
import os
import time

from ansible_collections.sre.incident.plugins.module_utils import _http, _time

P0_SLA = dict(respond=300, resolve=1800)


# --------------------------------------------------------------------------- the watch

def round_verdict(probes, health_url, min_recommendations, latency_ms):
    """One watch round (``probes`` from :func:`_http.probe_many`): dict(ok, why, latency_ms).

    ``latency_ms`` of the result is the median of the round's recommendation answers: an injected
    delay slows every answer, a busy machine only some, so the median is what is judged.
    """
    why = []
    latencies = []
    for p in probes:
        if p["url"] == health_url:
            if p.get("status") != 200:
                why.append("health %s" % (p.get("status") or p.get("error") or "no answer"))
            continue
        user = p["url"].rsplit("/", 1)[-1].split("?")[0]
        body = p.get("body_json") if isinstance(p.get("body_json"), dict) else {}
        count = len(body.get("recommendations") or [])
        if p.get("status") != 200:
            why.append("%s: %s" % (user, p.get("status") or p.get("error") or "no answer"))
        elif count < min_recommendations:
            why.append("%s: %d item(s)" % (user, count))
        if p.get("latency_ms") is not None:
            latencies.append(p["latency_ms"])
    median = _http.percentile(latencies, 50)
    if median is not None and latency_ms and median > latency_ms:
        why.append("median answer %.0f ms > %s ms" % (median, latency_ms))
    return dict(ok=not why, why="; ".join(why) or None, latency_ms=None if median is None else round(median, 1))


def watch(health_url, recommendation_urls, stop_file, interval=0.5, timeout=2.0, max_duration=1800,
          min_recommendations=6, latency_ms=500, settle_rounds=2, settle_timeout=10.0, clock=time.time,
          sleep=time.sleep, probe_many=_http.probe_many, exists=os.path.exists):
    """Probe one round every ``interval`` s until ``stop_file`` exists or ``max_duration`` s passed.

    Then on until the last ``settle_rounds`` rounds were good or ``settle_timeout`` more seconds passed,
    so that a blip at the very end is told from users not being served. Returns dict(samples=[{t (UNIX
    time the round started), ok, why, latency_ms}], stopped_by: 'stop_file'|'max_duration').
    """
    if float(interval) <= 0 or float(timeout) <= 0 or float(max_duration) <= 0 or float(settle_timeout) < 0:
        raise ValueError("interval, timeout and max_duration must be > 0 seconds, settle_timeout >= 0")
    urls = [health_url] + list(recommendation_urls)
    for url in urls:
        _http.validate_url(url)
    samples = []
    end = clock() + float(max_duration)
    stop_seen = None
    while True:
        started = clock()
        result = probe_many(urls, count=1, interval=0, timeout=float(timeout))
        verdict = round_verdict(result["probes"], health_url, int(min_recommendations), latency_ms)
        samples.append(dict(t=round(started, 3), **verdict))
        if stop_seen is None and exists(stop_file):
            stop_seen = clock()
        if stop_seen is not None:
            settled = len(samples) >= settle_rounds and all(x["ok"] for x in samples[-int(settle_rounds):])
            if settled or clock() - stop_seen >= float(settle_timeout):
                return dict(samples=samples, stopped_by="stop_file")
        if clock() >= end:
            return dict(samples=samples, stopped_by="max_duration")
        sleep(max(0.0, float(interval) - (clock() - started)))


# --------------------------------------------------------------------------- the score

def epoch(value):
    """:func:`_time.epoch` of a record's timestamp ('...Z' or with an offset); None stays None."""
    if value in (None, ""):
        return None
    return _time.epoch(str(value))


def parse_events(text):
    """The events of an ``events.jsonl`` text; lines that are not JSON objects are skipped."""
    events = []
    for line in (text or "").splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if isinstance(event, dict):
            events.append(event)
    return events


def outage(samples, since, blip=2):
    """What the watch saw from ``since`` on: dict(seen, first_bad, back_at, ends_ok, bad_rounds, rounds, why).

    A blip is not an outage (as for the alarm, SPEC P0-1): users count as not served only where
    more than ``blip`` rounds in a row are bad, or where the last round is bad. ``back_at`` is the
    first good round after the last such stretch; None when nothing was seen or when the last
    round is bad (users were not served when the watch stopped).
    """
    after = [s for s in samples if s["t"] >= since]
    stretches, run = [], []
    for sample in after:
        if sample["ok"]:
            if len(run) > blip:
                stretches.append(run)
            run = []
        else:
            run.append(sample)
    ends_ok = bool(after) and after[-1]["ok"]
    if run:
        stretches.append(run)
    bad = [s for stretch in stretches for s in stretch]
    info = dict(seen=bool(stretches), first_bad=bad[0]["t"] if bad else None, back_at=None, ends_ok=ends_ok,
                bad_rounds=sum(1 for s in after if not s["ok"]), rounds=len(after), why=bad[0]["why"] if bad else None)
    if stretches and ends_ok:
        info["back_at"] = next(s["t"] for s in after if s["t"] > stretches[-1][-1]["t"])
    return info


def _record_facts(events):
    steps = [(e.get("stage"), e.get("data") or {}) for e in events]
    opened = next((e for e in events if e.get("type") == "opened"), {})
    closed = ([e for e in events if e.get("type") == "closed"] or [{}])[-1]
    triage = next((d["triage"] for stage, d in steps if stage == "triage" and d.get("triage")), {})
    recover = [d for stage, d in steps if stage == "recover"]
    fixed_rungs = [d.get("rung") for d in recover if d.get("result") == "fixed"]
    modes = [d for stage, d in steps if stage == "degrade" and d.get("degraded_mode")]
    mitigate = [d for stage, d in steps if stage == "mitigate"]
    data = opened.get("data") or {}
    return dict(
        opened_at=epoch(opened.get("ts")),
        severity=data.get("severity"),
        sla=data.get("sla") or None,
        incident_id=data.get("id"),
        triaged=triage.get("severity"),
        reported=any(stage == "triage" and d.get("report") for stage, d in steps),
        closed_at=epoch(closed.get("ts")),
        outcome=(closed.get("data") or {}).get("outcome"),
        fixed_rung=fixed_rungs[-1] if fixed_rungs else None,
        rungs_tried=[d.get("rung") for d in recover if d.get("result") in ("fixed", "not_fixed")],
        mode=modes[-1] if modes else None,
        fixes=[f for d in mitigate for f in (d.get("fixes") or [])],
        p1_cases=[c for d in mitigate for c in (d.get("p1_cases_detected") or [])],
    )


def _seconds(at, since):
    return None if at is None else round(at - since, 1)


def _not_scored(result, playbook, sla):
    sla = sla or P0_SLA
    return dict(detect_s=None, respond_s=None, recover_s=None, result=result, by="-", path=playbook, severity=None,
                measured_severity=None, incident_id=None, outcome=None, rungs_tried=[], p1_cases=[],
                sla="n/a" if result == "not applicable" else "missed", sla_respond_s=sla["respond"], sla_resolve_s=sla["resolve"],
                user_visible=False, outage_first_s=None, outage_why=None, watch_rounds=0, watch_bad_rounds=0, watch_ends_ok=False)


def score(injected_at, samples, events, fault_cleared, degraded, playbook, sla=None, applicable=True):
    """Score one drill of one fault on one host; see ``drill_score.yml`` for the rules.

    ``injected_at``: UNIX time of the injection (None: nothing was injected, ``not run``); ``events``:
    the incident record's (empty when none was opened); ``fault_cleared``: the fault was no longer
    injected when the severity playbook ended; ``degraded``: a degraded mode was on then; ``sla``: the
    SLA when the record has none; ``applicable``: the fault can act on this stack (else ``not applicable``).
    """
    if not applicable:
        return _not_scored("not applicable", playbook, sla)
    if injected_at in (None, "", "None"):
        # the drill stopped before the fault was injected (steady state not reached, a refusal, ...)
        return _not_scored("not run", playbook, sla)
    injected_at = float(injected_at)
    rec = _record_facts(events or [])
    seen = outage(samples or [], injected_at)
    sla = rec["sla"] or sla or P0_SLA
    detect_s = _seconds(seen["first_bad"], injected_at) if seen["seen"] else None
    respond_s = _seconds(rec["opened_at"], injected_at)

    if rec["opened_at"] is None:
        result, back_at = ("not detected" if seen["seen"] else "no incident"), None
    elif rec["severity"] == "P2" and rec["reported"] and not degraded:
        # a P2 is answered by its problem report; fixing it is a human's (within the P2 SLA), whether or not
        # the fault is still there (a cache refills by itself)
        result, back_at = "reported", None
    elif seen["seen"]:
        # users saw the fault: they are served again when the watch says so, and stay served
        back_at = seen["back_at"]
        result = "not recovered" if back_at is None else ("degraded" if degraded else "recovered")
    else:
        # users did not see it (disk, connections near the limit): fixed when the fault is gone,
        # at the time the record was closed
        back_at = rec["closed_at"] if fault_cleared or degraded else None
        result = "not recovered" if back_at is None else ("degraded" if degraded else "recovered")
    recover_s = _seconds(back_at, injected_at)

    if rec["mode"] and degraded:
        by = "degraded %s (%s)" % (rec["mode"].get("option") or "?", rec["mode"].get("degraded_mode"))
    elif rec["fixed_rung"]:
        by = "rung %s" % rec["fixed_rung"]
    elif rec["fixes"]:
        by = "P1 quick fixes: %s" % "; ".join(rec["fixes"])
    elif result == "reported":
        by = "P2 problem report"
    elif rec["opened_at"] is None:
        by = "-"
    else:
        by = "nothing recorded (outcome %s)" % (rec["outcome"] or "open")
    path = playbook
    if rec["triaged"]:
        path = "%s -> %s" % (playbook, {"P0": "p0_recover", "P1": "p1_mitigate", "P2": "p2_report"}.get(rec["triaged"], rec["triaged"]))
    respond_ok = respond_s is not None and respond_s <= float(sla["respond"]) and (detect_s is None or detect_s <= float(sla["respond"]))
    if result == "no incident":
        verdict = "n/a"
    elif result == "reported":
        verdict = "met" if respond_ok else "missed"
    else:
        verdict = "met" if (respond_ok and recover_s is not None and result in ("recovered", "degraded")
                            and recover_s <= float(sla["resolve"])) else "missed"
    return dict(
        detect_s=detect_s, respond_s=respond_s, recover_s=recover_s, result=result, by=by, path=path,
        severity=rec["severity"], measured_severity=rec["triaged"] or rec["severity"], incident_id=rec["incident_id"],
        outcome=rec["outcome"], rungs_tried=rec["rungs_tried"], p1_cases=rec["p1_cases"],
        sla=verdict, sla_respond_s=sla["respond"], sla_resolve_s=sla["resolve"],
        user_visible=seen["seen"], outage_first_s=_seconds(seen["first_bad"], injected_at),
        outage_why=seen["why"], watch_rounds=seen["rounds"], watch_bad_rounds=seen["bad_rounds"],
        watch_ends_ok=seen["ends_ok"],
    )
