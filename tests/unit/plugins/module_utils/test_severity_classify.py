# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The runbook's decision tree (SPEC SEV-1, SEV-2, SEV-4): boundaries, monotonicity, bad input."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ansible_collections.sre.incident.plugins.module_utils import _severity as sev
from ansible_collections.sre.incident.plugins.module_utils._severity import classify, measure, rank, worse, worst


def severity(facts, **kwargs):
    return classify(facts, **kwargs)["severity"]


# ---------------------------------------------------------------- ordering helpers

def test_ordering_helpers():
    assert worse("P2", "P1") == "P1"
    assert worse("p0", "P3") == "P0"
    assert worst(["P3", "P2", "P1"]) == "P1"
    assert rank("P0") < rank("P1") < rank("P2") < rank("P3")


@pytest.mark.parametrize("bad", ["P5", "critical", "", None, 1])
def test_unknown_severities_are_named(bad):
    with pytest.raises(ValueError, match="unknown severity %r" % (bad,)):
        worse(bad, "P1")


def test_worst_of_nothing():
    with pytest.raises(ValueError, match="nothing"):
        worst([])


# ---------------------------------------------------------------- latency boundaries

@pytest.mark.parametrize("latency, baseline, expected", [
    (500, 50, "P1"),           # exactly 10x is P1
    (500.001, 50, "P0"),       # just above 10x
    (565, 50, "P0"),
    (499.999, 50, "P1"),
    (250, 50, "P1"),           # exactly 5x is P1
    (249.999, 50, "P2"),       # just below 5x
    (250.001, 50, "P1"),
    (0, 50, "P2"),
    (0.7, 0.07, "P1"),         # exactly 10x in decimal, not 10.000000000000002x
    (0.35, 0.07, "P1"),        # exactly 5x in decimal
    (0.3, 0.1, "P2"),
    (2000, 50, "P0"),          # the runbook's cache failure: 50 ms -> 2 s
])
def test_latency_boundaries(latency, baseline, expected):
    result = classify({"latency_ms": latency}, baseline_ms=baseline)
    assert result["severity"] == expected
    assert result["branches"]["latency"]["evaluated"] is True
    assert result["branches"]["latency"]["severity"] == expected


def test_latency_reason_text():
    result = classify({"users_affected_pct": 100, "latency_ms": 565}, baseline_ms=50)
    assert result["reasons"][0] == "users affected 100.0 % (all) -> P0"
    assert result["reasons"][1].startswith("latency 11.3x baseline (565 ms vs 50 ms)")
    assert result["reasons"][1].endswith("-> P0")
    assert result["decided_by"] == "both"


def test_ratio_just_above_ten_is_not_shown_as_ten():
    reason = classify({"latency_ms": 500.5}, baseline_ms=50)["branches"]["latency"]["reason"]
    assert "10.01x" in reason and reason.endswith("-> P0")


@pytest.mark.parametrize("baseline, words", [(None, "no baseline"), (0, "baseline is 0 ms")])
def test_zero_or_missing_baseline_skips_latency(baseline, words):
    result = classify({"latency_ms": 5000, "users_affected_pct": 0.5}, baseline_ms=baseline)
    latency = result["branches"]["latency"]
    assert latency["evaluated"] is False and latency["severity"] is None
    assert words in latency["reason"]
    assert result["severity"] == "P2"
    assert result["decided_by"] == "impact"


def test_baseline_argument_replaces_the_fact():
    assert severity({"latency_ms": 300, "baseline_ms": 10}, baseline_ms=100) == "P2"
    assert severity({"latency_ms": 300, "baseline_ms": 10}) == "P0"


# ---------------------------------------------------------------- impact boundaries

