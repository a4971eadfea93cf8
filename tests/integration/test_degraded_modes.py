# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Degraded modes A-D and restore_normal.yml on both example stacks, checked from real state (GEN-3, GEN-4).

What the edge serves is read from the nginx file inside the running edge container (the team's own
file is byte-identical to the one its image was built from), what users get from HTTP answers
through the edge, the service's flag from the engine. Every test leaves the stack normal.
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

from conftest import ROOT, http_get, local_stack, wait_for

pytestmark = pytest.mark.integration

OFFLINE_HEADER = "# sre.incident degraded mode D (offline)"
STANDBY_HEADER = "# sre.incident degraded mode A (standby)"


# --------------------------------------------------------------------------- helpers

def degrade(stack, tmp_path, extra_vars=None, check=False, with_record=False):
    """Run the role sre.incident.degrade from a throw-away playbook (optionally opening a record first)."""
    tasks = []
    if with_record:
        tasks.append({"name": "Open the record", "ansible.builtin.include_role": {"name": "sre.incident.record"}})
    tasks.append({"name": "Degrade", "ansible.builtin.include_role": {"name": "sre.incident.degrade"}})
    book = tmp_path / "degrade.yml"
    book.write_text(json.dumps([{"name": "Degrade", "hosts": "recsys", "gather_facts": False, "tasks": tasks}]))
    return stack.run_playbook(os.path.relpath(book, ROOT / "playbooks"), extra_vars=extra_vars, check=check)


def changed_count(proc):
    found = re.findall(r"changed=(\d+)", proc.stdout)
    return int(found[-1]) if found else None


def edge_file(stack):
    """The nginx file the edge serves, read inside its container."""
    code, out = stack.exec(stack.spec.edge, ["cat", stack.spec.edge_config])
    assert code == 0, out
    return out


def edge_is_the_teams_own(stack):
    return stack.edge_config_sha256() == stack.edge_source_sha256()


def service_env(stack):
    c = stack.container()
    c.reload()
    return dict(e.partition("=")[::2] for e in c.attrs["Config"]["Env"])


def standby_running(stack):
    return bool(stack.spec.standby) and any(c.status == "running" for c in stack.containers(stack.spec.standby))


def recs(stack, user=None, base=None):
    user = user or stack.spec.users[0]
    return http_get(f"/api/recommendations/{user}?limit=10", base=base or stack.spec.edge_url)


def full_service_via_edge(stack):
    status, _body = http_get("/health", base=stack.spec.edge_url)
    if status != 200:
        return False
    for user in stack.spec.users:
        status, body = recs(stack, user)
        if status != 200 or len(body.get("recommendations", [])) <= 5 or body.get("source") == "static" \
                or body.get("instance", "primary") != "primary":
            return False
    return True


def reset_normal(stack):
    """Back to normal whatever a test did: the team's edge file, standby stopped, DOWNGRADE_MODE off, healthy."""
    for c in stack.containers(stack.spec.standby) if stack.spec.standby else []:
        c.reload()
        if c.status in ("running", "restarting", "paused"):
            c.stop(timeout=5)
    svc = stack.container()
    if svc is None or not edge_is_the_teams_own(stack) or service_env(stack).get("DOWNGRADE_MODE") == "true" \
            or not stack.service_answers():
        stack.restore()
    assert edge_is_the_teams_own(stack)
    if not wait_for(lambda: full_service_via_edge(stack), timeout=60):
        stack.restore()
        assert wait_for(lambda: full_service_via_edge(stack), timeout=60)


@pytest.fixture
def normal(any_stack):
    reset_normal(any_stack)
    yield any_stack
    reset_normal(any_stack)


