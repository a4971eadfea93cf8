# -*- coding: utf-8 -*-
# Copyright (c) sre.incident contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The recovery lease and the circuit breaker's run history."""

from __future__ import annotations

import json
import multiprocessing
import os
import stat

import pytest

from ansible_collections.sre.incident.plugins.module_utils import _lease

T0 = "2026-11-27T01:30:00.000Z"


def _run(state_dir, state, incident_id=None, now=T0, check_mode=False, **extra):
    params = dict(state=state, state_dir=str(state_dir), incident_id=incident_id, owner="alice", host="web1")
    params.update(extra)
    return _lease.run(params, check_mode=check_mode, now=now)


def test_acquire_creates_dir_0700_and_lease(tmp_path):
    state_dir = tmp_path / "recsys"
    res, warnings = _run(state_dir, "acquired", "INC-1", ttl=600)
    assert res["changed"] is True and warnings == []
    assert stat.S_IMODE(os.stat(state_dir).st_mode) == 0o700
    on_disk = json.loads((state_dir / "lease.json").read_text())
    assert on_disk == {"owner": "alice", "incident_id": "INC-1", "acquired_at": T0,
                       "expires_at": "2026-11-27T01:40:00.000Z", "host": "web1"}
    assert res["lease"] == on_disk and res["held_by_us"] is True and res["taken_over"] is None
    assert res["expires_in"] == 600
    assert res["diff"] == {"before": {"holder": None}, "after": {"holder": on_disk}}


def test_other_incident_is_refused_naming_the_holder(tmp_path):
    _run(tmp_path, "acquired", "INC-1")
    before = (tmp_path / "lease.json").read_bytes()
    with pytest.raises(_lease.LeaseError) as info:
        _run(tmp_path, "acquired", "INC-2", now="2026-11-27T01:59:59.999Z", owner="bob")
    msg = info.value.msg
    for part in ("alice", "INC-1", T0, "2026-11-27T02:00:00.000Z"):
        assert part in msg
    assert info.value.details["holder"]["incident_id"] == "INC-1"
    assert (tmp_path / "lease.json").read_bytes() == before


def test_expired_lease_is_taken_over(tmp_path):
    _run(tmp_path, "acquired", "INC-1", ttl=60)
    res, _w = _run(tmp_path, "acquired", "INC-2", now="2026-11-27T01:31:00.000Z", owner="bob")
    assert res["changed"] is True
    assert res["taken_over"]["incident_id"] == "INC-1" and res["taken_over"]["owner"] == "alice"
    assert res["lease"]["incident_id"] == "INC-2" and res["lease"]["owner"] == "bob"


def test_same_incident_renews(tmp_path):
    _run(tmp_path, "acquired", "INC-1", ttl=60)
    same, _w = _run(tmp_path, "acquired", "INC-1", ttl=60)
    assert same["changed"] is False  # expiry did not move
    later, _w = _run(tmp_path, "acquired", "INC-1", ttl=60, now="2026-11-27T01:30:30.000Z")
    assert later["changed"] is True
    assert later["lease"]["acquired_at"] == T0 and later["lease"]["expires_at"] == "2026-11-27T01:31:30.000Z"


def test_renewed_only_when_the_incident_already_held_it(tmp_path):
    first, _w = _run(tmp_path, "acquired", "INC-1")
    again, _w = _run(tmp_path, "acquired", "INC-1", now="2026-11-27T01:31:00.000Z", operation="restore_backup")
    assert first["renewed"] is False and again["renewed"] is True and again["held_by_us"] is True
    assert "operation" not in again["lease"]   # the lease stays the first run's


def test_an_operation_without_incident_holds_the_lease_under_an_id_unique_to_its_run(tmp_path):
    mine, _w = _run(tmp_path, "acquired", operation="restore_backup", owner="alice")
    holder = mine["lease"]
    assert holder["incident_id"].startswith("restore_backup-alice-20261127T013000Z-") and holder["operation"] == "restore_backup"
    assert mine["held_by_us"] is True and mine["renewed"] is False
    assert json.loads((tmp_path / "lease.json").read_text()) == holder
    assert mine["diff"]["after"]["holder"]["operation"] == "restore_backup"
    # the same operation, by the same owner in the same second: another run, refused, naming the holder
    with pytest.raises(_lease.LeaseError) as info:
        _run(tmp_path, "acquired", operation="restore_backup", owner="alice")
    assert holder["incident_id"] in info.value.msg and "operation restore_backup" in info.value.msg
    assert "alice" in info.value.msg and info.value.details["holder"] == holder
    # an incident is refused too; the run gives the lease back with its own id
    with pytest.raises(_lease.LeaseError, match="operation restore_backup"):
        _run(tmp_path, "acquired", "INC-1", owner="bob")
    released, warnings = _run(tmp_path, "released", holder["incident_id"])
    assert released["changed"] is True and released["lease"] is None and warnings == []
    assert released["recent_runs"] == 0   # not a ladder run


