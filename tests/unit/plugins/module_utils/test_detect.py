# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Detection's verdict from probes of the service and the edge, and the engine's view of the containers."""
from __future__ import annotations

import pytest

from ansible_collections.sre.incident.plugins.module_utils import _detect

STACK = dict(name="shop", project_dir="/srv/shop", service="recs-api", dependencies=["pg", "kv"], edge="web",
             base_url="http://127.0.0.1:3100", edge_url="http://127.0.0.1:8180", health_path="/health",
             recommendations_path="/api/recommendations/{user}", sample_users=["c-1", "c-2", "c-3"],
             min_recommendations=6)
RUNNING = [dict(service=s, status="running", health="healthy") for s in ("recs-api", "pg", "kv", "web")]


def probes(tgts, service_ok=True, edge_ok=True, rounds=1, failing_users=()):
    out = []
    for r in range(rounds):
        for t in tgts:
            ok = service_ok if t["where"] == "service" else edge_ok
            if t["user"] in failing_users:
                ok = False
            out.append(dict(url=t["url"], ok=ok, round=r + 1, error=None if ok else "status 502"))
    return out


def with_states(**changes):
    return [dict(c, **changes[c["service"]]) if c["service"] in changes else dict(c) for c in RUNNING]


def test_targets_probe_both_places_with_the_items_assertion():
    tgts = _detect.targets(STACK)
    assert [(t["where"], t["what"]) for t in tgts].count(("edge", "recommendations")) == 3
    assert tgts[0] == dict(url="http://127.0.0.1:3100/health", json_query=[], where="service", what="health", user=None)
    assert tgts[-1]["url"] == "http://127.0.0.1:8180/api/recommendations/c-3?limit=10"
    assert tgts[1]["json_query"] == ["length(recommendations) >= `6`"]
    assert [t["where"] for t in _detect.targets(dict(STACK, edge_url=None))] == ["service"] * 4
    assert _detect.container_services(STACK) == ["recs-api", "pg", "kv", "web"]


@pytest.mark.parametrize("service_ok, edge_ok, states, kind", [
    (True, True, RUNNING, "none"),
    (False, False, with_states(**{"recs-api": dict(status="exited")}), "service_down"),
    (False, False, with_states(kv=dict(status="exited")), "dependency_down"),
    (False, False, with_states(pg=dict(health="unhealthy")), "dependency_down"),
    (True, False, with_states(web=dict(status="exited")), "edge_down"),
    (True, False, [c for c in RUNNING if c["service"] != "web"], "edge_down"),
    (True, False, RUNNING, "edge_failing"),
    (False, True, RUNNING, "service_down"),
])
def test_kind_of_failure(service_ok, edge_ok, states, kind):
    tgts = _detect.targets(STACK)
    verdict = _detect.assess(STACK, tgts, probes(tgts, service_ok, edge_ok), states)
    assert verdict["kind"] == kind
    assert verdict["outage"] is (kind != "none")
    assert verdict["service_ok"] is service_ok and verdict["edge_ok"] is edge_ok
    # how it ends is the response's to decide, unless nothing fails
    assert verdict["outcome"] == (None if verdict["outage"] else "false_alarm")
    if not verdict["outage"]:
        assert _detect.summary(verdict).startswith("False alarm, nothing changed: the service itself: health 100 % ok")


def test_engine_errors_take_precedence_and_down_is_unknown():
    tgts = _detect.targets(STACK)
    v = _detect.assess(STACK, tgts, probes(tgts, False, False), [], dict(engine_unreachable=True))
    assert v["kind"] == "engine_unreachable" and v["down"] == []
    v = _detect.assess(STACK, tgts, probes(tgts, False, False), [], dict(error_kind="unknown_project"))
    assert v["kind"] == "stack_down"


