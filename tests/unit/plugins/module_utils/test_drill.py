# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""_drill: the outside watch and the score of a drill (DR-2), on made-up rounds and records."""
from __future__ import annotations

import datetime
import json

import pytest

from ansible_collections.sre.incident.plugins.module_utils import _drill

T0 = 1_800_000_000.0
HEALTH = "http://h/health"
RECS = ["http://h/api/recommendations/user-%d?limit=10" % i for i in (1, 2)]


def rounds(*oks, start=T0 - 1, step=0.5):
    return [dict(t=start + i * step, ok=ok, why=None if ok else "down", latency_ms=10.0) for i, ok in enumerate(oks)]


def ts(offset):
    return datetime.datetime.fromtimestamp(T0 + offset, datetime.timezone.utc).isoformat().replace("+00:00", "Z")


def record(opened=10.0, closed=60.0, severity="P0", outcome="resolved", extra=()):
    events = [dict(type="opened", stage="detect", ts=ts(opened),
                   data=dict(id="INC-1", severity=severity, sla=dict(respond=300, resolve=1800)))]
    events += list(extra)
    if closed is not None:
        events.append(dict(type="closed", stage="close", ts=ts(closed), data=dict(outcome=outcome)))
    return events


def probe(url, status=200, count=10, latency=20.0):
    body = {"recommendations": [{}] * count} if "recommendations" in url else {"status": "ok"}
    return dict(url=url, status=status, latency_ms=latency if status else None, body_json=body if status else None,
                error=None if status else "timed out")


def test_round_verdict_health_items_and_median_latency():
    ok = _drill.round_verdict([probe(HEALTH)] + [probe(u) for u in RECS], HEALTH, 6, 500)
    assert ok == dict(ok=True, why=None, latency_ms=20.0)
    bad = _drill.round_verdict([probe(HEALTH, 503), probe(RECS[0], count=0), probe(RECS[1], status=None)], HEALTH, 6, 500)
    assert not bad["ok"] and bad["why"] == "health 503; user-1: 0 item(s); user-2: timed out"
    # one slow answer on a busy machine is not judged, every answer slow (an injected delay) is
    assert _drill.round_verdict([probe(HEALTH), probe(RECS[0], latency=900), probe(RECS[1]), probe(RECS[1])], HEALTH, 6, 500)["ok"]
    slow = _drill.round_verdict([probe(HEALTH)] + [probe(u, latency=820) for u in RECS], HEALTH, 6, 500)
    assert not slow["ok"] and "median answer 820 ms > 500 ms" in slow["why"]


def test_watch_stops_at_the_stop_file_once_settled():
    clock = {"now": T0}
    answers = iter([False, False, True, False, True, True, True])

    def probe_many(urls, **kwargs):
        good = next(answers)
        clock["now"] += 0.1
        return dict(probes=[probe(u, status=200 if good else 503) for u in urls])

    def sleep(seconds):
        clock["now"] += seconds

    stop = {"at": T0 + 1.2}
    out = _drill.watch(HEALTH, RECS, "/stop", interval=0.5, max_duration=60, clock=lambda: clock["now"], sleep=sleep,
                       probe_many=probe_many, exists=lambda path: clock["now"] >= stop["at"])
    # stop file seen after round 3 (a bad one): the watch goes on until two good rounds in a row
    assert out["stopped_by"] == "stop_file" and [s["ok"] for s in out["samples"]] == [False, False, True, False, True, True]
    assert [round(s["t"] - T0, 1) for s in out["samples"]] == [0.0, 0.5, 1.0, 1.5, 2.0, 2.5]


def test_watch_gives_up_at_max_duration_and_checks_input():
    clock = {"now": T0}

    def sleep(seconds):
        clock["now"] += seconds

    out = _drill.watch(HEALTH, RECS, "/stop", interval=1, max_duration=3, clock=lambda: clock["now"], sleep=sleep,
                       probe_many=lambda urls, **kw: dict(probes=[probe(u) for u in urls]), exists=lambda p: False)
    assert out["stopped_by"] == "max_duration" and len(out["samples"]) == 4
    with pytest.raises(ValueError):
        _drill.watch("ftp://x", RECS, "/stop")
    with pytest.raises(ValueError):
        _drill.watch(HEALTH, RECS, "/stop", interval=0)


def test_outage_ignores_blips_and_needs_the_last_round_good():
    seen = _drill.outage(rounds(True, True, False, False, False, True, False, True, True), T0)
    assert seen["seen"] and seen["first_bad"] == T0 and seen["back_at"] == T0 + 1.5 and seen["ends_ok"]
    blip = _drill.outage(rounds(True, True, True, False, False, True), T0)
    assert not blip["seen"] and blip["back_at"] is None and blip["bad_rounds"] == 2
    still = _drill.outage(rounds(True, True, False, False, False, False), T0)
    assert still["seen"] and still["back_at"] is None and not still["ends_ok"]
    # a last bad round counts even alone: users were not served when the watch stopped
    assert _drill.outage(rounds(True, True, True, True, False), T0)["seen"]


def test_score_a_recovered_p0():
    events = record(extra=[dict(type="event", stage="recover", ts=ts(30), data=dict(rung="restart_service", result="fixed"))])
    line = _drill.score(T0, rounds(True, True, False, False, False, True, True), events, fault_cleared=True, degraded=False,
                        playbook="p0_recover.yml")
    # detected by the outside watch (its first failed round), not by the record the response opened
    assert line["detect_s"] == 0.0 and line["respond_s"] == 10.0 and line["recover_s"] == 1.5 and line["result"] == "recovered"
    assert line["by"] == "rung restart_service" and line["sla"] == "met" and line["path"] == "p0_recover.yml"
    assert line["user_visible"] and line["severity"] == "P0" and line["measured_severity"] == "P0" and line["incident_id"] == "INC-1"


