# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""How a P0 ends (the sre.incident.p0_outcome filter, _ladder.p0_outcome): resolved only when the fix verified."""
from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.sre.incident.plugins.filter.p0_outcome import p0_outcome

FIXED = {"fixed": True, "rung": "restart_service", "reason": "fixed by restart_service"}
NOT_FIXED = {"fixed": False, "rung": None, "reason": "the ladder is exhausted"}
PASSED = {"passed": True, "summary": "6 of 6 checks passed"}
FAILED = {"passed": False, "summary": "latency_p95: 900 ms over 500 ms"}


def test_a_fix_that_verified_resolves_the_p0():
    want = {"resolved": True, "outcome": "resolved", "degraded_mode": None, "reason": "fixed by restart_service",
            "summary": "fixed by restart_service", "notice": "resolved"}
    assert p0_outcome(FIXED, verify=PASSED) == want


@pytest.mark.parametrize("verify, why", [(FAILED, "latency_p95: 900 ms over 500 ms"), ({}, "it did not run")])
def test_a_fix_that_did_not_verify_does_not_count(verify, why):
    got = p0_outcome(FIXED, verify=verify)
    assert (got["resolved"], got["outcome"]) == (False, "escalated")
    assert got["reason"] == "fixed by restart_service, but the recovery did not verify: " + why


def test_a_passed_verification_without_a_fix_does_not_resolve():
    got = p0_outcome(NOT_FIXED, verify=PASSED)
    assert (got["resolved"], got["outcome"], got["reason"]) == (False, "escalated", "the ladder is exhausted")


def test_a_degraded_mode_that_serves_users_ends_it_degraded_and_is_named():
    got = p0_outcome(NOT_FIXED, degrade={"degraded": True, "active_mode": "B"})
    assert (got["resolved"], got["outcome"], got["degraded_mode"]) == (False, "degraded", "B")
    assert got["summary"] == "the ladder is exhausted; degraded mode B serves users"
    assert got["notice"] == "escalate"   # one notice: users get a fallback, the service still needs a human


def test_a_degraded_mode_that_was_not_reached_ends_it_escalated():
    got = p0_outcome(FIXED, verify=FAILED, degrade={"degraded": False, "active_mode": None})
    assert (got["outcome"], got["degraded_mode"], got["notice"]) == ("escalated", None, "escalate")
    assert got["summary"].endswith("did not verify: latency_p95: 900 ms over 500 ms; no degraded mode serves users")


@pytest.mark.parametrize("ladder", [None, {}, "fixed"])
def test_anything_but_the_ladders_result_is_refused_by_name(ladder):
    with pytest.raises(AnsibleFilterError, match="sre.incident.p0_outcome: p0_outcome needs the ladder's result"):
        p0_outcome(ladder)
