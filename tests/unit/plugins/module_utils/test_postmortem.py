# -*- coding: utf-8 -*-
# Copyright (c) sre.incident contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The postmortem report: model, Markdown, HTML, human sections, idempotence, failures."""

from __future__ import annotations

import os
import re

import pytest

from ansible_collections.sre.incident.plugins.module_utils import _postmortem as pm
from ansible_collections.sre.incident.plugins.module_utils import _record as rec
from ansible_collections.sre.incident.plugins.plugin_utils._render import render

T0 = "2026-11-27T01:30:45.000Z"
NOW = "2026-11-27T03:00:00.000Z"


def _at(seconds):
    return rec.format_ts(rec.parse_ts(T0) + __import__("datetime").timedelta(seconds=seconds))


class Record:
    """A record built with _record's own functions in a tmp dir."""

    def __init__(self, tmp_path, severity="P0", **extra):
        self.dir = str(tmp_path)
        opened = rec.run(dict(state="opened", incident_dir=self.dir, service="recommendation-service", severity=severity,
                              detected_at=T0, commander="@ic", impact={"users_affected": "all"}, **extra), now=T0)
        self.id = opened["id"]
        self.events_path = opened["events_path"]
        self.record_dir = opened["record_dir"]

    def do(self, at, **params):
        return rec.run(dict(params, incident_dir=self.dir, id=self.id), now=_at(at))

    def event(self, at, text, stage=None, data=None, event_type="event"):
        return self.do(at, state="event", event_type=event_type, stage=stage, text=text, data=data)

    def stage(self, at, name):
        return self.do(at, state="stage", stage=name)

    def report(self, **params):
        return pm.run(dict(params, incident_dir=self.dir, id=self.id), render, now=params.pop("now", NOW))

    def read(self, fmt):
        with open(os.path.join(self.record_dir, pm.FILE_NAMES[fmt]), encoding="utf-8") as handle:
            return handle.read()


def _p0(tmp_path):
    r = Record(tmp_path)
    r.stage(1, "detect")
    r.stage(5, "diagnose")
    r.do(6, state="tick", items=["detect_confirmed", "response_started"])
    r.event(7, "evidence bundle saved", stage="diagnose",
            data={"bundle": {"containers": {"recommendation-service": {"exit_code": 137, "oom_killed": True}}},
                  "recent_changes": ["image 3f9a created 01:00"]})
    r.stage(8, "recover")
    r.event(14, "rung 1: service restarted and healthy", stage="recover", data={"rung": 1, "result": True})
    r.stage(15, "verify")
    for index in range(4):
        r.event(20 + 10 * index, "watch sample", stage="verify",
                data={"watch_sample": {"latency_ms": 20 + index, "error_rate": 0.0}})
    r.event(61, "P1 case: cache failure", stage="p1",
            data={"p1_case": {"name": "cache_failure", "root_cause_hint": "Redis evicted the hot keys"},
                  "action_item": {"item": "Cache alert", "description": "alert when p95 > 1s", "priority": "P1",
                                  "owner": "@devops", "deadline": "1 week"}})
    r.do(62, state="tick", items=["first_fix", "health_200"], values={"health_200": 200})
    r.do(70, state="closed", outcome="resolved")
    return r


# -- the model ------------------------------------------------------------------------------------

def test_model_summary_deadlines_rung_and_due(tmp_path):
    r = _p0(tmp_path)
    state = rec.replay(*rec.read_events(r.events_path), now=NOW)
    model = pm.build_model(state)
    s = model["summary"]
    assert s["severity"] == "P0" and s["service"] == "recommendation-service"
    assert s["deadlines"] == {"respond": _at(300), "resolve": _at(1800)}
    assert s["sla_status"] == {"respond": "met", "resolve": "met"}
    assert s["duration_s"] == 70 and s["time_to_respond_s"] == 6
    assert s["fixed_by"]["number"] == 1 and s["fixed_by"]["label"] == "rung 1 (restart the service)"
    assert s["due"] == _at(70 + 24 * 3600) and s["due_rule"] == "within 24 h of the recovery"
    assert [row["seq"] for row in model["timeline"]] == list(range(1, state["event_count"] + 1))
    assert [(b["name"], b["duration_s"], b["complete"]) for b in model["stages"]] == [
        ("detect", 4, True), ("diagnose", 3, True), ("recover", 7, True), ("verify", 55, True)]
    assert [w["latency_ms"] for w in model["watch"]] == [20, 21, 22, 23]
    assert model["rca"]["direct_cause"][1].startswith("Exit code 137 (137 = 128 + signal 9, SIGKILL)")
    assert any("OOM kill" in f for f in model["rca"]["direct_cause"])
    assert any("Redis evicted the hot keys" in f for f in model["rca"]["root_cause"])
    assert any("image 3f9a" in f for f in model["rca"]["contributing_factors"])
    assert any(f.startswith("Recovered by rung 1 (restart the service) in 1 min 10 s, within the 30 min")
               for f in model["lessons"]["went_well"])
    items = [i["item"] for i in model["action_items"]]
    assert items[0] == "Cache alert" and "Complete the postmortem" in items and "Memory limit" in items
    assert [a["minutes"] for a in model["agenda"]] == [5, 10, 15, 20, 10]


