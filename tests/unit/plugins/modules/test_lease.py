# -*- coding: utf-8 -*-
# Copyright (c) sre.incident contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""sre.incident.lease main() with exit_json/fail_json patched."""

from __future__ import annotations

import functools

from ansible_collections.sre.incident.plugins.modules import lease as lease_module

from .harness import patch_exits, run_module, warnings_seen  # noqa: F401  pylint: disable=unused-import


_main = functools.partial(run_module, lease_module)


def test_acquire_refuse_release(tmp_path, warnings_seen):
    state_dir = str(tmp_path / "recsys")
    got = _main({"state": "acquired", "state_dir": state_dir, "incident_id": "INC-1", "owner": "alice",
                 "_ansible_diff": True})
    assert got["changed"] is True and got["held_by_us"] is True
    assert got["diff"]["before"] == {"holder": None} and got["diff"]["after"]["holder"]["owner"] == "alice"
    refused = _main({"state": "acquired", "state_dir": state_dir, "incident_id": "INC-2", "owner": "bob"})
    assert refused["failed"] is True and "alice" in refused["msg"] and "INC-1" in refused["msg"]
    assert refused["holder"]["incident_id"] == "INC-1"
    other = _main({"state": "released", "state_dir": state_dir, "incident_id": "INC-2"})
    assert other["changed"] is False and warnings_seen and "INC-1" in warnings_seen[0]
    released = _main({"state": "released", "state_dir": state_dir, "incident_id": "INC-1", "record_run": True,
                      "outcome": "resolved"})
    assert released["changed"] is True and released["recent_runs"] == 1 and released["breaker_open"] is False
    present = _main({"state": "present", "state_dir": state_dir})
    assert present["changed"] is False and present["held"] is False and present["recent_runs"] == 1


def test_check_mode_writes_nothing(tmp_path):
    state_dir = tmp_path / "recsys"
    got = _main({"state": "acquired", "state_dir": str(state_dir), "incident_id": "INC-1",
                 "_ansible_check_mode": True})
    assert got["changed"] is True and got["lease"]["incident_id"] == "INC-1"
    assert not state_dir.exists()


def test_required_incident_id(tmp_path):
    got = _main({"state": "acquired", "state_dir": str(tmp_path)})
    assert got["failed"] is True and "incident_id" in got["msg"]
    assert list(tmp_path.iterdir()) == []


def test_operation_takes_the_lease_without_incident(tmp_path):
    state_dir = str(tmp_path / "recsys")
    got = _main({"state": "acquired", "state_dir": state_dir, "operation": "restore_normal", "owner": "alice"})
    assert got["changed"] is True and got["held_by_us"] is True and got["renewed"] is False
    assert got["lease"]["incident_id"].startswith("restore_normal-alice-")
    refused = _main({"state": "acquired", "state_dir": state_dir, "operation": "restore_normal", "owner": "alice"})
    assert refused["failed"] is True and got["lease"]["incident_id"] in refused["msg"]
    released = _main({"state": "released", "state_dir": state_dir, "incident_id": got["lease"]["incident_id"]})
    assert released["changed"] is True and released["held"] is False