def take_snapshot(stack, directory):
    """BGSAVE in the real Redis, then copy its dump.rdb out to directory/dump-<UTC ts>.rdb (the diagnose convention)."""
    def lastsave():
        return int(stack.redis("LASTSAVE").split()[-1])
    before = lastsave()
    # LASTSAVE has a one-second resolution: start the save in a fresh second
    wait_for(lambda: int(time.time()) > before, timeout=3, interval=0.05)
    stack.redis("BGSAVE")
    assert wait_for(lambda: lastsave() > before, timeout=30)
    rdb_dir = stack.redis("CONFIG", "GET", "dir").splitlines()[-1]
    rdb_name = stack.redis("CONFIG", "GET", "dbfilename").splitlines()[-1]
    stream, _stat = stack.container(stack.spec.redis["service"]).get_archive(f"{rdb_dir}/{rdb_name}")
    with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as tar:
        data = tar.extractfile(tar.next()).read()
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / time.strftime("dump-%Y%m%dT%H%M%SZ.rdb", time.gmtime())
    path.write_bytes(data)
    return path


def events(incident_dir, incident_id):
    path = incident_dir / incident_id / "events.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


# --------------------------------------------------------------------------- D offline (+ check mode, idempotence, record)

def test_offline_check_mode_idempotence_record_and_restore(normal, tmp_path):
    incidents = tmp_path / "incidents"
    ids = dict(incident_id="deg-offline-%s-%d" % (normal.spec.id, os.getpid()), incident_dir=str(incidents))
    mode_d = dict(degrade_mode="offline")
    original = edge_file(normal)

    dry = degrade(normal, tmp_path, mode_d, check=True)
    assert dry.returncode == 0, dry.output
    assert edge_is_the_teams_own(normal) and wait_for(lambda: recs(normal)[0] == 200, timeout=30)

    first = degrade(normal, tmp_path, dict(mode_d, **ids), with_record=True)
    assert first.returncode == 0, first.output
    served = edge_file(normal)
    assert served.startswith(OFFLINE_HEADER)
    status, body = recs(normal)
    assert status == 503 and "temporarily unavailable" in body["error"]
    # health through the edge stays truthful, and the service itself is untouched
    assert wait_for(lambda: http_get("/health", base=normal.spec.edge_url)[0] == 200
                    == http_get("/health", base=normal.spec.base_url)[0], timeout=30)
    assert wait_for(lambda: recs(normal, base=normal.spec.base_url)[0] == 200, timeout=30)
    # the team's original is kept on the host with its checksum
    kept = normal.spec.state_dir / "edge" / f"{normal.spec.edge}.original"
    assert kept.read_text() == original
    assert json.loads(kept.with_suffix(".original.json").read_text())["sha256"] == normal.edge_source_sha256()

    again = degrade(normal, tmp_path, mode_d)
    assert again.returncode == 0, again.output
    assert changed_count(again) == 0 and edge_file(normal) == served
    dry_again = degrade(normal, tmp_path, mode_d, check=True)
    assert dry_again.returncode == 0 and changed_count(dry_again) == 0

    back = normal.run_playbook("restore_normal.yml", extra_vars=ids)
    assert back.returncode == 0, back.output
    # byte for byte: the file in the container hashes as the file the image was built from
    assert edge_is_the_teams_own(normal) and not kept.exists()
    assert wait_for(lambda: full_service_via_edge(normal), timeout=30)
    recorded = events(incidents, ids["incident_id"])
    modes = [e["data"]["degraded_mode"] for e in recorded if "degraded_mode" in e.get("data", {})]
    assert modes == ["offline", None]
    # the role records the module's own summary, and tells nobody (its caller notifies once, from the outcome)
    degraded = next(e for e in recorded if "degraded_mode" in e.get("data", {}))
    assert degraded["text"].startswith("degraded mode offline (D) is on. Tried: offline (D): applied and verified")
    restored = next(i for i, e in enumerate(recorded) if e.get("stage") == "restore")   # restore_normal's own notice follows
    assert not [e for e in recorded[:restored] if e.get("stage") == "notify"]

    idle = normal.run_playbook("restore_normal.yml")
    assert idle.returncode == 0 and changed_count(idle) == 0


# --------------------------------------------------------------------------- A standby

