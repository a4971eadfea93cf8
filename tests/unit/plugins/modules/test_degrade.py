# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""sre.incident.degrade main(): input checks, exits and failures, the engine replaced by fakes."""
from __future__ import annotations

import functools

import pytest

from ansible_collections.sre.incident.plugins.module_utils import _compose, _degrade
from ansible_collections.sre.incident.plugins.modules import degrade

from .harness import patch_engine, patch_exits, run_module  # noqa: F401  pylint: disable=unused-import

STACK = {
    "name": "recsys", "project_dir": "/srv/recsys", "service": "recommendation-service",
    "standby": "recommendation-service-standby", "edge": "edge", "base_url": "http://127.0.0.1:3000",
    "edge_url": "http://127.0.0.1:8080", "health_path": "/health", "recommendations_path": "/api/recommendations/{user}",
    "sample_users": ["user-1"], "state_dir": "/var/lib/sre-incident/recsys",
}


CALLS = []


@pytest.fixture(autouse=True)
def patch_env(monkeypatch):
    CALLS.clear()
    patch_engine(monkeypatch, connect=lambda host, timeout: CALLS.append(("connect", host)) or object())

    def fake_enable(ctx, mode, order, verify, check_mode):
        CALLS.append(("enable", mode, tuple(order), verify, check_mode, ctx.timeout))
        return dict(changed=not check_mode, active_mode="static", active_option="B", active_modes=["static"], tried=[],
                    diff=dict(before="normal", after="static (B)"), msg="static (B) is on")

    def fake_disable(ctx, force, check_mode):
        CALLS.append(("disable", force, check_mode))
        if not force:
            raise _degrade.Refused("refusing to leave degraded mode offline (D): not verified healthy",
                                   msg="refused", changed=False, diff=dict(before="offline (D)", after="offline (D)"))
        return dict(changed=True, active_mode=None, active_modes=[], tried=[], diff=dict(before="offline (D)", after="normal"),
                    msg="back to normal")
    monkeypatch.setattr(_degrade, "enable", fake_enable)
    monkeypatch.setattr(_degrade, "disable", fake_disable)


run = functools.partial(run_module, degrade)


def test_enable_passes_normalized_input_and_diff():
    r = run(dict(stack=STACK, mode="auto", order=["static", "D"], timeout=30), diff=True)
    assert r["changed"] is True and r["active_mode"] == "static"
    assert r["diff"] == dict(before="normal", after="static (B)")
    assert CALLS[-1] == ("enable", "auto", ("B", "D"), True, False, 30.0)


def test_enable_by_name_check_mode_no_diff():
    r = run(dict(stack=STACK, mode="offline"), check_mode=True)
    assert r["changed"] is False and "diff" not in r
    assert CALLS[-1][:5] == ("enable", "D", ("A", "B", "C", "D"), True, True)


def test_bad_mode_fails_before_connecting():
    r = run(dict(stack=STACK, mode="maintenance"))
    assert r["failed"] is True and "maintenance" in r["msg"]
    assert CALLS == []


def test_duplicate_order_named():
    r = run(dict(stack=STACK, order=["B", "static"]))
    assert r["failed"] is True and "twice" in r["msg"]
    assert CALLS == []


def test_bad_timeout():
    r = run(dict(stack=STACK, timeout=0))
    assert r["failed"] is True and "timeout" in r["msg"]


def test_incomplete_stack_named():
    r = run(dict(stack={k: v for k, v in STACK.items() if k != "edge_url"}))
    assert r["failed"] is True and "edge_url" in r["msg"] and CALLS == []


def test_c_needs_state_dir_only_when_tried():
    no_state = {k: v for k, v in STACK.items() if k != "state_dir"}
    r = run(dict(stack=no_state, mode="C"))
    assert r["failed"] is True and "state_dir" in r["msg"]
    r = run(dict(stack=no_state, order=["B", "D"]))
    assert not r.get("failed")
    r = run(dict(stack=no_state, mode="C", snapshot_dir="/tmp/snaps"))
    assert not r.get("failed")


def test_disable_refused_is_a_clear_failure():
    r = run(dict(stack=STACK, state="disabled"), diff=True)
    assert r["failed"] is True and r["refused"] is True and "refusing" in r["msg"]
    assert r["diff"] == dict(before="offline (D)", after="offline (D)")


def test_disable_forced():
    r = run(dict(stack=STACK, state="disabled", force=True))
    assert r["changed"] is True and r["active_modes"] == []
    assert CALLS[-1] == ("disable", True, False)


def test_engine_unreachable(monkeypatch):
    def boom(host, timeout):
        raise _compose.EngineUnreachable("Docker engine unreachable at unix:///nope")
    monkeypatch.setattr(_compose, "connect", boom)
    r = run(dict(stack=STACK))
    assert r["failed"] is True and r["engine_unreachable"] is True


def test_missing_docker_sdk(monkeypatch):
    monkeypatch.setattr(_compose, "HAS_DOCKER", False)
    r = run(dict(stack=STACK))
    assert r["failed"] is True and "docker" in r["msg"]
