# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""sre.incident.log_cleanup main(): the engine replaced by a fake container."""

from __future__ import annotations

import functools

import pytest

from ansible_collections.sre.incident.plugins.modules import log_cleanup

from ..module_utils.test_log_cleanup import FakeContainer
from .harness import patch_engine, patch_exits, run_module  # noqa: F401  pylint: disable=unused-import


BOX = {}


@pytest.fixture(autouse=True)
def patch_env(monkeypatch):
    BOX["box"] = FakeContainer()

    def fake_exec(client, project, service, argv):
        assert (project, service) == ("recsys", "recommendation-service")
        return dict(BOX["box"](argv), cmd=argv)
    patch_engine(monkeypatch, exec_in_service=fake_exec)


run = functools.partial(run_module, log_cleanup)


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