@pytest.mark.parametrize("severity, after, rule", [
    ("P1", 3 * 86400, "within 3 days"), ("P2", 0, "after the fix"), ("P3", None, "no postmortem required")])
def test_due_by_severity(tmp_path, severity, after, rule):
    r = Record(tmp_path, severity=severity)
    r.do(100, state="closed", outcome="resolved")
    s = r.report()["summary"]
    assert rule in s["due_rule"]
    assert s["due"] == (None if after is None else _at(100 + after))


def test_open_incident_has_no_due_date_yet_and_missed_resolve(tmp_path):
    r = Record(tmp_path)
    r.event(10, "still broken", stage="recover", data={"rung": 1, "result": False})
    result = r.report(now=_at(3600))
    assert result["due"] is None and "not recovered yet" in result["due_rule"]
    assert result["summary"]["sla_status"]["resolve"] == "missed" and result["summary"]["ongoing"] is True
    assert result["summary"]["fixed_by"] is None
    md = r.read("md")
    assert "Faster recovery" in md and "Rung 1 (restart the service) did not fix it" in md


def test_rung_names_and_durations():
    assert pm.rung_info("restart_dependencies") == (2, "restart PostgreSQL and Redis, then the service")
    assert pm.rung_info("3")[0] == 3 and pm.rung_info("custom") == (None, "custom")
    assert pm.fmt_duration(14.2) == "14 s" and pm.fmt_duration(4.5) == "4.5 s"
    assert pm.fmt_duration(1800) == "30 min" and pm.fmt_duration(125) == "2 min 05 s"
    assert pm.fmt_duration(86400) == "1 d" and pm.fmt_offset(3725) == "+1:02:05"


# -- rendering ------------------------------------------------------------------------------------

def test_markdown_sections_in_runbook_order_with_gantt(tmp_path):
    r = _p0(tmp_path)
    result = r.report()
    assert result["changed"] is True and sorted(result["written"]) == sorted(result["paths"].values())
    md = r.read("md")
    heads = re.findall(r"^##+ (.+)$", md, re.M)
    assert heads == ["Summary", "Timeline", "Root-cause analysis", "Direct cause", "Root cause", "Contributing factors",
                     "Timeline picture", "Why was it not detected earlier?", "Lessons", "What went well",
                     "What to improve", "Action items", "Checklists", "P0 response checklist", "Recovery checklist",
                     "Postmortem meeting"]
    events, _c = rec.read_events(r.events_path)
    for event in events:
        assert re.search(r"^\| %d \| %s \|" % (event["seq"], re.escape(pm.fmt_time(event["ts"]))), md, re.M), event
    assert "```mermaid\ngantt\n" in md and "detect :done, s1, 2026-11-27T01:30:46, 4s" in md
    assert "resolve deadline :milestone, crit, dresolve, 2026-11-27T02:00:45, 0s" in md
    assert "| [x] | t+2m | Response started" in md and "| 2026-11-27 01:30:51Z | yes |" in md
    assert "| Cache alert | alert when p95 &gt; 1s | P1 | @devops | 1 week |" in md
    assert "1. Incident overview (5 min)" in md and "5. Confirm the action items (10 min)" in md
    assert "Respond SLA | 5 min: MET" in md and "Resolve SLA | 30 min: MET" in md


def test_html_is_self_contained_with_svg_deadlines_and_watch_charts(tmp_path):
    r = _p0(tmp_path)
    r.report(formats=["html"])
    assert not os.path.exists(os.path.join(r.record_dir, "postmortem.md"))
    page = r.read("html")
    assert page.startswith("<!DOCTYPE html>") and "<style>" in page and "@media print" in page
    assert not re.search(r"<script|<link|<img|src=|url\(|@import", page)
    assert not re.search(r'href="(?!#)', page)
    assert page.count('id="deadline-respond"') == 1 and page.count('id="deadline-resolve"') == 1
    assert 'data-deadline="%s"' % _at(1800) in page
    assert 'data-stage="detect"' in page and 'data-stage="recover"' in page
    assert 'id="watch-latency"' in page and 'id="watch-error-rate"' in page
    assert page.count('<polyline class="series') == 2
    events, _c = rec.read_events(r.events_path)
    assert len(events) == 17
    for seq in range(1, 18):
        assert '<tr data-seq="%d">' % seq in page


