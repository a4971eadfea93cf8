# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Backups that restore (SPEC P0-4 rung 3, OUT-5) on both example stacks.

The ladder's rebuild with ``recover_allow_data_loss=true`` really removes the volumes: canary rows,
Redis keys and a file in an extra volume are gone afterwards. ``restore_backup.yml`` brings them
back from the set the rung took. A set with one wrong byte is refused with nothing changed; no
backup is kept while Redis does not run; and without a backup the rebuild keeps every volume.
"""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import uuid
from pathlib import Path

import docker
import pytest

from conftest import ROOT, VENV_BIN, local_stack, read_record, wait_for

pytestmark = pytest.mark.integration

EXTRA_VOLUME = "sre-test-extra"
EXTRA_PATH = "/srv/sre-test-extra"
# short rung windows: the first rungs cannot fix this fault, the rebuild reinitialises the database
WINDOWS = {"repair_edge": 15, "restart_service": 15, "restart_dependencies": 30,
           "restart_service_after_dependencies": 15, "rebuild": 150}


def _sha256(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _project_volumes(stack):
    return sorted(v.name for v in stack.client.volumes.list(
        filters={"label": f"com.docker.compose.project={stack.spec.project}"}))


def _canary_table_gone(stack):
    return stack.sql("SELECT to_regclass('sre_backup_canary') IS NULL") == "t"


def _write_canaries(stack, token):
    stack.sql("CREATE TABLE IF NOT EXISTS sre_backup_canary (token text PRIMARY KEY, at timestamptz DEFAULT now())")
    stack.sql(f"INSERT INTO sre_backup_canary (token) VALUES ('{token}')")
    # no SAVE here: the backup's own BGSAVE must catch the key
    stack.redis("SET", f"sre:backup-canary:{token}", token)


def _compose(stack, override, *args):
    spec = stack.spec
    subprocess.run(["docker-compose", "-p", spec.project, "--project-directory", str(spec.stack_dir),
                    "-f", str(spec.stack_dir / "docker-compose.yml"), "-f", str(override), *args],
                   check=True, capture_output=True, timeout=300)


def _break_the_service_container(stack):
    """A fault a restart does not cure but a new container does: the first program of the service's
    command (python3, node) replaced in the container's own layer by one that exits, then a kill."""
    c = stack.container()
    program = (c.attrs["Config"].get("Entrypoint") or c.attrs["Config"].get("Cmd"))[0]
    code, out = c.exec_run(["sh", "-c", 'p=$(command -v "$0") && rm -f "$p" && printf "#!/bin/sh\\nexit 3\\n" > "$p" '
                                        '&& chmod 755 "$p"', program],
                           user="0")
    assert code == 0, out
    c.kill()
    assert wait_for(lambda: not stack.answers(stack.spec.base_url), timeout=30)


def _ad_hoc(stack, module, args):
    """One module on the stack's host, through ansible's ad-hoc command (the real module).
    Returns (exit code, the module's result)."""
    cmd = [str(VENV_BIN / "ansible"), "recsys", "-i", stack.spec.inventory, "-m", module, "-a", json.dumps(args)]
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_NOCOLOR="1",
               ANSIBLE_STDOUT_CALLBACK="ansible.builtin.minimal", ANSIBLE_LOAD_CALLBACK_PLUGINS="1",
               ANSIBLE_CALLBACK_RESULT_FORMAT="json")
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)
    _head, sep, body = proc.stdout.partition(" => ")
    assert sep, proc.stdout + proc.stderr
    return proc.returncode, json.loads(body)


