# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

import pytest

from ansible_collections.sre.incident.plugins.module_utils import _ladder

NOW = "2026-11-27T10:00:00Z"


def test_rungs_in_the_runbooks_order():
    assert _ladder.RUNGS == ("restart_service", "restart_dependencies", "rebuild")
    assert _ladder.remaining_rungs() == list(_ladder.RUNGS)
    assert _ladder.remaining_rungs("restart_service") == ["restart_dependencies", "rebuild"]
    assert _ladder.remaining_rungs("rebuild") == []


def test_budgets_follow_the_runbooks_windows():
    assert _ladder.rung_budget("restart_service") == 30
    assert _ladder.rung_budget("restart_dependencies") == 90   # 60 s + 30 s
    assert _ladder.rung_budget("rebuild") == 90
    assert _ladder.rung_budget("restart_dependencies", {"restart_dependencies": 10}) == 40


def test_climbs_without_a_deadline():
    plan = _ladder.plan(None, now=NOW)
    assert plan["climb"] and plan["next"] == "restart_service" and plan["time_left_s"] is None


def test_climbs_when_the_rung_and_verification_fit():
    plan = _ladder.plan("2026-11-27T10:01:30Z", verify_budget=60, now=NOW)
    assert plan["climb"] and plan["time_left_s"] == 90 and plan["needed_s"] == 90   # exactly enough


def test_skips_to_degrading_when_the_clock_is_short():
    plan = _ladder.plan("2026-11-27T10:01:29Z", verify_budget=60, now=NOW)
    assert not plan["climb"]
    assert "skip to degrading" in plan["reason"] and "89 s left" in plan["reason"]


def test_deadline_already_passed():
    plan = _ladder.plan("2026-11-27T09:59:00Z", now=NOW)
    assert not plan["climb"] and plan["time_left_s"] == -60


def test_resume_continues_after_the_last_rung():
    plan = _ladder.plan("2026-11-27T10:30:00Z", after="restart_service", now=NOW)
    assert plan["next"] == "restart_dependencies" and plan["rungs"] == ["restart_dependencies", "rebuild"]


def test_exhausted_ladder():
    plan = _ladder.plan("2026-11-27T10:30:00Z", after="rebuild", now=NOW)
    assert plan["next"] is None and not plan["climb"] and "exhausted" in plan["reason"]


@pytest.mark.parametrize("kwargs, needle", [
    ({"after": "reboot"}, "reboot"),
    ({"windows": {"restart_everything": 5}}, "restart_everything"),
    ({"windows": {"rebuild": 0}}, "rebuild"),
    ({"windows": {"rebuild": "soon"}}, "soon"),
    ({"verify_budget": -1}, "-1"),
])
def test_bad_input_is_named(kwargs, needle):
    with pytest.raises(ValueError) as info:
        _ladder.plan("2026-11-27T10:30:00Z", now=NOW, **kwargs)
    assert needle in str(info.value)


def test_an_edge_only_failure_starts_with_repair_edge_then_the_runbooks_rungs():
    assert _ladder.remaining_rungs(kind="edge_failing") == ["repair_edge", "restart_service", "restart_dependencies", "rebuild"]
    assert _ladder.remaining_rungs(kind="edge_down") == ["repair_edge", "restart_service", "restart_dependencies", "rebuild"]
    assert _ladder.remaining_rungs(kind="service_down") == ["restart_service", "restart_dependencies", "rebuild"]
    assert _ladder.remaining_rungs(after="repair_edge", kind="edge_failing") == ["restart_service", "restart_dependencies",
                                                                                 "rebuild"]
    plan = _ladder.plan(kind="edge_down")
    assert plan["next"] == "repair_edge" and plan["budget_s"] == 30 and plan["climb"] is True
    assert _ladder.rung_budget("repair_edge", {"repair_edge": 12}) == 12


# step(): the ladder's next step from the step before and the checks registered after its rung

STACK = {"service": "recommendation-service", "dependencies": ["postgres", "redis"]}
HEALTHY, SICK, SERVING = {"healthy": True}, {"healthy": False}, {"serving": True, "actions": ["reload"]}
SKIPPED = {"skipped": True, "changed": False}


