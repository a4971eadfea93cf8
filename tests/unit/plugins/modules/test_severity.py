# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""sre.incident.severity: given facts, live measurement against a loopback server, baselines."""

from __future__ import annotations

import functools
import json
import time

import pytest

from ansible_collections.sre.incident.plugins.modules import severity

from .harness import JSONHandler, patch_exits, run_module, serving  # noqa: F401  pylint: disable=unused-import


BEHAVIOUR = {"delay": 0.0, "failing": set(), "empty": set()}


class Handler(JSONHandler):

    def do_GET(self):
        user = self.path.split("/")[-1].split("?")[0]
        time.sleep(BEHAVIOUR["delay"])
        if user in BEHAVIOUR["failing"]:
            status, body = 503, {"error": "database error"}
        else:
            items = [] if user in BEHAVIOUR["empty"] else [{"item_id": i} for i in range(10)]
            status, body = 200, {"user": user, "recommendations": items, "source": "database"}
        self.send_json(status, body)


@pytest.fixture(scope="module")
def server():
    with serving(Handler) as url:
        yield url


@pytest.fixture
def stack(server):
    BEHAVIOUR.update(delay=0.0, failing=set(), empty=set())
    return {
        "name": "recsys", "project_dir": "/tmp", "service": "recommendation-service", "base_url": server,
        "health_path": "/health", "recommendations_path": "/api/recommendations/{user}",
        "sample_users": ["user-1", "user-2", "user-3", "user-4"],
    }


run = functools.partial(run_module, severity)


def test_given_facts():
    r = run(dict(users_affected_pct=100, latency_ms=565, baseline_ms=50))
    assert r["severity"] == "P0" and r["changed"] is False
    assert r["reasons"][0] == "users affected 100.0 % (all) -> P0"
    assert r["sla"] == {"respond": 300, "resolve": 1800}
    assert r["baseline"]["source"] == "option"


def test_exact_boundaries_through_the_module():
    assert run(dict(latency_ms=500, baseline_ms=50))["severity"] == "P1"
    assert run(dict(latency_ms=250, baseline_ms=50))["severity"] == "P1"
    assert run(dict(users_affected_pct=1))["severity"] == "P2"


def test_docs_is_p3():
    r = run(dict(kind="docs"))
    assert r["severity"] == "P3" and r["sla"] == {"respond": None, "resolve": None}


@pytest.mark.parametrize("args, named", [
    (dict(latency_ms=-3), "latency_ms -3"),
    (dict(users_affected_pct=120), "users_affected_pct 120"),
    (dict(error_rate=2), "error_rate 2"),
    (dict(samples=0), "no traffic"),
    (dict(), "no facts"),
])
def test_impossible_input_fails(args, named):
    r = run(args)
    assert r["failed"] is True and named in r["msg"]


def test_measure_healthy(stack):
    r = run(dict(measure=True, stack=stack, probe_count=2, probe_interval=0, baseline_ms=2000))  # a loaded machine never makes this fake 5x slower
    assert r["facts"]["samples"] == 8 and r["facts"]["error_rate"] == 0
    assert r["severity"] == "P2" and r["problem_detected"] is False
    assert len(r["samples"]) == 8 and r["users"]["user-1"]["affected"] is False


def test_measure_one_user_failing_is_p1(stack):
    BEHAVIOUR["failing"] = {"user-2"}
    r = run(dict(measure=True, stack=stack, probe_count=2, probe_interval=0))
    assert r["facts"]["users_affected_pct"] == 25.0
    assert r["facts"]["error_rate"] == 0.25
    assert r["severity"] == "P1" and r["problem_detected"] is True


def test_measure_all_failing_is_p0(stack):
    BEHAVIOUR["failing"] = set(stack["sample_users"])
    r = run(dict(measure=True, stack=stack, probe_count=1, probe_interval=0))
    assert r["severity"] == "P0"


def test_measure_empty_is_p1(stack):
    BEHAVIOUR["empty"] = {"user-4"}
    r = run(dict(measure=True, stack=stack, probe_count=1, probe_interval=0))
    assert r["facts"]["recommendations_empty"] is True and r["severity"] == "P1"


def test_measure_slow_against_recorded_baseline(stack, tmp_path):
    path = tmp_path / "baseline.json"
    path.write_text(json.dumps({"baseline_ms": 10}))
    BEHAVIOUR["delay"] = 0.12
    r = run(dict(measure=True, stack=stack, probe_count=1, probe_interval=0, baseline_file=str(path)))
    assert r["baseline"]["source"] == "file" and r["baseline"]["baseline_ms"] == 10
    assert r["severity"] == "P0", r["reasons"]
    assert r["decided_by"] == "latency"


def test_missing_baseline_file_means_no_baseline(stack, tmp_path):
    r = run(dict(measure=True, stack=stack, probe_count=1, probe_interval=0, baseline_file=str(tmp_path / "none.json")))
    assert r["baseline"]["source"] == "none"
    assert "no baseline" in r["branches"]["latency"]["reason"]


def test_broken_baseline_file_is_named(tmp_path):
    path = tmp_path / "baseline.json"
    path.write_text("{nope")
    r = run(dict(latency_ms=5, baseline_file=str(path)))
    assert r["failed"] is True and str(path) in r["msg"]
    path.write_text(json.dumps({"baseline_ms": -1}))
    r = run(dict(latency_ms=5, baseline_file=str(path)))
    assert r["failed"] is True and "baseline_ms -1" in r["msg"]


def test_record_baseline_check_mode_then_real(stack, tmp_path):
    path = tmp_path / "state" / "baseline.json"
    args = dict(measure=True, stack=stack, probe_count=2, probe_interval=0, baseline_file=str(path), record_baseline=True)
    r = run(args, check_mode=True, diff=True)
    assert r["changed"] is True and r["baseline_recorded"] is False
    assert not path.exists()
    assert r["diff"]["before"] == "baseline_ms: None\n"
    r = run(args, diff=True)
    assert r["changed"] is True and r["baseline_recorded"] is True
    written = json.loads(path.read_text())
    assert written["baseline_ms"] == r["latency"]["p50"] and written["statistic"] == "p50"
    assert r["baseline"]["source"] == "none"  # classified against the previous (absent) baseline


def test_record_baseline_refused_when_unhealthy(stack, tmp_path):
    BEHAVIOUR["failing"] = {"user-1"}
    path = tmp_path / "baseline.json"
    r = run(dict(measure=True, stack=stack, probe_count=1, probe_interval=0, baseline_file=str(path), record_baseline=True))
    assert r["failed"] is True and "unhealthy" in r["msg"] and not path.exists()


def test_measure_needs_stack():
    r = run(dict(measure=True))
    assert r["failed"] is True and "stack" in r["msg"]
