# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The recovery ladder of p0_recover.yml against real faults on both example stacks (P0-4, GEN-1, GEN-2).

Each test writes data first (a database row and a Redis key), breaks the stack for real, runs the
playbook, and checks from real state that users are answered through the edge, which rung the record
says fixed it, and that no data was lost.
"""
from __future__ import annotations

import datetime
import io
import json
import subprocess
import uuid

import docker
import pytest
import yaml

from conftest import http_get, local_stack, read_record, wait_for

pytestmark = pytest.mark.integration

PLACEHOLDER = "debian:bookworm-slim"


def _at(ts):
    return datetime.datetime.fromisoformat(ts.replace("Z", "+00:00"))


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


def _ip(container):
    container.reload()
    return next(iter(container.attrs["NetworkSettings"]["Networks"].values()))["IPAddress"]


def _network(container):
    return next(iter(container.attrs["NetworkSettings"]["Networks"]))


def _kill(stack):
    stack.container().kill()


def _pause(stack):
    stack.container().pause()


def _stop_cache(stack):
    stack.container(stack.spec.redis["service"]).stop(timeout=5)


def _stop_database(stack):
    stack.container(stack.spec.database["service"]).stop(timeout=5)


def _stop_edge(stack):
    stack.container(stack.spec.edge).stop(timeout=5)


def _remove_and_take_its_address(stack):
    """Remove the service's container and start another container that takes its address: an nginx that
    resolved the service's name once still sends users there (the engine hands out the lowest free address)."""
    victim = stack.container()
    old_ip, network = _ip(victim), _network(victim)
    victim.remove(force=True)
    # a lower address left free by an earlier test goes first: placeholders fill it (all removed after the test)
    for n in range(16):
        squatter = stack.client.containers.run(PLACEHOLDER, ["sleep", "900"], detach=True, network=network,
                                               name=f"sre-test-squatter-{stack.spec.id}-{n}",
                                               labels={"sre.incident.test": "squatter"})
        if _ip(squatter) == old_ip:
            return squatter
    raise AssertionError(f"no placeholder got the removed container's address {old_ip}")


@pytest.fixture
def no_squatter(any_stack):
    yield any_stack
    for c in any_stack.client.containers.list(all=True, filters={"label": "sre.incident.test=squatter"}):
        c.remove(force=True)


@pytest.mark.parametrize("fault, expected_rung", [
    (_kill, "restart_service"),
    (_pause, "restart_service"),
    (_remove_and_take_its_address, "restart_service"),
    (_stop_cache, "restart_dependencies"),
    (_stop_database, "restart_dependencies"),
    (_stop_edge, "repair_edge"),
], ids=["killed", "paused", "removed-address-taken", "cache-stopped", "database-stopped", "edge-stopped"])
def test_ladder_fixes_the_fault_at_the_expected_rung(no_squatter, tmp_path, fault, expected_rung):
    stack = no_squatter
    token = _write_canaries(stack)
    fault(stack)
    assert not stack.service_answers()

    result = stack.run_playbook("p0_recover.yml", extra_vars={"incident_dir": str(tmp_path)})

    assert result.returncode == 0, result.output[-4000:]
    # what users get through the edge, at once (the playbook ends only after it verified that)
    assert stack.answers(stack.spec.edge_url), "users are not answered through the edge"
    assert stack.answers(stack.spec.base_url)
    assert stack.state()["Status"] == "running"
    # the engine's own healthcheck says so too, at its next interval (it reads "starting" until then)
    assert wait_for(lambda: stack.state()["Health"]["Status"] == "healthy", timeout=60), stack.state()["Health"]
    for dep in stack.spec.dependencies + (stack.spec.edge,):
        assert stack.state(dep)["Status"] == "running", dep
    _incident, events = read_record(tmp_path)
    assert _fixed_by(events) == expected_rung
    assert [e["data"]["outcome"] for e in events if e["type"] == "closed"] == ["resolved"]
    verify = [e["data"]["verify"] for e in events if "verify" in (e.get("data") or {})][-1]
    assert verify["passed"] is True and "edge" in [c["name"] for c in verify["checks"]]
    _assert_canaries(stack, token)


