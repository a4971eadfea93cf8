# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""sre.incident.fault main(): refusal and bad input fail before the engine is contacted."""
from __future__ import annotations

import pytest
from ansible.module_utils import basic
from ansible.module_utils.testing import patch_module_args

from ansible_collections.sre.incident.plugins.module_utils import _compose, _fault
from ansible_collections.sre.incident.plugins.modules import fault

STACK = {"name": "stg1"}


class AnsibleExitJson(Exception):
    pass


class AnsibleFailJson(Exception):
    pass


def exit_json(self, **kwargs):
    kwargs.setdefault("changed", False)
    raise AnsibleExitJson(kwargs)


def fail_json(self, **kwargs):
    kwargs["failed"] = True
    raise AnsibleFailJson(kwargs)


@pytest.fixture(autouse=True)
def patched(monkeypatch):
    monkeypatch.setattr(basic.AnsibleModule, "exit_json", exit_json)
    monkeypatch.setattr(basic.AnsibleModule, "fail_json", fail_json)

    def no_engine(*args, **kwargs):
        raise AssertionError("the engine must not be contacted")
    monkeypatch.setattr(_compose, "connect", no_engine)


def run(args):
    with patch_module_args(args):
        fault.main()


def test_production_environment_is_refused_before_the_engine():
    with pytest.raises(AnsibleFailJson) as info:
        run(dict(name="app_crash", state="injected", stack=STACK, environment="production"))
    assert info.value.args[0]["refused"] is True and "production" in info.value.args[0]["msg"]
    assert info.value.args[0]["changed"] is False


def test_marker_file_is_refused(monkeypatch):
    monkeypatch.setattr(_fault.os.path, "exists", lambda path: path == _fault.PRODUCTION_MARKER)
    with pytest.raises(AnsibleFailJson) as info:
        run(dict(name="latency", state="rolled_back", stack=STACK))
    assert info.value.args[0]["reason"] == "marker"


def test_bad_delay_fails_before_the_engine():
    with pytest.raises(AnsibleFailJson) as info:
        run(dict(name="latency", state="injected", stack=STACK, delay_ms=-5))
    assert "delay_ms" in info.value.args[0]["msg"]


def test_success_returns_plain_data(monkeypatch):
    monkeypatch.setattr(_compose, "connect", lambda *a, **k: object())
    monkeypatch.setattr(_fault, "run", lambda params, target, check_mode: dict(changed=True, fault="latency", diff={}))
    with pytest.raises(AnsibleExitJson) as info:
        run(dict(name="latency", state="injected", stack=STACK))
    assert info.value.args[0]["changed"] is True and "diff" not in info.value.args[0]
