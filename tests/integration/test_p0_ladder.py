# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The recovery ladder of p0_recover.yml against real faults on the real stack.

Each test writes data first (a database row and a Redis key), breaks the stack for real,
runs the playbook, and checks from real state that the service answers, which rung the
record says fixed it, and that no data was lost.
"""
from __future__ import annotations

import uuid

import pytest

from conftest import SERVICE, read_record, run_playbook

pytestmark = pytest.mark.integration


def _write_canaries(stack):
    token = uuid.uuid4().hex[:12]
    stack.sql("CREATE TABLE IF NOT EXISTS sre_canary (token text PRIMARY KEY, at timestamptz DEFAULT now())")
    stack.sql(f"INSERT INTO sre_canary (token) VALUES ('{token}')")
    stack.redis("SET", f"sre:canary:{token}", token)
    # the key must survive a Redis restart: snapshot it as the stack's Redis would on its schedule
    stack.redis("SAVE")
    return token


def _assert_canaries(stack, token):
    assert stack.sql(f"SELECT count(*) FROM sre_canary WHERE token = '{token}'") == "1"
    assert stack.redis("GET", f"sre:canary:{token}") == token


def _fixed_by(events):
    fixed = [e["data"]["rung"] for e in events if (e.get("data") or {}).get("result") == "fixed"]
    return fixed[-1] if fixed else None


def _kill(stack):
    stack.container().kill()


def _pause(stack):
    stack.container().pause()


def _stop_redis(stack):
    stack.container("redis").stop(timeout=5)


def _stop_postgres(stack):
    stack.container("postgres").stop(timeout=5)


def _remove(stack):
    stack.container().remove(force=True)


@pytest.mark.parametrize("fault, expected_rung", [
    (_kill, "restart_service"),
    (_pause, "restart_service"),
    (_remove, "restart_service"),
    (_stop_redis, "restart_dependencies"),
    (_stop_postgres, "restart_dependencies"),
], ids=["killed", "paused", "removed", "redis-stopped", "postgres-stopped"])
def test_ladder_fixes_the_fault_at_the_expected_rung(stack, tmp_path, fault, expected_rung):
    token = _write_canaries(stack)
    fault(stack)
    assert not stack.service_answers()

    result = run_playbook("p0_recover.yml", extra_vars={"incident_dir": str(tmp_path)})

    assert result.returncode == 0, result.output[-4000:]
    assert stack.service_answers()
    state = stack.state()
    assert state["Status"] == "running" and state["Health"]["Status"] == "healthy"
    for dep in ("postgres", "redis"):
        assert stack.state(dep)["Status"] == "running"
    _incident, events = read_record(tmp_path)
    assert _fixed_by(events) == expected_rung
    assert [e["data"]["outcome"] for e in events if e["type"] == "closed"] == ["resolved"]
    _assert_canaries(stack, token)


def test_check_mode_on_a_broken_stack_changes_nothing(stack, tmp_path):
    stack.container("redis").stop(timeout=5)
    before = {s: stack.state(s) for s in (SERVICE, "redis", "postgres")}

    result = run_playbook("p0_recover.yml", check=True, extra_vars={"incident_dir": str(tmp_path)})

    assert result.returncode == 0, result.output[-4000:]
    after = {s: stack.state(s) for s in (SERVICE, "redis", "postgres")}
    for service, state in before.items():
        assert after[service]["Status"] == state["Status"], service
        assert after[service]["StartedAt"] == state["StartedAt"], service
    assert after["redis"]["Status"] == "exited"
    assert not list(tmp_path.iterdir()), "check mode wrote an incident record"
    assert "restart" in result.output.lower()


def test_unstartable_service_ends_degraded_with_the_edge_answering(stack, tmp_path):
    """Every rung fails when the service's image cannot start: p0_recover degrades and escalates."""
    import io
    import json
    import subprocess

    import docker

    from conftest import EDGE_URL, PROJECT, STACK_DIR, http_get, local_stack, wait_for

    image = "recsys/recommendation-service"
    broken = f"{image}:p0-broken"
    override = tmp_path / "broken.override.yml"
    override.write_text(json.dumps({"services": {SERVICE: {"image": broken}, f"{SERVICE}-standby": {"image": broken}}}))
    stack_vars = local_stack()
    stack_vars["compose_files"] = list(stack_vars["compose_files"]) + [str(override)]
    client = docker.from_env(timeout=60)
    client.images.build(fileobj=io.BytesIO(f'FROM {image}:latest\nENTRYPOINT ["/bin/false"]\nCMD []\n'.encode()),
                        tag=broken, rm=True)
    token = _write_canaries(stack)
    try:
        subprocess.run(["docker-compose", "-p", PROJECT, "--project-directory", str(STACK_DIR),
                        "-f", str(STACK_DIR / "docker-compose.yml"), "-f", str(override),
                        "up", "-d", "--no-deps", "--no-build", SERVICE], check=True, capture_output=True, timeout=120)
        assert wait_for(lambda: stack.state()["Status"] == "exited", timeout=20)

        result = run_playbook("p0_recover.yml", extra_vars={
            "incident_dir": str(tmp_path / "incidents"), "incident_stack": stack_vars,
            "recover_ladder_windows": {"restart_service": 8, "restart_dependencies": 20,
                                       "restart_service_after_dependencies": 8, "rebuild": 30},
            "degrade_timeout": 30})

        assert result.returncode == 0, result.output[-4000:]
        _incident, events = read_record(tmp_path / "incidents")
        tried = [e["data"]["rung"] for e in events if (e.get("data") or {}).get("result") == "not_fixed"]
        assert tried == ["restart_service", "restart_dependencies", "rebuild"]
        closed = [e["data"]["outcome"] for e in events if e["type"] == "closed"]
        assert closed == ["degraded"]
        modes = [e["data"]["degraded_mode"] for e in events if "degraded_mode" in (e.get("data") or {})]
        assert modes[-1] == "offline"
        # the edge still answers: a friendly 503 for recommendations, health stays truthful
        status, body = http_get("/api/recommendations/user-1?limit=10", base=EDGE_URL)
        assert status == 503 and body and body.get("error")
        assert http_get("/health", base=EDGE_URL)[0] != 200
        assert stack.state()["Status"] != "running"
        _assert_canaries(stack, token)
    finally:
        stack.restore()
        client.images.remove(broken, force=True)
    assert stack.service_answers()
    assert stack.container().attrs["Config"]["Image"] == f"{image}:latest"