@pytest.mark.parametrize("facts, expected", [
    ({"all_users_affected": True}, "P0"),
    ({"users_affected_pct": 100}, "P0"),
    ({"users_affected_pct": 99.99}, "P1"),
    ({"error_rate": 1.0}, "P0"),
    ({"error_rate": 0.999}, "P1"),
    ({"core_feature_affected": True, "users_affected_pct": 0.1}, "P1"),
    ({"recommendations_empty": True}, "P1"),
    ({"users_affected_pct": 1}, "P2"),            # exactly 1 % is not more than 1 %
    ({"users_affected_pct": 1.0001}, "P1"),
    ({"users_affected_pct": 0.9999}, "P2"),
    ({"error_rate": 0.01}, "P2"),                # 1 % of requests, not more than 1 %
    ({"error_rate": 0.0101}, "P1"),
    ({"users_affected_pct": 0.5, "error_rate": 0.03}, "P1"),   # the larger share counts
    ({"users_affected_pct": 0}, "P2"),
    ({"all_users_affected": False, "core_feature_affected": False}, "P2"),
])
def test_impact_branch(facts, expected):
    result = classify(facts)
    assert result["severity"] == expected
    assert result["branches"]["impact"]["severity"] == expected


def test_exactly_one_percent_reason():
    reasons = classify({"users_affected_pct": 1})["reasons"]
    assert reasons[0] == "users affected 1.0 %, not more than 1 % -> P2"


def test_worse_branch_wins():
    result = classify({"users_affected_pct": 0.5, "latency_ms": 300}, baseline_ms=50)
    assert result["severity"] == "P1" and result["decided_by"] == "latency"
    result = classify({"all_users_affected": True, "latency_ms": 60}, baseline_ms=50)
    assert result["severity"] == "P0" and result["decided_by"] == "impact"
    assert result["reasons"][-1] == "worse of impact P0 and latency P2 -> P0"


def test_sla_comes_from_the_table():
    assert classify({"all_users_affected": True})["sla"] == {"respond": 300, "resolve": 1800}
    assert classify({"users_affected_pct": 5})["sla"] == {"respond": 900, "resolve": 7200}
    assert classify({"users_affected_pct": 5}, sla_overrides={"P1": {"respond": 60}})["sla"]["respond"] == 60


# ---------------------------------------------------------------- P3, no traffic, healthy

@pytest.mark.parametrize("kind", ["improvement", "docs", "Docs"])
def test_improvements_and_docs_are_p3_without_sla(kind):
    result = classify({"kind": kind})
    assert result["severity"] == "P3"
    assert result["sla"] == {"respond": None, "resolve": None}
    assert result["decided_by"] == "kind"
    assert result["problem_detected"] is False


def test_improvement_with_affected_users_is_a_contradiction():
    with pytest.raises(ValueError, match="users_affected_pct=20"):
        classify({"kind": "improvement", "users_affected_pct": 20})


def test_no_traffic_cannot_be_classified():
    with pytest.raises(ValueError, match="no traffic"):
        classify({"samples": 0})
    with pytest.raises(ValueError, match="no traffic"):
        classify({"samples": 0}, baseline_ms=50)


def test_no_traffic_with_rates_is_impossible():
    with pytest.raises(ValueError, match="error_rate"):
        classify({"samples": 0, "error_rate": 0.5})
    with pytest.raises(ValueError, match="latency_ms"):
        classify({"samples": 0, "latency_ms": 30})


def test_no_traffic_but_known_impact():
    result = classify({"samples": 0, "all_users_affected": True}, baseline_ms=50)
    assert result["severity"] == "P0"
    assert "no traffic" in result["branches"]["latency"]["reason"]


def test_no_facts_at_all():
    with pytest.raises(ValueError, match="no facts"):
        classify({})
    with pytest.raises(ValueError, match="no facts"):
        classify(None, baseline_ms=50)


def test_healthy_service_is_p2_without_problem():
    result = classify({"samples": 15, "error_rate": 0, "users_affected_pct": 0, "latency_ms": 12}, baseline_ms=10)
    assert result["severity"] == "P2" and result["problem_detected"] is False
    assert classify({"latency_ms": 21}, baseline_ms=10)["problem_detected"] is True
    assert classify({"latency_ms": 21}, baseline_ms=10, latency_tolerance=3)["problem_detected"] is False


# ---------------------------------------------------------------- impossible input

