# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""sre.incident.log_cleanup main(): the engine replaced by a fake container."""

from __future__ import annotations

import pytest
from ansible.module_utils import basic
from ansible.module_utils.testing import patch_module_args

from ansible_collections.sre.incident.plugins.module_utils import _compose
from ansible_collections.sre.incident.plugins.modules import log_cleanup

from ..module_utils.test_p1cases import FakeContainer


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


BOX = {}


@pytest.fixture(autouse=True)
def patch_env(monkeypatch):
    monkeypatch.setattr(basic.AnsibleModule, "exit_json", exit_json)
    monkeypatch.setattr(basic.AnsibleModule, "fail_json", fail_json)
    monkeypatch.setattr(_compose, "connect", lambda host, timeout: object())
    BOX["box"] = FakeContainer()

    def fake_exec(client, project, service, argv):
        assert (project, service) == ("recsys", "recommendation-service")
        return dict(BOX["box"](argv), cmd=argv)
    monkeypatch.setattr(_compose, "exec_in_service", fake_exec)


def run(args, check_mode=False, diff=False):
    with patch_module_args(dict(args, _ansible_check_mode=check_mode, _ansible_diff=diff)):
        try:
            log_cleanup.main()
        except (AnsibleExitJson, AnsibleFailJson) as exc:
            return exc.args[0]
    raise AssertionError("module did not exit")


def test_four_runs(tmp_path):
    args = dict(stack={"name": "recsys", "service": "recommendation-service", "state_dir": str(tmp_path)})
    r = run(args, check_mode=True, diff=True)
    assert r["changed"] and r["diff"]["after"].startswith("/var/log/recsys") and len(BOX["box"].files) == 2
    r = run(args)
    assert r["changed"] and r["freed_bytes"] == 62 * 1024 * 1024 and len(BOX["box"].files) == 1
    assert not run(args, check_mode=True)["changed"]
    assert not run(args)["changed"]


def test_stack_without_a_name_fails_naming_it():
    r = run(dict(stack={"service": "recommendation-service"}))
    assert r["failed"] and "name" in r["msg"]
