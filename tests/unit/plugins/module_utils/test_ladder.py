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
