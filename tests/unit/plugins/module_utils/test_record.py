# -*- coding: utf-8 -*-
# Copyright (c) sre.incident contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The incident record: append, replay, torn lines, concurrent writers, SLA, checklists, ids."""

from __future__ import annotations

import json
import multiprocessing
import os
import re

import pytest

from ansible_collections.sre.incident.plugins.module_utils import _record as rec

T0 = "2026-11-27T01:30:45.000Z"


def _open(tmp_path, severity="P0", **extra):
    params = dict(state="opened", incident_dir=str(tmp_path), service="recommendation-service",
                  severity=severity, detected_at=T0)
    params.update(extra)
    return rec.run(params, now=T0)


def _do(tmp_path, incident_id, now, **params):
    return rec.run(dict(params, incident_dir=str(tmp_path), id=incident_id), now=now)


def _lines(path):
    with open(path, "rb") as handle:
        return handle.read().split(b"\n")


# -- ids ------------------------------------------------------------------------------------------

def test_generate_id_shape_and_uniqueness():
    ids = {rec.generate_id("P0", "Recommendation Service", "2026-11-27T01:30:45Z") for _i in range(50)}
    assert len(ids) > 40
    for incident_id in ids:
        assert re.match(r"^INC-20261127-013045-p0-recommendation-service-[0-9a-f]{4}$", incident_id)
    assert rec.generate_id("p1", "x", T0, suffix="ab") == "INC-20261127-013045-p1-x-ab"


@pytest.mark.parametrize("bad", ["../etc", "a/b", "", ".hidden", "x y", "ok\n", "a" * 200])
def test_bad_id_is_named(tmp_path, bad):
    with pytest.raises(rec.RecordError) as info:
        rec.run({"state": "present", "incident_dir": str(tmp_path), "id": bad})
    assert repr(bad) in info.value.msg
    assert list(tmp_path.iterdir()) == []


# -- append and replay -------------------------------------------------------------------------------

def test_open_writes_opened_event_with_incident_and_deadlines(tmp_path):
    res = _open(tmp_path, commander="@ic", war_room="https://meet/x", oncall={"handle": "@oncall-day"},
                impact={"users_affected": "all"})
    assert res["changed"] is True
    events = [json.loads(line) for line in _lines(res["events_path"]) if line]
    assert len(events) == 1
    first = events[0]
    assert list(first)[:7] == ["seq", "ts", "type", "stage", "text", "owner", "data"]
    assert first["type"] == "opened" and first["seq"] == 1 and first["ts"] == T0
    data = first["data"]
    assert data["deadlines"] == {"respond": "2026-11-27T01:35:45.000Z", "resolve": "2026-11-27T02:00:45.000Z"}
    assert data["commander"] == "@ic" and data["oncall"] == {"handle": "@oncall-day"}
    state = res["incident"]
    assert state["status"] == "open" and state["severity"] == "P0"
    assert state["sla_status"] == {"respond": "open", "resolve": "open"}
    assert state["time_left"] == {"respond": 300, "resolve": 1800}
    assert res["stats"] == {"incident_id": res["id"], "incident_dir": str(tmp_path),
                            "record_dir": res["record_dir"], "severity": "P0"}
    assert res["sre_incident_record"]["id"] == res["id"]
    assert res["sre_incident_record"]["record_dir"] == os.path.join(str(tmp_path), res["id"])


def test_open_with_existing_id_is_idempotent(tmp_path):
    first = _open(tmp_path, id="INC-fixed")
    again = _open(tmp_path, id="INC-fixed", severity="P2")
    assert first["changed"] is True and again["changed"] is False
    assert again["incident"]["severity"] == "P0"
    assert len([x for x in _lines(first["events_path"]) if x]) == 1


