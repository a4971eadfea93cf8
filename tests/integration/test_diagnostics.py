# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""diagnose.yml / sre.incident.diagnose on the real stacks (both example stacks, GEN-6).

The facts in the bundle are compared with the real state read here independently (docker
inspect, docker logs); the bundle is searched for the real password; AWX's way of running a job
(ansible-runner) is used once and its artifacts are read.
"""
from __future__ import annotations

import datetime
import glob
import json
import os
import tarfile
import time
from pathlib import Path

import pytest

from conftest import ROOT, VENV_BIN, http_get, wait_for

pytestmark = pytest.mark.integration

# the error levels of the collection's log classifier (docs/logs.md), as both apps write them
ERROR_LEVELS = {"ERROR", "CRITICAL", "FATAL", "PANIC"}


def db_password(spec):
    """The database password from the stack's own .env (the secret no bundle may hold)."""
    for line in (spec.stack_dir / ".env").read_text().splitlines():
        if line.startswith(spec.db_password_var + "="):
            return line.split("=", 1)[1].strip()
    raise AssertionError("%s not in %s/.env" % (spec.db_password_var, spec.stack_dir))


def iso_utc(epoch):
    return datetime.datetime.fromtimestamp(epoch, tz=datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def extra(tmp_path, **more):
    data = dict(diagnose_bundle_dir=str(tmp_path / "bundles"), diagnose_snapshot_dir=str(tmp_path / "snapshots"),
                incident_dir=str(tmp_path / "incidents"), diagnose_label="itest")
    data.update(more)
    return data


def newest_bundle(tmp_path):
    dirs = sorted(d for d in glob.glob(str(tmp_path / "bundles" / "*")) if os.path.isdir(d))
    assert dirs, "no bundle written"
    return Path(dirs[-1])


def facts_of(tmp_path):
    return json.loads((newest_bundle(tmp_path) / "facts.json").read_text())


def incidents(tmp_path):
    found = []
    for path in glob.glob(str(tmp_path / "incidents" / "*" / "events.jsonl")):
        events = [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
        found.append(events[0])
    return found


def error_lines_from_docker(container, since, until):
    """ERROR lines (JSON level) of the real container log in [since, until), read here on our own."""
    raw = container.logs(stdout=True, stderr=True, timestamps=True, since=int(since), until=int(until) + 1).decode()
    count = 0
    for line in raw.splitlines():
        stamp, _sep, text = line.partition(" ")
        day, clock = stamp.rstrip("Z").split("T")
        whole, _dot, frac = clock.partition(".")
        epoch = datetime.datetime.strptime(day + "T" + whole, "%Y-%m-%dT%H:%M:%S").replace(
            tzinfo=datetime.timezone.utc).timestamp() + float("0." + (frac or "0")[:6])
        if not since <= epoch < until:
            continue
        try:
            level = json.loads(text).get("level")
        except ValueError:
            continue
        count += str(level).upper() in ERROR_LEVELS
    return count


def broken_in_facts(facts, service, started_at):
    """The facts saw ``service`` exited, the very instance we stopped (same StartedAt)."""
    mine = [c for c in facts["status"]["containers"] if c["service"] == service]
    return bool(mine) and mine[0]["status"] == "exited" and mine[0]["started_at"] == started_at


def broken_run(stack, service, break_it, tmp_path, still_there=(), **more):
    """Break ``service``, run diagnose.yml once, and check the run saw it broken.

    The facts must show the very instance we stopped (same StartedAt, exited), and the containers
    in ``still_there`` must be the ones from before the run: a collection that misses the fault
    (or repairs something while it only should look) fails here, it is never retried or skipped.
    Returns (result, stopped container, t0, out dir, facts).
    """
    container = stack.container(service)
    keep = {name: stack.container(name).id for name in still_there}
    t0 = time.time()
    break_it(container)
    container.reload()
    started_at = container.attrs["State"]["StartedAt"]
    out = tmp_path / "run"
    result = stack.run_playbook("diagnose.yml", extra_vars=extra(out, **{k: v(t0) if callable(v) else v for k, v in more.items()}))
    assert result.returncode == 0, result.output
    facts = facts_of(out)
    seen = [c for c in facts["status"]["containers"] if c["service"] == service]
    assert broken_in_facts(facts, service, started_at), (
        "diagnose.yml did not see the %s instance stopped at %s: %s" % (service, started_at, seen))
    for name, cid in keep.items():
        now = stack.container(name)
        assert now is not None and now.id == cid, "%s was recreated during a diagnose run" % name
    return result, container, t0, out, facts


def test_awx_run_under_ansible_runner_bundle_without_secret(any_stack, tmp_path, monkeypatch):
    """The healthy stack, run the way AWX runs jobs; the bundle holds no secret of the stack's env."""
    import ansible_runner

    stack, spec = any_stack, any_stack.spec
    monkeypatch.setenv("PATH", "%s:%s" % (VENV_BIN, os.environ.get("PATH", "")))
    private = tmp_path / "runner"
    private.mkdir()
    result = ansible_runner.run(
        private_data_dir=str(private), project_dir=str(ROOT), playbook="playbooks/diagnose.yml",
        inventory=str(ROOT / spec.inventory), extravars=extra(tmp_path), quiet=True,
        envvars={"ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1"},
    )
    assert result.status == "successful", result.stdout.read()[-4000:]
    stats_events = [e for e in result.events if e.get("event") == "playbook_on_stats"]
    artifact = stats_events[-1]["event_data"].get("artifact_data") or {}
    host = artifact["diagnose"]["localhost"]
    # other jobs may break the shared stack meanwhile: the verdict is checked for consistency only
    assert (host["verdict"], host["severity"]) in (("ok", "none"), ("warning", "P2"), ("critical", "P1"), ("critical", "P0")), host
    assert bool(host["reasons"]) is (host["verdict"] != "ok")
    assert host["fallbacks"]["static_top"] == "ready"
    assert host["fallbacks"]["standby"] == ("ready" if spec.standby else "not ready")
    assert host["fallbacks"]["snapshot"] == ("ready" if host["snapshot"] else "not ready")
    # a degraded mode left on is reported as it really is (another job may have switched the edge)
    edge_changed = stack.edge_config_sha256() != stack.edge_source_sha256()
    downgrade = "DOWNGRADE_MODE=true" in stack.container(spec.service).attrs["Config"]["Env"]
    assert host["degraded_mode_on"] is (edge_changed or downgrade)
    assert host["bundle"].startswith(str(tmp_path / "bundles")) and os.path.exists(host["bundle"])

    # the facts against the real state
    facts = facts_of(tmp_path)
    real = {c.name for c in stack.containers()}
    assert {c["name"] for c in facts["status"]["containers"]} == real
    index = json.loads((newest_bundle(tmp_path) / "index.json").read_text())
    assert all(item["ok"] for item in index["runbook_items"].values()), index["runbook_items"]
    assert facts["database"]["stat_database"]["datname"] == spec.database["name"]
    # the Redis figures against the server's own answer, read here through the engine
    assert facts["redis"]["summary"]["maxmemory"] == int(stack.redis("CONFIG", "GET", "maxmemory").split()[-1])

    # the Redis snapshot for option C: a real RDB file, private, kept only when the verdict says the cache is
    # healthy (another job breaking the shared stack makes it critical: then none is kept)
    snaps = glob.glob(str(tmp_path / "snapshots" / "dump-*.rdb"))
    if host["verdict"] == "critical":
        assert not host["snapshot"] and snaps == []
    else:
        assert host["snapshot"], "no Redis snapshot kept"
        assert len(snaps) == 1 and Path(snaps[0]).read_bytes()[:5] == b"REDIS"
        assert os.stat(snaps[0]).st_mode & 0o777 == 0o600

    # no secret anywhere: the directory, the archive, the runner's artifacts
    secret = db_password(spec).encode()
    bundle_dir = newest_bundle(tmp_path)
    assert os.stat(bundle_dir).st_mode & 0o777 == 0o700
    for path in bundle_dir.iterdir():
        assert os.stat(path).st_mode & 0o777 == 0o600
        assert secret not in path.read_bytes(), path
    with tarfile.open(str(bundle_dir) + ".tar.gz") as tar:
        for member in tar.getmembers():
            if member.isfile():
                assert secret not in tar.extractfile(member).read(), member.name
    # the containers' environment is in the status part, with the password's value masked
    status_text = (bundle_dir / "01-service-status.txt").read_text()
    assert "=********" in status_text
    for path in private.rglob("*"):
        if path.is_file():
            assert secret not in path.read_bytes(), path


def test_stopped_redis_shows_exited_with_its_exit_code(any_stack, tmp_path):
    service = any_stack.spec.redis["service"]
    _result, redis, _t0, out, facts = broken_run(any_stack, service, lambda c: c.stop(timeout=5), tmp_path)

    mine = [c for c in facts["status"]["containers"] if c["service"] == service][0]
    # redis.attrs: docker inspect of the instance we stopped, read right after the stop
    assert (mine["status"], mine["exit_code"]) == ("exited", redis.attrs["State"]["ExitCode"])
    assert mine["finished_at"] == redis.attrs["State"]["FinishedAt"]
    assert facts["redis"]["ok"] is False
    for part in ("status", "logs", "database", "resources", "disk", "errors", "changes"):
        assert facts[part]["ok"], (part, facts[part])
    # the service keeps serving from PostgreSQL while /health says 503 (both apps): a degradation, P1
    opened = incidents(out)
    assert len(opened) == 1 and opened[0]["data"]["severity"] == "P1", opened


def test_postgres_down_flood_of_errors_counted_exactly_other_parts_still_collected(any_stack, tmp_path):
    stack, spec = any_stack, any_stack.spec
    database = spec.database["service"]

    def stop_and_flood(postgres):
        postgres.stop(timeout=10)
        # every request for an uncached user logs an error (database error) and answers 503
        statuses = [http_get(f"/api/recommendations/{spec.user(150 + i)}?limit=7", base=spec.base_url)[0]
                    for i in range(12)]
        assert statuses.count(503) == 12, statuses

    try:
        _result, _postgres, t0, out, facts = broken_run(stack, database, stop_and_flood, tmp_path,
                                                        still_there=[spec.service], diagnose_errors_since=iso_utc)
        app = stack.container(spec.service)
        # the same window, read from the real log here (other jobs may hit the shared service too)
        expected = error_lines_from_docker(app, t0, facts["logs"]["window"]["until"])
    finally:
        pg = stack.container(database)
        if pg is not None and pg.status != "running":
            pg.start()
    assert facts["logs"]["window"]["since"] == pytest.approx(t0, abs=1e-5)
    assert expected >= 12
    assert facts["logs"]["error_count"] == expected
    assert sum(n for level, n in facts["logs"]["by_level"].items() if level.upper() in ERROR_LEVELS) == expected
    assert facts["errors"]["containers"][app.name]["count"] == expected
    assert facts["database"]["ok"] is False and database in facts["database"]["error"]
    for part in ("status", "logs", "redis", "resources", "disk", "errors", "changes", "degraded", "fallbacks"):
        assert facts[part]["ok"], (part, facts[part])
    # PostgreSQL down: P0 when no request answers, P1 while Redis still serves cached recommendations
    index = json.loads((newest_bundle(out) / "index.json").read_text())
    assert any(f["check"] == "dependency_running" and f["value"] == database for f in index["findings"]), index["findings"]
    answered = facts["http"]["success_ratio"] > 0
    # Redis ran and saved, but the verdict is critical: no snapshot of this run's cache is kept for option C
    assert facts["redis"]["ok"] and not list((out / "snapshots").glob("dump-*.rdb"))
    opened = incidents(out)
    assert len(opened) == 1 and opened[0]["data"]["severity"] == ("P1" if answered else "P0"), opened
    assert wait_for(stack.service_answers, timeout=60)


def test_check_mode_writes_nothing(any_stack, tmp_path):
    result = any_stack.run_playbook("diagnose.yml", extra_vars=extra(tmp_path, diagnose_open_incident=False), check=True)
    assert result.returncode == 0, result.output
    assert not (tmp_path / "bundles").exists()
    assert not (tmp_path / "snapshots").exists()
    assert not (tmp_path / "incidents").exists()
