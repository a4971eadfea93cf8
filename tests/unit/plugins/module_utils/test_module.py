# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The module base (_module.py) and the error hierarchy (_errors.py): one mapping of errors to a
task's failure, the diff hand-off, the import check, the shared Docker options."""
from __future__ import annotations

import ast
import os
import pathlib

import pytest
import yaml

from ansible_collections.sre.incident.plugins.module_utils import _compose, _degrade, _fault, _module
from ansible_collections.sre.incident.plugins.module_utils._errors import IncidentError, InputError
from ansible_collections.sre.incident.tests.unit.plugins.modules.harness import (  # noqa: F401  pylint: disable=unused-import
    patch_exits,
    run_module,
)

ROOT = pathlib.Path(__file__).resolve().parents[4]


def fails_with(exc, **kwargs):
    def work():
        raise exc
    return _module.outcome(work, **kwargs)


def test_an_incident_error_fails_with_its_details_and_changed_false():
    result = fails_with(IncidentError("the lease is held", holder="alice"))
    assert result == dict(failed=True, changed=False, msg="the lease is held", holder="alice")
    # details may say something changed before the failure (a rung that ran, then broke)
    assert fails_with(IncidentError("reverted", changed=True))["changed"] is True


def test_refusals_say_so_and_others_do_not():
    assert fails_with(_fault.Refused("production", reason="marker"))["refused"] is True
    assert fails_with(_degrade.Refused("not healthy"))["refused"] is True
    assert fails_with(_degrade.DegradeError("broken"))["refused"] is False
    assert "refused" not in fails_with(_fault.FaultError("broken"))


def test_docker_errors_tell_the_engine_from_a_container():
    result = fails_with(_compose.EngineUnreachable("no engine at unix:///x", docker_host="unix:///x"))
    assert result["engine_unreachable"] is True and result["error_kind"] == "engine_unreachable"
    assert result["docker_host"] == "unix:///x" and result["changed"] is False
    assert fails_with(_compose.UnknownService("no 'cache'"))["engine_unreachable"] is False


def test_bad_input_is_a_value_error_and_an_incident_error():
    assert issubclass(InputError, ValueError) and issubclass(InputError, IncidentError)
    expected = dict(failed=True, changed=False, msg="count must be >= 1, got 0")
    assert fails_with(ValueError("count must be >= 1, got 0")) == expected


def test_os_errors_fail_with_the_context_only_when_given():
    assert fails_with(OSError("disk full"), context="lease in /x")["msg"] == "lease in /x: disk full"
    with pytest.raises(OSError):
        fails_with(OSError("disk full"))
    # wrap: bad input of a record read from disk is named with the record too
    assert fails_with(ValueError("bad line"), context="record in /r", wrap=(OSError, ValueError))["msg"] == \
        "record in /r: bad line"
    # an IncidentError is never wrapped: its message already names the value
    assert fails_with(InputError("bad id 'x y'"), context="record in /r", wrap=(OSError, ValueError))["msg"] == \
        "bad id 'x y'"


def test_other_errors_are_bugs_and_propagate():
    with pytest.raises(KeyError):
        fails_with(KeyError("x"))


@pytest.mark.parametrize("diff, when, changed, kept", [
    (False, "always", True, False),
    (True, "always", False, True),
    (True, "changed", False, False),
    (True, "changed", True, True),
])
def test_the_diff_is_handed_over_only_when_asked(diff, when, changed, kept):
    result = _module.outcome(lambda: dict(changed=changed, diff=dict(before="a", after="b")), diff=diff, diff_when=when)
    assert ("diff" in result) is kept


def test_an_empty_diff_is_kept_but_none_is_not():
    assert _module.outcome(lambda: dict(changed=False, diff=[]), diff=True)["diff"] == []
    assert "diff" not in _module.outcome(lambda: dict(changed=False, diff=None), diff=True)


def test_a_failures_diff_follows_the_same_rule():
    exc = _degrade.Refused("refusing", diff=dict(before="offline (D)", after="offline (D)"))
    assert fails_with(exc, diff=True)["diff"] == dict(before="offline (D)", after="offline (D)")
    assert "diff" not in fails_with(exc, diff=False)


# ------------------------------------------------------------------ IncidentModule, run in-process

