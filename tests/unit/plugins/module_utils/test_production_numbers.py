# -*- coding: utf-8 -*-
# Copyright (c) sre.incident contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The runbook's production numbers exercised as written (SPEC MON-5), on a fake clock.

The numbers are read from the roles' own defaults (what production runs), not restated here:
the ladder's windows 30 s / 60 s + 30 s / 90 s (roles/recover/defaults/main.yml) and the watch of
15 minutes at 1-minute intervals, minute 0 to minute 15 (roles/verify/defaults/main.yml). A fake clock advances only
when the code under test sleeps, so fifteen minutes take milliseconds and every sample's time is
exact.
"""

from __future__ import annotations

import datetime
from pathlib import Path

import jinja2
import pytest
import yaml

from ansible_collections.sre.incident.plugins.module_utils import _ladder, _record, _verify, _wait

ROOT = Path(__file__).resolve().parents[4]
T0 = "2026-11-27T01:00:00.000Z"


def role_defaults(role):
    """The role's defaults as a play sees them when nothing overrides them: a default that is a template
    (one that still reads an earlier name of the variable) is rendered with the others."""
    raw = yaml.safe_load((ROOT / "roles" / role / "defaults" / "main.yml").read_text())
    env = jinja2.Environment(undefined=jinja2.StrictUndefined)
    numbers = {}
    for name, value in raw.items():
        if isinstance(value, str) and "{{" in value and name.endswith(("_minutes", "_window", "_interval")):
            numbers[name] = yaml.safe_load(env.from_string(value).render(raw))
    return dict(raw, **numbers)


class FakeClock:
    """Monotonic time that moves only when someone sleeps."""

    def __init__(self, start=1000.0):
        self.now = start
        self.slept = []

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        assert seconds >= 0
        self.slept.append(seconds)
        self.now += seconds


def at(seconds):
    return _record.format_ts(_record.parse_ts(T0) + datetime.timedelta(seconds=seconds))


# -- the production defaults are the runbook's ------------------------------------------------------

def test_the_roles_defaults_are_the_runbooks_numbers():
    windows = role_defaults("recover")["recover_ladder_windows"]
    # the runbook's windows, and the step below them when only the edge fails
    assert windows == {"repair_edge": 30, "restart_service": 30, "restart_dependencies": 60, "restart_service_after_dependencies": 30,
                       "rebuild": 90}
    assert windows == _ladder.DEFAULT_WINDOWS
    verify = role_defaults("verify")
    assert (verify["verify_watch_minutes"], verify["verify_watch_interval"]) == (15, 60)
    assert verify["verify_watch_window"] == 15 * 60


# -- the ladder: 30 / 60+30 / 90 s -------------------------------------------------------------------

@pytest.mark.parametrize("rung, window", [("restart_service", 30), ("restart_dependencies", 90), ("rebuild", 90)])
def test_a_rung_that_never_recovers_waits_out_exactly_its_window(rung, window):
    """The rung's wait polls (0.25 s) until its window is over, then gives up: never longer, never a fixed sleep."""
    clock = FakeClock()
    budget = _ladder.rung_budget(rung, role_defaults("recover")["recover_ladder_windows"])
    assert budget == window
    checks = []
    ok, _value, elapsed = _wait.poll_until(lambda: checks.append(clock()) or None, budget, interval=0.25,
                                           clock=clock, sleep=clock.sleep)
    assert ok is False and elapsed == pytest.approx(window)
    assert len(checks) == window * 4 + 1 and max(clock.slept) == 0.25


def test_a_rung_that_recovers_stops_waiting_at_once():
    clock = FakeClock()
    ready_at = clock() + 7.3
    ok, _value, elapsed = _wait.poll_until(lambda: clock() >= ready_at, 30, interval=0.25, clock=clock, sleep=clock.sleep)
    assert ok is True and 7.3 <= elapsed < 7.3 + 0.25


