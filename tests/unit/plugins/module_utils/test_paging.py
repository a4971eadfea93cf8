# -*- coding: utf-8 -*-
# Copyright (c) sre.incident contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Paging once per finding (SPEC MON-4): keys, the window, the memory file, the module."""

from __future__ import annotations

import json
import os
import re

import pytest

from ansible_collections.sre.incident.plugins.module_utils import _paging as pg

T0 = "2026-11-27T01:00:00.000Z"
DOWN = {"check": "service_running", "level": "critical", "kind": "down", "reason": "the service is exited (exit code 137)"}
DISK = {"check": "disk_percent", "level": "critical", "kind": "degraded", "reason": "disk / 96 % full"}


def at(minutes):
    return "2026-11-27T01:%02d:00.000Z" % minutes


def test_a_finding_is_its_host_check_kind_and_reason_without_numbers():
    assert pg.normalize_reason("disk /  96.5 % full, 12 files") == "disk / # % full, # files"
    assert pg.finding_key("web1", DISK) == pg.finding_key("web1", dict(DISK, reason="disk / 97 % full", level="x"))
    assert pg.finding_key("web1", DISK) != pg.finding_key("web2", DISK)
    redis = {"check": "dependency_running", "kind": "degraded", "reason": "dependency redis is exited"}
    assert pg.finding_key("h", redis) != pg.finding_key("h", dict(redis, reason="dependency postgres is exited"))


def test_new_then_repeated_within_the_window_then_new_again():
    state = pg.empty_state()
    first = pg.plan(state, "web1", "P0", [DOWN], 3600, now=at(0))
    assert first["page"] is True and [f["check"] for f in first["new"]] == ["service_running"]
    state, changed = pg.remember(state, "web1", "P0", [DOWN], 3600, now=at(0), incident_id="INC-1")
    assert len(changed) == 1
    again = pg.plan(state, "web1", "P0", [dict(DOWN, reason="the service is exited (exit code 143)")], 3600, now=at(30))
    assert again["page"] is False and again["new"] == []
    assert again["repeated"][0]["last_paged"] == at(0) and again["repeated"][0]["incident_id"] == "INC-1"
    # a second finding appears: it is new, the first is still a repeat
    both = pg.plan(state, "web1", "P0", [DOWN, DISK], 3600, now=at(31))
    assert both["page"] is True and [f["check"] for f in both["new"]] == ["disk_percent"]
    # the window is over (exactly 3600 s later counts as over)
    later = pg.plan(state, "web1", "P0", [DOWN], 3600, now="2026-11-27T02:00:00.000Z")
    assert later["page"] is True
    state, _c = pg.remember(state, "web1", "P0", [DOWN], 3600, now="2026-11-27T02:00:00.000Z")
    entry = list(state["pages"].values())[0]
    assert (entry["count"], entry["first_paged"], entry["last_paged"]) == (2, at(0), "2026-11-27T02:00:00.000Z")


def test_only_p0_and_p1_page_and_a_zero_window_pages_every_run():
    state, _c = pg.remember(pg.empty_state(), "h", "P0", [DOWN], 0, now=at(0))
    assert pg.plan(state, "h", "P0", [DOWN], 0, now=at(0))["page"] is True
    for severity in ("P2", "P3", "none"):
        assert pg.plan(pg.empty_state(), "h", severity, [DOWN], now=at(0))["page"] is False


def test_old_entries_are_dropped_when_written():
    state, _c = pg.remember(pg.empty_state(), "h", "P0", [DOWN], 60, now="2026-11-01T00:00:00.000Z")
    state, _c = pg.remember(state, "h", "P1", [DISK], 60, now=at(0))
    assert [e["check"] for e in state["pages"].values()] == ["disk_percent"]


@pytest.mark.parametrize("findings, window, named", [
    ("down", 60, "findings must be a list"), ([{"check": "x"}], 60, "findings[0] has no check or no reason"),
    ([DOWN], -1, "window -1 is impossible"), ([DOWN], "soon", "window 'soon' is not a number"),
])
def test_bad_input_is_named(findings, window, named):
    with pytest.raises(pg.PagingError, match=re.escape(named)):
        pg.plan(pg.empty_state(), "h", "P0", findings, window, now=at(0))


def params(path, **more):
    return dict(dict(path=str(path), host="web1", severity="P0", findings=[DOWN, DISK], window=3600, state="checked"), **more)


