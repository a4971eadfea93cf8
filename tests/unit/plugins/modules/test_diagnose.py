# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

import functools
import os

import pytest

from ansible_collections.sre.incident.plugins.module_utils import _compose
from ansible_collections.sre.incident.plugins.modules import diagnose
from ansible_collections.sre.incident.tests.unit.plugins.module_utils.test_diagnose import SECRET, STACK, _client

from .harness import patch_engine, patch_exits, patch_run_command, run_module  # noqa: F401  pylint: disable=unused-import


@pytest.fixture(autouse=True)
def not_a_git_checkout(monkeypatch):
    patch_run_command(monkeypatch, rc=128, err="not a git repository")


@pytest.fixture
def fake_engine(monkeypatch):
    client = _client()

    def connect(docker_host=None, timeout=60, max_pool_size=None):
        return client

    patch_engine(monkeypatch, connect=connect)
    return client


_run = functools.partial(run_module, diagnose)


def _stack(tmp_path):
    return dict(STACK, state_dir=str(tmp_path))


def test_collects_writes_bundle_and_snapshot(fake_engine, tmp_path):
    # an unwell cache makes no snapshot (the newest kept is the one option C restores)
    unwell = _run(dict(stack=_stack(tmp_path), bundle=False, redis_snapshot=True, parts=["status", "redis", "fallbacks"],
                       thresholds={"redis_memory_percent": 0}))
    assert unwell["snapshot"]["taken"] is False and "the cache is unwell (redis memory at" in unwell["snapshot"]["reason"]
    assert unwell["changed"] is False and not (tmp_path / "redis-snapshots").exists()
    res = _run(dict(stack=_stack(tmp_path), label="rca", redis_snapshot=True, parts=["status", "logs", "redis", "fallbacks"]))
    assert not res.get("failed"), res
    assert res["changed"] is True
    assert set(res["parts"]) == {"status", "logs", "redis", "fallbacks"}
    assert res["bundle"]["written"] and res["bundle"]["dir"].startswith(str(tmp_path / "bundles"))
    assert os.path.exists(res["bundle"]["archive"])
    assert res["snapshot"]["taken"] and res["snapshot"]["path"].startswith(str(tmp_path / "redis-snapshots"))
    # the fallbacks part ran after the snapshot and saw it
    assert res["parts"]["fallbacks"]["snapshot"]["path"] == res["snapshot"]["path"]
    assert res["summary"]["error_lines"] == 1
    assert res["runbook_items"]["1"]["ok"] and not res["runbook_items"]["3"]["ok"]
    assert SECRET not in repr(res)
    assert res["redacted"] >= 1


def test_check_mode_writes_nothing(fake_engine, tmp_path):
    res = _run(dict(stack=_stack(tmp_path), redis_snapshot=True, parts=["status", "redis"], _ansible_check_mode=True))
    assert res["changed"] is False
    assert res["bundle"] == dict(written=False, dir=str(tmp_path / "bundles"), reason="check mode: nothing written")
    assert res["snapshot"]["taken"] is False and "check mode" in res["snapshot"]["reason"]
    assert os.listdir(tmp_path) == []
    assert res["parts"]["status"]["ok"]


def test_no_bundle_is_not_a_change(fake_engine, tmp_path):
    res = _run(dict(stack=_stack(tmp_path), bundle=False, parts=["status"]))
    assert res["changed"] is False and res["bundle"]["reason"] == "bundle=false"
    assert res["verdict"] in ("ok", "warning", "critical")


@pytest.mark.parametrize("args, msg", [
    (dict(errors_since="yesterday"), "not an ISO 8601 time"),
    (dict(log_lines=-1), "log_lines"),
    (dict(thresholds={"cpu_percent": "high"}), "cpu_percent"),
    (dict(redis_snapshot_keep=0, redis_snapshot=True), "redis_snapshot_keep"),
    (dict(probe_count=0), "probe_count"),
])
def test_bad_input_fails_naming_it(fake_engine, tmp_path, args, msg):
    res = _run(dict(stack=_stack(tmp_path), **args))
    assert res["failed"] and msg in res["msg"]
    assert os.listdir(tmp_path) == []


def test_missing_state_dir_and_stack_keys(fake_engine):
    res = _run(dict(stack=dict(STACK)))
    assert res["failed"] and "state_dir" in res["msg"]
    bad = dict(STACK)
    del bad["service"]
    res = _run(dict(stack=bad, bundle=False))
    assert res["failed"] and "service" in res["msg"]


def test_engine_unreachable(monkeypatch, tmp_path):
    def connect(docker_host=None, timeout=60, max_pool_size=None):
        raise _compose.EngineUnreachable("Docker engine unreachable at tcp://x: refused")

    patch_engine(monkeypatch, connect=connect)
    res = _run(dict(stack=_stack(tmp_path), docker_host="tcp://x"))
    assert res["failed"] and res["engine_unreachable"] is True