@pytest.mark.parametrize("any_stack", ["recsys"], indirect=True)
def test_standby(normal, tmp_path):
    result = degrade(normal, tmp_path, dict(degrade_order=["A"]))
    assert result.returncode == 0, result.output
    standby = normal.container(normal.spec.standby)
    standby.reload()
    assert standby.status == "running" and standby.attrs["State"]["Health"]["Status"] == "healthy"
    assert edge_file(normal).startswith(STANDBY_HEADER)
    for user in normal.spec.users:
        status, body = recs(normal, user)
        assert status == 200 and body["instance"] == "standby" and len(body["recommendations"]) > 5

    back = normal.run_playbook("restore_normal.yml")
    assert back.returncode == 0, back.output
    assert not standby_running(normal) and edge_is_the_teams_own(normal)
    assert wait_for(lambda: full_service_via_edge(normal), timeout=30)


@pytest.mark.parametrize("any_stack", ["shop"], indirect=True)
def test_standby_not_applicable_and_auto_moves_on(normal, tmp_path):
    """GEN-3: a stack without a standby says so, changes nothing, and auto tries the next option."""
    only_a = degrade(normal, tmp_path, dict(degrade_order=["A"]))
    assert only_a.returncode != 0
    assert "standby (A): not applicable: no standby" in " ".join(only_a.output.split()), only_a.output
    assert edge_is_the_teams_own(normal) and full_service_via_edge(normal)

    result = degrade(normal, tmp_path, dict(degrade_order=["A", "B"]))
    assert result.returncode == 0, result.output
    assert "not applicable: no standby" in " ".join(result.output.split())
    assert service_env(normal)["DOWNGRADE_MODE"] == "true"
    assert normal.run_playbook("restore_normal.yml").returncode == 0


# --------------------------------------------------------------------------- B static

def test_static(normal, tmp_path):
    before = normal.container()
    before_ip = next(iter(before.attrs["NetworkSettings"]["Networks"].values()))["IPAddress"]
    result = degrade(normal, tmp_path, dict(degrade_mode="B"))
    assert result.returncode == 0, result.output
    after = normal.container()
    assert after.id != before.id  # recreated, not restarted
    assert service_env(normal)["DOWNGRADE_MODE"] == "true"
    # through the edge too: a static proxy_pass still pointing at the old address would answer 502
    for base in (normal.spec.base_url, normal.spec.edge_url):
        status, body = recs(normal, base=base)
        assert status == 200 and body["source"] == "static" and len(body["recommendations"]) > 5, (base, before_ip, body)

    again = degrade(normal, tmp_path, dict(degrade_mode="static"))
    assert again.returncode == 0 and changed_count(again) == 0
    assert service_env(normal)["DOWNGRADE_MODE"] == "true"

    back = normal.run_playbook("restore_normal.yml")
    assert back.returncode == 0, back.output
    assert service_env(normal)["DOWNGRADE_MODE"] == "false"
    assert full_service_via_edge(normal)  # at once: restore_normal ends only when users are answered


# --------------------------------------------------------------------------- C cache snapshot

def test_cache_snapshot(normal, tmp_path):
    state_dir = tmp_path / "state"
    stack_vars = dict(local_stack(normal.spec), state_dir=str(state_dir))
    key = normal.spec.cache_key.format(user=normal.spec.users[0])
    for user in normal.spec.users:  # the cache holds every sample user when the snapshot is taken
        assert recs(normal, user)[0] == 200
    assert normal.redis("EXISTS", key) == "1"
    snapshot = take_snapshot(normal, state_dir / "redis-snapshots")
    normal.redis("FLUSHDB")
    normal.redis("SET", "degrade-test-keep", "1")
    assert normal.redis("EXISTS", key) == "0"

    result = degrade(normal, tmp_path, dict(degrade_mode="C", incident_stack=stack_vars))
    assert result.returncode == 0, result.output
    assert normal.redis("TTL", key) == "-1"  # restored, without expiry
    assert normal.redis("GET", "degrade-test-keep") == "1"  # nothing else touched
    marker = json.loads((state_dir / "degraded-cache-snapshot.json").read_text())
    assert marker["snapshot"] == str(snapshot) and 0 <= marker["snapshot_age_s"] < 120
    assert key in marker["keys"]
    for user in normal.spec.users:
        status, body = recs(normal, user)
        assert status == 200 and body["source"] == "cache" and len(body["recommendations"]) > 5

    back = normal.run_playbook("restore_normal.yml", extra_vars=dict(incident_stack=stack_vars))
    assert back.returncode == 0, back.output
    assert not (state_dir / "degraded-cache-snapshot.json").exists()
    assert normal.redis("TTL", key) != "-1"
    normal.redis("DEL", "degrade-test-keep")