def test_short_clock_skips_the_ladder_and_degrades(stack, tmp_path):
    """With less time left than the next rung plus verification, the ladder is not climbed."""
    from conftest import EDGE_URL, http_get

    stack.container("redis").stop(timeout=5)
    before = stack.state()["StartedAt"]

    result = run_playbook("p0_recover.yml", extra_vars={
        "incident_dir": str(tmp_path), "incident_sla": {"P0": {"respond": 300, "resolve": 60}},
        "recover_verify_budget": 60, "degrade_order": ["A", "D"], "degrade_timeout": 30})

    assert result.returncode == 0, result.output[-4000:]
    _incident, events = read_record(tmp_path)
    decisions = [e["data"] for e in events if "decision" in (e.get("data") or {})]
    assert decisions and decisions[0]["decision"] == "degrade"
    assert decisions[0]["time_left_s"] < decisions[0]["needed_s"]
    assert not [e for e in events if "rung" in (e.get("data") or {})], "a rung was climbed"
    assert stack.state()["StartedAt"] == before   # the service was not restarted
    assert [e["data"]["outcome"] for e in events if e["type"] == "closed"] == ["degraded"]
    mode = [e["data"]["degraded_mode"] for e in events if "degraded_mode" in (e.get("data") or {})][-1]
    assert mode in ("standby", "offline")
    assert http_get("/api/recommendations/user-1?limit=10", base=EDGE_URL)[0] in (200, 503)
