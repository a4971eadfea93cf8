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


def play_action(args, task_vars):
    """The action as a play runs it: a real templar, over the play's variables."""
    from ansible.parsing.dataloader import DataLoader  # pylint: disable=import-outside-toplevel
    from ansible.template import Templar  # pylint: disable=import-outside-toplevel
    plugin = action(args)
    plugin._templar = Templar(loader=DataLoader(), variables=task_vars)
    return plugin.run(task_vars=task_vars)


def test_the_place_the_incident_and_the_host_come_from_the_play(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)   # a path left untemplated would land here, not in the checkout
    from ansible.template import trust_as_template  # pylint: disable=import-outside-toplevel
    # a play's variables are templates (trusted, as those of a playbook are)
    play = {"record_root": str(tmp_path), "incident_dir": trust_as_template("{{ record_root }}/records"), "inventory_hostname": "stg1"}
    opened = play_action(dict(state="opened", service="svc", severity="P1"), play)
    assert opened["record_dir"].startswith(str(tmp_path / "records")) and not opened.get("failed")
    play["incident_id"] = opened["id"]
    said = play_action(dict(state="event", stage="verify", text="checked"), play)
    assert not said.get("failed") and said["changed"] is True
    last = events(opened["record_dir"])[-1]
    assert (last["type"], last["stage"], last["text"], last["host"]) == ("event", "verify", "checked", "stg1")
    # what the task says wins over the play
    other = play_action(dict(state="opened", service="svc", severity="P2", host="web9"), play)
    assert events(other["record_dir"])[0]["host"] == "web9" and other["id"] != opened["id"]   # opened never takes incident_id


def test_without_the_play_variables_an_event_still_needs_its_id(tmp_path):
    result = play_action(dict(state="event", text="x"), {"incident_dir": str(tmp_path)})
    assert result["failed"] is True and "id" in result["msg"]


def test_a_stage_goes_into_the_plays_incident_and_without_one_nowhere(tmp_path):
    play = {"incident_dir": str(tmp_path), "inventory_hostname": "web1"}
    nowhere = play_action(dict(state="stage", stage="diagnose"), play)
    assert not nowhere.get("failed") and nowhere["changed"] is False and nowhere["id"] is None
    assert "not recorded" in nowhere["msg"] and list(tmp_path.iterdir()) == []
    play["incident_id"] = play_action(dict(state="opened", service="svc", severity="P0"), play)["id"]
    started = play_action(dict(state="stage", stage="diagnose"), play)
    assert started["changed"] is True
    last = events(started["record_dir"])[-1]
    assert (last["type"], last["stage"], last["host"]) == ("stage", "diagnose", "web1")
    assert last["text"] == "stage diagnose started"
    assert play_action(dict(state="stage"), play)["failed"] is True   # which stage starts is not guessed
