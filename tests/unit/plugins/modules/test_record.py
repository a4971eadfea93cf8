# -*- coding: utf-8 -*-
# Copyright (c) sre.incident contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""sre.incident.record main() with exit_json/fail_json patched."""

from __future__ import annotations

import functools
import os

from ansible_collections.sre.incident.plugins.modules import record as incident_module

from .harness import no_incident_dir_env, patch_exits, run_module, warnings_seen  # noqa: F401  pylint: disable=unused-import


_main = functools.partial(run_module, incident_module)


def test_open_tick_close_present(tmp_path):
    base = {"incident_dir": str(tmp_path)}
    opened = _main(dict(base, state="opened", service="recommendation-service", severity="P0",
                        commander="@ic", impact={"users_affected": "all"}, _ansible_diff=True))
    assert opened["changed"] is True and "failed" not in opened
    assert opened["sre_incident_record"] == {
        "id": opened["id"], "record_dir": opened["record_dir"], "incident_dir": str(tmp_path),
        "events_path": opened["events_path"]}
    assert opened["stats"]["severity"] == "P0"
    assert opened["diff"]["before"]["status"] == "absent" and opened["diff"]["after"]["status"] == "open"
    ticked = _main(dict(base, state="tick", id=opened["id"], items=["response_started"]))
    assert ticked["changed"] is True and "diff" not in ticked
    again = _main(dict(base, state="tick", id=opened["id"], items=["response_started"]))
    assert again["changed"] is False
    closed = _main(dict(base, state="closed", id=opened["id"], outcome="resolved"))
    assert closed["incident"]["status"] == "closed"
    assert closed["incident"]["sla_status"] == {"respond": "met", "resolve": "met"}
    present = _main(dict(base, state="present", id=opened["id"]))
    assert present["changed"] is False and present["incident"]["event_count"] == 3


def test_check_mode_writes_nothing(tmp_path):
    result = _main({"incident_dir": str(tmp_path / "x"), "state": "opened", "service": "svc", "severity": "P1",
                    "_ansible_check_mode": True})
    assert result["changed"] is True and result["incident"]["severity"] == "P1"
    assert not (tmp_path / "x").exists()
    opened = _main({"incident_dir": str(tmp_path), "state": "opened", "service": "svc", "severity": "P1"})
    size = os.path.getsize(opened["events_path"])
    result = _main({"incident_dir": str(tmp_path), "state": "closed", "id": opened["id"], "outcome": "failed",
                    "_ansible_check_mode": True})
    assert result["changed"] is True and result["incident"]["status"] == "closed"
    assert os.path.getsize(opened["events_path"]) == size


def test_missing_incident_fails_naming_id_and_dir(tmp_path):
    result = _main({"incident_dir": str(tmp_path), "state": "event", "id": "INC-missing", "text": "x"})
    assert result["failed"] is True
    assert "INC-missing" in result["msg"] and str(tmp_path) in result["msg"]


def test_unknown_item_fails_before_writing(tmp_path):
    opened = _main({"incident_dir": str(tmp_path), "state": "opened", "service": "svc", "severity": "P0"})
    result = _main({"incident_dir": str(tmp_path), "state": "tick", "id": opened["id"], "items": ["nope"]})
    assert result["failed"] is True and "'nope'" in result["msg"]
    result = _main({"incident_dir": str(tmp_path), "state": "present", "id": opened["id"]})
    assert result["incident"]["event_count"] == 1


def test_argument_spec_rejects_bad_choices(tmp_path):
    result = _main({"incident_dir": str(tmp_path), "state": "opened", "service": "svc", "severity": "P7"})
    assert result["failed"] is True and "P7" in result["msg"]
    result = _main({"incident_dir": str(tmp_path), "state": "closed", "id": "INC-x"})
    assert result["failed"] is True and "outcome" in result["msg"]
    assert list(tmp_path.iterdir()) == []


def test_incident_dir_env_fallback_and_corrupt_warning(tmp_path, monkeypatch, warnings_seen):
    monkeypatch.setenv("SRE_INCIDENT_DIR", str(tmp_path))
    opened = _main({"state": "opened", "service": "svc", "severity": "P2"})
    assert opened["record_dir"].startswith(str(tmp_path))
    with open(opened["events_path"], "ab") as handle:
        handle.write(b"{torn")
    present = _main({"state": "present", "id": opened["id"]})
    assert present["corrupt_lines"][0]["line"] == 2
    assert warnings_seen and "2" in warnings_seen[0]
