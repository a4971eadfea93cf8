# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Degraded modes A-D and restore_normal.yml on the real stack, checked from real state.

Every test leaves the stack normal: edge mode normal, DOWNGRADE_MODE off, standby stopped,
the real service image, no restored cache entries.
"""
from __future__ import annotations

import io
import json
import os
import re
import subprocess
import tarfile
import time

import docker
import pytest

from conftest import BASE_URL, EDGE_URL, ROOT, SERVICE, http_get, local_stack, run_playbook, wait_for

pytestmark = pytest.mark.integration

STANDBY = "recommendation-service-standby"
IMAGE = "recsys/recommendation-service"
USERS = [f"user-{i}" for i in range(1, 6)]


# --------------------------------------------------------------------------- helpers

def degrade(tmp_path, extra_vars=None, check=False, with_record=False):
    """Run the role sre.incident.degrade from a throw-away playbook (optionally opening a record first)."""
    tasks = []
    if with_record:
        tasks.append({"name": "Open the record", "ansible.builtin.include_role": {"name": "sre.incident.record"}})
    tasks.append({"name": "Degrade", "ansible.builtin.include_role": {"name": "sre.incident.degrade"}})
    book = tmp_path / "degrade.yml"
    book.write_text(json.dumps([{"name": "Degrade", "hosts": "recsys", "gather_facts": False, "tasks": tasks}]))
    return run_playbook(os.path.relpath(book, ROOT / "playbooks"), extra_vars=extra_vars, check=check)


def changed_count(proc):
    found = re.findall(r"changed=(\d+)", proc.stdout)
    return int(found[-1]) if found else None


def edge_mode(stack):
    c = stack.container("edge")
    return json.loads(c.exec_run(["edge-mode"]).output.decode().strip().splitlines()[-1])["mode"]


def service_env(stack):
    c = stack.container(SERVICE)
    c.reload()
    return dict(e.partition("=")[::2] for e in c.attrs["Config"]["Env"])


def standby_running(stack):
    return any(c.status == "running" for c in stack.containers(STANDBY))


def recs(user="user-1", base=EDGE_URL):
    return http_get(f"/api/recommendations/{user}?limit=10", base=base)


def full_service_via_edge():
    status, _body = http_get("/health", base=EDGE_URL)
    if status != 200:
        return False
    for user in USERS:
        status, body = recs(user)
        if status != 200 or len(body.get("recommendations", [])) <= 5 or body.get("source") == "static" \
                or body.get("instance") != "primary":
            return False
    return True


def reset_normal(stack):
    """Back to normal whatever a test did: edge normal, standby stopped, DOWNGRADE_MODE off, healthy."""
    edge = stack.container("edge")
    if edge is not None and edge.status == "running":
        edge.exec_run(["edge-mode", "normal"])
    for c in stack.containers(STANDBY):
        c.reload()
        if c.status in ("running", "restarting", "paused"):
            c.stop(timeout=5)
    svc = stack.container(SERVICE)
    if svc is None or service_env(stack).get("DOWNGRADE_MODE") == "true" or not stack.service_answers():
        stack.restore()
    assert edge_mode(stack) == "normal"
    if not wait_for(full_service_via_edge, timeout=60):
        stack.restore()  # another session left it broken: put it back and wait again
        assert wait_for(full_service_via_edge, timeout=60)


@pytest.fixture
def normal(stack):
    reset_normal(stack)
    yield stack
    reset_normal(stack)


def take_snapshot(stack, directory):
    """BGSAVE in the real Redis, then copy dump.rdb out to directory/dump-<UTC ts>.rdb (the diagnose convention)."""
    redis = stack.container("redis")
    before = int(redis.exec_run(["redis-cli", "LASTSAVE"]).output.split()[-1])
    # LASTSAVE has a one-second resolution: start the save in a fresh second
    wait_for(lambda: int(time.time()) > before, timeout=3, interval=0.05)
    redis.exec_run(["redis-cli", "BGSAVE"])
    assert wait_for(lambda: int(redis.exec_run(["redis-cli", "LASTSAVE"]).output.split()[-1]) > before, timeout=30)
    stream, _stat = redis.get_archive("/data/dump.rdb")
    with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as tar:
        data = tar.extractfile(tar.next()).read()
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / time.strftime("dump-%Y%m%dT%H%M%SZ.rdb", time.gmtime())
    path.write_bytes(data)
    return path


def redis_cli(stack, *args):
    return stack.container("redis").exec_run(["redis-cli"] + list(args)).output.decode().strip()


def events(incident_dir, incident_id):
    path = incident_dir / incident_id / "events.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


# --------------------------------------------------------------------------- D offline (+ check mode, idempotence, record)

def test_offline_check_mode_idempotence_record_and_restore(normal, tmp_path):
    incidents = tmp_path / "incidents"
    ids = dict(incident_id="deg-offline-%d" % os.getpid(), incident_dir=str(incidents))
    mode_d = dict(degrade_mode="offline")

    dry = degrade(tmp_path, mode_d, check=True)
    assert dry.returncode == 0, dry.output
    assert edge_mode(normal) == "normal" and wait_for(lambda: recs()[0] == 200, timeout=30)

    first = degrade(tmp_path, dict(mode_d, **ids), with_record=True)
    assert first.returncode == 0, first.output
    assert edge_mode(normal) == "offline"
    status, body = recs()
    assert status == 503 and "temporarily unavailable" in body["error"]
    # health stays truthful, and the service itself is untouched (polled: other sessions share the stack)
    assert wait_for(lambda: http_get("/health", base=EDGE_URL)[0] == 200 == http_get("/health")[0], timeout=30)
    assert wait_for(lambda: recs(base=BASE_URL)[0] == 200, timeout=30)

    again = degrade(tmp_path, mode_d)
    assert again.returncode == 0, again.output
    assert changed_count(again) == 0 and edge_mode(normal) == "offline"
    dry_again = degrade(tmp_path, mode_d, check=True)
    assert dry_again.returncode == 0 and changed_count(dry_again) == 0

    back = run_playbook("restore_normal.yml", extra_vars=ids)
    assert back.returncode == 0, back.output
    assert edge_mode(normal) == "normal" and wait_for(full_service_via_edge, timeout=30)
    modes = [e["data"]["degraded_mode"] for e in events(incidents, ids["incident_id"]) if "degraded_mode" in e.get("data", {})]
    assert modes == ["offline", None]

    idle = run_playbook("restore_normal.yml")
    assert idle.returncode == 0 and changed_count(idle) == 0


# --------------------------------------------------------------------------- A standby

def test_standby(normal, tmp_path):
    result = degrade(tmp_path, dict(degrade_order=["A"]))
    assert result.returncode == 0, result.output
    standby = normal.container(STANDBY)
    standby.reload()
    assert standby.status == "running" and standby.attrs["State"]["Health"]["Status"] == "healthy"
    assert edge_mode(normal) == "standby"
    for user in USERS:
        status, body = recs(user)
        assert status == 200 and body["instance"] == "standby" and len(body["recommendations"]) > 5

    back = run_playbook("restore_normal.yml")
    assert back.returncode == 0, back.output
    assert not standby_running(normal) and edge_mode(normal) == "normal"
    assert wait_for(full_service_via_edge, timeout=30)


# --------------------------------------------------------------------------- B static

def test_static(normal, tmp_path):
    before_id = normal.container(SERVICE).id
    result = degrade(tmp_path, dict(degrade_mode="B"))
    assert result.returncode == 0, result.output
    assert normal.container(SERVICE).id != before_id  # recreated, not restarted
    assert service_env(normal)["DOWNGRADE_MODE"] == "true"
    for base in (BASE_URL, EDGE_URL):
        status, body = recs(base=base)
        assert status == 200 and body["source"] == "static" and len(body["recommendations"]) > 5
    assert http_get("/health")[1]["downgrade_mode"] is True

    again = degrade(tmp_path, dict(degrade_mode="static"))
    assert again.returncode == 0 and changed_count(again) == 0
    assert service_env(normal)["DOWNGRADE_MODE"] == "true"

    back = run_playbook("restore_normal.yml")
    assert back.returncode == 0, back.output
    assert service_env(normal)["DOWNGRADE_MODE"] == "false"
    assert wait_for(full_service_via_edge, timeout=30)


# --------------------------------------------------------------------------- C cache snapshot

def test_cache_snapshot(normal, tmp_path):
    state_dir = tmp_path / "state"
    stack_vars = dict(local_stack(), state_dir=str(state_dir))
    for user in USERS:  # the cache holds every sample user when the snapshot is taken
        assert recs(user)[0] == 200
    snapshot = take_snapshot(normal, state_dir / "redis-snapshots")
    redis_cli(normal, "EVAL", "for i, k in ipairs(redis.call('KEYS', 'recs:*')) do redis.call('DEL', k) end return 1", "0")
    redis_cli(normal, "SET", "degrade-test-keep", "1")
    assert redis_cli(normal, "EXISTS", "recs:user-1:10") == "0"

    result = degrade(tmp_path, dict(degrade_mode="C", incident_stack=stack_vars))
    assert result.returncode == 0, result.output
    assert redis_cli(normal, "TTL", "recs:user-1:10") == "-1"  # restored, without expiry
    assert redis_cli(normal, "GET", "degrade-test-keep") == "1"  # nothing else touched
    marker = json.loads((state_dir / "degraded-cache-snapshot.json").read_text())
    assert marker["snapshot"] == str(snapshot) and 0 <= marker["snapshot_age_s"] < 120
    for user in USERS:
        status, body = recs(user)
        assert status == 200 and body["source"] == "cache" and len(body["recommendations"]) > 5

    back = run_playbook("restore_normal.yml", extra_vars=dict(incident_stack=stack_vars))
    assert back.returncode == 0, back.output
    assert not (state_dir / "degraded-cache-snapshot.json").exists()
    assert redis_cli(normal, "TTL", "recs:user-1:10") != "-1"
    redis_cli(normal, "DEL", "degrade-test-keep")


# --------------------------------------------------------------------------- restore refused

def test_restore_normal_refused_while_service_is_broken(normal, tmp_path):
    assert degrade(tmp_path, dict(degrade_mode="D")).returncode == 0
    for attempt in range(3):  # other sessions heal a broken stack they find; retry when one did meanwhile
        victim = normal.container(SERVICE)
        victim.kill()
        refused = run_playbook("restore_normal.yml")
        victim.reload()
        healed = normal.container(SERVICE).id != victim.id or victim.status == "running"
        if refused.returncode != 0 or not healed:
            break
        assert edge_mode(normal) == "normal", attempt
        assert degrade(tmp_path, dict(degrade_mode="D")).returncode == 0

    assert refused.returncode != 0, refused.output
    assert "refus" in refused.output and "not verified healthy" in refused.output
    assert edge_mode(normal) == "offline"  # nothing changed


# --------------------------------------------------------------------------- a service that cannot start at all

BROKEN = IMAGE + ":degrade-broken"


def compose_override(tmp_path):
    """A compose override giving the service and its standby an image whose process exits 1 at once.

    The real ``:latest`` tag is never touched (other sessions share it, and ``stack.sh up`` rebuilds it);
    the stack's own compose files plus this override are what the playbooks see.
    """
    path = tmp_path / "broken-image.override.yml"
    path.write_text(json.dumps({"services": {SERVICE: {"image": BROKEN}, STANDBY: {"image": BROKEN}}}))
    stack = local_stack()
    stack["compose_files"] = list(stack["compose_files"]) + [str(path)]
    return stack, path


def break_service(override):
    """(Re)create the service from the broken image: it exits 1 at once and cannot start."""
    compose = ["docker-compose"] if not os.system("docker-compose version >/dev/null 2>&1") else ["docker", "compose"]
    argv = compose + ["-p", "recsys", "--project-directory", str(ROOT / "examples/recommendation-stack"),
                      "-f", str(ROOT / "examples/recommendation-stack/docker-compose.yml"), "-f", str(override),
                      "up", "-d", "--no-deps", "--no-build", SERVICE]
    assert subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False).returncode == 0


def test_unstartable_service_ends_offline_with_the_edge_answering(normal, tmp_path):
    """The standby (A) and static mode (B) run the same broken image and C serves through the dead service:
    the truthful outcome is that A alone fails (reverted, edge untouched) and auto ends in D (offline)."""
    client = docker.from_env(timeout=60)
    stack_vars, override = compose_override(tmp_path)
    client.images.build(fileobj=io.BytesIO(b'FROM %s:latest\nENTRYPOINT ["/bin/false"]\nCMD []\n' % IMAGE.encode()),
                        tag=BROKEN, rm=True)
    try:
        break_service(override)
        assert wait_for(lambda: normal.state()["Status"] == "exited", timeout=20)
        idle = run_playbook("restore_normal.yml", extra_vars=dict(incident_stack=stack_vars))
        assert idle.returncode == 0 and changed_count(idle) == 0  # nothing degraded yet: nothing to leave

        only_a = degrade(tmp_path, dict(degrade_order=["A"], degrade_timeout=30, incident_stack=stack_vars))
        assert only_a.returncode != 0 and "No degraded mode could be verified" in only_a.output, only_a.output
        assert edge_mode(normal) == "normal" and not standby_running(normal)
        status, body = recs()
        assert status in (502, 503) and body and body.get("error")  # the edge answers, truthfully

        break_service(override)  # in case another session healed it meanwhile
        auto = degrade(tmp_path, dict(degrade_timeout=30, incident_stack=stack_vars))
        assert auto.returncode == 0, auto.output
        assert edge_mode(normal) == "offline"
        status, body = recs()
        assert status == 503 and "temporarily unavailable" in body["error"]
        assert http_get("/health", base=EDGE_URL)[0] != 200  # health through the edge stays truthful
        assert service_env(normal).get("DOWNGRADE_MODE") == "false"  # B was tried and reverted
    finally:
        for c in normal.containers(STANDBY):
            c.remove(force=True)  # created from the broken image
        normal.restore()  # stack.sh up: the service back on the real image
        client.images.remove(BROKEN, force=True)
    assert normal.container(SERVICE).attrs["Config"]["Image"] == IMAGE + ":latest"
