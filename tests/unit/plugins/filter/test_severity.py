# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The sre.incident.severity filter: same answers as the module's tree, errors as filter errors."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.sre.incident.plugins.filter.severity import FilterModule, severity, worst_severity


def test_registered():
    assert FilterModule().filters()["severity"] is severity


def test_example_from_the_brief():
    result = severity({"users_affected_pct": 100, "latency_ms": 565}, baseline_ms=50)
    assert result["severity"] == "P0"
    assert result["reasons"][:2] == ["users affected 100.0 % (all) -> P0",
                                     "latency 11.3x baseline (565 ms vs 50 ms), more than 10x -> P0"]
    assert result["sla"] == {"respond": 300, "resolve": 1800}


@pytest.mark.parametrize("facts, baseline, expected", [
    ({"latency_ms": 500}, 50, "P1"),
    ({"latency_ms": 500.01}, 50, "P0"),
    ({"latency_ms": 250}, 50, "P1"),
    ({"latency_ms": 249.99}, 50, "P2"),
    ({"users_affected_pct": 1}, None, "P2"),
    ({"users_affected_pct": 1.5}, None, "P1"),
    ({"latency_ms": 5000, "users_affected_pct": 0}, 0, "P2"),
    ({"kind": "improvement"}, None, "P3"),
])
def test_boundaries(facts, baseline, expected):
    assert severity(facts, baseline_ms=baseline)["severity"] == expected


def test_sla_override():
    assert severity({"users_affected_pct": 50}, sla={"P1": {"resolve": 3600}})["sla"]["resolve"] == 3600


@pytest.mark.parametrize("facts, named", [
    ({"latency_ms": -1}, "latency_ms -1"),
    ({"users_affected_pct": 200}, "users_affected_pct 200"),
    ({"samples": 0}, "no traffic"),
    ({"oops": 1}, "unknown fact oops"),
    ("P1", "mapping"),
])
def test_errors_are_filter_errors(facts, named):
    with pytest.raises(AnsibleFilterError, match=named):
        severity(facts)


def test_unknown_sla_severity():
    with pytest.raises(AnsibleFilterError, match="unknown severity 'P9'"):
        severity({"users_affected_pct": 5}, sla={"P9": {"respond": 1}})


@pytest.mark.parametrize("severities, expected", [
    (["none", "P3", "P1", "P2"], "P1"),      # P3 counts too, when it is the worst there is
    (["none", "P3"], "P3"),
    (["p0", None, ""], "P0"),
    (["none"], "none"),
    ([], "none"),
])
def test_worst_severity_leaves_out_empty_verdicts(severities, expected):
    assert worst_severity(severities) == expected


@pytest.mark.parametrize("severities, named", [(["P1", "P9"], "P9"), ("P1", "must be a list")])
def test_worst_severity_names_a_bad_input(severities, named):
    with pytest.raises(AnsibleFilterError, match="sre.incident.worst_severity: .*%s" % named):
        worst_severity(severities)
