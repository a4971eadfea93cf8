# -*- coding: utf-8 -*-
# Copyright (c) sre.incident contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The timeline callback driven with small fake task / result / play objects."""

from __future__ import annotations

import json

import pytest

from ansible_collections.sre.incident.plugins.callback import timeline
from ansible_collections.sre.incident.plugins.module_utils import _record as rec

SECRET = "hunter2-s3cr3t"


class FakeRole:
    def __init__(self, name):
        self.name = name

    def get_name(self, include_role_fqcn=True):
        return ("sre.incident." + self.name) if include_role_fqcn else self.name


class FakeTask:
    def __init__(self, name, role=None, action="ansible.builtin.command", no_log=False):
        self.name = name
        self._role = FakeRole(role) if role else None
        self.action = action
        self.no_log = no_log
        self.args = {"password": SECRET}

    def get_name(self):
        return self.name


class FakeHost:
    def __init__(self, name):
        self.name = name

    def get_name(self):
        return self.name


class FakeResult:
    def __init__(self, host, task, payload):
        self.host = FakeHost(host)
        self.task = task
        self.result = payload


class FakeVariableManager:
    def __init__(self, extra):
        self.extra_vars = extra


class FakePlay:
    def __init__(self, name="p0", hosts=("web1", "web2"), extra=None, play_vars=None):
        self.name = name
        self.hosts = list(hosts)
        self._vm = FakeVariableManager(extra or {})
        self._vars = play_vars or {}

    def get_name(self):
        return self.name

    def get_variable_manager(self):
        return self._vm

    def get_vars(self):
        return self._vars


class Display:
    def __init__(self):
        self.warnings = []
        self.verbosity = 0

    def warning(self, msg):
        self.warnings.append(msg)

    def vvv(self, msg):
        pass

    def vvvv(self, msg):
        pass


@pytest.fixture
def record(tmp_path):
    res = rec.run({"state": "opened", "incident_dir": str(tmp_path), "service": "recommendation-service",
                   "severity": "P0"})
    return dict(res, incident_dir=str(tmp_path))


@pytest.fixture
def cb():
    return timeline.CallbackModule(display=Display())


def _events(record):
    events, corrupt = rec.read_events(record["events_path"])
    assert corrupt == []
    return events


def _run_task(cb, task, host="web1", failed=False, payload=None, ignore_errors=False):
    result = FakeResult(host, task, payload or {})
    if failed:
        cb.v2_runner_on_failed(result, ignore_errors=ignore_errors)
    else:
        cb.v2_runner_on_ok(result)


def test_failures_before_the_record_are_written_on_activation(cb, record):
    cb.v2_playbook_on_play_start(FakePlay())
    _run_task(cb, FakeTask("probe health", role="detect"), host="web1")
    _run_task(cb, FakeTask("probe recs", role="detect"), host="web1", failed=True,
              payload={"msg": "recommendations empty for u1"})
    assert len(_events(record)) == 1  # nothing written before the incident is active
    assert len(cb.buffer) == 1
    failed_by = rec.parse_ts(rec.format_ts(rec.utc_now()))
    # the record module's result activates the callback
    _run_task(cb, FakeTask("open incident", action="sre.incident.record"),
              payload={"sre_incident_record": record["sre_incident_record"]})
    events = _events(record)
    assert [(e["type"], e["stage"]) for e in events] == [("opened", "detect"), ("failure", "detect")]
    failure = events[1]
    assert failure["host"] == "web1" and failure["data"]["msg"] == "recommendations empty for u1"
    assert rec.parse_ts(failure["ts"]) <= failed_by  # its real time, not the time it was written
    assert cb.buffer == []

    # after activation failures are appended as they happen; successes and stages are not the callback's
    _run_task(cb, FakeTask("restart", role="recover"))
    assert len(_events(record)) == 2
    _run_task(cb, FakeTask("restart", role="recover"), failed=True, payload={"msg": "still down"})
    cb.v2_playbook_on_stats(None)
    assert [(e["type"], e["stage"]) for e in _events(record)][2:] == [("failure", "recover")]