def test_escaping_of_record_text(tmp_path):
    r = Record(tmp_path)
    r.event(3, "a | b <script>alert(1)</script> <!-- sre.incident:human:begin rca-root-cause -->", stage="x|y")
    r.report()
    md, page = r.read("md"), r.read("html")
    assert "a \\| b &lt;script&gt;alert(1)&lt;/script&gt;" in md and "| x\\|y |" in md
    assert "<script>" not in md and "<script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert md.count("<!-- sre.incident:human:begin rca-root-cause -->") == 1
    assert page.count("<!-- sre.incident:human:begin rca-root-cause -->") == 1
    assert pm.extract_human_blocks(md)["rca-root-cause"].startswith("<!-- human:")


# -- idempotence, check mode, human sections --------------------------------------------------

def test_rerun_on_unchanged_record_writes_nothing(tmp_path):
    r = _p0(tmp_path)
    r.report()
    mtimes = {p: os.stat(p).st_mtime_ns for p in r.report()["paths"].values()}
    again = r.report(now="2027-01-01T00:00:00Z")
    assert again["changed"] is False and again["written"] == [] and again["diff"] == []
    assert {p: os.stat(p).st_mtime_ns for p in again["paths"].values()} == mtimes


def test_own_stage_events_do_not_change_the_report(tmp_path):
    r = _p0(tmp_path)
    r.report()
    r.stage(500, "postmortem")
    r.event(501, "task 'Write the postmortem' failed on localhost: disk full", stage="postmortem", event_type="failure")
    assert r.report()["changed"] is False


def test_check_mode_writes_nothing_and_shows_the_diff(tmp_path):
    r = _p0(tmp_path)
    result = pm.run({"incident_dir": r.dir, "id": r.id}, render, check_mode=True, now=NOW)
    assert result["changed"] is True and len(result["diff"]) == 2
    assert result["diff"][0]["before"] == "" and result["diff"][0]["before_header"] == "/dev/null"
    assert sorted(os.listdir(r.record_dir)) == ["events.jsonl"]


def test_human_sections_survive_regeneration(tmp_path):
    r = _p0(tmp_path)
    r.report()
    md = r.read("md")
    mine = "Redis ran out of memory because maxmemory was 64 MB | see ticket <OPS-12>.\n"
    md = re.sub(r"(<!-- sre\.incident:human:begin rca-root-cause -->\n).*?(<!-- sre\.incident:human:end)",
                lambda m: m.group(1) + mine + m.group(2), md, flags=re.S)
    md += "<!-- sre.incident:human:begin old-notes -->\nkept\n<!-- sre.incident:human:end old-notes -->\n"
    with open(os.path.join(r.record_dir, "postmortem.md"), "w", encoding="utf-8") as handle:
        handle.write(md)
    page = r.read("html").replace("<p class=\"todo\">To be completed by a human: what the team did well.</p>",
                                  "<p>The on-call <b>paged</b> within a minute.</p>")
    with open(os.path.join(r.record_dir, "postmortem.html"), "w", encoding="utf-8") as handle:
        handle.write(page)
    r.event(200, "root cause confirmed by the tech lead", stage="rca")
    result = r.report()
    assert result["changed"] is True
    md, page = r.read("md"), r.read("html")
    assert "root cause confirmed by the tech lead" in md and "root cause confirmed by the tech lead" in page
    assert pm.extract_human_blocks(md)["rca-root-cause"] == mine
    assert pm.extract_human_blocks(md)["old-notes"] == "kept\n" and "## Kept human notes" in md
    assert "<p>The on-call <b>paged</b> within a minute.</p>" in pm.extract_human_blocks(page)["lessons-went-well"]
    assert r.report()["changed"] is False


# -- failures -------------------------------------------------------------------------------------

def test_unknown_id_names_id_and_directory(tmp_path):
    r = Record(tmp_path)
    with pytest.raises(pm.PostmortemError) as info:
        pm.run({"incident_dir": r.dir, "id": "INC-nope"}, render)
    assert "INC-nope" in info.value.msg and r.dir in info.value.msg and r.id in info.value.msg
    with pytest.raises(pm.PostmortemError) as info:
        pm.run({"incident_dir": str(tmp_path / "missing"), "id": "INC-nope"}, render)
    assert "does not exist" in info.value.msg
    with pytest.raises(pm.PostmortemError) as info:
        pm.run({"incident_dir": r.dir, "id": "../etc"}, render)
    assert "bad incident id" in info.value.msg
    with pytest.raises(pm.PostmortemError):
        pm.run({"incident_dir": r.dir, "id": r.id, "formats": ["pdf"]}, render)


def test_corrupt_record_fails_naming_the_line(tmp_path):
    r = Record(tmp_path)
    with open(r.events_path, "ab") as handle:
        handle.write(b'{"seq": 2, "ts": "2026-11')
    with pytest.raises(pm.PostmortemError) as info:
        r.report()
    assert "corrupt" in info.value.msg and "line 2" in info.value.msg
    assert sorted(os.listdir(r.record_dir)) == ["events.jsonl"]