def _walk(outcomes, deadline="2026-11-27T11:00:00Z", dry_run=False, **kwargs):
    """Steps as the role takes them: one per rung still to try plus one, each fed the checks of the
    rung before (``outcomes``: (health, edge) per rung climbed, in order), 10 s apart."""
    steps, previous, checks = [], None, iter(outcomes)
    count = len(_ladder.remaining_rungs(kwargs.get("after"), kwargs.get("kind"))) + 1
    for index in range(count):
        health, edge = next(checks) if previous and previous["climb"] else (None, None)
        previous = _ladder.step(previous, health, edge, dry_run=dry_run, resolve_deadline=deadline, stack=STACK,
                                now="2026-11-27T10:00:%02dZ" % (index * 10), **kwargs)
        steps.append(previous)
    return steps


def test_step_climbs_the_first_rung_and_ends_when_it_fixed_it():
    steps = _walk([(HEALTHY, SERVING)])
    assert [s["decision"] for s in steps] == ["climb", None, None, None]
    assert steps[0]["next"] == "restart_service" and steps[0]["done"] is None and steps[0]["started"] is not None
    assert steps[0]["ends_at"] == steps[0]["started"] + 30 and steps[1]["ends_at"] is None
    assert steps[1]["done"] == {"rung": "restart_service", "result": "fixed", "elapsed_s": 10.0, "service_answers": True,
                                "gave_up": None, "edge_serves": True, "edge_actions": ["reload"]}
    assert steps[1]["done_text"] == "restart_service brought the service back after 10.0 s"
    assert [s["done"] for s in steps[2:]] == [None, None] and not any(s["climb"] for s in steps[1:])
    result = steps[-1]["result"]
    assert result == {"fixed": True, "rung": "restart_service", "fixed_at": "2026-11-27T10:00:10+00:00",
                      "rungs_tried": ["restart_service"], "would": [], "breaker_open": False, "escalate": False,
                      "dry_run": False, "reason": "fixed by restart_service"}


def test_step_climbs_while_the_checks_fail_and_ends_exhausted():
    steps = _walk([(SICK, SKIPPED), (HEALTHY, {"serving": False, "reason": "502"}), (SICK, None)])
    assert [s["decision"] for s in steps] == ["climb", "climb", "climb", "degrade"]
    assert [s["next"] for s in steps] == ["restart_service", "restart_dependencies", "rebuild", None]
    assert [s["done"]["result"] for s in steps[1:]] == ["not_fixed"] * 3
    assert steps[2]["done_text"].endswith("; the edge: 502")   # the service answers, users are not answered
    assert steps[1]["done"]["gave_up"] is None
    assert "exhausted" in steps[-1]["reason"]
    result = steps[-1]["result"]
    assert result["rungs_tried"] == ["restart_service", "restart_dependencies", "rebuild"]
    assert not result["fixed"] and result["rung"] is None and result["escalate"] and "exhausted" in result["reason"]


def test_step_says_why_a_rungs_wait_stopped_early():
    loop = dict(SICK, gave_up="api keeps crashing: restarted 3 times in 10 s")
    steps = _walk([(loop, SKIPPED), (HEALTHY, SERVING)])
    assert steps[1]["done"]["gave_up"] == loop["gave_up"]
    assert steps[1]["done_text"] == ("restart_service did not bring the checks back after 10.0 s; "
                                     "the wait stopped early: api keeps crashing: restarted 3 times in 10 s")


def test_step_without_an_edge_check_takes_the_service_answering_as_fixed():
    steps = _walk([(HEALTHY, SKIPPED)])
    assert steps[1]["done"]["result"] == "fixed" and steps[1]["done"]["edge_serves"] is None


def test_step_takes_the_waits_look_at_the_edge_when_the_edge_repair_did_not_run():
    looked = {"healthy": True, "edge": {"serving": True, "problems": []}}
    steps = _walk([(looked, SKIPPED)])
    assert steps[1]["done"]["result"] == "fixed" and steps[1]["done"]["edge_serves"] is True
    # the wait saw users not answered through the edge and its repair did not run: not fixed
    stale = {"healthy": True, "edge": {"serving": False, "problems": ["/health answered timed out"]}}
    steps = _walk([(stale, SKIPPED), (HEALTHY, SERVING)])
    assert steps[1]["done"]["result"] == "not_fixed" and steps[1]["done"]["edge_serves"] is False
    # the repair ran: its answer counts, not the wait's look before it
    steps = _walk([(stale, SERVING)])
    assert steps[1]["done"]["result"] == "fixed" and steps[1]["done"]["edge_actions"] == ["reload"]


