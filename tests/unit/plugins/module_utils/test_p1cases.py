# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The four P1 detectors and their boundaries (pure)."""

from __future__ import annotations

import datetime

import pytest

from ansible_collections.sre.incident.plugins.module_utils import _p1cases as p1

NOW = datetime.datetime(2026, 11, 27, 1, 30, tzinfo=datetime.timezone.utc)


def probe(user="user-1", status=200, latency=40.0, count=10, source="database"):
    return dict(user=user, status=status, latency_ms=latency, count=count, source=source)


def detected(summary=None, probes=None, baseline=50, **kw):
    return p1.detect(summary or {}, probes=probes, baseline_ms=baseline, now=NOW, **kw)["detected"]


def test_healthy_detects_nothing():
    assert detected({"db_connections_pct": 10, "disk_used_pct_by_mount": {"/": 24}}, [probe(), probe("user-2")]) == []


@pytest.mark.parametrize("latency,expected", [(249.9, []), (250, ["cache_failure"]), (2000, ["cache_failure"])])
def test_cache_latency_boundary_is_5x(latency, expected):
    assert detected(probes=[probe(latency=latency)]) == expected


def test_cache_latency_uses_the_median_of_answered_probes():
    probes = [probe(latency=2000), probe(latency=2000), probe(latency=10), probe(status=None, latency=None)]
    assert detected(probes=probes) == ["cache_failure"]
    assert detected(probes=[probe(latency=2000), probe(latency=10), probe(latency=10)]) == []


def test_cache_latency_falls_back_to_diagnostics_p95():
    assert detected({"latency_p95_ms": 600}) == ["cache_failure"]


@pytest.mark.parametrize("baseline", [None, 0])
def test_no_baseline_leaves_the_latency_rule_out(baseline):
    assert detected(probes=[probe(latency=5000)], baseline=baseline) == []


@pytest.mark.parametrize("count,expected", [(11, ["cache_failure"]), (10, []), (6, []), (5, ["cache_failure"])])
def test_poisoned_cache_entry(count, expected):
    assert detected(probes=[probe(count=count, source="cache")]) == expected


def test_short_answer_from_the_database_is_not_a_cache_failure():
    assert detected(probes=[probe(count=3, source="database")]) == []


@pytest.mark.parametrize("pct,expected", [(79.9, []), (80, ["db_connections_exhausted"]), (96, ["db_connections_exhausted"])])
def test_db_connections_boundary(pct, expected):
    assert detected({"db_connections_pct": pct, "db_connections_used": 48, "db_max_connections": 50}) == expected


def test_db_evidence_names_sporadic_failures():
    result = p1.detect({"db_connections_pct": 96, "db_connections_used": 48, "db_max_connections": 50},
                       probes=[probe(status=503), probe()], baseline_ms=50, now=NOW)
    case = result["cases"][1]
    assert case["name"] == "db_connections_exhausted" and case["detected"]
    assert "48/50" in case["evidence"][0] and "1 of 2" in case["evidence"][1]


def test_empty_results_only_from_the_database():
    assert detected(probes=[probe(count=0, source="database")]) == ["empty_results"]
    assert detected(probes=[probe(count=0, source="cache")]) == ["cache_failure"]
    assert detected(probes=[probe(status=503, count=None)]) == []


@pytest.mark.parametrize("pct,expected", [(84.9, []), (85, ["disk_low"]), (100, ["disk_low"])])
def test_disk_boundary(pct, expected):
    assert detected({"disk_used_pct_by_mount": {"/": 20, "volume:recsys_app-logs": pct}}) == expected


def test_all_four_at_once_in_the_runbook_order():
    summary = {"db_connections_pct": 90, "disk_used_pct_by_mount": {"volume:x": 97}}
    probes = [probe("user-1", count=15000, source="cache", latency=900), probe("user-4", count=0)]
    assert detected(summary, probes) == list(p1.CASES)


def test_every_case_carries_hint_and_action_item():
    result = p1.detect({}, now=NOW, owners={"disk_low": "@ops-lead"})
    by_name = {c["name"]: c for c in result["cases"]}
    assert set(by_name) == set(p1.CASES)
    for case in result["cases"]:
        assert case["root_cause_hint"] and case["quick_fix"]
        assert set(case["action_item"]) == {"item", "description", "priority", "owner", "deadline"}
    assert by_name["db_connections_exhausted"]["action_item"]["item"] == "Connection-pool monitoring"
    assert by_name["disk_low"]["action_item"]["item"] == "Set up log rotation"
    assert by_name["disk_low"]["action_item"]["owner"] == "@ops-lead"
    assert by_name["cache_failure"]["action_item"]["deadline"] == "2026-12-04"
    assert "key" in by_name["cache_failure"]["root_cause_hint"]


def test_thresholds_override():
    assert detected({"db_connections_pct": 70}, thresholds={"db_connections_pct": 70}) == ["db_connections_exhausted"]


@pytest.mark.parametrize("kwargs,word", [
    (dict(summary="x"), "summary"),
    (dict(probes="x"), "probes"),
    (dict(baseline_ms=-1), "baseline_ms"),
    (dict(thresholds={"nope": 1}), "nope"),
    (dict(thresholds={"disk_pct": 120}), "disk_pct"),
    (dict(thresholds={"latency_factor": 0.5}), "latency_factor"),
    (dict(limit=0), "limit"),
])
def test_bad_input_names_it(kwargs, word):
    summary = kwargs.pop("summary", {})
    args = dict(probes=[], baseline_ms=50)
    args.update(kwargs)
    with pytest.raises(ValueError, match=word):
        p1.detect(summary, **args)