def test_replay_rungs_degraded_mode_and_reclassify(tmp_path):
    inc = _open(tmp_path)["id"]
    _do(tmp_path, inc, "2026-11-27T01:31:00Z", state="event", stage="recover", text="restart",
        data={"rung": 1, "result": "failed"}, host="web1")
    _do(tmp_path, inc, "2026-11-27T01:32:00Z", state="event", stage="recover", text="restart deps",
        data={"rung": 2, "result": "failed"})
    _do(tmp_path, inc, "2026-11-27T01:33:00Z", state="event", stage="degrade", text="static",
        data={"degraded_mode": "B"})
    res = _do(tmp_path, inc, "2026-11-27T01:34:00Z", state="event", severity="P1", text="only some users")
    state = res["incident"]
    assert [r["rung"] for r in state["rungs"]] == [1, 2] and state["last_rung"] == 2
    assert state["rungs"][0]["host"] == "web1" and state["rungs"][0]["result"] == "failed"
    assert state["degraded_mode"] == "B"
    assert state["severity"] == "P1"
    assert state["deadlines"] == {"respond": "2026-11-27T01:45:45.000Z", "resolve": "2026-11-27T03:30:45.000Z"}
    assert [h["severity"] for h in state["severity_history"]] == ["P0", "P1"]
    res = _do(tmp_path, inc, "2026-11-27T01:35:00Z", state="event", text="back to normal", data={"degraded_mode": None})
    assert res["incident"]["degraded_mode"] is None
    assert [e["seq"] for e in res["incident"]["events"]] == [1, 2, 3, 4, 5, 6]


def test_event_cannot_forge_reserved_types(tmp_path):
    inc = _open(tmp_path)["id"]
    with pytest.raises(rec.RecordError, match="'closed'"):
        _do(tmp_path, inc, T0, state="event", event_type="closed", text="x")
    with pytest.raises(rec.RecordError, match="Bad Type"):
        _do(tmp_path, inc, T0, state="event", event_type="Bad Type", text="x")


# -- stages ---------------------------------------------------------------------------------------

def test_stage_starts_a_stage_and_the_detection_keeps_its_own_start(tmp_path):
    # the detection ran before the record: the record opened 20 s after it, and says when it started
    opened = rec.run(dict(state="opened", incident_dir=str(tmp_path), service="recommendation-service", severity="P0",
                          detected_at=T0), now="2026-11-27T01:31:05Z")
    inc = opened["id"]
    res = _do(tmp_path, inc, "2026-11-27T01:31:05.5Z", state="stage", stage="detect", done_at=T0)
    event = res["appended"][0]
    assert (event["type"], event["stage"], event["text"]) == ("stage", "detect", "stage detect started")
    assert event["data"] == {"done_at": T0} and event["ts"] == "2026-11-27T01:31:05.500Z" and res["changed"]
    _do(tmp_path, inc, "2026-11-27T01:31:07Z", state="stage", stage="recover")
    again = _do(tmp_path, inc, "2026-11-27T01:31:08Z", state="stage", stage="recover")
    assert again["changed"] and again["incident"]["event_count"] == 4     # a stage that starts again is news
    # a time before the detection counts as the detection
    early = _do(tmp_path, inc, "2026-11-27T01:31:09Z", state="stage", stage="verify", done_at="2026-11-27T01:00:00Z")
    assert early["appended"][0]["data"]["done_at"] == T0


def test_stage_needs_its_name_and_cannot_be_forged(tmp_path):
    inc = _open(tmp_path)["id"]
    with pytest.raises(rec.RecordError, match="stage is required"):
        _do(tmp_path, inc, T0, state="stage")
    with pytest.raises(rec.RecordError, match="'stage' is written by state=stage only"):
        _do(tmp_path, inc, T0, state="event", event_type="stage", text="stage recover started")
    with pytest.raises(rec.RecordError, match="done_at"):
        _do(tmp_path, inc, T0, state="stage", stage="recover", done_at="soon")
    assert _do(tmp_path, inc, T0, state="present")["incident"]["event_count"] == 1


def test_stage_without_an_incident_records_nothing(tmp_path):
    res = rec.run({"state": "stage", "stage": "diagnose", "incident_dir": str(tmp_path)})
    assert res["changed"] is False and res["id"] is None and res["sre_incident_record"] is None
    assert "stage diagnose not recorded" in res["msg"] and list(tmp_path.iterdir()) == []


def _event(seq, second, etype, stage=None, **data):
    return {"seq": seq, "ts": "2026-11-27T01:31:%02d.000Z" % second, "type": etype, "stage": stage, "data": data}