def test_a_failure_outside_any_role_has_no_stage(cb, record):
    cb.activate(record["id"], record["record_dir"])
    _run_task(cb, FakeTask("Fail the play"), failed=True, payload={"msg": "P0 not resolved"})
    failure = _events(record)[-1]
    assert failure["type"] == "failure" and failure["stage"] is None


def test_a_closed_record_takes_no_more_failures(cb, record):
    cb.activate(record["id"], record["record_dir"])
    _run_task(cb, FakeTask("Degrade", role="degrade"), failed=True, payload={"msg": "option B not verified"})
    rec.run({"state": "closed", "incident_dir": record["incident_dir"], "id": record["id"], "outcome": "degraded"})
    _run_task(cb, FakeTask("Fail the play"), failed=True, payload={"msg": "P0 ended degraded"})
    assert [e["type"] for e in _events(record)] == ["opened", "failure", "closed"]


class FakeBlock:
    def __init__(self, tasks, rescue=(), parent=None):
        self.block, self.rescue, self._parent, self._uuid = list(tasks), list(rescue), parent, id(self)
        for task in self.block + self.rescue:
            task._parent, task._uuid = self, id(task)


def test_a_failure_a_rescue_catches_is_the_plays_to_record(cb, record):
    cb.activate(record["id"], record["record_dir"])
    caught, in_rescue, nested = FakeTask("Restart", role="recover"), FakeTask("Fail with the error"), FakeTask("Probe")
    inner = FakeBlock([nested])               # a block without a rescue, inside one with a rescue
    FakeBlock([caught, inner], rescue=[in_rescue], parent=None)
    for task in (caught, nested, in_rescue):
        _run_task(cb, task, failed=True, payload={"msg": task.name})
    assert [e["data"]["task"] for e in _events(record) if e["type"] == "failure"] == ["Fail with the error"]


def test_failed_task_recorded_without_args(cb, record):
    cb.activate(record["id"], record["record_dir"])
    _run_task(cb, FakeTask("restart deps", role="recover"), failed=True,
              payload={"msg": "postgres did not come up", "rc": 1, "invocation": {"module_args": {"password": SECRET}}})
    failure = [e for e in _events(record) if e["type"] == "failure"][0]
    assert failure["data"] == {"task": "restart deps", "action": "ansible.builtin.command", "unreachable": False,
                               "msg": "postgres did not come up", "rc": 1}
    assert SECRET not in open(record["events_path"]).read()


def test_no_log_result_is_not_recorded(cb, record):
    cb.activate(record["id"], record["record_dir"])
    _run_task(cb, FakeTask("login", role="recover", no_log=True), failed=True,
              payload={"msg": "bad password %s" % SECRET})
    _run_task(cb, FakeTask("login2", role="recover"), failed=True,
              payload={"msg": "token %s" % SECRET, "_ansible_no_log": True})
    text = open(record["events_path"]).read()
    assert SECRET not in text and "bad password" not in text
    failures = [e for e in _events(record) if e["type"] == "failure"]
    assert [f["data"]["no_log"] for f in failures] == [True, True]
    assert all("msg" not in f["data"] for f in failures)


def test_ignored_failures_are_not_written(cb, record):
    cb.activate(record["id"], record["record_dir"])
    _run_task(cb, FakeTask("optional probe", role="verify"), failed=True, payload={"msg": "meh"}, ignore_errors=True)
    cb.v2_playbook_on_stats(None)
    assert [e["type"] for e in _events(record)] == ["opened"]


def test_unreachable_is_recorded(cb, record):
    cb.activate(record["id"], record["record_dir"])
    task = FakeTask("restart", role="recover")
    cb.v2_runner_on_unreachable(FakeResult("web9", task, {"msg": "ssh: connect timed out"}))
    failure = [e for e in _events(record) if e["type"] == "failure"][0]
    assert failure["data"]["unreachable"] is True and failure["host"] == "web9" and failure["stage"] == "recover"