def test_the_whole_ladder_fits_a_p0_started_by_an_alert():
    """Each rung fails after its full window plus the verification budget; the clock counts from the alert."""
    windows = role_defaults("recover")["recover_ladder_windows"]
    verify_budget = role_defaults("recover")["recover_verify_budget"]
    alert_at = at(0)
    opened = _record.build_opened("INC-1", "recommendation-service", "P0", started_at=alert_at, detected_at=at(120),
                                  now=at(121))
    deadline = opened["data"]["deadlines"]["resolve"]
    assert deadline == at(30 * 60)
    now, last, tried = 125, None, []
    while True:
        plan = _ladder.plan(deadline, windows, verify_budget, after=last, now=at(now))
        if not plan["climb"]:
            break
        tried.append((plan["next"], now))
        now += _ladder.rung_budget(plan["next"], windows) + verify_budget
        last = plan["next"]
    assert tried == [("restart_service", 125), ("restart_dependencies", 215), ("rebuild", 365)]
    assert plan["reason"] == "the ladder is exhausted (last rung tried: rebuild)"
    assert now == 515   # 8 min 35 s after the alert: degraded and escalated well inside the 30 min


def test_a_late_alert_leaves_no_time_for_the_rebuild():
    """Started 27 minutes before the run (the alert's startsAt): rung 3 (90 s + 60 s) no longer fits."""
    windows = role_defaults("recover")["recover_ladder_windows"]
    deadline = _record.build_opened("INC-2", "s", "P0", started_at=at(0), detected_at=at(27 * 60),
                                    now=at(27 * 60))["data"]["deadlines"]["resolve"]
    plan = _ladder.plan(deadline, windows, 60, after="restart_dependencies", now=at(29 * 60))
    assert plan["climb"] is False and plan["needed_s"] == 150 and plan["time_left_s"] == 60
    assert "skip to degrading and escalate to a human" in plan["reason"]


# -- the watch: 15 minutes at 1-minute intervals ---------------------------------------------------------

def production_watch(sampler, traffic=None):
    verify = role_defaults("verify")
    window_s = verify["verify_watch_minutes"] * 60
    clock = FakeClock()
    result = _verify.watch({}, window_s, verify["verify_watch_interval"], since=0, sampler=sampler, clock=clock,
                           sleep=clock.sleep, traffic=traffic, traffic_latency_ms=500, wall=clock)
    return result, clock


def healthy_sample(_since):
    return {"ts": "t", "epoch": None, "error_rate": 0.0, "errors": 0, "probes": 6, "latency_ms": 12.0, "failing": []}


def test_a_quiet_watch_looks_at_all_fifteen_minutes_one_minute_apart():
    """Minute 0 to minute 15: the sample closing the window looks at minute 14-15 too, and the real
    traffic is read back to back from the fix to the window's end; the watch is not longer than its window."""
    reads = []

    def reader(since, until):
        reads.append((since, until))
        return {"window": {"requests": 60, "errors": 0, "error_rate": 0.0, "latency_p95_ms": 20.0},
                "sources": {"error_rate": "access_log", "latency_p95_ms": "access_log"}, "source": "access_log"}

    def sampler(_since):
        return dict(healthy_sample(_since), epoch=clock())

    verify = role_defaults("verify")
    clock = FakeClock()
    result = _verify.watch({}, verify["verify_watch_minutes"] * 60, verify["verify_watch_interval"], since=1000.0,
                           sampler=sampler, clock=clock, sleep=clock.sleep, traffic=reader, traffic_latency_ms=500,
                           wall=clock)
    assert result["passed"] is True and result["window_s"] == 900 and result["interval_s"] == 60
    assert [s["offset_s"] for s in result["samples"]] == [60.0 * i for i in range(16)]
    assert result["elapsed"] == 900.0 and clock.now - 1000.0 == 900.0
    assert max(clock.slept) <= 0.5    # paced in short steps, no long sleep
    # the real traffic of every second of the window is read, once: from the fix to its end, no gap
    assert reads[0][0] == 1000.0 and reads[-1][1] == 1900.0
    assert all(a[1] == b[0] for a, b in zip(reads, reads[1:]))
    # every interval of the window ends at a sample: none longer than a minute goes unlooked at
    offsets = [s["offset_s"] for s in result["samples"]]
    assert offsets[0] == 0.0 and offsets[-1] == 900.0 and max(b - a for a, b in zip(offsets, offsets[1:])) == 60.0