def test_a_stack_without_any_healthcheck_recovers_and_verifies(any_stack, tmp_path):
    """Many teams' compose files have no healthcheck: every wait must then rely on what it probes itself.

    The whole stack is recreated from a copy of its compose file without any healthcheck, both
    dependencies are stopped, and the P0 must restart them, wait, restart the service and verify
    through the edge, with the record saying so."""
    stack = any_stack
    services = (stack.spec.service, stack.spec.edge) + stack.spec.dependencies
    # compose cannot take a healthcheck away in an override: a copy of the team's file without any
    compose = yaml.safe_load((stack.spec.stack_dir / "docker-compose.yml").read_text())
    for service in compose["services"].values():
        service["healthcheck"] = {"disable": True}    # an image may bring one of its own
        if isinstance(service.get("depends_on"), dict):
            service["depends_on"] = sorted(service["depends_on"])
    bare = tmp_path / "no-healthchecks.yml"
    bare.write_text(yaml.safe_dump({k: v for k, v in compose.items() if not k.startswith("x-")}))
    stack_vars = dict(local_stack(stack.spec), compose_files=[str(bare)])
    token = _write_canaries(stack)
    try:
        subprocess.run(["docker-compose", "-p", stack.spec.project, "--project-directory", str(stack.spec.stack_dir),
                        "-f", str(bare), "up", "-d", "--no-build", *services], check=True, capture_output=True,
                       timeout=180)
        assert wait_for(stack.service_answers, timeout=60)
        for name in services:
            assert "Health" not in stack.state(name), f"{name} still has a healthcheck"
        _stop_cache(stack)
        _stop_database(stack)
        assert not stack.answers(stack.spec.edge_url)

        result = stack.run_playbook("p0_recover.yml", extra_vars={
            "incident_dir": str(tmp_path / "incidents"), "incident_stack": stack_vars})

        assert result.returncode == 0, result.output[-4000:]
        assert stack.answers(stack.spec.edge_url), "users are not answered through the edge"
        for name in services:
            assert stack.state(name)["Status"] == "running", name
        _incident, events = read_record(tmp_path / "incidents")
        assert _fixed_by(events) == "restart_dependencies"
        assert [e["data"]["outcome"] for e in events if e["type"] == "closed"] == ["resolved"]
        verify = [e["data"]["verify"] for e in events if "verify" in (e.get("data") or {})][-1]
        assert verify["passed"] is True and "edge" in [c["name"] for c in verify["checks"]]
        _assert_canaries(stack, token)
    finally:
        stack.restore()
    assert "Health" in stack.state(stack.spec.service)


@pytest.mark.parametrize("any_stack", ["shop"], indirect=True)
def test_a_static_proxy_pass_is_reloaded_after_the_service_moved(no_squatter, tmp_path):
    """GEN-2 on the stock nginx: the service's address is taken by another container, so the edge answers 502
    after the recreate until the ladder reloads it; never a "verified" while the edge answers 502."""
    stack = no_squatter
    _remove_and_take_its_address(stack)
    result = stack.run_playbook("p0_recover.yml", extra_vars={"incident_dir": str(tmp_path)})
    assert result.returncode == 0, result.output[-4000:]
    _incident, events = read_record(tmp_path)
    rung = [e["data"] for e in events if (e.get("data") or {}).get("result") == "fixed"][-1]
    assert rung["service_answers"] is True and rung["edge_serves"] is True
    assert rung["edge_actions"] == ["reload"], rung
    assert stack.answers(stack.spec.edge_url)


