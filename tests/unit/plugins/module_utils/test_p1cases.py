# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The four P1 detectors, their boundaries, and the log cleanup plan (pure, a fake container)."""

from __future__ import annotations

import datetime
import os

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


# --------------------------------------------------------------------------- log cleanup

FIND = "52428800\t1700000000.0\t/var/log/recsys/app-primary.log.1\n2048\t1700000001.0\t/var/log/recsys/app-primary.log\n"


def test_plan_keeps_the_active_log_and_removes_the_rest():
    plan = p1.plan_log_cleanup(p1.parse_find(FIND), "/var/log/recsys")
    assert [f["path"] for f in plan["remove"]] == ["/var/log/recsys/app-primary.log.1"]
    assert [f["path"] for f in plan["keep"]] == ["/var/log/recsys/app-primary.log"]


def test_plan_never_leaves_the_directory():
    files = [dict(path="/etc/passwd", size=1, mtime=0), dict(path="/var/log/recsys", size=1, mtime=0),
             dict(path="/var/log/recsys-other/x", size=1, mtime=0)]
    assert p1.plan_log_cleanup(files, "/var/log/recsys")["remove"] == []


@pytest.mark.parametrize("bad", ["", "relative/dir", "/"])
def test_plan_refuses_bad_dirs(bad):
    with pytest.raises(ValueError, match="log_dir"):
        p1.plan_log_cleanup([], bad)


def test_bundle_plan_keeps_the_newest():
    names = ["20261125T010000Z-scheduled", "20261125T010000Z-scheduled.tar.gz", "20261126T010000Z-p1",
             "20261126T010000Z-p1.tar.gz", "20261127T010000Z-p1.tar.gz", "README"]
    assert p1.plan_bundle_cleanup(names, keep=2) == ["20261125T010000Z-scheduled", "20261125T010000Z-scheduled.tar.gz"]
    assert p1.plan_bundle_cleanup(names, keep=5) == []


class FakeContainer:
    """A log directory in a 64 MiB volume, driven by the argv the cleanup sends."""

    def __init__(self):
        self.files = {"/var/log/recsys/app-primary.log.1": 62 * 1024 * 1024, "/var/log/recsys/app-primary.log": 4096}
        self.calls = []

    def __call__(self, argv):
        self.calls.append(argv)
        if argv[0] == "df":
            used = sum(self.files.values()) // 1024
            total = 64 * 1024
            pct = round(100.0 * used / total)
            return dict(rc=0, stdout="Filesystem 1024-blocks Used Available Capacity Mounted on\n"
                                     "tmpfs %d %d %d %d%% /var/log/recsys\n" % (total, used, total - used, pct), stderr="")
        if argv[0] == "find":
            return dict(rc=0, stdout="".join("%d\t1700000000.0\t%s\n" % (s, p) for p, s in self.files.items()), stderr="")
        if argv[0] == "rm":
            for path in argv[3:]:
                self.files.pop(path, None)
            return dict(rc=0, stdout="", stderr="")
        if argv[0] == "truncate":
            for path in argv[4:]:
                self.files[path] = 0
            return dict(rc=0, stdout="", stderr="")
        raise AssertionError(argv)


def test_cleanup_check_real_check_real(tmp_path):
    bundles = tmp_path / "bundles"
    bundles.mkdir()
    for stamp in ("20261125T010000Z", "20261126T010000Z", "20261127T010000Z"):
        (bundles / (stamp + "-p1")).mkdir()
        (bundles / (stamp + "-p1.tar.gz")).write_bytes(b"x" * 10)
    box = FakeContainer()
    params = dict(log_dir="/var/log/recsys", truncate_above_pct=85, bundles_dir=str(bundles), bundles_keep=2)
    r = p1.run_log_cleanup(params, box, check_mode=True)
    assert r["changed"] and r["removed"][0]["path"].endswith("app-primary.log.1") and r["truncated"] == []
    assert len(r["bundles_removed"]) == 2 and len(os.listdir(bundles)) == 6
    assert not any(c[0] in ("rm", "truncate") for c in box.calls)
    assert r["used_pct_before"] >= 96 and r["used_pct_after"] < 5
    r = p1.run_log_cleanup(params, box)
    assert r["changed"] and "/var/log/recsys/app-primary.log.1" not in box.files
    assert "/var/log/recsys/app-primary.log" in box.files and r["used_pct_after"] < 5
    assert sorted(os.listdir(bundles)) == ["20261126T010000Z-p1", "20261126T010000Z-p1.tar.gz",
                                           "20261127T010000Z-p1", "20261127T010000Z-p1.tar.gz"]
    assert not p1.run_log_cleanup(params, box, check_mode=True)["changed"]
    assert not p1.run_log_cleanup(params, box)["changed"]


def test_cleanup_truncates_the_active_log_when_still_full():
    box = FakeContainer()
    box.files = {"/var/log/recsys/app-primary.log": 62 * 1024 * 1024}
    r = p1.run_log_cleanup(dict(log_dir="/var/log/recsys", truncate_above_pct=85), box)
    assert r["removed"] == [] and r["truncated"][0]["path"] == "/var/log/recsys/app-primary.log"
    assert box.files["/var/log/recsys/app-primary.log"] == 0 and r["changed"]
    box.files["/var/log/recsys/app-primary.log"] = 62 * 1024 * 1024
    assert not p1.run_log_cleanup(dict(log_dir="/var/log/recsys", truncate_above_pct=None), box)["changed"]


def test_cleanup_reports_a_failed_listing():
    def broken(argv):
        if argv[0] == "df":
            return FakeContainer()(argv)
        return dict(rc=1, stdout="", stderr="find: no such directory")
    with pytest.raises(ValueError, match="no such directory"):
        p1.run_log_cleanup(dict(log_dir="/var/log/recsys"), broken)