def test_rebuild_with_data_loss_takes_a_backup_that_restore_backup_puts_back(any_stack, tmp_path):
    stack, spec = any_stack, any_stack.spec
    token = uuid.uuid4().hex[:12]
    extra_volume = f"{spec.project}_{EXTRA_VOLUME}"
    override = tmp_path / "extra-volume.override.yml"
    override.write_text(json.dumps({"services": {spec.edge: {"volumes": [f"{EXTRA_VOLUME}:{EXTRA_PATH}"]}},
                                    "volumes": {EXTRA_VOLUME: {}}}))
    stack_vars = local_stack(spec)
    stack_vars["compose_files"] = list(stack_vars["compose_files"]) + [str(override)]
    incidents = tmp_path / "incidents"
    backups = tmp_path / "backups"
    try:
        # the edge with one more volume, holding a file of ours
        _compose(stack, override, "up", "-d", "--no-deps", "--no-build", spec.edge)
        assert wait_for(stack.service_answers, timeout=60)
        code, out = stack.container(spec.edge).exec_run(["sh", "-c", f"echo {token} > {EXTRA_PATH}/canary.txt"],
                                                        user="0")
        assert code == 0, out
        _write_canaries(stack, token)
        volumes_before = _project_volumes(stack)
        assert extra_volume in volumes_before
        _break_the_service_container(stack)

        result = stack.run_playbook("p0_recover.yml", extra_vars={
            "incident_dir": str(incidents), "incident_stack": stack_vars, "recover_allow_data_loss": True,
            "recover_volume_backup_dir": str(backups), "recover_ladder_windows": WINDOWS}, timeout=900)

        assert result.returncode == 0, result.output[-5000:]
        incident_id, events = read_record(incidents)
        rungs = [(e["data"]["rung"], e["data"]["result"]) for e in events
                 if (e.get("data") or {}).get("result") in ("fixed", "not_fixed")]
        assert rungs[-1] == ("rebuild", "fixed") and all(r == "not_fixed" for _rung, r in rungs[:-1]), rungs
        assert wait_for(stack.service_answers, timeout=60)
        # the volumes really were removed: every canary is gone
        assert _canary_table_gone(stack)
        assert stack.redis("EXISTS", f"sre:backup-canary:{token}") == "0"
        code, _out = stack.container(spec.edge).exec_run(["cat", f"{EXTRA_PATH}/canary.txt"])
        assert code != 0

        # the set the rung took, checked here on our own: every file hashed, every volume covered
        recorded = [e["data"]["backup_manifest"] for e in events if (e.get("data") or {}).get("backup_manifest")]
        assert len(recorded) == 1, [e["text"] for e in events]
        manifest_path = Path(recorded[0])
        assert manifest_path.parent.parent == backups
        assert manifest_path.stat().st_mode & 0o777 == 0o600 and manifest_path.parent.stat().st_mode & 0o777 == 0o700
        manifest = json.loads(manifest_path.read_text())
        assert manifest["project"] == spec.project and manifest["incident_id"] == incident_id
        assert sorted(a["kind"] for a in manifest["artefacts"]) == ["database", "redis", "volume"]
        for item in manifest["artefacts"]:
            path = manifest_path.parent / item["file"]
            assert _sha256(path) == item["sha256"] and path.stat().st_size == item["bytes"], item["file"]
        assert sorted(manifest["volumes"]) == volumes_before
        by_kind = {a["kind"]: a for a in manifest["artefacts"]}
        assert (manifest_path.parent / by_kind["database"]["file"]).read_bytes()[:5] == b"PGDMP"
        assert (manifest_path.parent / by_kind["redis"]["file"]).read_bytes()[:5] == b"REDIS"
        assert by_kind["database"]["source"]["database"] == spec.database["name"]
        assert by_kind["database"]["source"]["port"] == spec.database["port"]
        assert by_kind["redis"]["source"]["port"] == spec.redis["port"]
        assert by_kind["volume"]["source"]["volume"] == extra_volume
        assert [v for v, e in manifest["volumes"].items() if e["by"] == "tmpfs"] != []   # the app's log volume

        # check mode says what it would restore and restores nothing
        restore_vars = {"backup": str(manifest_path), "incident_stack": stack_vars, "incident_dir": str(incidents),
                        "incident_id": incident_id}
        dry = stack.run_playbook("restore_backup.yml", check=True, extra_vars=restore_vars)
        assert dry.returncode == 0, dry.output[-4000:]
        assert f"would restore database {spec.database['name']}" in dry.output
        assert _canary_table_gone(stack)
        assert stack.redis("EXISTS", f"sre:backup-canary:{token}") == "0"

        restored = stack.run_playbook("restore_backup.yml", extra_vars=restore_vars, timeout=600)

        assert restored.returncode == 0, restored.output[-4000:]
        assert stack.sql(f"SELECT count(*) FROM sre_backup_canary WHERE token = '{token}'") == "1"
        assert stack.redis("GET", f"sre:backup-canary:{token}") == token
        code, out = stack.container(spec.edge).exec_run(["cat", f"{EXTRA_PATH}/canary.txt"])
        assert (code, out.decode().strip()) == (0, token)
        assert wait_for(stack.service_answers, timeout=60)
        _id, events = read_record(incidents)
        restores = [e for e in events if e["stage"] == "restore"]
        assert [e["data"]["restored_backup"] for e in restores] == [str(manifest_path)]
    finally:
        edge = stack.container(spec.edge)
        if edge is not None:
            edge.remove(force=True)   # recreated without the extra volume
        stack.restore()
        try:
            stack.client.volumes.get(extra_volume).remove(force=True)
        except docker.errors.NotFound:
            pass