def test_a_rebound_at_minute_two_fails_the_watch_at_the_next_sample_not_at_minute_fifteen():
    verify = role_defaults("verify")
    clock = FakeClock()

    def sampler(since):
        sample = healthy_sample(since)
        if clock() - 1000.0 > 120:          # the fault is injected just after the sample of minute 2
            sample.update(error_rate=round(1 / 6.0, 4), errors=1, failing=["health: connection refused"])
        return sample

    result = _verify.watch({}, verify["verify_watch_minutes"] * 60, verify["verify_watch_interval"], since=0,
                           sampler=sampler, clock=clock, sleep=clock.sleep)
    assert result["passed"] is False
    assert [s["offset_s"] for s in result["samples"]] == [0.0, 60.0, 120.0, 180.0]
    assert result["elapsed"] == 180.0        # minute 3, not minute 15


def test_a_real_traffic_rebound_the_probes_do_not_see_fails_the_watch_at_the_next_sample():
    """The probes stay green; real users start failing at minute 2: the sample at minute 3 fails."""
    reads = []
    state = {}

    def reader(since, until):
        reads.append((since, until))
        failing = until - 1000.0 > 120
        return {"window": {"requests": 600, "errors": 30 if failing else 0, "error_rate": 0.05 if failing else 0.0,
                           "users_failing": 12 if failing else 0, "latency_p95_ms": 40.0},
                "sources": {"error_rate": "access_log", "latency_p95_ms": "access_log"}, "source": "access_log"}

    def sampler(_since):
        sample = healthy_sample(_since)
        sample["epoch"] = state["clock"]()
        return sample

    verify = role_defaults("verify")
    clock = FakeClock()
    state["clock"] = clock
    result = _verify.watch({}, verify["verify_watch_minutes"] * 60, verify["verify_watch_interval"], since=1000.0,
                           sampler=sampler, clock=clock, sleep=clock.sleep, traffic=reader, traffic_latency_ms=500,
                           wall=clock)
    assert result["passed"] is False and result["elapsed"] == 180.0
    assert [s["error_rate"] for s in result["samples"]] == [0.0, 0.0, 0.0, 0.0]
    assert result["samples"][-1]["traffic_rebound"].startswith("real error rate 0.05 > 0 (access_log: 30 of 600")
    # each interval read once, back to back from the fix time: no request counted twice or lost
    assert reads == [(1000.0, 1000.0), (1000.0, 1060.0), (1060.0, 1120.0), (1120.0, 1180.0)]
    summary = _verify.summarize(dict(checks=[], watch_passed=False, samples=result["samples"], rebound_error_rate=0.0,
                                     rebound_at=result["rebound_at"]))
    assert "watch: real error rate 0.05" in summary


def test_a_real_latency_rebound_fails_the_watch_too():
    def reader(since, until):
        return {"window": {"requests": 50, "errors": 0, "error_rate": 0.0, "latency_p95_ms": 650.0},
                "sources": {"error_rate": "access_log", "latency_p95_ms": "access_log"}, "source": "access_log"}
    result, _clock = production_watch(healthy_sample, traffic=reader)
    assert result["passed"] is False and len(result["samples"]) == 1
    assert result["samples"][0]["traffic_rebound"] == "real p95 latency 650 ms >= 500 ms (access_log)"


def test_an_interval_without_real_requests_judges_the_probes_only():
    def reader(since, until):
        return {"window": {"requests": 0, "error_rate": None, "latency_p95_ms": None},
                "sources": {"error_rate": None, "latency_p95_ms": None}, "source": "none"}
    result, _clock = production_watch(healthy_sample, traffic=reader)
    assert result["passed"] is True and len(result["samples"]) == 16