@pytest.mark.parametrize("facts, named", [
    ({"latency_ms": -1}, "latency_ms -1"),
    ({"baseline_ms": -50, "latency_ms": 1}, "baseline_ms -50"),
    ({"users_affected_pct": 101}, "users_affected_pct 101"),
    ({"users_affected_pct": -0.1}, "users_affected_pct -0.1"),
    ({"error_rate": 1.5}, "error_rate 1.5"),
    ({"error_rate": -0.2}, "error_rate -0.2"),
    ({"latency_ms": "fast"}, "latency_ms 'fast'"),
    ({"latency_ms": True}, "latency_ms True"),
    ({"latency_ms": float("nan")}, "latency_ms nan"),
    ({"users_affected_pct": [3]}, r"users_affected_pct \[3\]"),
    ({"all_users_affected": "maybe"}, "all_users_affected 'maybe'"),
    ({"samples": 2.5, "error_rate": 0}, "samples 2.5"),
    ({"kind": "outage"}, "kind 'outage'"),
    ({"user_affected_pct": 3}, "unknown fact user_affected_pct"),
])
def test_impossible_inputs_are_named(facts, named):
    with pytest.raises(ValueError, match=named):
        classify(facts)


def test_bad_baseline_argument_is_named():
    with pytest.raises(ValueError, match="baseline_ms -5"):
        classify({"latency_ms": 3}, baseline_ms=-5)


def test_numeric_strings_from_extra_vars():
    assert severity({"users_affected_pct": "50", "all_users_affected": "false"}) == "P1"
    assert severity({"latency_ms": "600"}, baseline_ms="50") == "P0"


# ---------------------------------------------------------------- monotonicity (hypothesis)

pcts = st.floats(min_value=0, max_value=100, allow_nan=False)
rates = st.floats(min_value=0, max_value=1, allow_nan=False)
ms = st.floats(min_value=0, max_value=1e6, allow_nan=False)
baselines = st.one_of(st.none(), st.just(0), st.floats(min_value=0.001, max_value=1e4, allow_nan=False))
flags = st.booleans()


@st.composite
def fact_sets(draw):
    facts = {}
    for key, strategy in (("users_affected_pct", pcts), ("error_rate", rates), ("latency_ms", ms),
                          ("all_users_affected", flags), ("core_feature_affected", flags),
                          ("recommendations_empty", flags)):
        if draw(st.booleans()):
            facts[key] = draw(strategy)
    if not facts:
        facts["users_affected_pct"] = draw(pcts)
    return facts, draw(baselines)


def _worse_or_same(a, b):
    return rank(a) <= rank(b)


@settings(max_examples=300, deadline=None)
@given(fact_sets(), pcts)
def test_more_users_affected_never_milder(case, more):
    facts, baseline = case
    base = facts.get("users_affected_pct", 0)
    worse_facts = dict(facts, users_affected_pct=max(base, more))
    assert _worse_or_same(severity(worse_facts, baseline_ms=baseline), severity(dict(facts, users_affected_pct=base),
                                                                                baseline_ms=baseline))


@settings(max_examples=300, deadline=None)
@given(fact_sets(), rates)
def test_higher_error_rate_never_milder(case, more):
    facts, baseline = case
    base = facts.get("error_rate", 0)
    assert _worse_or_same(severity(dict(facts, error_rate=max(base, more)), baseline_ms=baseline),
                          severity(dict(facts, error_rate=base), baseline_ms=baseline))


@settings(max_examples=300, deadline=None)
@given(fact_sets(), ms)
def test_slower_never_milder(case, more):
    facts, baseline = case
    base = facts.get("latency_ms", 0)
    assert _worse_or_same(severity(dict(facts, latency_ms=max(base, more)), baseline_ms=baseline),
                          severity(dict(facts, latency_ms=base), baseline_ms=baseline))


@settings(max_examples=300, deadline=None)
@given(fact_sets(), st.floats(min_value=0.001, max_value=1e4, allow_nan=False), st.floats(min_value=0.001, max_value=1e4))
def test_lower_baseline_means_higher_ratio_never_milder(case, b1, b2):
    facts = case[0]
    facts = dict(facts, latency_ms=facts.get("latency_ms", 100))
    low, high = min(b1, b2), max(b1, b2)
    assert _worse_or_same(severity(facts, baseline_ms=low), severity(facts, baseline_ms=high))


@settings(max_examples=300, deadline=None)
@given(fact_sets(), st.sampled_from(["all_users_affected", "core_feature_affected", "recommendations_empty"]))
def test_raising_a_flag_never_milder(case, flag):
    facts, baseline = case
    assert _worse_or_same(severity(dict(facts, **{flag: True}), baseline_ms=baseline),
                          severity(dict(facts, **{flag: False}), baseline_ms=baseline))


