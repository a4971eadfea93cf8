# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""sre.incident.backup and sre.incident.backup_restore main(): bad input and a bad set are refused
before the engine is asked anything (the engine is replaced by one that fails the test)."""

from __future__ import annotations

import functools
import hashlib
import json

import pytest

from ansible_collections.sre.incident.plugins.modules import backup, backup_restore

from .harness import patch_engine, patch_exits, run_module  # noqa: F401  pylint: disable=unused-import

STACK = dict(name="recsys", project_dir="/srv/recsys", service="recommendation-service",
             base_url="http://127.0.0.1:3000", health_path="/health",
             recommendations_path="/api/recommendations/{user}", sample_users=["user-1"],
             database=dict(service="postgres", name="recommendation_db", user="postgres", port=5432),
             redis=dict(service="redis", port=6379))


def no_engine(host, timeout):
    raise AssertionError("the engine was asked although the input is bad")


@pytest.fixture(autouse=True)
def engine(monkeypatch):
    patch_engine(monkeypatch, connect=no_engine)


@pytest.mark.parametrize("args, message", [
    (dict(stack=dict(STACK, database=dict(port="fivefourthreetwo")), dest="/tmp/x"), "database.port is not a TCP port (1-65535): 'fivefourthreetwo'"),
    (dict(stack=dict(STACK, redis=dict(port=99999)), dest="/tmp/x"), "redis.port is not a TCP port (1-65535): 99999"),
    (dict(stack=dict(STACK, base_url="ftp://x"), dest="/tmp/x"), "base_url"),
    (dict(stack=STACK, dest="/tmp/x", timeout=0), "timeout must be > 0"),
])
def test_backup_rejects_bad_input(args, message):
    run = functools.partial(run_module, backup)
    result = run(args)
    assert result["failed"] and message in result["msg"], result


def test_backup_rejects_bad_input_before_the_engine_in_check_mode_too():
    result = run_module(backup, dict(stack=dict(STACK, redis=dict(port=True)), dest="/tmp/x"), check_mode=True)
    assert result["failed"] and "redis.port is not a TCP port (1-65535): True" in result["msg"]


def test_restore_of_a_tampered_set_names_the_file(tmp_path):
    data = b"PGDMP" + b"x" * 10
    (tmp_path / "database-recommendation_db.dump").write_bytes(data + b"!")
    manifest = dict(format="sre.incident/backup/1", project="recsys", volumes={}, artefacts=[dict(
        file="database-recommendation_db.dump", kind="database", sha256=hashlib.sha256(data).hexdigest(),
        bytes=len(data), source=dict(service="postgres", database="recommendation_db"))])
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    for check_mode in (True, False):
        result = run_module(backup_restore, dict(stack=STACK, manifest=str(tmp_path / "manifest.json")),
                            check_mode=check_mode)
        assert result["failed"] and str(tmp_path / "database-recommendation_db.dump") in result["msg"], result
        assert "16 bytes, the manifest says 15" in result["msg"]


def test_restore_without_a_manifest_fails_naming_it(tmp_path):
    result = run_module(backup_restore, dict(stack=STACK, manifest=str(tmp_path / "missing.json")))
    assert result["failed"] and "missing.json cannot be read" in result["msg"]
