# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The triage decision of playbooks/triage.yml (the sre.incident.triage filter, _severity.triage).

Here and not under module_utils: ansible-test runs those without the controller (no ansible.errors)."""
from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.sre.incident.plugins.filter.triage import triage as triage_filter
from ansible_collections.sre.incident.plugins.module_utils._severity import triage

HEALTHY = dict(facts=dict(users_affected_pct=0.0, error_rate=0.0, latency_ms=40.0, samples=15),
               sources=dict(users_affected_pct="probes", error_rate="probes", latency_ms="probes"),
               baseline=dict(baseline_ms=None, source=None))
UP = dict(kind="healthy", outage=False, recommendations_ok=True)
DOWN = dict(kind="service_down", outage=True, recommendations_ok=False)


def test_a_healthy_service_is_no_problem():
    got = triage(HEALTHY, detect=UP)
    assert (got["problem"], got["severity"], got["tree_severity"], got["baseline_ms"], got["outage"]) == (False, "P2", "P2", 50.0, False)


def test_a_down_container_affects_every_user_and_says_where_that_came_from():
    got = triage(dict(HEALTHY, facts=dict(error_rate=1.0, samples=15)), detect=DOWN)
    assert got["severity"] == "P0" and got["problem"] is True
    assert got["facts"]["all_users_affected"] is True and got["sources"]["all_users_affected"] == "detect"
    assert got["reasons"][-1] == "service container down: all users affected"


def test_the_worse_of_the_tree_and_the_alert_wins_and_given_facts_win_over_measured():
    got = triage(HEALTHY, given=dict(users_affected_pct=3), alert="p0", detect=UP)
    assert (got["tree_severity"], got["alert_severity"], got["severity"]) == ("P1", "P0", "P0")
    assert got["facts"]["users_affected_pct"] == 3 and got["sources"]["users_affected_pct"] == "given"
    assert got["reasons"][-1] == "alert severity P0 given"
    assert triage(HEALTHY, alert="P3", detect=dict(UP, outage=True))["severity"] == "P2"


@pytest.mark.parametrize("given_baseline, measured_source, expected", [
    (80, "access_log", 80.0),    # given wins
    (None, "prometheus", 60.0),  # real traffic's baseline window
    (None, "file", 60.0),        # the recorded one (the severity module's baseline_file)
    (None, "option", 50.0),      # not one triage knows the origin of: the runbook's
    (None, None, 50.0),          # the runbook's
])
def test_the_latency_baseline_comes_from_the_best_source(given_baseline, measured_source, expected):
    measured = dict(HEALTHY, baseline=dict(baseline_ms=60.0, source=measured_source))
    assert triage(measured, detect=UP, baseline_ms=given_baseline)["baseline_ms"] == expected


DISK = dict(check="disk_percent", level="warning", kind="warning", reason="disk / 91 % full")
CPU = dict(check="cpu_percent", level="warning", kind="warning", reason="CPU of app at 95 % (limit 90 %)")


def test_a_resource_over_its_threshold_is_a_problem_users_do_not_see():
    got = triage(HEALTHY, detect=UP, resources=[DISK, CPU])
    assert (got["problem"], got["severity"], got["resources"]) == (True, "P2", ["disk / 91 % full"])
    assert got["reasons"][-1] == "users not affected, but disk / 91 % full: a problem users do not see"
    # only the checks asked for count; an alert never names the severity of what users do not see
    assert triage(HEALTHY, detect=UP, resources=[CPU])["problem"] is False
    assert triage(HEALTHY, detect=UP, resources=[CPU], resource_checks=["cpu_percent"])["resources"] == [CPU["reason"]]
    assert triage(HEALTHY, detect=UP, resources=[DISK], alert="P1")["severity"] == "P1"


def test_resources_add_nothing_to_a_problem_users_see_or_to_what_was_not_measured():
    down = triage(dict(HEALTHY, facts=dict(error_rate=1.0, samples=15)), detect=DOWN, resources=[DISK])
    assert down["resources"] == [] and not any("do not see" in r for r in down["reasons"])
    assert triage(None, given=dict(users_affected_pct=0), resources=[DISK])["resources"] == []
    assert triage(HEALTHY, detect=UP)["resources"] == []


def test_without_measuring_given_facts_or_an_alert_make_the_problem():
    assert triage(None, alert="P1") == dict(
        severity="P1", tree_severity=None, alert_severity="P1", problem=True, reasons=["alert severity P1 given"],
        facts=dict(kind="incident"), sources={}, traffic=None, baseline_ms=50.0, sla=None, outage=None, resources=[])
    assert triage(None, given=dict(latency_ms=600))["severity"] == "P0"
    nothing = triage(None)
    assert (nothing["severity"], nothing["problem"]) == ("", False)


def test_docs_are_p3_and_a_problem():
    got = triage(None, kind="docs")
    assert (got["severity"], got["problem"], got["sla"]) == ("P3", True, dict(respond=None, resolve=None))


def test_real_traffic_is_shown_only_when_it_had_a_source():
    traffic = dict(source="access_log", window=dict(users=12), baseline=dict(rps=3), sources={}, access_log={"lines": 9},
                   prometheus=dict(notes=["down"]))
    assert triage(HEALTHY, detect=UP, traffic=traffic)["traffic"] == dict(
        source="access_log", window=dict(users=12), baseline=dict(rps=3), sources={}, access_log={"lines": 9},
        prometheus_notes=["down"])
    assert triage(HEALTHY, detect=UP, traffic=dict(traffic, source="none"))["traffic"] is None


@pytest.mark.parametrize("kwargs, named", [
    (dict(alert="P9"), "P9"),
    (dict(kind="chore"), "chore"),
    (dict(given=dict(latency_ms=-1)), "latency_ms"),
])
def test_bad_input_is_named(kwargs, named):
    with pytest.raises(AnsibleFilterError, match=named):
        triage_filter(None, **kwargs)


@pytest.mark.parametrize("kwargs, named", [
    (dict(resources="disk"), "resources must be a list"),
    (dict(resources=[DISK], resource_checks="disk_percent"), "resource_checks must be a list"),
])
def test_bad_resources_are_named(kwargs, named):
    with pytest.raises(AnsibleFilterError, match=named):
        triage_filter(HEALTHY, detect=UP, **kwargs)


def test_the_filter_wants_mappings():
    with pytest.raises(AnsibleFilterError, match="given must be a mapping"):
        triage_filter(None, given=["users_affected_pct"])