# --------------------------------------------------------------------------- restore refused

def test_restore_normal_refused_while_service_is_broken(normal, tmp_path):
    assert degrade(normal, tmp_path, dict(degrade_mode="D")).returncode == 0
    normal.container().kill()
    refused = normal.run_playbook("restore_normal.yml")
    assert refused.returncode != 0, refused.output
    assert "refus" in refused.output and "not verified healthy" in refused.output
    assert edge_file(normal).startswith(OFFLINE_HEADER)  # nothing changed


# --------------------------------------------------------------------------- a service that cannot start at all

def compose_override(stack, tmp_path, broken):
    """A compose override giving the service (and its standby) an image whose process exits 1 at once.

    The real image tag is never touched (``stack.sh up`` rebuilds it); the stack's own compose files plus
    this override are what the playbooks see.
    """
    path = tmp_path / "broken-image.override.yml"
    services = {stack.spec.service: {"image": broken}}
    if stack.spec.standby:
        services[stack.spec.standby] = {"image": broken}
    path.write_text(json.dumps({"services": services}))
    stack_vars = local_stack(stack.spec)
    stack_vars["compose_files"] = list(stack_vars["compose_files"]) + [str(path)]
    return stack_vars, path


def break_service(stack, override):
    """(Re)create the service from the broken image: it exits 1 at once and cannot start."""
    compose = ["docker-compose"] if not os.system("docker-compose version >/dev/null 2>&1") else ["docker", "compose"]
    argv = compose + ["-p", stack.spec.project, "--project-directory", str(stack.spec.stack_dir),
                      "-f", str(stack.spec.stack_dir / "docker-compose.yml"), "-f", str(override),
                      "up", "-d", "--no-deps", "--no-build", stack.spec.service]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr


def test_unstartable_service_ends_offline_with_the_edge_answering(normal, tmp_path):
    """B runs the same broken image and C serves through the dead service (A too, where there is a standby):
    the truthful outcome is that auto ends in D (offline), every other option reverted."""
    client = docker.from_env(timeout=60)
    image = normal.container().attrs["Config"]["Image"]
    broken = image.split(":")[0] + ":degrade-broken"
    stack_vars, override = compose_override(normal, tmp_path, broken)
    client.images.build(fileobj=io.BytesIO(b'FROM %s\nENTRYPOINT ["/bin/false"]\nCMD []\n' % image.encode()),
                        tag=broken, rm=True)
    try:
        break_service(normal, override)
        assert wait_for(lambda: normal.state()["Status"] in ("exited", "restarting"), timeout=20)
        idle = normal.run_playbook("restore_normal.yml", extra_vars=dict(incident_stack=stack_vars))
        assert idle.returncode == 0 and changed_count(idle) == 0  # nothing degraded yet: nothing to leave

        auto = degrade(normal, tmp_path, dict(degrade_timeout=30, incident_stack=stack_vars))
        assert auto.returncode == 0, auto.output
        assert edge_file(normal).startswith(OFFLINE_HEADER)
        assert not standby_running(normal)
        status, body = recs(normal)
        assert status == 503 and "temporarily unavailable" in body["error"]
        assert http_get("/health", base=normal.spec.edge_url)[0] != 200  # health through the edge stays truthful
        assert service_env(normal).get("DOWNGRADE_MODE") == "false"  # B was tried and reverted
    finally:
        for c in normal.containers(normal.spec.standby) if normal.spec.standby else []:
            c.remove(force=True)  # created from the broken image
        normal.restore()  # stack.sh up: the service back on the real image, the team's edge file back
        client.images.remove(broken, force=True)
    assert normal.container().attrs["Config"]["Image"] == image