@pytest.mark.parametrize("any_stack", ["shop"], indirect=True)
def test_an_edge_sending_users_to_an_address_nobody_holds_is_repaired_within_one_probe_timeout(no_squatter, tmp_path):
    """The service moved and its old address is free: the stock nginx's requests there hang until they time out.
    Every look at the edge asks its URLs at once, so the repair costs one probe timeout, not one per URL."""
    stack = no_squatter
    squatter = _remove_and_take_its_address(stack)
    subprocess.run(["docker-compose", "-p", stack.spec.project, "--project-directory", str(stack.spec.stack_dir),
                    "-f", str(stack.spec.stack_dir / "docker-compose.yml"), "up", "-d", "--no-deps", "--no-build",
                    stack.spec.service], check=True, capture_output=True, timeout=120)
    squatter.remove(force=True)
    assert wait_for(lambda: stack.answers(stack.spec.base_url), timeout=30)
    status, _body = http_get("/health", base=stack.spec.edge_url, timeout=1)
    assert status in (0, 504), f"the edge answered {status}: its old upstream address is not left hanging"

    result = stack.run_playbook("p0_recover.yml", extra_vars={"incident_dir": str(tmp_path)})

    assert result.returncode == 0, result.output[-4000:]
    assert stack.answers(stack.spec.edge_url)
    _incident, events = read_record(tmp_path)
    rung = [e["data"] for e in events if (e.get("data") or {}).get("result") == "fixed"][-1]
    assert (rung["rung"], rung["edge_serves"]) == ("repair_edge", True), rung
    # the edge's first look (3 s probes) and the wait after its reload; asked one by one: 6 x 3 s before the reload
    assert rung["elapsed_s"] < 10, rung


def test_check_mode_on_a_broken_stack_changes_nothing(any_stack, tmp_path):
    stack = any_stack
    services = (stack.spec.service,) + stack.spec.dependencies
    stack.container(stack.spec.redis["service"]).stop(timeout=5)
    before = {s: stack.state(s) for s in services}

    result = stack.run_playbook("p0_recover.yml", check=True, extra_vars={"incident_dir": str(tmp_path)})

    assert result.returncode == 0, result.output[-4000:]
    after = {s: stack.state(s) for s in services}
    for service, state in before.items():
        assert after[service]["Status"] == state["Status"], service
        assert after[service]["StartedAt"] == state["StartedAt"], service
    assert after[stack.spec.redis["service"]]["Status"] == "exited"
    assert not list(tmp_path.iterdir()), "check mode wrote an incident record"
    assert "restart" in result.output.lower()


