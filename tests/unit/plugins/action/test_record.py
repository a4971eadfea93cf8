# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The action plugin of sre.incident.record: same options and results as the module, in-process."""
from __future__ import annotations

import json
import os
from unittest.mock import MagicMock

import pytest

from ansible_collections.sre.incident.plugins.action.record import ActionModule


def action(args, check_mode=False, diff=False):
    task = MagicMock()
    task.args = args
    task.check_mode = check_mode
    task.diff = diff
    task.async_val = 0
    return ActionModule(task, MagicMock(), MagicMock(), loader=None, templar=None, shared_loader_obj=None)


def events(record_dir):
    with open(os.path.join(record_dir, "events.jsonl")) as handle:
        return [json.loads(line) for line in handle]


def test_opens_ticks_and_closes_a_record_on_disk(tmp_path):
    opened = action(dict(state="opened", incident_dir=str(tmp_path), service="svc", severity="P0")).run(task_vars={})
    assert opened["changed"] is True and not opened.get("failed")
    rid = opened["id"]
    ticked = action(dict(state="tick", incident_dir=str(tmp_path), id=rid, items=["detect_confirmed"])).run(task_vars={})
    assert ticked["changed"] is True
    again = action(dict(state="tick", incident_dir=str(tmp_path), id=rid, items=["detect_confirmed"])).run(task_vars={})
    assert again["changed"] is False
    closed = action(dict(state="closed", incident_dir=str(tmp_path), id=rid, outcome="resolved")).run(task_vars={})
    assert closed["incident"]["outcome"] == "resolved"
    assert [e["type"] for e in events(opened["record_dir"])] == ["opened", "tick", "closed"]


def test_bad_value_fails_naming_it_and_writes_nothing(tmp_path):
    result = action(dict(state="opened", incident_dir=str(tmp_path), service="svc", severity="P9")).run(task_vars={})
    assert result["failed"] is True
    assert "P9" in result["msg"] and "severity" in result["msg"]
    assert list(tmp_path.iterdir()) == []


def test_unknown_option_is_named(tmp_path):
    result = action(dict(state="present", id="x", incident_dir=str(tmp_path), colour="red")).run(task_vars={})
    assert result["failed"] is True
    assert "unsupported parameters: colour" in result["msg"]


def test_check_mode_writes_nothing(tmp_path):
    result = action(dict(state="opened", incident_dir=str(tmp_path), service="svc", severity="P1"),
                    check_mode=True).run(task_vars={})
    assert result["changed"] is True
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("diff", [True, False])
def test_diff_only_when_asked(tmp_path, diff):
    result = action(dict(state="opened", incident_dir=str(tmp_path), service="svc", severity="P2"),
                    diff=diff).run(task_vars={})
    assert ("diff" in result) is diff


def test_missing_incident_fails_with_the_id(tmp_path):
    result = action(dict(state="event", incident_dir=str(tmp_path), id="INC-nope", text="x")).run(task_vars={})
    assert result["failed"] is True and "INC-nope" in result["msg"]
