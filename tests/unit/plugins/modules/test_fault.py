# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""sre.incident.fault main(): refusal and bad input fail before the engine is contacted."""
from __future__ import annotations

import functools

import pytest

from ansible_collections.sre.incident.plugins.module_utils import _fault
from ansible_collections.sre.incident.plugins.modules import fault

from .harness import patch_engine, patch_exits, run_module  # noqa: F401  pylint: disable=unused-import

STACK = {"name": "stg1"}

run = functools.partial(run_module, fault)


def no_engine(*args, **kwargs):
    raise AssertionError("the engine must not be contacted")


@pytest.fixture(autouse=True)
def engine_untouched(monkeypatch):
    patch_engine(monkeypatch, connect=no_engine)


def test_production_environment_is_refused_before_the_engine():
    result = run(dict(name="app_crash", state="injected", stack=STACK, environment="production"))
    assert result["failed"] is True
    assert result["refused"] is True and "production" in result["msg"]
    assert result["changed"] is False


def test_marker_file_is_refused(monkeypatch):
    monkeypatch.setattr(_fault.os.path, "exists", lambda path: path == _fault.PRODUCTION_MARKER)
    result = run(dict(name="latency", state="rolled_back", stack=STACK))
    assert result["failed"] is True
    assert result["reason"] == "marker"


def test_bad_delay_fails_before_the_engine():
    result = run(dict(name="latency", state="injected", stack=STACK, delay_ms=-5))
    assert result["failed"] is True
    assert "delay_ms" in result["msg"]


def test_success_returns_plain_data(monkeypatch):
    patch_engine(monkeypatch)
    monkeypatch.setattr(_fault, "run", lambda params, target, check_mode: dict(changed=True, fault="latency", diff={}))
    result = run(dict(name="latency", state="injected", stack=STACK))
    assert not result.get("failed")
    assert result["changed"] is True and "diff" not in result


def test_a_fault_that_cannot_act_on_the_stack_says_not_applicable(monkeypatch):
    patch_engine(monkeypatch)

    def not_here(params, target, check_mode):
        raise _fault.NotApplicable("disk_fill is not applicable on this stack: no writable volume")

    monkeypatch.setattr(_fault, "run", not_here)
    result = run(dict(name="disk_fill", state="injected", stack=STACK))
    assert result["failed"] is True and result["not_applicable"] is True and result["changed"] is False
    assert "no writable volume" in result["msg"]
