# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The sre.incident.p1_cases filter."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.sre.incident.plugins.filter.p1_cases import FilterModule, p1_cases, p1_fixes


def test_registered():
    assert FilterModule().filters()["p1_cases"] is p1_cases


def test_detects_from_the_diagnostics_summary():
    result = p1_cases({"db_connections_pct": 96.0, "db_connections_used": 48, "db_max_connections": 50}, baseline_ms=50)
    assert result["detected"] == ["db_connections_exhausted"]
    assert result["cases"][1]["action_item"]["item"] == "Connection-pool monitoring"


def test_probes_and_thresholds():
    probes = [{"user": "u", "status": 200, "latency_ms": 120, "count": 10, "source": "database"}]
    assert p1_cases({}, baseline_ms=50, probes=probes)["detected"] == []
    assert p1_cases({}, baseline_ms=50, probes=probes, thresholds={"latency_factor": 2})["detected"] == ["cache_failure"]


def test_bad_input_is_a_filter_error():
    with pytest.raises(AnsibleFilterError, match="baseline_ms"):
        p1_cases({}, baseline_ms=-5)
    with pytest.raises(AnsibleFilterError, match="summary"):
        p1_cases(["not", "a", "mapping"])


def test_p1_fixes_registered_and_named_in_errors():
    assert FilterModule().filters()["p1_fixes"] is p1_fixes
    assert p1_fixes(["db_connections_exhausted"], dependencies=["redis"])["steps"] == ["clear_cache", "restart", "check_dependencies"]
    with pytest.raises(AnsibleFilterError, match="p1_fixes: .*'sometimes'"):
        p1_fixes([], restart="sometimes")