def test_run_checked_reads_only_paged_writes_once(tmp_path):
    path = tmp_path / "state" / "pages.json"
    checked = pg.run(params(path), now=at(0))
    assert checked["page"] and not checked["changed"] and not path.exists()
    dry = pg.run(params(path, state="paged"), check_mode=True, now=at(0))
    assert dry["changed"] and len(dry["remembered"]) == 2 and not path.exists()
    done = pg.run(params(path, state="paged", incident_id="INC-7"), now=at(0))
    assert done["changed"] and len(done["remembered"]) == 2
    assert os.stat(path).st_mode & 0o777 == 0o600
    assert {e["incident_id"] for e in json.loads(path.read_text())["pages"].values()} == {"INC-7"}
    assert "web1 P0 service_running" in done["diff"]["after"] and done["diff"]["before"] == ""
    again = pg.run(params(path, state="paged"), now=at(5))
    assert not again["changed"] and again["remembered"] == [] and not again["page"]


def test_a_corrupt_memory_is_named_not_overwritten(tmp_path):
    path = tmp_path / "pages.json"
    path.write_text("{torn")
    with pytest.raises(pg.PagingError, match="is not JSON"):
        pg.run(params(path, state="paged"), now=at(0))
    assert path.read_text() == "{torn"


WARN = {"check": "disk_percent", "level": "warning", "kind": "warning", "reason": "disk / 87 % full"}


def test_only_critical_findings_page_and_the_playbook_follows_the_severity():
    p0 = pg.plan(pg.empty_state(), "h", "P0", [DOWN, WARN], now=at(0))
    assert [f["check"] for f in p0["findings"]] == ["service_running"] and [f["check"] for f in p0["new"]] == ["service_running"]
    assert (p0["page"], p0["playbook"], p0["incident_id"]) == (True, "p0_recover.yml", None)
    assert pg.plan(pg.empty_state(), "h", "P1", [DISK], now=at(0))["playbook"] == "p1_mitigate.yml"
    p2 = pg.plan(pg.empty_state(), "h", "P2", [WARN], now=at(0))
    assert (p2["page"], p2["findings"], p2["playbook"]) == (False, [], None)


def test_a_lasting_condition_keeps_its_incident_until_it_is_over():
    state, changed = pg.keep(pg.empty_state(), "h", "P0", [DOWN, WARN], "INC-1", now=at(0))
    assert len(changed) == 2
    # the next runs, whatever the window, get it back: for the same findings, or some of them
    assert pg.plan(state, "h", "P0", [DOWN], 0, now=at(15))["incident_id"] == "INC-1"
    assert pg.plan(state, "h", "P0", [dict(DOWN, reason="the service is exited (exit code 143)")], now=at(15))["incident_id"] == "INC-1"
    # as bad or better than the incident: continued; worse: an incident of its own; another host: none
    assert pg.plan(state, "h", "P1", [WARN], now=at(15))["incident_id"] == "INC-1"
    assert pg.plan(state, "h2", "P0", [DOWN], now=at(15))["incident_id"] is None
    low, _c = pg.keep(pg.empty_state(), "h", "P2", [WARN], "INC-2", now=at(0))
    assert pg.plan(low, "h", "P0", [DOWN, WARN], now=at(15))["incident_id"] is None
    # keeping the same again changes nothing; a run without the findings forgets them (the condition is over)
    assert pg.keep(state, "h", "P0", [DOWN, WARN], "INC-1", now=at(15))[1] == []
    over, gone = pg.keep(state, "h", "none", [], None, now=at(30))
    assert sorted(gone) == sorted(changed) and over["incidents"] == {}
    assert pg.plan(over, "h", "P0", [DOWN], now=at(45))["incident_id"] is None
    # another host's condition is not touched
    both, _c = pg.keep(state, "h2", "P1", [DISK], "INC-3", now=at(0))
    assert len(pg.keep(both, "h", "none", [], None, now=at(30))[0]["incidents"]) == 1


def test_run_kept_writes_the_incident_only_and_a_memory_without_incidents_still_reads(tmp_path):
    path = tmp_path / "pages.json"
    path.write_text(json.dumps({"version": 1, "pages": {}}))    # written before incidents were kept
    assert pg.run(params(path), now=at(0))["incident_id"] is None
    dry = pg.run(params(path, state="kept", incident_id="INC-9"), check_mode=True, now=at(0))
    assert dry["changed"] and dry["remembered"] == [] and "incident INC-9" in dry["diff"]["after"]
    assert json.loads(path.read_text()) == {"version": 1, "pages": {}}
    kept = pg.run(params(path, state="kept", incident_id="INC-9"), now=at(0))
    memory = json.loads(path.read_text())
    assert kept["changed"] and memory["pages"] == {} and {e["incident_id"] for e in memory["incidents"].values()} == {"INC-9"}
    again = pg.run(params(path, state="checked"), now=at(15))
    assert (again["incident_id"], again["page"]) == ("INC-9", True)
    assert pg.run(params(path, state="kept", incident_id="INC-9"), now=at(15))["changed"] is False