@settings(max_examples=300, deadline=None)
@given(fact_sets())
def test_result_is_the_worse_branch(case):
    facts, baseline = case
    result = classify(facts, baseline_ms=baseline)
    branches = [result["branches"]["impact"]["severity"]]
    if result["branches"]["latency"]["evaluated"]:
        branches.append(result["branches"]["latency"]["severity"])
    assert result["severity"] == worst(branches)
    assert result["sla"] == sev.sla_for(result["severity"])


# ---------------------------------------------------------------- measure (probe function injected)

STACK = {
    "name": "recsys", "project_dir": "/srv/recsys", "service": "recommendation-service",
    "base_url": "http://127.0.0.1:3000", "health_path": "/health",
    "recommendations_path": "/api/recommendations/{user}", "sample_users": ["u1", "u2", "u3", "u4"],
}


def fake_probe_many(answers):
    """answers: {user: [(status, n_items, latency_ms), ...per round]}."""
    def run(urls, count, interval, timeout):
        probes = []
        for rnd in range(count):
            for url in urls:
                user = url.split("/")[-1].split("?")[0]
                status, items, latency = answers[user][rnd]
                body = None if status is None else {"recommendations": list(range(items)), "source": "cache"}
                probes.append(dict(url=url, round=rnd + 1, status=status, latency_ms=latency, body_json=body,
                                   error=None if status == 200 else "boom", ok=status == 200))
        from ansible_collections.sre.incident.plugins.module_utils._http import latency_stats
        return dict(probes=probes, latency_ms=latency_stats(probes))
    return run


def test_measure_healthy():
    answers = {u: [(200, 10, 10.0)] * 3 for u in STACK["sample_users"]}
    out = measure(STACK, count=3, probe_many=fake_probe_many(answers))
    assert out["facts"] == dict(samples=12, error_rate=0.0, users_affected_pct=0.0, core_feature_affected=False,
                                recommendations_empty=False, latency_ms=10.0)
    assert classify(out["facts"], baseline_ms=10)["problem_detected"] is False


def test_measure_one_blip_does_not_make_a_user_affected():
    answers = {u: [(200, 10, 10.0)] * 3 for u in STACK["sample_users"]}
    answers["u1"] = [(503, 0, 2.0), (200, 10, 10.0), (200, 10, 10.0)]
    out = measure(STACK, count=3, probe_many=fake_probe_many(answers))
    assert out["users"]["u1"] == dict(probes=3, failed=1, empty=0, affected=False)
    assert out["facts"]["users_affected_pct"] == 0
    assert out["facts"]["error_rate"] == round(1 / 12, 4)


def test_measure_dead_service_is_p0():
    answers = {u: [(None, 0, None)] * 2 for u in STACK["sample_users"]}
    out = measure(STACK, count=2, probe_many=fake_probe_many(answers))
    assert "latency_ms" not in out["facts"]
    assert out["facts"]["error_rate"] == 1
    result = classify(out["facts"], baseline_ms=10)
    assert result["severity"] == "P0"
    assert "no latency" in result["branches"]["latency"]["reason"]


def test_measure_empty_recommendations_for_one_user():
    answers = {u: [(200, 10, 10.0)] * 2 for u in STACK["sample_users"]}
    answers["u3"] = [(200, 0, 5.0)] * 2
    out = measure(STACK, count=2, probe_many=fake_probe_many(answers))
    assert out["facts"]["recommendations_empty"] is True
    assert out["facts"]["users_affected_pct"] == 25.0
    assert classify(out["facts"])["severity"] == "P1"


def test_measure_rejects_a_bad_stack():
    with pytest.raises(ValueError, match="sample_users"):
        measure(dict(STACK, sample_users=[]), probe_many=fake_probe_many({}))


@pytest.mark.parametrize("findings, expected", [
    ([], None),
    ([{"kind": "warning", "level": "warning"}], "P2"),
    ([{"kind": "warning", "level": "warning"}, {"kind": "degraded", "level": "critical"}], "P1"),
    ([{"kind": "degraded", "level": "critical"}, {"kind": "down", "level": "critical"}], "P0"),
])
def test_the_findings_of_a_diagnosis_call_for_a_severity(findings, expected):
    assert sev.of_findings(findings) == expected
