# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A module's code in the controller's process (plugin_utils/_action.ModuleAction and
module_utils/_module.IncidentModule with ``here``): when it runs here, and that it answers as the
module does."""
from __future__ import annotations

import datetime
import os
import sys
from unittest.mock import MagicMock

import pytest

from ansible_collections.sre.incident.plugins.action.lease import ActionModule as LeaseAction
from ansible_collections.sre.incident.plugins.action.notify import ActionModule as NotifyAction
from ansible_collections.sre.incident.plugins.module_utils._module import Here, IncidentModule, run_here
from ansible_collections.sre.incident.plugins.modules import lease as lease_module

from ..modules.harness import patch_exits, run_module  # noqa: F401  pylint: disable=unused-import


class _Templar:
    def template(self, value):
        return value


def action(cls, args=None, transport="local", become=False, async_val=0, delegate_to=None, check_mode=False,
           diff=False, environment=None):
    task = MagicMock()
    task.args = dict(args or {})
    task.check_mode, task.diff, task.async_val, task.delegate_to = check_mode, diff, async_val, delegate_to
    connection = MagicMock()
    connection.transport = transport
    play_context = MagicMock()
    play_context.become = become
    plugin = cls(task, connection, play_context, loader=None, templar=_Templar(), shared_loader_obj=None)
    plugin._compute_environment_string = lambda raw_environment_out: raw_environment_out.update(environment or {})
    return plugin


HERE_VARS = {"ansible_python_interpreter": sys.executable}


@pytest.mark.parametrize("kwargs, task_vars, here", [
    ({}, HERE_VARS, True),
    ({"transport": "ssh"}, HERE_VARS, False),
    ({"become": True}, HERE_VARS, False),
    ({"async_val": 30}, HERE_VARS, False),
    ({"delegate_to": "localhost"}, HERE_VARS, False),
    ({}, {}, False),                                                   # interpreter left to discovery
    ({}, {"ansible_python_interpreter": "/usr/bin/python3-elsewhere"}, False),
])
def test_runs_here_only_on_this_machine_with_this_python(kwargs, task_vars, here):
    assert action(LeaseAction, **kwargs).here(task_vars) is here


def test_the_sender_follows_the_same_rule():
    assert action(NotifyAction).here(HERE_VARS) is True
    assert action(NotifyAction).here({}) is False
    assert action(NotifyAction, transport="ssh").here(HERE_VARS) is False


def _without_invocation(result):
    return {k: v for k, v in result.items() if k != "invocation"}


@pytest.mark.parametrize("check_mode", [False, True])
def test_the_lease_answers_here_as_the_module_does(tmp_path, check_mode):
    steps = [
        {"state": "acquired", "incident_id": "INC-1", "owner": "alice"},
        {"state": "acquired", "incident_id": "INC-2", "owner": "bob"},      # refused: INC-1 holds it
        {"state": "released", "incident_id": "INC-1", "record_run": True, "outcome": "resolved"},
        {"state": "present"},
        {"state": "acquired"},                                              # no incident_id: refused before anything
        {"state": "held", "incident_id": "INC-3"},                          # a bad value, named
        {"state": "present", "colour": "red"},                              # an unknown option, named
    ]
    for step in steps:
        there_dir, here_dir = tmp_path / "there", tmp_path / "here"
        there = run_module(lease_module, dict(step, state_dir=str(there_dir)), check_mode=check_mode, diff=True)
        here = action(LeaseAction, dict(step, state_dir=str(here_dir)), check_mode=check_mode,
                      diff=True).run(task_vars=HERE_VARS)
        there, here = _without_invocation(there), _without_invocation(here)
        if "lease" in there:   # the times and the state directory differ, nothing else
            for side in (there, here):
                for part in ("lease", "holder"):
                    if isinstance(side.get(part), dict):
                        side[part] = {k: v for k, v in side[part].items() if k not in ("acquired_at", "expires_at")}
                side.pop("diff", None)
        assert set(here) - {"changed"} == set(there) - {"changed"}, (step, here, there)
        assert here.get("failed", False) == there.get("failed", False), (step, here, there)
        assert here.get("changed", False) == there.get("changed", False), (step, here, there)
        if there.get("failed"):
            for word in [w for w in (step.get("state"), "colour", "incident_id") if w and w in there["msg"]]:
                assert word in here["msg"], (step, here["msg"])
    assert sorted(p.name for p in (tmp_path / "here").iterdir()) == sorted(p.name for p in (tmp_path / "there").iterdir()) \
        if (tmp_path / "there").exists() else not (tmp_path / "here").exists()


def test_a_no_log_value_never_leaves_and_the_result_is_what_json_carries():
    spec = {"token": {"type": "str", "no_log": True}, "name": {"type": "str"}}
    result = run_here(lambda here: IncidentModule(spec, here=here).run(
        lambda m: {"changed": False, "said": "token %s for %s" % (m.params["token"], m.params["name"]),
                   "pair": (1, 2), "at": datetime.datetime(2026, 12, 7, 1, 2, 3), "kinds": {"b", "a"}}),
        Here({"token": "s3cr3t-value", "name": "svc"}))
    assert "s3cr3t-value" not in str(result) and "for svc" in result["said"]
    assert result["pair"] == [1, 2] and result["at"] == "2026-12-07T01:02:03" and result["kinds"] == ["a", "b"]


def test_a_missing_library_fails_naming_it_and_warnings_are_returned():
    def work(module):
        module.warn("look here")
        module.require("frobnicate", False, ImportError("No module named frobnicate"))
        return {"changed": True}
    result = run_here(lambda here: IncidentModule({}, here=here).run(work), Here({}))
    assert result["failed"] is True and "frobnicate" in result["msg"]
    assert result["warnings"] == ["look here"]


def test_run_command_answers_as_the_module_s(tmp_path):
    module = IncidentModule({}, here=Here({}))
    assert module.run_command([sys.executable, "-c", "import os, sys; print(os.environ['X']); sys.exit(3)"],
                              environ_update={"X": "seen"}) == (3, "seen\n", "")
    rc, _out, err = module.run_command([str(tmp_path / "not-there")])
    assert rc == 127 and "not-there" in err


def test_the_task_environment_is_set_while_the_code_runs_and_then_taken_back(monkeypatch):
    monkeypatch.delenv("SRE_TEST_SEEN", raising=False)
    seen = {}

    def main(here=None):
        seen["value"] = os.environ.get("SRE_TEST_SEEN")
        return {"changed": False}
    plugin = action(LeaseAction, environment={"SRE_TEST_SEEN": "yes"})
    plugin.MAIN = staticmethod(main)
    assert plugin.run(task_vars=HERE_VARS) == {"changed": False}
    assert seen == {"value": "yes"} and "SRE_TEST_SEEN" not in os.environ