def test_rebuild_keeps_the_volumes_when_no_backup_can_be_taken(stack, tmp_path):
    """Data loss allowed, but the database does not answer where the stack says (a wrong port): no
    backup, so the rebuild runs without removing a volume, and the record says why."""
    token = uuid.uuid4().hex[:12]
    stack_vars = local_stack(stack.spec)
    stack_vars["database"] = dict(stack_vars["database"], port=5999)
    incidents = tmp_path / "incidents"
    _write_canaries(stack, token)
    stack.redis("SAVE")   # the key must outlive the rebuild's Redis restart (it is no backup's job here)
    volumes_before = _project_volumes(stack)
    _break_the_service_container(stack)

    result = stack.run_playbook("p0_recover.yml", extra_vars={
        "incident_dir": str(incidents), "incident_stack": stack_vars, "recover_allow_data_loss": True,
        "recover_volume_backup_dir": str(tmp_path / "backups"), "recover_ladder_windows": WINDOWS}, timeout=900)

    assert result.returncode == 0, result.output[-5000:]
    _id, events = read_record(incidents)
    fixed = [e["data"]["rung"] for e in events if (e.get("data") or {}).get("result") == "fixed"]
    assert fixed == ["rebuild"]
    refused = [e for e in events if (e.get("data") or {}).get("backup_error")]
    assert len(refused) == 1 and "5999" in refused[0]["data"]["backup_error"], [e["text"] for e in events]
    assert not (tmp_path / "backups").exists() or not any((tmp_path / "backups").iterdir())
    # nothing was lost: the same volumes, the canaries still there
    assert _project_volumes(stack) == volumes_before
    assert stack.sql(f"SELECT count(*) FROM sre_backup_canary WHERE token = '{token}'") == "1"
    assert stack.redis("GET", f"sre:backup-canary:{token}") == token
    assert wait_for(stack.service_answers, timeout=60)
    stack.sql("DROP TABLE sre_backup_canary")


def test_a_tampered_backup_is_refused_and_nothing_changes(any_stack, tmp_path):
    stack, spec = any_stack, any_stack.spec
    token = uuid.uuid4().hex[:12]
    _write_canaries(stack, token)
    code, taken = _ad_hoc(stack, "sre.incident.backup", {"stack": "{{ incident_stack }}", "dest": str(tmp_path)})
    assert code == 0, taken
    manifest_path = Path(taken["manifest_path"])
    manifest = json.loads(manifest_path.read_text())
    # written after the backup: a restore would take these away
    stack.sql(f"INSERT INTO sre_backup_canary (token) VALUES ('{token}-after')")
    stack.redis("SET", f"sre:backup-canary:{token}-after", "after")
    # one byte of the RDB changed: the set is refused before the database (restored first) is touched
    rdb = manifest_path.parent / next(a["file"] for a in manifest["artefacts"] if a["kind"] == "redis")
    data = bytearray(rdb.read_bytes())
    data[-1] ^= 0xFF
    rdb.write_bytes(bytes(data))
    services = (spec.service, spec.database["service"], spec.redis["service"])
    before = {s: stack.state(s)["StartedAt"] for s in services}

    result = stack.run_playbook("restore_backup.yml", extra_vars={"backup": str(manifest_path)})

    assert result.returncode != 0
    assert str(rdb) in result.output and "SHA-256" in result.output, result.output[-3000:]
    assert stack.sql(f"SELECT count(*) FROM sre_backup_canary WHERE token = '{token}-after'") == "1"
    assert stack.redis("GET", f"sre:backup-canary:{token}-after") == "after"
    assert {s: stack.state(s)["StartedAt"] for s in services} == before
    stack.sql("DROP TABLE sre_backup_canary")


def test_no_backup_is_kept_while_redis_is_down(any_stack, tmp_path):
    stack = any_stack
    stack.container(stack.spec.redis["service"]).stop(timeout=5)

    code, res = _ad_hoc(stack, "sre.incident.backup", {"stack": "{{ incident_stack }}", "dest": str(tmp_path)})

    assert code != 0
    assert stack.spec.redis["service"] in res["msg"] and "not running" in res["msg"], res["msg"]
    assert list(tmp_path.iterdir()) == []
    assert stack.state(stack.spec.redis["service"])["Status"] == "exited"