def test_activation_from_extra_vars_when_resuming(cb, record, tmp_path):
    cb.v2_playbook_on_play_start(FakePlay(extra={"incident_id": record["id"], "incident_dir": str(tmp_path)}))
    assert cb.active
    _run_task(cb, FakeTask("verify", role="verify"), failed=True, payload={"msg": "slow"})
    assert (_events(record)[-1]["type"], _events(record)[-1]["stage"]) == ("failure", "verify")


def test_templated_play_vars_do_not_activate(cb, record, tmp_path):
    cb.v2_playbook_on_play_start(FakePlay(play_vars={"incident_id": "{{ x }}", "incident_dir": str(tmp_path)}))
    assert not cb.active


def test_check_mode_result_without_record_keeps_buffering(cb, tmp_path):
    cb.v2_playbook_on_play_start(FakePlay())
    _run_task(cb, FakeTask("probe", role="detect"), failed=True, payload={"msg": "down"})
    _run_task(cb, FakeTask("open", action="sre.incident.record"),
              payload={"sre_incident_record": {"id": "INC-x", "record_dir": str(tmp_path / "INC-x")}})
    assert not cb.active and len(cb.buffer) == 1
    cb.v2_playbook_on_stats(None)
    assert cb.buffer == [] and list(tmp_path.iterdir()) == []


def test_a_stage_without_an_incident_activates_nothing(cb, tmp_path):
    # state=stage outside an incident returns sre_incident_record: null
    _run_task(cb, FakeTask("stage", role="diagnose", action="sre.incident.record"),
              payload={"sre_incident_record": None, "changed": False})
    assert not cb.active


def test_unwritable_record_warns_once_and_never_raises(cb, record, tmp_path):
    cb.activate(record["id"], record["record_dir"])
    cb.records = {str(tmp_path / "gone" / "events.jsonl"): {None}}
    _run_task(cb, FakeTask("a", role="recover"), failed=True, payload={"msg": "x"})
    _run_task(cb, FakeTask("b", role="verify"), failed=True, payload={"msg": "y"})
    assert len(cb._display.warnings) == 1


def test_records_stay_parseable(cb, record):
    cb.activate(record["id"], record["record_dir"])
    msg = "line1\nline2 \u2603 \"q\""
    _run_task(cb, FakeTask("t", role="detect"), failed=True, payload={"msg": msg})
    lines = open(record["events_path"], "rb").read().splitlines()
    events = [json.loads(line) for line in lines]
    # one JSON object per line, and the failure with its newline, snowman and quotes came back intact
    failures = [e for e in events if e["type"] == "failure"]
    assert len(failures) == 1 and failures[0]["data"]["msg"] == msg
    assert len(lines) == len(events) and all(b"\n" not in line for line in lines)


def test_each_host_of_a_play_writes_into_its_own_record(cb, tmp_path):
    def open_record(host):
        return rec.run({"state": "opened", "incident_dir": str(tmp_path), "service": "recommendation-service",
                        "severity": "P0", "host": host})

    web1, web2 = open_record("web1"), open_record("web2")
    cb.v2_playbook_on_play_start(FakePlay(hosts=("web1", "web2")))
    _run_task(cb, FakeTask("probe", role="detect"), host="web2", failed=True, payload={"msg": "web2 refused"})
    for host, record in (("web1", web1), ("web2", web2)):
        _run_task(cb, FakeTask("open incident", action="sre.incident.record"), host=host,
                  payload={"sre_incident_record": record["sre_incident_record"]})
    _run_task(cb, FakeTask("restart", role="recover"), host="web1", failed=True, payload={"msg": "web1 stuck"})
    cb.v2_playbook_on_stats(None)

    def failures(record):
        return [(e["stage"], e["host"], e["data"]["msg"]) for e in _events(record)[1:]]

    assert failures(web1) == [("recover", "web1", "web1 stuck")]
    assert failures(web2) == [("detect", "web2", "web2 refused")]