def test_step_stops_for_the_clock_and_records_it_once():
    # 60 s left: restart_service (30 s) + 60 s verification does not fit
    steps = _walk([], deadline="2026-11-27T10:01:00Z", verify_budget=60)
    assert [s["decision"] for s in steps] == ["degrade", None, None, None]
    assert steps[0]["time_left_s"] == 60 and steps[0]["needed_s"] == 90
    assert steps[-1]["result"]["reason"] == steps[0]["reason"] and "skip to degrading" in steps[0]["reason"]
    assert steps[-1]["result"]["rungs_tried"] == [] and steps[-1]["result"]["escalate"]


def test_step_stops_when_the_next_rung_no_longer_fits():
    steps = _walk([(SICK, SKIPPED)], deadline="2026-11-27T10:01:59Z", verify_budget=20)
    assert [s["decision"] for s in steps] == ["climb", "degrade", None, None]
    assert steps[1]["next"] == "restart_dependencies" and steps[-1]["result"]["rungs_tried"] == ["restart_service"]


def test_step_in_a_dry_run_says_what_it_would_do_and_claims_nothing():
    steps = _walk([(SKIPPED, SKIPPED)], dry_run=True)
    assert [s["decision"] for s in steps] == ["climb", None, None, None]
    assert steps[1]["done"]["result"] == "would_run" and steps[1]["done"]["service_answers"] is None
    result = steps[-1]["result"]
    assert result["reason"] == "dry run: would restart recommendation-service"
    assert result["would"] == ["restart recommendation-service"] and not result["fixed"] and not result["escalate"]


def test_step_with_the_breaker_open_climbs_nothing_and_records_nothing():
    lease = {"breaker_open": True, "recent_runs": 3}
    steps = _walk([], lease=lease, breaker_window=3600, breaker_max_runs=3)
    assert [s["decision"] for s in steps] == [None] * 4 and not any(s["climb"] for s in steps)
    result = steps[-1]["result"]
    assert result["breaker_open"] and result["rungs_tried"] == [] and result["escalate"]
    assert result["reason"].startswith("circuit breaker open: the ladder already ran 3 time(s) on this stack within 3600 s")


def test_step_resumes_after_the_last_rung_in_the_record():
    steps = _walk([(HEALTHY, SERVING)], after="restart_dependencies")
    assert steps[0]["next"] == "rebuild" and steps[1]["done"]["rung"] == "rebuild"
    assert steps[-1]["result"]["rung"] == "rebuild"
    exhausted = _walk([], after="rebuild")
    assert [s["decision"] for s in exhausted] == ["degrade"] and "exhausted" in exhausted[0]["result"]["reason"]


def test_step_on_an_edge_failure_repairs_the_edge_first():
    steps = _walk([(SICK, SKIPPED), (HEALTHY, SERVING)], kind="edge_down")
    assert [s["next"] for s in steps[:2]] == ["repair_edge", "restart_service"]
    assert steps[-1]["result"]["rungs_tried"] == ["repair_edge", "restart_service"]


def test_step_lets_the_engines_restart_policy_finish_only_before_any_rung():
    steps = _walk([(SICK, SKIPPED), (SICK, SKIPPED), (SICK, SKIPPED)], engine_restarting=True)
    assert [s["service_state"] for s in steps] == ["started", "restarted", "restarted", None]
    assert [s["service_state"] for s in _walk([(SICK, SKIPPED)] * 3)][:3] == ["restarted"] * 3
    # resuming after a rung of an earlier run: none of this run yet
    assert _walk([(HEALTHY, SERVING)], after="restart_service", engine_restarting=True)[0]["service_state"] == "started"
    # after the edge's repair, a restart
    assert _walk([(SICK, SKIPPED), (HEALTHY, SERVING)], kind="edge_down", engine_restarting=True)[1]["service_state"] \
        == "restarted"
