# -*- coding: utf-8 -*-
# Copyright (c) sre.incident contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The action plugin of sre.incident.postmortem: options, check mode, diff, failures, on the controller."""

from __future__ import annotations

import os
from unittest.mock import MagicMock

from ansible_collections.sre.incident.plugins.action.postmortem import ActionModule
from ansible_collections.sre.incident.plugins.module_utils import _record as rec
from ansible_collections.sre.incident.plugins.modules import postmortem as postmortem_module

from ..modules.harness import no_incident_dir_env, patch_exits, run_module  # noqa: F401  pylint: disable=unused-import

T0 = "2026-11-27T01:30:45.000Z"


def _main(args, check_mode=False, diff=False):
    task = MagicMock()
    task.args = args
    task.check_mode = check_mode
    task.diff = diff
    task.async_val = 0
    return ActionModule(task, MagicMock(), MagicMock(), loader=None, templar=None, shared_loader_obj=None).run(task_vars={})


def _record(tmp_path):
    opened = rec.run(dict(state="opened", incident_dir=str(tmp_path), service="recommendation-service", severity="P0",
                          detected_at=T0, commander="@ic"), now=T0)
    rec.run(dict(state="event", incident_dir=str(tmp_path), id=opened["id"], stage="recover", text="restarted",
                 data={"rung": "restart_service", "result": True}), now="2026-11-27T01:31:00Z")
    rec.run(dict(state="closed", incident_dir=str(tmp_path), id=opened["id"], outcome="resolved"),
            now="2026-11-27T01:31:02Z")
    return opened


def test_writes_both_reports_then_nothing(tmp_path):
    opened = _record(tmp_path)
    args = {"incident_dir": str(tmp_path), "id": opened["id"]}
    first = _main(args, diff=True)
    assert first["changed"] is True and "failed" not in first
    assert set(first["paths"]) == {"md", "html"} and all(os.path.isfile(p) for p in first["paths"].values())
    assert first["summary"]["fixed_by"]["label"] == "rung 1 (restart the service)"
    assert first["due"] == "2026-11-28T01:31:02.000Z" and first["due_rule"] == "within 24 h of the recovery"
    assert [d["after_header"] for d in first["diff"]] == [first["paths"]["md"], first["paths"]["html"]]
    with open(first["paths"]["html"], encoding="utf-8") as handle:
        assert handle.read() == first["diff"][1]["after"]
    second = _main(args, diff=True)
    assert second["changed"] is False and second["written"] == [] and second["diff"] == []


def test_check_mode_and_no_diff_without_diff_mode(tmp_path):
    opened = _record(tmp_path)
    result = _main({"incident_dir": str(tmp_path), "id": opened["id"], "formats": ["md"]}, check_mode=True)
    assert result["changed"] is True and "diff" not in result and list(result["paths"]) == ["md"]
    assert os.listdir(opened["record_dir"]) == ["events.jsonl"]


def test_env_fallback_for_incident_dir(tmp_path, monkeypatch):
    opened = _record(tmp_path)
    monkeypatch.setenv("SRE_INCIDENT_DIR", str(tmp_path))
    assert _main({"id": opened["id"]})["record_dir"] == opened["record_dir"]


def test_unknown_id_fails_naming_id_and_directory(tmp_path):
    result = _main({"incident_dir": str(tmp_path), "id": "INC-missing"})
    assert result["failed"] is True and "INC-missing" in result["msg"] and str(tmp_path) in result["msg"]
    assert result["id"] == "INC-missing" and result["incident_dir"] == str(tmp_path)


def test_missing_id_bad_format_and_unknown_option_fail_naming_them(tmp_path):
    assert "id" in _main({"incident_dir": str(tmp_path)})["msg"]
    opened = _record(tmp_path)
    assert "pdf" in _main({"incident_dir": str(tmp_path), "id": opened["id"], "formats": ["pdf"]})["msg"]
    result = _main({"incident_dir": str(tmp_path), "id": opened["id"], "colour": "red"})
    assert result["failed"] is True and "unsupported parameters: colour" in result["msg"]
    assert os.listdir(opened["record_dir"]) == ["events.jsonl"]


def test_corrupt_record_fails(tmp_path):
    opened = _record(tmp_path)
    with open(opened["events_path"], "ab") as handle:
        handle.write(b"garbage\n")
    result = _main({"incident_dir": str(tmp_path), "id": opened["id"]})
    assert result["failed"] is True and "line 4" in result["msg"] and result["corrupt_lines"][0]["line"] == 4


def test_the_module_file_alone_says_it_runs_as_an_action(tmp_path):
    result = run_module(postmortem_module, {"incident_dir": str(tmp_path), "id": "INC-x"})
    assert result["failed"] is True and "action plugin" in result["msg"]
    assert list(tmp_path.iterdir()) == []
