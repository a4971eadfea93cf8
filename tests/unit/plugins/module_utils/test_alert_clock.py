# -*- coding: utf-8 -*-
# Copyright (c) sre.incident contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The incident's clock (SPEC MON-1): the alert's start, detection, response, MTTA/MTTM/MTTR."""

from __future__ import annotations

import datetime
import json

import pytest

from ansible_collections.sre.incident.plugins.module_utils import _postmortem as pm
from ansible_collections.sre.incident.plugins.module_utils import _record as rec
from ansible_collections.sre.incident.plugins.plugin_utils._render import render

ALERT_AT = "2026-11-27T01:28:00.000Z"   # Alertmanager's startsAt
DETECTED = "2026-11-27T01:30:00.000Z"   # the automation first looked at it, 2 min later
NOW = "2026-11-27T01:30:01.000Z"


def _at(base, seconds):
    return rec.format_ts(rec.parse_ts(base) + datetime.timedelta(seconds=seconds))


def alertmanager_alert(starts_at=ALERT_AT):
    return {"status": "firing",
            "labels": {"alertname": "RecommendationServiceDown", "severity": "critical", "stack": "recsys"},
            "annotations": {"summary": "down"}, "startsAt": starts_at, "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "http://127.0.0.1:19090/graph", "fingerprint": "4c1e0d8f2a3b5c6d"}


def _open(tmp_path, now=NOW, **extra):
    params = dict(state="opened", incident_dir=str(tmp_path), service="recommendation-service", severity="P0",
                  detected_at=DETECTED)
    params.update(extra)
    return rec.run(params, now=now)


# -- where the start comes from ---------------------------------------------------------------------

def test_the_alerts_start_time_is_the_start_and_its_fields_are_kept():
    clock = rec.alert_clock(None, alertmanager_alert("2026-11-27T01:28:00.123456789Z"), now=NOW)
    assert clock["started_at"] == "2026-11-27T01:28:00.123Z"   # nanoseconds of Alertmanager read
    assert clock["alert"] == {"name": "RecommendationServiceDown", "fingerprint": "4c1e0d8f2a3b5c6d",
                              "source": "alertmanager", "starts_at": "2026-11-27T01:28:00.123456789Z",
                              "labels": {"alertname": "RecommendationServiceDown", "severity": "critical",
                                         "stack": "recsys"}}


def test_a_given_time_wins_over_the_alert_and_json_text_is_read():
    clock = rec.alert_clock("2026-11-27T09:27:00+08:00", json.dumps(alertmanager_alert()), now=NOW)
    assert clock["started_at"] == "2026-11-27T01:27:00.000Z"
    assert clock["alert"]["name"] == "RecommendationServiceDown"


def test_nothing_given_means_no_start():
    assert rec.alert_clock(None, None, now=NOW) == {"started_at": None, "alert": None}
    assert rec.alert_clock("", "", now=NOW) == {"started_at": None, "alert": None}


@pytest.mark.parametrize("given, alert, named", [
    ("yesterday", None, "alert_started_at 'yesterday'"),
    ("2026-13-40T00:00:00Z", None, "alert_started_at '2026-13-40T00:00:00Z'"),
    (None, alertmanager_alert("soon"), "sre_alert.startsAt 'soon'"),
    (None, "not json", "sre_alert 'not json'"),
    (None, ["a", "list"], "sre_alert ['a', 'list']"),
])
def test_a_malformed_time_or_alert_is_refused_naming_it(given, alert, named):
    with pytest.raises(rec.RecordError) as info:
        rec.alert_clock(given, alert, now=NOW)
    assert named in info.value.msg


def test_a_future_time_is_refused_naming_it_but_clock_skew_is_tolerated():
    with pytest.raises(rec.RecordError) as info:
        rec.alert_clock(_at(NOW, 61), None, now=NOW)
    assert "alert_started_at %r is in the future (61 s after now" % _at(NOW, 61) in info.value.msg
    with pytest.raises(rec.RecordError) as info:
        rec.alert_clock(None, alertmanager_alert(_at(NOW, 3600)), now=NOW)
    assert "sre_alert.startsAt" in info.value.msg and "in the future" in info.value.msg
    # exactly the tolerance is still clock skew
    assert rec.alert_clock(_at(NOW, 60), None, now=NOW)["started_at"] == _at(NOW, 60)


# -- the record -------------------------------------------------------------------------------------

def test_the_sla_counts_from_the_alert_and_detection_is_kept_beside_it(tmp_path):
    res = _open(tmp_path, started_at=ALERT_AT, alert=rec.alert_clock(None, alertmanager_alert(), now=NOW)["alert"])
    incident = res["incident"]
    assert incident["started_at"] == ALERT_AT and incident["detected_at"] == DETECTED
    assert incident["deadlines"] == {"respond": "2026-11-27T01:33:00.000Z", "resolve": "2026-11-27T01:58:00.000Z"}
    assert incident["clock"]["started_from"] == "alert"
    assert incident["clock"]["alert"]["fingerprint"] == "4c1e0d8f2a3b5c6d"
    assert incident["times"]["time_to_detect_s"] == 120.0
    # the P0 checklist counts from the alert too
    due = {row["key"]: row["due"] for row in incident["checklists"]["p0_response"]}
    assert due["response_started"] == "2026-11-27T01:30:00.000Z"


def test_the_alerts_start_alone_opens_from_the_alert(tmp_path):
    alert = rec.alert_clock(None, alertmanager_alert(), now=NOW)["alert"]
    incident = _open(tmp_path, alert=alert)["incident"]
    assert incident["started_at"] == ALERT_AT and incident["clock"]["started_from"] == "alert"


def test_without_alert_the_incident_starts_at_its_detection(tmp_path):
    incident = _open(tmp_path)["incident"]
    assert incident["started_at"] == DETECTED
    assert incident["clock"] == {"started_from": "detection", "alert_started_at": None, "alert": None, "note": None}
    given = _open(tmp_path / "g", started_at="2026-11-27T01:29:00Z")["incident"]
    assert given["started_at"] == "2026-11-27T01:29:00.000Z" and given["clock"]["started_from"] == "given"


def test_a_future_start_is_refused_before_anything_is_written(tmp_path):
    with pytest.raises(rec.RecordError, match=r"started_at '2026-11-27T03:00:00Z' is in the future"):
        _open(tmp_path, started_at="2026-11-27T03:00:00Z")
    assert list(tmp_path.iterdir()) == []
    failed = rec.run_checked(dict(state="opened", incident_dir=str(tmp_path), service="s", severity="P0",
                                  started_at="garbage"), now=NOW)
    assert failed["failed"] and "started_at 'garbage' is not an ISO 8601 timestamp" in failed["msg"]
    assert list(tmp_path.iterdir()) == []


def test_a_start_within_the_skew_or_after_detection_counts_from_detection(tmp_path):
    incident = _open(tmp_path, started_at=_at(DETECTED, 30), now=DETECTED)["incident"]
    assert incident["started_at"] == DETECTED
    assert incident["clock"]["alert_started_at"] == _at(DETECTED, 30)
    assert "counts from its detection" in incident["clock"]["note"]


@pytest.mark.parametrize("bad", [{"nme": "x"}, {"labels": "x=y"}, "RecommendationServiceDown"])
def test_a_bad_alert_option_is_refused(tmp_path, bad):
    with pytest.raises(rec.RecordError, match="alert"):
        _open(tmp_path, alert=bad)
    assert list(tmp_path.iterdir()) == []


# -- MTTA, MTTM, MTTR ---------------------------------------------------------------------------------

def _incident_with_a_response(tmp_path):
    res = _open(tmp_path, started_at=ALERT_AT, alert=rec.alert_clock(None, alertmanager_alert(), now=NOW)["alert"])
    incident_id = res["id"]

    def do(seconds, **params):
        return rec.run(dict(params, incident_dir=str(tmp_path), id=incident_id), now=_at(DETECTED, seconds))

    do(5, state="tick", items=["detect_confirmed", "response_started"])
    do(30, state="event", stage="recover", text="rung 1 fixed it", data={"rung": 1, "result": True})
    do(40, state="tick", items=["recovery_verified"])
    do(100, state="closed", outcome="resolved")
    return rec.replay(*rec.read_events(res["events_path"]), now=_at(DETECTED, 200)), res


def test_mtta_mttm_mttr_count_from_the_alert(tmp_path):
    state, _res = _incident_with_a_response(tmp_path)
    assert state["responded_at"] == _at(DETECTED, 5)
    assert state["mitigated_at"] == _at(DETECTED, 40)
    assert state["resolved_at"] == _at(DETECTED, 100)
    assert state["times"] == {"time_to_detect_s": 120.0, "mtta_s": 125.0, "mttm_s": 160.0, "mttr_s": 220.0}
    assert state["sla_status"] == {"respond": "met", "resolve": "met"}


def test_a_degraded_mode_is_the_mitigation_and_nothing_reached_stays_none(tmp_path):
    res = _open(tmp_path)
    incident_id = res["id"]
    rec.run(dict(state="event", incident_dir=str(tmp_path), id=incident_id, stage="degrade", text="option A on",
                 data={"degraded_mode": "standby"}), now=_at(DETECTED, 50))
    rec.run(dict(state="closed", incident_dir=str(tmp_path), id=incident_id, outcome="degraded"),
            now=_at(DETECTED, 60))
    state = rec.replay(*rec.read_events(res["events_path"]), now=_at(DETECTED, 70))
    assert state["times"]["mttm_s"] == 50.0
    assert state["times"]["mttr_s"] is None     # degraded is not resolved
    fresh = _open(tmp_path / "fresh")["incident"]
    assert fresh["times"] == {"time_to_detect_s": 0.0, "mtta_s": None, "mttm_s": None, "mttr_s": None}


def test_the_postmortem_shows_the_alert_and_mtta_mttm_mttr(tmp_path):
    _state, res = _incident_with_a_response(tmp_path)
    out = pm.run(dict(incident_dir=str(tmp_path), id=res["id"]), render, now=_at(DETECTED, 300))
    assert out["summary"]["times"]["mtta_s"] == 125.0
    with open(out["paths"]["md"], encoding="utf-8") as handle:
        text = handle.read()
    assert "| Time to acknowledge (MTTA) | 2 min 05 s |" in text
    assert "| Time to mitigate (MTTM) | 2 min 40 s |" in text
    assert "| Time to resolve (MTTR) | 3 min 40 s |" in text
    assert "| Time to detect | 2 min |" in text
    assert "alert RecommendationServiceDown started, fingerprint 4c1e0d8f2a3b5c6d" in text
    assert "Alert RecommendationServiceDown fired at" in text
    with open(out["paths"]["html"], encoding="utf-8") as handle:
        assert "Time to mitigate (MTTM)" in handle.read()