def test_check_mode_says_the_run_would_be_refused_and_takes_nothing(tmp_path):
    _run(tmp_path, "acquired", "INC-1")
    before = (tmp_path / "lease.json").read_bytes()
    with pytest.raises(_lease.LeaseError) as info:
        _run(tmp_path, "acquired", operation="restore_normal", check_mode=True)
    assert "would be refused" in info.value.msg and "INC-1" in info.value.msg
    assert (tmp_path / "lease.json").read_bytes() == before
    free = tmp_path / "free"
    dry, _w = _run(free, "acquired", operation="restore_normal", check_mode=True)
    assert dry["changed"] is True and dry["lease"]["operation"] == "restore_normal" and not free.exists()


def test_run_ids_are_unique_and_plain():
    ids = {_lease.run_id("ops", "a b/c", T0) for _i in range(50)}
    assert len(ids) == 50 and all(i.startswith("ops-a_b_c-20261127T013000Z-") for i in ids)


def test_release_only_by_holder(tmp_path):
    _run(tmp_path, "acquired", "INC-1")
    res, warnings = _run(tmp_path, "released", "INC-2", record_run=True, outcome="resolved")
    assert res["changed"] is False and res["lease"]["incident_id"] == "INC-1"
    assert len(warnings) == 1 and "INC-1" in warnings[0] and "alice" in warnings[0]
    assert res["recent_runs"] == 0
    res, warnings = _run(tmp_path, "released", "INC-1")
    assert res["changed"] is True and res["lease"] is None and warnings == []
    assert not (tmp_path / "lease.json").exists()
    again, _w = _run(tmp_path, "released", "INC-1")
    assert again["changed"] is False


def test_check_mode_is_honest(tmp_path):
    state_dir = tmp_path / "recsys"
    res, _w = _run(state_dir, "acquired", "INC-1", check_mode=True)
    assert res["changed"] is True and res["lease"]["incident_id"] == "INC-1"
    assert not state_dir.exists()
    _run(state_dir, "acquired", "INC-1")
    res, _w = _run(state_dir, "released", "INC-1", check_mode=True, record_run=True, outcome="resolved")
    assert res["changed"] is True and res["lease"] is None and res["recent_runs"] == 1
    assert (state_dir / "lease.json").exists() and not (state_dir / "ladder_runs.jsonl").exists()


def test_breaker_counts_runs_within_the_window(tmp_path):
    times = ["2026-11-27T00:00:00.000Z", "2026-11-27T00:40:00.000Z", "2026-11-27T01:10:00.000Z"]
    for index, when in enumerate(times):
        _run(tmp_path, "acquired", "INC-%d" % index, now=when)
        res, _w = _run(tmp_path, "released", "INC-%d" % index, now=when, record_run=True, outcome="failed")
        assert res["run_recorded"] == {"ts": when, "incident_id": "INC-%d" % index, "outcome": "failed",
                                       "purpose": "incident"}
    res, _w = _run(tmp_path, "present", now="2026-11-27T01:00:00.000Z")
    assert (res["recent_runs"], res["breaker_open"]) == (2, False)
    res, _w = _run(tmp_path, "present", now="2026-11-27T01:10:00.000Z", breaker_window=4200)
    assert (res["recent_runs"], res["breaker_open"]) == (3, True)
    res, _w = _run(tmp_path, "present", now="2026-11-27T01:10:00.000Z", breaker_max_runs=2)
    assert (res["recent_runs"], res["breaker_open"]) == (2, True)  # window 3600: 00:10 .. 01:10
    with open(tmp_path / "ladder_runs.jsonl", "a") as handle:
        handle.write("garbage\n")
    res, _w = _run(tmp_path, "present", now="2026-11-27T01:10:00.000Z")
    assert res["runs_corrupt_lines"] == [4] and res["recent_runs"] == 2


def test_present_on_missing_dir_reads_nothing(tmp_path):
    res, _w = _run(tmp_path / "nope", "present")
    assert res["changed"] is False and res["lease"] is None and res["recent_runs"] == 0
    assert not (tmp_path / "nope").exists()