def test_stages_last_until_the_next_one_and_count_their_failures():
    events = [_event(1, 0, "opened", "detect"), _event(2, 1, "stage", "detect", done_at=T0),
              _event(3, 5, "stage", "recover"), _event(4, 6, "failure", "recover"), _event(5, 7, "failure", None),
              _event(6, 9, "stage", "verify"), _event(7, 12, "event", "verify")]
    bars = rec.stages(events)
    assert [(b["name"], b["start"], b["end"], b["duration_s"], b["failed_tasks"], b["complete"]) for b in bars] == [
        ("detect", T0, "2026-11-27T01:31:05.000Z", 20.0, 0, True),
        ("recover", "2026-11-27T01:31:05.000Z", "2026-11-27T01:31:09.000Z", 4.0, 1, True),
        # the last stage runs until the last event, and is complete only once the record is closed
        ("verify", "2026-11-27T01:31:09.000Z", "2026-11-27T01:31:12.000Z", 3.0, 0, False)]
    closed = rec.stages(events + [_event(8, 14, "closed", "close", outcome="resolved")])
    assert (closed[-1]["end"], closed[-1]["complete"]) == ("2026-11-27T01:31:14.000Z", True)


def test_stages_of_an_earlier_release_end_where_their_end_event_says():
    # the timeline callback of releases before this one wrote a start and an end event per stage
    events = [_event(1, 0, "opened", "detect"), _event(2, 1, "stage", "detect", phase="start"),
              _event(3, 4, "stage", "detect", phase="end", duration_s=3, failed_tasks=2), _event(4, 4, "tick"),
              _event(5, 6, "stage", "recover", phase="start"), _event(6, 8, "stage", "recover", phase="end")]
    assert [(b["name"], b["duration_s"], b["failed_tasks"], b["complete"]) for b in rec.stages(events)] == [
        ("detect", 3.0, 2, True), ("recover", 2.0, 0, True)]
    # a stage that never ended (the playbook died) lasts until the last event, and is not complete
    unended = events + [_event(7, 9, "stage", "verify", phase="start"), _event(8, 15, "failure", "verify"),
                        _event(9, 20, "closed", "close")]
    assert [(b["name"], b["duration_s"], b["failed_tasks"], b["complete"]) for b in rec.stages(unended)][-1] == (
        "verify", 11.0, 0, False)
    assert rec.stages([_event(1, 0, "opened", "detect"), _event(2, 3, "tick")]) == []


# -- corrupt lines ------------------------------------------------------------------------------

def test_torn_last_line_and_garbage_middle_line_are_reported(tmp_path):
    res = _open(tmp_path)
    inc, path = res["id"], res["events_path"]
    _do(tmp_path, inc, T0, state="event", text="second")
    with open(path, "ab") as handle:
        handle.write(b"this is not json\n")
    _do(tmp_path, inc, T0, state="event", text="fourth")
    with open(path, "ab") as handle:
        handle.write(b'{"seq": 5, "ts": "2026-11-27T01:3')  # writer killed mid-line
    state = _do(tmp_path, inc, T0, state="present")["incident"]
    assert [c["line"] for c in state["corrupt_lines"]] == [3, 5]
    assert "not valid JSON" in state["corrupt_lines"][0]["error"]
    assert "torn last line" in state["corrupt_lines"][1]["error"]
    assert state["corrupt_lines"][0]["text"] == "this is not json"
    assert state["event_count"] == 3

    # the next append starts on a fresh line; the torn one stays reported, nothing is lost
    res = _do(tmp_path, inc, T0, state="event", text="after the tear")
    assert res["appended"][0]["seq"] == 6
    assert [c["line"] for c in res["corrupt_lines"]] == [3, 5]
    assert res["incident"]["events"][-1]["text"] == "after the tear"
    assert json.loads(_lines(path)[5])["seq"] == 6


def test_parse_lines_non_event_objects():
    events, corrupt = rec.parse_lines(b'{"ts": "x", "type": "note"}\n[1, 2]\n\n{"no": "ts"}\n')
    assert len(events) == 1
    assert [(c["line"], c["error"]) for c in corrupt] == [
        (2, "not an event (needs ts and type)"), (3, "empty line"), (4, "not an event (needs ts and type)")]


# -- concurrent writers -------------------------------------------------------------------------

def _writer(path, worker, count, barrier):
    barrier.wait()
    for index in range(count):
        event = rec.make_event("note", text="w%d-%d %s" % (worker, index, "x" * 300), owner="w%d" % worker,
                               data={"worker": worker, "index": index})
        rec.transact(path, lambda events, corrupt, event=event: [event])