def test_detection_is_the_watchs_and_can_fail():
    """The watch decides detection: a record opened while users never saw anything is no detection by it,
    and users failing later than the respond SLA misses the SLA whatever the record says."""
    quiet = rounds(True, True, True, True, True, True)
    line = _drill.score(T0, quiet, record(), fault_cleared=True, degraded=False, playbook="p0_recover.yml")
    assert line["detect_s"] is None and line["respond_s"] == 10.0 and not line["user_visible"]
    late = rounds(*([True] * 700 + [False] * 4 + [True, True]))
    missed = _drill.score(T0, late, record(closed=900.0), fault_cleared=True, degraded=False, playbook="p0_recover.yml")
    assert missed["detect_s"] == 349.0 and missed["result"] == "recovered" and missed["sla"] == "missed"


def test_score_degraded_after_triage_and_not_recovered():
    extra = [dict(type="event", stage="triage", ts=ts(9), data=dict(triage=dict(severity="P0"))),
             dict(type="event", stage="degrade", ts=ts(50), data=dict(degraded_mode="static", option="B"))]
    line = _drill.score(T0, rounds(True, True, False, False, False, True), record(extra=extra), fault_cleared=False, degraded=True,
                        playbook="triage.yml")
    assert line["result"] == "degraded" and line["by"] == "degraded B (static)" and line["path"] == "triage.yml -> p0_recover"
    assert line["measured_severity"] == "P0"
    stuck = _drill.score(T0, rounds(True, True, False, False, False), record(outcome="escalated"), False, False, "p0_recover.yml")
    assert stuck["result"] == "not recovered" and stuck["recover_s"] is None and stuck["sla"] == "missed"


def test_score_a_fault_users_do_not_see_uses_the_record_and_the_fault():
    extra = [dict(type="event", stage="triage", ts=ts(9), data=dict(triage=dict(severity="P1"))),
             dict(type="event", stage="mitigate", ts=ts(40), data=dict(fixes=["logs cleaned"], p1_cases_detected=["disk_low"]))]
    events = record(closed=45.0, severity="P1", extra=extra)
    events[0]["data"]["sla"] = dict(respond=900, resolve=7200)
    quiet = rounds(True, True, True, True, True, True)
    fixed = _drill.score(T0, quiet, events, fault_cleared=True, degraded=False, playbook="triage.yml")
    assert fixed["result"] == "recovered" and fixed["recover_s"] == 45.0 and fixed["by"] == "P1 quick fixes: logs cleaned"
    assert fixed["sla_resolve_s"] == 7200 and fixed["p1_cases"] == ["disk_low"] and not fixed["user_visible"]
    assert fixed["detect_s"] is None and fixed["sla"] == "met"
    assert _drill.score(T0, quiet, events, fault_cleared=False, degraded=False, playbook="x")["result"] == "not recovered"


def test_a_p2_is_answered_by_its_report():
    extra = [dict(type="event", stage="triage", ts=ts(9), data=dict(triage=dict(severity="P2"))),
             dict(type="event", stage="triage", ts=ts(20), data=dict(report=dict(path="/x/backlog/p2.md")))]
    events = record(closed=None, severity="P2", extra=extra)
    events[0]["data"]["sla"] = dict(respond=86400, resolve=604800)
    line = _drill.score(T0, rounds(True, True, True, True), events, fault_cleared=False, degraded=False, playbook="triage.yml")
    assert line["result"] == "reported" and line["by"] == "P2 problem report" and line["sla"] == "met"
    assert line["path"] == "triage.yml -> p2_report" and line["measured_severity"] == "P2" and line["recover_s"] is None
    # the fault gone by itself (a refilled cache) does not change that the report answered it
    assert _drill.score(T0, rounds(True, True), events, True, False, "triage.yml")["result"] == "reported"
    # without the report event it is not answered
    assert _drill.score(T0, rounds(True, True), events[:2], False, False, "triage.yml")["result"] == "not recovered"


def test_score_without_a_record():
    seen = _drill.score(T0, rounds(True, False, False, False), [], True, False, "triage.yml", sla=dict(respond=1, resolve=2))
    assert seen["result"] == "not detected" and seen["respond_s"] is None and seen["sla"] == "missed"
    assert seen["detect_s"] == 0.0 and seen["sla_respond_s"] == 1
    nothing = _drill.score(T0, rounds(True, True, True, True), [], True, False, "triage.yml")
    assert nothing["result"] == "no incident" and nothing["sla"] == "n/a" and nothing["measured_severity"] is None


def test_score_of_a_drill_stopped_before_the_injection_or_not_applicable():
    line = _drill.score(None, [], [], False, False, "p0_recover.yml")
    assert line["result"] == "not run" and line["sla"] == "missed" and line["detect_s"] is None and line["sla_resolve_s"] == 1800
    skipped = _drill.score(None, [], [], False, False, "triage.yml", applicable=False)
    assert skipped["result"] == "not applicable" and skipped["sla"] == "n/a"


def test_parse_events_and_timestamps():
    text = "\n".join([json.dumps(dict(type="opened")), "not json", "[1]", ""])
    assert _drill.parse_events(text) == [dict(type="opened")]
    assert _drill.epoch("2026-01-01T00:00:00.500Z") == _drill.epoch("2026-01-01T01:00:00.500+01:00")
    assert _drill.epoch(None) is None