@pytest.mark.parametrize("params, needle", [
    ({"state": "acquired", "state_dir": "relative/dir", "incident_id": "X"}, "relative/dir"),
    ({"state": "acquired", "state_dir": "/tmp/x"}, "incident_id or operation"),
    ({"state": "acquired", "state_dir": "/tmp/x", "operation": "restore backup"}, "'restore backup'"),
    ({"state": "released", "state_dir": "/tmp/x", "operation": "restore_backup"}, "state=acquired only"),
    ({"state": "released", "state_dir": "/tmp/x"}, "incident_id is required"),
    ({"state": "acquired", "state_dir": "/tmp/x", "incident_id": "X", "ttl": 0}, "ttl"),
    ({"state": "acquired", "state_dir": "/tmp/x", "incident_id": "X", "record_run": True}, "record_run"),
    ({"state": "taken", "state_dir": "/tmp/x"}, "'taken'"),
])
def test_bad_input_is_named(params, needle):
    with pytest.raises(_lease.LeaseError, match=needle):
        _lease.run(params)


def test_unreadable_lease_fails_naming_the_file(tmp_path):
    (tmp_path / "lease.json").write_text("{torn")
    with pytest.raises(_lease.LeaseError, match="lease.json"):
        _run(tmp_path, "acquired", "INC-1")


def _contender(state_dir, index, barrier, queue):
    barrier.wait()
    try:
        _lease.run({"state": "acquired", "state_dir": state_dir, "incident_id": "INC-%d" % index, "owner": "p%d" % index})
        queue.put(("won", index))
    except _lease.LeaseError as exc:
        queue.put(("refused", exc.details["holder"]["incident_id"]))


def test_concurrent_acquire_exactly_one_wins(tmp_path):
    state_dir = str(tmp_path / "recsys")
    ctx = multiprocessing.get_context("fork")
    contenders = 8
    barrier, queue = ctx.Barrier(contenders), ctx.Queue()
    procs = [ctx.Process(target=_contender, args=(state_dir, i, barrier, queue)) for i in range(contenders)]
    for proc in procs:
        proc.start()
    outcomes = [queue.get(timeout=60) for _i in procs]
    for proc in procs:
        proc.join(60)
    winners = [who for what, who in outcomes if what == "won"]
    assert len(winners) == 1
    holder = json.loads(open(os.path.join(state_dir, "lease.json")).read())["incident_id"]
    assert holder == "INC-%d" % winners[0]
    assert all(who == holder for what, who in outcomes if what == "refused")


def test_purposes_count_apart_and_a_reset_is_recorded_with_who_and_why(tmp_path):
    when = ["2026-11-27T00:00:00.000Z", "2026-11-27T00:10:00.000Z", "2026-11-27T00:20:00.000Z"]
    for index, ts in enumerate(when):
        _run(tmp_path, "acquired", "DEMO-%d" % index, now=ts, purpose="demo")
        _run(tmp_path, "released", "DEMO-%d" % index, now=ts, record_run=True, outcome="fixed", purpose="demo")
    now = "2026-11-27T00:30:00.000Z"
    demo, _w = _run(tmp_path, "present", now=now, purpose="demo")
    real, _w = _run(tmp_path, "present", now=now)
    assert (demo["recent_runs"], demo["breaker_open"]) == (3, True)
    assert (real["recent_runs"], real["breaker_open"]) == (0, False)   # the demo never opens a real incident's breaker

    with pytest.raises(_lease.LeaseError, match="needs a reason"):
        _run(tmp_path, "reset", now=now, purpose="demo", reason=" ")
    dry, _w = _run(tmp_path, "reset", now=now, purpose="demo", reason="make demo", owner="alice", check_mode=True)
    assert dry["changed"] is True and dry["breaker_open"] is False
    assert _run(tmp_path, "present", now=now, purpose="demo")[0]["breaker_open"] is True   # check mode wrote nothing
    done, _w = _run(tmp_path, "reset", now=now, purpose="demo", reason="make demo", owner="alice")
    assert done["changed"] is True and done["recent_runs"] == 0 and done["breaker_open"] is False
    assert done["reset_recorded"] == dict(ts=now, reset=True, by="alice", reason="make demo", purpose="demo",
                                          runs_forgiven=3)
    assert done["last_reset"]["by"] == "alice" and done["diff"] == {"before": {"recent_runs": 3}, "after": {"recent_runs": 0}}
    again, _w = _run(tmp_path, "reset", now=now, purpose="demo", reason="make demo", owner="alice")
    assert again["changed"] is False and again["reset_recorded"] is None   # nothing left to reset
    lines = (tmp_path / "ladder_runs.jsonl").read_text().splitlines()
    assert len(lines) == 4 and '"reset": true' in lines[-1]
    with pytest.raises(_lease.LeaseError, match="unknown purpose"):
        _run(tmp_path, "present", purpose="chaos")