def test_impact_is_measured_where_users_are():
    tgts = _detect.targets(STACK)
    v = _detect.assess(STACK, tgts, probes(tgts, True, True, failing_users=("c-2",)), RUNNING)
    # one user of three failing is not a P0 outage (the ratio holds), but the measurement says who
    assert v["outage"] is False and v["impact"]["failing_users"] == ["c-2"] and v["impact"]["measured_at"] == "edge"
    v = _detect.assess(STACK, tgts, probes(tgts, True, True, failing_users=("c-2", "c-3")), RUNNING)
    assert v["outage"] is True and v["kind"] == "service_down"
    assert v["impact"]["scope"] == "2 of 3 sample users"
    v = _detect.assess(STACK, tgts, probes(tgts, True, False), RUNNING)
    assert v["impact"]["scope"] == "all sample users" and v["recommendations_ok"] is False and v["health_ok"] is False
    assert "through the edge: health 0 % ok" in _detect.summary(v)
    assert _detect.summary(v).endswith(": " + _detect.observed(v)) and _detect.observed(v).startswith("the service itself: ")


def test_decided_after_one_round_only_when_the_engine_confirms():
    tgts = _detect.targets(STACK)
    one = probes(tgts, False, False)
    # probes alone: one failed round of three is not decided at a 0.5 ratio
    assert _detect.decided(tgts, one, 1, 3, 0.5) is False
    # the engine shows the service exited: confirmed after one round
    assert _detect.decided(tgts, one, 1, 3, 0.5, containers=with_states(**{"recs-api": dict(status="exited")}),
                           stack=STACK) is True
    # the engine shows everything running: a blip needs its second round
    assert _detect.decided(tgts, one, 1, 3, 0.5, containers=RUNNING, stack=STACK) is False
    # two failed rounds of three cannot reach 0.5 any more
    assert _detect.decided(tgts, probes(tgts, False, False, rounds=2), 2, 3, 0.5) is True
    # healthy after two rounds of three: reached whatever the last answers
    assert _detect.decided(tgts, probes(tgts, True, True, rounds=2), 2, 3, 0.5) is True
    assert _detect.answered(tgts, probes(tgts, True, False)) is False


def test_the_engines_restart_policy_is_noticed():
    now = 1_800_000_000
    started = "2027-01-15T08:00:00.5Z"   # 1800000000 = 2027-01-15T08:00:00Z
    restarted = dict(service="recs-api", name="shop_recs-api_1", status="running", health="healthy",
                     restart_policy="unless-stopped", restart_count=2, started_at=started)
    tgts = _detect.targets(STACK)
    states = [restarted] + [c for c in RUNNING if c["service"] != "recs-api"]
    v = _detect.assess(STACK, tgts, probes(tgts), states, now=now + 30)
    assert v["outage"] is False and v["kind"] == "none"
    assert v["restart_policy"] == dict(restarting=False, restarted=[dict(
        name="shop_recs-api_1", restart_count=2, started_at=started, restart_policy="unless-stopped", seconds_ago=29.5)])
    assert v["outcome"] == "resolved"
    assert _detect.summary(v).startswith("Recovered by the restart policy, nothing changed: ")
    assert "the engine restarted shop_recs-api_1 29.5 s ago (restart 2, policy unless-stopped)" in _detect.summary(v)
    # long ago, or no policy: nothing to say
    assert _detect.assess(STACK, tgts, probes(tgts), states, now=now + 3600)["restart_policy"] is None
    assert _detect.engine_restarts(STACK, [dict(restarted, restart_policy="no")], now=now) is None
    # the engine is bringing it back right now: the ladder must not restart it on top
    busy = _detect.engine_restarts(STACK, [dict(restarted, status="restarting")], now=now + 5)
    assert busy["restarting"] is True


@pytest.mark.parametrize("states, running", [
    ([{"service": "recs-api", "status": "running"}], True),
    ([{"service": "recs-api", "status": "running", "health": "unhealthy"}], True),   # it may still answer, slowly
    ([{"service": "recs-api", "status": "paused"}], False),
    ([{"service": "recs-api", "status": "exited"}, {"service": "pg", "status": "running"}], False),
    ([{"service": "pg", "status": "running"}], False),                                 # its container is gone
    ([], False),
])
def test_service_running_is_the_engines_word_that_something_can_answer(states, running):
    assert _detect.service_running(STACK, states) is running