class _Fake:
    """A module file: main() builds an IncidentModule and runs ``work``."""

    def __init__(self, work, docker=False, **kwargs):
        self.work, self.docker, self.kwargs = work, docker, kwargs

    def main(self):
        spec = dict(name=dict(type="str", default="x"))
        _module.IncidentModule(spec, docker=self.docker).run(self.work, **self.kwargs)


def test_docker_options_are_merged_with_their_defaults(monkeypatch):
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    seen = {}

    def connect(docker_host=None, timeout=60, **kwargs):
        seen.update(host=docker_host, timeout=timeout, **kwargs)
        return "client"

    monkeypatch.setattr(_compose, "connect", connect)
    result = run_module(_Fake(lambda m: dict(client=m.connect(max_pool_size=4), changed=False), docker=True), {})
    assert result["client"] == "client"
    assert seen == dict(host="unix:///var/run/docker.sock", timeout=60, max_pool_size=4)
    result = run_module(_Fake(lambda m: dict(changed=False), docker=False), dict(docker_host="unix:///x"))
    assert result["failed"] and "docker_host" in result["msg"]


def test_a_missing_sdk_is_named_only_when_the_engine_is_needed(monkeypatch):
    monkeypatch.setattr(_compose, "HAS_DOCKER", False)
    assert run_module(_Fake(lambda m: dict(changed=False), docker=True), {}) == dict(changed=False)
    result = run_module(_Fake(lambda m: dict(client=m.connect()), docker=True), {})
    assert result["failed"] and "docker" in result["msg"]


def test_always_keys_are_in_every_result_and_warnings_are_warned(monkeypatch):
    warned = []
    monkeypatch.setattr(_module.AnsibleModule, "warn", lambda self, msg: warned.append(msg))

    def work(module):
        module.always["plan"] = ["stop db"]
        raise IncidentError("the dump failed", step="dump")

    assert run_module(_Fake(work), {}) == dict(failed=True, changed=False, msg="the dump failed", step="dump",
                                               plan=["stop db"])
    result = run_module(_Fake(lambda m: dict(changed=True, warnings=["torn line 3"])), {})
    assert result == dict(changed=True) and warned == ["torn line 3"]


def test_a_work_fails_with_its_whole_result():
    result = run_module(_Fake(lambda m: dict(changed=True, ready=False, failed=True, msg="not ready")), {})
    assert result == dict(changed=True, ready=False, failed=True, msg="not ready")


# ------------------------------------------------------------------ the modules keep to the base

def _modules():
    return sorted(p for p in (ROOT / "plugins" / "modules").glob("*.py"))


@pytest.mark.parametrize("path", _modules(), ids=lambda p: p.stem)
def test_every_module_uses_the_base_and_no_ansible_module_of_its_own(path):
    text = path.read_text()
    tree = ast.parse(text)
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) for alias in node.names}
    assert "IncidentModule" in imported
    assert "AnsibleModule" not in imported and "missing_required_lib" not in imported
    assert "fail_json" not in text and "exit_json" not in text and "_diff" not in text


def test_the_docker_action_group_is_the_modules_with_the_docker_options():
    runtime = yaml.safe_load((ROOT / "meta" / "runtime.yml").read_text())
    docker = {p.stem for p in _modules() if "docker=True" in p.read_text()}
    assert set(runtime["action_groups"]["docker"]) == docker
    assert set(runtime["action_groups"]["incident"]) == {p.stem for p in _modules()}
    for name in docker:
        assert "sre.incident.docker" in (ROOT / "plugins" / "modules" / (name + ".py")).read_text(), name


def test_an_old_module_name_keeps_its_action_plugin():
    # a redirected module whose target has an action plugin would otherwise run under the plain `normal` action
    routing = yaml.safe_load((ROOT / "meta" / "runtime.yml").read_text())["plugin_routing"]
    actions = {p.stem for p in (ROOT / "plugins" / "action").glob("*.py")}
    wanted = {old: entry["redirect"] for old, entry in routing["modules"].items()
              if entry["redirect"].rsplit(".", 1)[-1] in actions}
    assert wanted and {old: entry["redirect"] for old, entry in routing["action"].items()} == wanted


def test_the_record_action_does_not_load_the_docker_sdk():
    # the incident action runs in the controller for every record call: it must stay cheap
    source = (ROOT / "plugins" / "module_utils" / "_module.py").read_text()
    top_level = [line for line in source.splitlines() if line.startswith(("import ", "from "))]
    assert not [line for line in top_level if "_compose" in line or "docker" in line]
    assert os.path.basename(_module.__file__) == "_module.py"
