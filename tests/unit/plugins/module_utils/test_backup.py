# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Backup sets (SPEC OUT-5): what covers each volume, the manifest's checks, and the gates that
refuse before anything changes."""
from __future__ import annotations

import hashlib
import json

import pytest

from ansible_collections.sre.incident.plugins.module_utils import _backup, _compose, _pg, _redis


def mount(volume, container, destination, running=True, service=None):
    return dict(volume=volume, container=container, destination=destination, running=running,
                service=service or container)


# --------------------------------------------------------------------------- cover

def test_cover_database_redis_tar_and_tmpfs():
    volumes = {"p_pg": {}, "p_kv": {}, "p_logs": {"tmpfs": True}, "p_files": {}, "p_orphan": {}}
    mounts = [mount("p_pg", "p_pg_1", "/var/lib/postgresql"), mount("p_kv", "p_kv_1", "/var/lib/redis"),
              mount("p_logs", "p_api_1", "/var/log/api"), mount("p_files", "p_web_1", "/srv/files"),
              mount("p_files", "p_api_1", "/srv/files", running=False)]
    out = _backup.cover(volumes, mounts, data_directory="/var/lib/postgresql/15/main", db_containers=["p_pg_1"],
                        redis_dir="/var/lib/redis", redis_containers=["p_kv_1"])
    assert {name: entry["by"] for name, entry in out.items()} == {
        "p_pg": "database", "p_kv": "redis", "p_logs": "tmpfs", "p_files": "tar", "p_orphan": "tar"}
    assert out["p_files"]["containers"] == ["p_api_1", "p_web_1"] and out["p_files"]["running"] == ["p_web_1"]
    assert out["p_orphan"]["containers"] == []


def test_cover_only_the_volume_that_holds_the_data():
    # a second volume of the database container (init scripts) is tarred, not taken for the data
    mounts = [mount("p_data", "pg", "/var/lib/postgresql/data"), mount("p_init", "pg", "/docker-entrypoint-initdb.d"),
              mount("p_other", "app", "/var/lib/postgresql/data")]
    out = _backup.cover({"p_data": {}, "p_init": {}, "p_other": {}}, mounts, "/var/lib/postgresql/data", ["pg"])
    assert (out["p_data"]["by"], out["p_init"]["by"], out["p_other"]["by"]) == ("database", "tar", "tar")
    # /var/lib/postgresql-old is not under /var/lib/postgresql
    out = _backup.cover({"v": {}}, [mount("v", "pg", "/var/lib/postgresql")], "/var/lib/postgresql-old", ["pg"])
    assert out["v"]["by"] == "tar"
    # without a running database (no data_directory) nothing is covered by a dump
    out = _backup.cover({"v": {}}, [mount("v", "pg", "/data")], None, ["pg"])
    assert out["v"]["by"] == "tar"


# --------------------------------------------------------------------------- manifests

def make_set(tmp_path, project="recsys", volumes=None):
    files = {"database-app.dump": b"PGDMP" + b"x" * 100, "redis-dump.rdb": b"REDIS0011" + b"y" * 50,
             "volume-recsys_files.tar": b"z" * 1024}
    set_dir = tmp_path / "recsys-20261206T100000Z"
    set_dir.mkdir()
    artefacts = []
    for name, data in files.items():
        (set_dir / name).write_bytes(data)
        kind = name.split("-", 1)[0]
        artefacts.append(dict(file=name, kind=kind, sha256=hashlib.sha256(data).hexdigest(), bytes=len(data),
                              source=dict(volume="recsys_%s" % {"database": "pg", "redis": "kv", "volume": "files"}[kind])))
    manifest = dict(format=_backup.FORMAT, project=project, artefacts=artefacts, volumes=volumes or {
        "recsys_pg": {"by": "database", "file": "database-app.dump"},
        "recsys_kv": {"by": "redis", "file": "redis-dump.rdb"},
        "recsys_files": {"by": "tar", "file": "volume-recsys_files.tar"},
        "recsys_logs": {"by": "tmpfs", "file": None}})
    path = set_dir / "manifest.json"
    path.write_text(json.dumps(manifest))
    return path


def test_verify_accepts_a_whole_set(tmp_path):
    path = make_set(tmp_path)
    manifest = _backup.verify(str(path), project="recsys",
                              volumes=["recsys_pg", "recsys_kv", "recsys_files", "recsys_logs"])
    assert len(manifest["artefacts"]) == 3


@pytest.mark.parametrize("damage, expected", [
    (lambda d: (d / "redis-dump.rdb").write_bytes(b"REDIS0011" + b"Y" * 50), "redis-dump.rdb: SHA-256"),
    (lambda d: (d / "database-app.dump").write_bytes(b"PGDMP"), "database-app.dump: 5 bytes, the manifest says 105"),
    (lambda d: (d / "volume-recsys_files.tar").unlink(), "volume-recsys_files.tar: missing"),
])
def test_verify_names_the_bad_file(tmp_path, damage, expected):
    path = make_set(tmp_path)
    damage(path.parent)
    with pytest.raises(_backup.BackupError) as err:
        _backup.verify(str(path))
    assert expected in err.value.msg


def test_verify_refuses_a_file_outside_the_set_and_an_uncovered_volume(tmp_path):
    path = make_set(tmp_path)
    manifest = json.loads(path.read_text())
    manifest["artefacts"][0]["file"] = "../elsewhere.dump"
    path.write_text(json.dumps(manifest))
    with pytest.raises(_backup.BackupError, match=r"'\.\./elsewhere\.dump': not a file name inside"):
        _backup.verify(str(path))
    (tmp_path / "again").mkdir()
    path = make_set(tmp_path / "again")
    with pytest.raises(_backup.BackupError, match="volume recsys_new: not in the backup"):
        _backup.verify(str(path), volumes=["recsys_pg", "recsys_new"])
    with pytest.raises(_backup.BackupError, match="is of project 'recsys', not 'shop'"):
        _backup.verify(str(path), project="shop")


def test_load_refuses_what_is_no_manifest(tmp_path):
    with pytest.raises(_backup.BackupError, match="cannot be read"):
        _backup.load(str(tmp_path / "nothing.json"))
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(_backup.BackupError, match="not valid JSON"):
        _backup.load(str(bad))
    bad.write_text(json.dumps({"project": "recsys", "backups": []}))   # the old volume-tar manifest
    with pytest.raises(_backup.BackupError, match="not a backup manifest of this collection"):
        _backup.load(str(bad))


class NoEngine:
    """A client that fails the test if anything is asked of the engine."""

    def __getattr__(self, name):
        raise AssertionError("the engine was used (%s) although the set is bad" % name)


def test_restore_of_a_bad_set_asks_nothing_of_the_engine(tmp_path):
    path = make_set(tmp_path)
    (path.parent / "redis-dump.rdb").write_bytes(b"tampered")
    with pytest.raises(_backup.BackupError, match="redis-dump.rdb"):
        _backup.restore(NoEngine(), {"name": "recsys"}, str(path))
    with pytest.raises(_backup.BackupError, match="redis-dump.rdb"):
        _backup.restore(NoEngine(), {"name": "recsys"}, str(path), check_mode=True)


def test_compose_project_gate_runs_nothing_without_a_good_set(tmp_path):
    project_dir = tmp_path / "stack"
    project_dir.mkdir()
    (project_dir / "docker-compose.yml").write_text("services:\n  app: {image: x}\n")
    ran = []

    class Volumes:
        def list(self, filters=None):
            return [type("V", (), {"name": n})() for n in ("recsys_pg", "recsys_kv", "recsys_files", "recsys_logs")]

    class Engine:
        volumes = Volumes()
        containers = type("C", (), {"list": staticmethod(lambda **kw: [])})()

    client = _compose.ComposeClient(Engine())

    def run_command(argv):
        ran.append(argv)
        return 0, "", ""

    path = make_set(tmp_path)
    (path.parent / "database-app.dump").write_bytes(b"PGDMP-changed")
    with pytest.raises(_backup.BackupError, match="database-app.dump"):
        _compose.ensure_project(client, run_command, "recsys", str(project_dir), ["docker-compose.yml"], "rebuilt",
                                remove_volumes=True, backup_manifest=str(path))
    with pytest.raises(ValueError, match="remove_volumes needs backup_manifest"):
        _compose.ensure_project(client, run_command, "recsys", str(project_dir), ["docker-compose.yml"], "rebuilt",
                                remove_volumes=True)
    assert ran == []


# --------------------------------------------------------------------------- settings and small parsers

def test_settings_defaults_and_bad_ports():
    assert _pg.settings({}) == dict(service="postgres", name="postgres", user="postgres", port=5432,
                                    exec_user="postgres")
    assert _pg.settings({"database": {"service": "pg", "name": "shop", "port": "5433"}})["port"] == 5433
    assert _redis.settings({"redis": {"service": "kv", "port": 6380}}) == dict(service="kv", port=6380)
    for bad in ("x", 0, 70000, True):
        with pytest.raises(ValueError, match="database.port"):
            _pg.settings({"database": {"port": bad}})
        with pytest.raises(ValueError, match="redis.port"):
            _redis.settings({"redis": {"port": bad}})


def test_redis_info_parsing():
    text = "# Persistence\r\nloading:0\r\nrdb_bgsave_in_progress:0\r\nrdb_last_bgsave_status:ok\r\n"
    assert _redis.info_fields(text) == {"loading": "0", "rdb_bgsave_in_progress": "0", "rdb_last_bgsave_status": "ok"}
    keyspace = _redis.info_fields("# Keyspace\r\ndb0:keys=12,expires=3,avg_ttl=100\r\ndb2:keys=1,expires=0,avg_ttl=0\r\n")
    assert _redis.keyspace_keys(keyspace) == 13
    assert _redis.keyspace_keys({}) == 0


def test_sha256_file(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"abc" * 1000)
    assert _backup.sha256_file(str(path)) == (hashlib.sha256(b"abc" * 1000).hexdigest(), 3000)