def test_concurrent_appends_from_processes_stay_intact(tmp_path):
    res = _open(tmp_path)
    path = res["events_path"]
    workers, count = 6, 40
    ctx = multiprocessing.get_context("fork")
    barrier = ctx.Barrier(workers)
    procs = [ctx.Process(target=_writer, args=(path, w, count, barrier)) for w in range(workers)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(60)
        assert proc.exitcode == 0
    lines = _lines(path)
    assert lines[-1] == b""
    parsed = [json.loads(line) for line in lines[:-1]]
    assert len(parsed) == 1 + workers * count
    assert [e["seq"] for e in parsed] == list(range(1, len(parsed) + 1))
    for worker in range(workers):
        mine = [e["data"]["index"] for e in parsed if e["data"].get("worker") == worker and e["type"] == "note"]
        assert mine == list(range(count))  # each writer's own order is kept
    events, corrupt = rec.read_events(path)
    assert corrupt == [] and len(events) == len(parsed)


def _ticker(tmp, incident_id, barrier):
    barrier.wait()
    rec.run({"state": "tick", "incident_dir": tmp, "id": incident_id, "items": ["response_started", "first_fix"]})


def test_concurrent_ticks_write_each_item_once(tmp_path):
    inc = _open(tmp_path)["id"]
    ctx = multiprocessing.get_context("fork")
    barrier = ctx.Barrier(5)
    procs = [ctx.Process(target=_ticker, args=(str(tmp_path), inc, barrier)) for _i in range(5)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(60)
        assert proc.exitcode == 0
    state = _do(tmp_path, inc, T0, state="present")["incident"]
    assert sorted(e["data"]["key"] for e in state["events"] if e["type"] == "tick") == ["first_fix", "response_started"]


# -- checklists -------------------------------------------------------------------------------

def test_checklists_as_data():
    assert [i["key"] for i in rec.P0_CHECKLIST] == [
        "detect_confirmed", "response_started", "quick_diagnosis", "first_fix", "recovery_verified",
        "rca_started", "permanent_fix", "postmortem"]
    assert [i["offset"] for i in rec.P0_CHECKLIST] == [0, 120, 300, 480, 1200, 1800, 14400, 86400]
    assert [i["key"] for i in rec.RECOVERY_CHECKLIST] == [
        "health_200", "recommendations_returned", "several_users_ok", "latency_under_500ms", "users_answered_via_edge",
        "no_new_errors", "resources_normal", "watch_every_minute", "error_rate_no_rebound", "notify_management", "notify_users",
        "notify_teams"]


def test_tick_records_time_value_and_is_idempotent(tmp_path):
    inc = _open(tmp_path)["id"]
    res = _do(tmp_path, inc, "2026-11-27T01:32:45Z", state="tick", items=["response_started", "health_200"],
              values={"health_200": 200})
    assert res["changed"] is True and len(res["appended"]) == 2
    again = _do(tmp_path, inc, "2026-11-27T01:40:00Z", state="tick", items=["health_200", "response_started"])
    assert again["changed"] is False and again["appended"] == []
    state = again["incident"]
    assert state["event_count"] == 3
    assert state["ticked"] == {"response_started": "2026-11-27T01:32:45.000Z", "health_200": "2026-11-27T01:32:45.000Z"}
    p0 = {i["key"]: i for i in state["checklists"]["p0_response"]}
    assert p0["response_started"]["done"] and p0["response_started"]["on_time"] is True
    assert p0["response_started"]["due"] == "2026-11-27T01:32:45.000Z"
    assert p0["first_fix"]["done"] is False and p0["first_fix"]["ts"] is None
    recovery = {i["key"]: i for i in state["checklists"]["recovery"]}
    assert recovery["health_200"]["value"] == 200 and recovery["health_200"]["due"] is None
    assert again["diff"]["before"] == again["diff"]["after"]


def test_tick_done_at_is_the_items_time_and_the_response_time(tmp_path):
    """A notification acknowledged at 01:30:48 and collected at the end of the run (01:31:30): the item
    and the response time are 01:30:48; the event keeps the time it was written."""
    inc = _open(tmp_path)["id"]
    res = _do(tmp_path, inc, "2026-11-27T01:31:30Z", state="tick", items=["response_started"],
              done_at="2026-11-27T01:30:48.250Z")
    (event,) = res["appended"]
    assert event["ts"] == "2026-11-27T01:31:30.000Z" and event["data"]["done_at"] == "2026-11-27T01:30:48.250Z"
    state = res["incident"]
    assert state["ticked"]["response_started"] == "2026-11-27T01:30:48.250Z"
    assert state["responded_at"] == "2026-11-27T01:30:48.250Z"
    p0 = {i["key"]: i for i in state["checklists"]["p0_response"]}
    assert p0["response_started"]["ts"] == "2026-11-27T01:30:48.250Z" and p0["response_started"]["on_time"] is True


@pytest.mark.parametrize("done_at, expected", [
    ("2026-11-27T01:45:00Z", "2026-11-27T01:31:30.000Z"),    # a host clock ahead: not in the future
    ("2026-11-27T01:00:00Z", T0),                            # nor before the incident was opened
])
def test_tick_done_at_stays_between_the_opening_and_now(tmp_path, done_at, expected):
    inc = _open(tmp_path)["id"]
    res = _do(tmp_path, inc, "2026-11-27T01:31:30Z", state="tick", items=["response_started"], done_at=done_at)
    assert res["incident"]["ticked"]["response_started"] == expected


def test_tick_bad_done_at_is_named_and_nothing_is_written(tmp_path):
    inc = _open(tmp_path)["id"]
    with pytest.raises(rec.RecordError, match="done_at"):
        _do(tmp_path, inc, "2026-11-27T01:31:30Z", state="tick", items=["response_started"], done_at="soon")
    assert _do(tmp_path, inc, "2026-11-27T01:31:30Z", state="present")["incident"]["ticked"] == {}


def test_unknown_item_fails_naming_it_and_writes_nothing(tmp_path):
    res = _open(tmp_path)
    with pytest.raises(rec.RecordError, match="'helth_200'"):
        _do(tmp_path, res["id"], T0, state="tick", items=["health_200", "helth_200"])
    with pytest.raises(rec.RecordError, match="'first_fix'"):
        _do(tmp_path, res["id"], T0, state="tick", items=["health_200"], values={"first_fix": 1})
    assert len([x for x in _lines(res["events_path"]) if x]) == 1


# -- deadlines, met and missed ---------------------------------------------------------------------

@pytest.mark.parametrize("respond_at, close_at, expected", [
    ("2026-11-27T01:35:45.000Z", "2026-11-27T02:00:45.000Z", {"respond": "met", "resolve": "met"}),
    ("2026-11-27T01:35:45.001Z", "2026-11-27T02:00:45.001Z", {"respond": "missed", "resolve": "missed"}),
    ("2026-11-27T01:31:00.000Z", "2026-11-27T02:00:45.001Z", {"respond": "met", "resolve": "missed"}),
])
def test_met_and_missed_at_the_exact_boundary(tmp_path, respond_at, close_at, expected):
    inc = _open(tmp_path)["id"]
    _do(tmp_path, inc, respond_at, state="tick", items=["response_started"])
    res = _do(tmp_path, inc, close_at, state="closed", outcome="resolved")
    state = res["incident"]
    assert state["sla_status"] == expected
    assert state["responded_at"] == respond_at and state["resolved_at"] == close_at
    assert state["time_left"] == {"respond": None, "resolve": None}


def test_open_incident_past_deadline_is_missed(tmp_path):
    inc = _open(tmp_path)["id"]
    state = _do(tmp_path, inc, "2026-11-27T01:35:45.001Z", state="present")["incident"]
    assert state["sla_status"] == {"respond": "missed", "resolve": "open"}
    assert state["time_left"]["resolve"] == pytest.approx(1499.999)


def test_responded_at_option_and_close_as_latest_response(tmp_path):
    inc = _open(tmp_path)["id"]
    res = _do(tmp_path, inc, "2026-11-27T02:10:00Z", state="closed", outcome="mitigated",
              responded_at="2026-11-27T01:33:00Z")
    assert res["incident"]["responded_at"] == "2026-11-27T01:33:00.000Z"
    assert res["incident"]["sla_status"] == {"respond": "met", "resolve": "missed"}
    inc2 = _open(tmp_path)["id"]
    res = _do(tmp_path, inc2, "2026-11-27T01:33:00Z", state="closed", outcome="false_alarm")
    assert res["incident"]["responded_at"] == "2026-11-27T01:33:00.000Z"
    assert res["incident"]["sla_status"] == {"respond": "met", "resolve": "met"}


@pytest.mark.parametrize("outcome", ["degraded", "escalated", "failed"])
def test_non_resolving_outcomes_miss_resolve(tmp_path, outcome):
    inc = _open(tmp_path)["id"]
    res = _do(tmp_path, inc, "2026-11-27T01:33:00Z", state="closed", outcome=outcome)
    assert res["incident"]["status"] == "closed" and res["incident"]["resolved_at"] is None
    assert res["incident"]["sla_status"]["resolve"] == "missed"


def test_close_is_idempotent_per_outcome(tmp_path):
    inc = _open(tmp_path)["id"]
    first = _do(tmp_path, inc, "2026-11-27T01:40:00Z", state="closed", outcome="degraded")
    same = _do(tmp_path, inc, "2026-11-27T01:41:00Z", state="closed", outcome="degraded")
    other = _do(tmp_path, inc, "2026-11-27T01:50:00Z", state="closed", outcome="resolved")
    assert (first["changed"], same["changed"], other["changed"]) == (True, False, True)
    state = other["incident"]
    assert state["outcome"] == "resolved" and state["resolved_at"] == "2026-11-27T01:50:00.000Z"
    assert state["sla_status"]["resolve"] == "met"
    with pytest.raises(rec.RecordError, match="'fixed'"):
        _do(tmp_path, inc, T0, state="closed", outcome="fixed")


def test_p3_has_no_sla(tmp_path):
    res = _open(tmp_path, severity="P3")
    assert res["incident"]["sla_status"] == {"respond": "none", "resolve": "none"}
    assert res["incident"]["deadlines"] == {"respond": None, "resolve": None}


def test_sla_overrides_are_kept(tmp_path):
    res = _open(tmp_path, sla={"P0": {"respond": 60}})
    assert res["incident"]["deadlines"]["respond"] == "2026-11-27T01:31:45.000Z"
    with pytest.raises(rec.RecordError, match="P7"):
        _open(tmp_path, sla={"P7": {"respond": 60}})


# -- module work: check mode and errors ------------------------------------------------------------

def test_check_mode_writes_nothing(tmp_path):
    res = rec.run({"state": "opened", "incident_dir": str(tmp_path / "inc"), "service": "svc", "severity": "P1"},
                  check_mode=True, now=T0)
    assert res["changed"] is True and res["incident"]["severity"] == "P1"
    assert not (tmp_path / "inc").exists()
    inc = _open(tmp_path)
    size = os.path.getsize(inc["events_path"])
    for params in ({"state": "tick", "items": ["first_fix"]}, {"state": "closed", "outcome": "resolved"},
                   {"state": "event", "text": "x"}):
        res = rec.run(dict(params, incident_dir=str(tmp_path), id=inc["id"]), check_mode=True, now=T0)
        assert res["changed"] is True
        assert res["diff"]["after"]["event_count"] == 2
    assert os.path.getsize(inc["events_path"]) == size


def test_missing_incident_names_id_and_dir(tmp_path):
    with pytest.raises(rec.RecordError) as info:
        rec.run({"state": "tick", "incident_dir": str(tmp_path), "id": "INC-nope", "items": ["first_fix"]})
    assert "INC-nope" in info.value.msg and str(tmp_path) in info.value.msg


def test_open_requires_service_and_severity(tmp_path):
    with pytest.raises(rec.RecordError, match="severity"):
        rec.run({"state": "opened", "incident_dir": str(tmp_path), "service": "svc"})
    with pytest.raises(rec.RecordError, match="'P9'"):
        rec.run({"state": "opened", "incident_dir": str(tmp_path), "service": "svc", "severity": "P9"})
    with pytest.raises(rec.RecordError, match="'last tuesday'"):
        rec.run({"state": "opened", "incident_dir": str(tmp_path), "service": "svc", "severity": "P0",
                 "detected_at": "last tuesday"})
    assert list(tmp_path.iterdir()) == []


def test_check_mode_on_a_record_not_written_yet_does_not_fail(tmp_path):
    res = rec.run({"state": "tick", "incident_dir": str(tmp_path), "id": "INC-dry", "items": ["first_fix"]},
                  check_mode=True)
    assert res["changed"] is True and res["incident"] is None and "INC-dry" in res["warnings"][0]
    with pytest.raises(rec.RecordError, match="'nope'"):
        rec.run({"state": "tick", "incident_dir": str(tmp_path), "id": "INC-dry", "items": ["nope"]}, check_mode=True)
    assert list(tmp_path.iterdir()) == []
