# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""compose_project: the data-loss decision (remove_volumes, backup_manifest, backup_error) before the compose work."""
from __future__ import annotations

import functools

import pytest

from ansible_collections.sre.incident.plugins.module_utils import _compose
from ansible_collections.sre.incident.plugins.modules import compose_project

from .harness import patch_engine, patch_exits, run_module  # noqa: F401  pylint: disable=unused-import

run = functools.partial(run_module, compose_project)
ARGS = dict(project="recsys", project_dir="/srv/recsys", state="rebuilt")


@pytest.fixture
def calls(monkeypatch):
    seen = {}

    def ensure_project(client, run_command, project, project_dir, files, state, **kwargs):
        seen["ensure"] = kwargs
        if "raise" in seen:
            raise seen["raise"]
        return dict(changed=True, not_ready=[], volumes=["recsys_pg"] if kwargs["remove_volumes"] else [])

    patch_engine(monkeypatch, connect=lambda docker_host=None, timeout=60: "client", ensure_project=ensure_project)
    return seen


def test_no_backup_keeps_the_volumes_and_says_why(calls):
    r = run(dict(ARGS, remove_volumes=True, backup_error="redis is not running"))
    assert "failed" not in r and calls["ensure"]["remove_volumes"] is False
    assert r["volumes_text"] == "No backup could be taken, so the volumes are kept: redis is not running"


def test_a_backup_set_lets_the_volumes_go_and_names_the_restore(calls):
    r = run(dict(ARGS, remove_volumes=True, backup_manifest="/b/manifest.json"))
    assert calls["ensure"]["remove_volumes"] is True and calls["ensure"]["backup_manifest"] == "/b/manifest.json"
    assert "restore_backup.yml -e backup=/b/manifest.json" in r["volumes_text"]


def test_the_volumes_text_stays_when_the_set_does_not_check_out(calls):
    calls["raise"] = _compose.ComposeError("volumes not removed, nothing run: database-app.dump: SHA-256 differs")
    r = run(dict(ARGS, remove_volumes=True, backup_manifest="/b/manifest.json"))
    assert r["failed"] is True and "nothing run" in r["msg"] and "/b/manifest.json" in r["volumes_text"]


def test_without_remove_volumes_nothing_is_said_and_both_backup_keys_are_refused(calls):
    r = run(dict(ARGS, backup_error="redis is not running"))
    assert calls["ensure"]["remove_volumes"] is False and r["volumes_text"] is None
    calls.clear()
    r = run(dict(ARGS, remove_volumes=True, backup_manifest="/b/manifest.json", backup_error="x"))
    assert r["failed"] is True and "exclude each other" in r["msg"] and "ensure" not in calls


def test_volumes_are_not_removed_without_a_backup_set_nor_a_reason(calls):
    r = run(dict(ARGS, remove_volumes=True))
    assert r["failed"] is True and "needs backup_manifest" in r["msg"] and "ensure" not in calls
    r = run(dict(ARGS, remove_volumes=True), check_mode=True)   # no backup is taken in check mode
    assert "failed" not in r and calls["ensure"]["remove_volumes"] is True
