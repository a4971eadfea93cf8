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


# --------------------------------------------------------------------------- the quick fixes

DEPS = ["postgres", "redis"]
REFRESH = "/api/admin/refresh-scores"
SKIPPED = {"skipped": True, "changed": False}


def steps(detected, **kw):
    return p1.quick_fixes(detected, dependencies=DEPS, now=NOW, **kw)["steps"]


@pytest.mark.parametrize("detected, restart, expected", [
    ([], "auto", ["clear_cache", "quick_check", "check_dependencies"]),
    ([], "always", ["clear_cache", "restart", "check_dependencies"]),
    ([], "never", ["clear_cache", "check_dependencies"]),
    (["db_connections_exhausted"], "auto", ["clear_cache", "restart", "check_dependencies"]),
    (["db_connections_exhausted"], "never", ["clear_cache", "check_dependencies"]),
    (list(p1.CASES), "auto", ["clear_cache", "clean_logs", "restart", "refresh_scores", "check_dependencies"]),
])
def test_steps_in_the_runbooks_order(detected, restart, expected):
    assert steps(detected, restart=restart, refresh_path=REFRESH) == expected


def test_refresh_only_with_an_endpoint():
    assert "refresh_scores" not in steps(["empty_results"])
    assert "refresh_scores" in steps(["empty_results"], refresh_path=REFRESH)


def test_second_restart_only_after_a_failed_quick_check():
    assert "restart_after_check" not in steps([], done={"quick_check": {"passed": True}})
    assert "restart_after_check" not in steps([], done={"quick_check": SKIPPED})
    assert steps([], done={"quick_check": {"passed": False}}) == ["clear_cache", "quick_check", "restart_after_check",
                                                                  "check_dependencies"]


def test_the_dependencies_not_ready_are_started():
    checked = {"services": {"postgres": {"ready": True, "status": "healthy"}, "redis": {"ready": False, "status": "exited"}}}
    plan = p1.quick_fixes([], dependencies=DEPS, done={"check_dependencies": checked})
    assert plan["steps"][-1] == "start_dependencies" and plan["start"] == ["redis"]
    assert p1.quick_fixes([], dependencies=[], done={"check_dependencies": SKIPPED})["start"] == []
    assert "check_dependencies" not in p1.quick_fixes([])["steps"]


def test_what_the_fixes_did():
    done = {"clear_cache": {"cleared": 3, "changed": True}, "clean_logs": {"removed": ["a"], "truncated": [], "bundles_removed": ["b", "c"],
                                                                           "freed_bytes": 42},
            "restart": {"changed": True}, "refresh_scores": {"status": 200, "refreshed": 60}, "quick_check": SKIPPED,
            "restart_after_check": SKIPPED, "start_dependencies": SKIPPED,
            "check_dependencies": {"services": {"postgres": {"ready": True, "status": "healthy"}, "redis": {"ready": True, "status": "running"}}}}
    plan = p1.quick_fixes(list(p1.CASES), refresh_path=REFRESH, dependencies=DEPS, done=done, now=NOW)
    assert plan["fixes"] == ["cache cleared (3 keys)", "scores refreshed (POST /api/admin/refresh-scores: 200)",
                             "logs cleaned: 1 file(s) removed, 0 truncated, 2 old bundle(s), 42 bytes freed",
                             "service restarted (connections exhausted)",
                             "postgres and redis checked: postgres healthy, redis running"]
    assert plan["fixed_at"] == "2026-11-27T01:30:00.000Z"


def test_a_failed_clear_and_a_second_restart_and_a_started_dependency():
    done = {"clear_cache": {"failed": False, "msg": "clearing the cache failed: HTTP 503"}, "restart": SKIPPED,
            "quick_check": {"passed": False}, "restart_after_check": {"changed": True},
            "check_dependencies": {"services": {"redis": {"ready": False, "status": "exited"}}},
            "start_dependencies": {"services": {"redis": {"status": "running"}}}}
    assert p1.quick_fixes(["empty_results"], dependencies=DEPS, done=done)["fixes"] == [
        "clear-cache failed: clearing the cache failed: HTTP 503",
        "score refresh not available on this stack (no incident_stack.refresh_path): " + p1.CATALOGUE["empty_results"]["quick_fix"]
        + " by hand",
        "service restarted", "started redis"]


def test_a_dry_run_says_what_it_would_do():
    fixes = p1.quick_fixes(["empty_results", "disk_low"], refresh_path=REFRESH, dependencies=DEPS, dry_run=True)["fixes"]
    assert fixes == ["would clear the cache", "would refresh the scores (POST /api/admin/refresh-scores)", "would clean the logs",
                     "would restart the service if the first fixes are not enough", "would check postgres and redis"]
    assert p1.quick_fixes([], restart="always", dry_run=True)["fixes"] == ["would clear the cache", "would restart the service"]
    assert p1.quick_fixes([], restart="never", dry_run=True)["fixes"] == ["would clear the cache"]


@pytest.mark.parametrize("kwargs, word", [
    (dict(detected=["cache_wipe"]), "cache_wipe"),
    (dict(detected="disk_low"), "detected"),
    (dict(detected=[], restart="sometimes"), "sometimes"),
    (dict(detected=[], dependencies="redis"), "dependencies"),
])
def test_quick_fixes_bad_input_names_it(kwargs, word):
    with pytest.raises(ValueError, match=word):
        p1.quick_fixes(**kwargs)
