# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

import functools

import pytest

from ansible_collections.sre.incident.plugins.module_utils import _compose
from ansible_collections.sre.incident.plugins.modules import compose_service

from .harness import patch_engine, patch_exits, run_module  # noqa: F401  pylint: disable=unused-import


run = functools.partial(run_module, compose_service)


def state(name, service, status="running", health="none"):
    return dict(name=name, service=service, status=status, health=health, running=status == "running")


@pytest.fixture
def calls(monkeypatch):
    """Replace connect/ensure_services; record how the module calls them."""
    seen = {}
    result = dict(
        changed=True, state="restarted", actions={"recsys_web_1": "restart"},
        containers=[state("recsys_web_1", "web")],
        services={"web": dict(containers=1, running=1, healthy=0, ready=True, status="running/none",
                              actions={"recsys_web_1": "restart"}, changed=True, missing=False)},
        ready=True, not_ready=[], not_ready_states=[], waited=["recsys_web_1"], elapsed=1.2,
        diff=dict(before={"web": "running/none"}, after={"web": "running/none"}),
    )
    seen["result"] = result

    def connect(docker_host=None, timeout=60):
        seen["connect"] = (docker_host, timeout)
        return "client"

    def ensure_services(client, project, services, state, **kwargs):
        seen["ensure"] = dict(client=client, project=project, services=services, state=state, **kwargs)
        if "raise" in seen:
            raise seen["raise"]
        return dict(seen["result"])

    patch_engine(monkeypatch, connect=connect, ensure_services=ensure_services)
    return seen


def test_passes_options_and_returns_plain_result(calls, monkeypatch):
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    r = run(dict(project="recsys", service="web", state="restarted", timeout=10, stop_timeout=2))
    assert "failed" not in r
    assert r["changed"] is True
    assert r["ready"] is True
    assert r["containers"][0]["name"] == "recsys_web_1"
    assert "not_ready_states" not in r
    assert "diff" not in r
    assert calls["connect"] == ("unix:///var/run/docker.sock", 60)
    e = calls["ensure"]
    assert (e["project"], e["services"], e["state"]) == ("recsys", ["web"], "restarted")
    assert e["timeout"] == 10.0 and e["stop_timeout"] == 2 and e["wait"] is True
    assert e["check_mode"] is False


def test_docker_host_from_environment(calls, monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", "tcp://192.0.2.1:2375")
    run(dict(project="recsys", services=["web"]))
    assert calls["connect"][0] == "tcp://192.0.2.1:2375"


def test_check_mode_and_diff_passed(calls):
    r = run(dict(project="recsys", services=["web"], state="started"), check_mode=True, diff=True)
    assert calls["ensure"]["check_mode"] is True
    assert r["diff"] == {"before": {"web": "running/none"}, "after": {"web": "running/none"}}


def test_default_state_is_present(calls):
    run(dict(project="recsys", services=["web"]))
    assert calls["ensure"]["state"] == "present"


@pytest.mark.parametrize("args, word", [
    (dict(signal="SIGFOO", state="killed"), "SIGFOO"),
    (dict(timeout=-1), "timeout"),
    (dict(stop_timeout=-3), "stop_timeout"),
    (dict(services=["web", ""]), "services"),
    (dict(state="exploded"), "exploded"),
])
def test_bad_input_fails_before_connecting(calls, args, word):
    r = run(dict(dict(project="recsys", services=["web"]), **args))
    assert r["failed"] is True
    assert word in r["msg"]
    assert "connect" not in calls


def test_unknown_service_reported(calls):
    calls["raise"] = _compose.UnknownService("unknown service 'cache' in compose project 'recsys'. Known services: web",
                                             unknown=["cache"], known_services=["web"])
    r = run(dict(project="recsys", services=["cache"], state="restarted"))
    assert r["failed"] is True
    assert "'cache'" in r["msg"]
    assert r["known_services"] == ["web"]
    assert r["error_kind"] == "unknown_service"
    assert r["engine_unreachable"] is False


def test_engine_unreachable_reported(monkeypatch):
    def connect(docker_host=None, timeout=60):
        raise _compose.EngineUnreachable("Docker engine unreachable at unix:///x.sock: refused")

    monkeypatch.setattr(_compose, "connect", connect)
    r = run(dict(project="recsys", services=["web"], docker_host="unix:///x.sock"))
    assert r["failed"] is True
    assert r["engine_unreachable"] is True
    assert r["error_kind"] == "engine_unreachable"


def test_wait_timeout_fails_naming_container(calls):
    bad = state("recsys_web_1", "web", "running", "starting")
    calls["result"].update(ready=False, not_ready=["recsys_web_1"], not_ready_states=[bad])
    r = run(dict(project="recsys", services=["web"], state="restarted", timeout=5))
    assert r["failed"] is True
    assert "recsys_web_1" in r["msg"] and "starting" in r["msg"] and "5.0s" in r["msg"]
    assert r["changed"] is True  # the restart did happen


def test_wait_timeout_tolerated(calls):
    bad = state("recsys_web_1", "web", "running", "starting")
    calls["result"].update(ready=False, not_ready=["recsys_web_1"], not_ready_states=[bad])
    r = run(dict(project="recsys", services=["web"], state="restarted", fail_on_timeout=False))
    assert "failed" not in r
    assert r["ready"] is False
    assert r["not_ready"] == ["recsys_web_1"]


def test_missing_docker_sdk(monkeypatch):
    monkeypatch.setattr(_compose, "HAS_DOCKER", False)
    r = run(dict(project="recsys", services=["web"]))
    assert r["failed"] is True
    assert "docker" in r["msg"]


def test_project_dir_recreates_a_removed_service_with_an_up(calls, monkeypatch, tmp_path):
    seen = []

    def ensure_project(client, run_command, project, project_dir, files, state, **kwargs):
        seen.append(dict(client=client, project=project, project_dir=project_dir, files=files, state=state, **kwargs))
        return {"changed": True}

    monkeypatch.setattr(_compose, "ensure_project", ensure_project)
    run(dict(project="recsys", services=["web"], state="restarted", wait=False, timeout=20,
             project_dir=str(tmp_path), files=["a.yml", "b.yml"]), check_mode=True)
    assert calls["ensure"]["recreate"](["web"], 12.5) == {"changed": True}
    assert seen == [dict(client="client", project="recsys", project_dir=str(tmp_path), files=["a.yml", "b.yml"],
                         state="present", services=["web"], wait=True, timeout=12.5, check_mode=True)]
    # without project_dir a removed service fails, as before
    run(dict(project="recsys", services=["web"], state="restarted"))
    assert calls["ensure"]["recreate"] is None