@pytest.mark.parametrize("policy, why", [("no", "exited"), ("unless-stopped", "keeps crashing")])
def test_unstartable_service_ends_degraded_with_the_edge_answering(any_stack, tmp_path, policy, why):
    """Every rung fails when the service's image cannot start: p0_recover degrades and escalates.

    Each rung's wait, and the standby's, must see that the service cannot come up and end long
    before its window: without a restart policy the container stays exited; under one (the most
    common: unless-stopped) it is never seen exited for long, and the wait must see the crash loop."""
    stack = any_stack
    image = stack.container().attrs["Config"]["Image"]
    broken = image.split(":")[0] + ":p0-broken"
    override = tmp_path / "broken.override.yml"
    services = {stack.spec.service: {"image": broken, "restart": policy}}
    if stack.spec.standby:
        services[stack.spec.standby] = {"image": broken, "restart": policy}
    override.write_text(json.dumps({"services": services}))
    stack_vars = local_stack(stack.spec)
    stack_vars["compose_files"] = list(stack_vars["compose_files"]) + [str(override)]
    client = docker.from_env(timeout=60)
    client.images.build(fileobj=io.BytesIO(f'FROM {image}\nENTRYPOINT ["/bin/false"]\nCMD []\n'.encode()),
                        tag=broken, rm=True)
    token = _write_canaries(stack)
    try:
        subprocess.run(["docker-compose", "-p", stack.spec.project, "--project-directory", str(stack.spec.stack_dir),
                        "-f", str(stack.spec.stack_dir / "docker-compose.yml"), "-f", str(override),
                        "up", "-d", "--no-deps", "--no-build", stack.spec.service], check=True, capture_output=True,
                       timeout=120)
        assert wait_for(lambda: stack.state()["Status"] in ("exited", "restarting"), timeout=20)

        result = stack.run_playbook("p0_recover.yml", extra_vars={
            "incident_dir": str(tmp_path / "incidents"), "incident_stack": stack_vars,
            "recover_ladder_windows": {"restart_service": 40, "restart_dependencies": 30,
                                       "restart_service_after_dependencies": 40, "rebuild": 80},
            "degrade_timeout": 60})

        # OUT-3: a P0 that ended degraded fails the job (after the record is closed and the channels told)
        assert result.returncode != 0, result.output[-4000:]
        assert "not recovered" in result.output and "serves users" in " ".join(result.output.split())
        _incident, events = read_record(tmp_path / "incidents")
        tried = [e["data"] for e in events if (e.get("data") or {}).get("result") == "not_fixed"]
        assert [t["rung"] for t in tried] == ["restart_service", "restart_dependencies", "rebuild"]
        # each wait saw it: restart_service in well under its 40 s, restart_dependencies
        # (30 s for the dependencies, then 40 s for the service) and rebuild (80 s) likewise
        assert [t["elapsed_s"] < limit for t, limit in zip(tried, (25, 45, 50))] == [True] * 3, tried
        assert all(why in (t["gave_up"] or "") for t in tried), tried
        stages = [e for e in events if e["type"] == "stage"]
        degrade = next(i for i, e in enumerate(stages) if e["stage"] == "degrade")
        took = (_at(stages[degrade + 1]["ts"]) - _at(stages[degrade]["ts"])).total_seconds()
        # each option that recreates the broken service (A's standby, B) would be waited on for its 60 s
        assert took < 50, f"the degradation took {took:.0f} s: a crash-looping option was waited on to its end"
        closed = [e["data"]["outcome"] for e in events if e["type"] == "closed"]
        assert closed == ["degraded"]
        # one notice per fact: the start, then one escalation naming the degraded mode
        assert [e["data"]["notice"] for e in events if "notice" in (e.get("data") or {})] == ["started", "escalate"]
        modes = [e["data"]["degraded_mode"] for e in events if "degraded_mode" in (e.get("data") or {})]
        assert modes[-1] == "offline"
        # the edge still answers: a friendly 503 for recommendations, health stays truthful
        status, body = http_get(f"/api/recommendations/{stack.spec.users[0]}?limit=10", base=stack.spec.edge_url)
        assert status == 503 and body and body.get("error")
        assert http_get("/health", base=stack.spec.edge_url)[0] != 200
        # under a restart policy the engine starts it again and again: "running" for a moment each time
        assert wait_for(lambda: stack.state()["Status"] != "running", timeout=10), stack.state()
        _assert_canaries(stack, token)
    finally:
        stack.restore()
        client.images.remove(broken, force=True)
    assert stack.service_answers()
    assert stack.container().attrs["Config"]["Image"] == image


def test_short_clock_skips_the_ladder_and_degrades(stack, tmp_path):
    """With less time left than the next rung plus verification, the ladder is not climbed.
    With p0_fail_unless_resolved=false the degraded ending keeps the job green (the old behaviour)."""
    stack.container("redis").stop(timeout=5)
    before = stack.state()["StartedAt"]

    result = stack.run_playbook("p0_recover.yml", extra_vars={
        "incident_dir": str(tmp_path), "incident_sla": {"P0": {"respond": 300, "resolve": 60}},
        "recover_verify_budget": 60, "degrade_order": ["A", "D"], "degrade_timeout": 30,
        "p0_fail_unless_resolved": False})

    assert result.returncode == 0, result.output[-4000:]
    _incident, events = read_record(tmp_path)
    decisions = [e["data"] for e in events if "decision" in (e.get("data") or {})]
    assert decisions and decisions[0]["decision"] == "degrade"
    assert decisions[0]["time_left_s"] < decisions[0]["needed_s"]
    assert not [e for e in events if "rung" in (e.get("data") or {})], "a rung was climbed"
    assert stack.state()["StartedAt"] == before   # the service was not restarted
    assert [e["data"]["outcome"] for e in events if e["type"] == "closed"] == ["degraded"]
    assert [e["data"]["notice"] for e in events if "notice" in (e.get("data") or {})] == ["started", "escalate"]
    mode = [e["data"]["degraded_mode"] for e in events if "degraded_mode" in (e.get("data") or {})][-1]
    assert mode in ("standby", "offline")
    assert http_get("/api/recommendations/user-1?limit=10", base=stack.spec.edge_url)[0] in (200, 503)
