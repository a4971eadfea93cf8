# -*- coding: utf-8 -*-
# Copyright (c) sre.incident contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: timeline
type: notification
short_description: Writes every runbook stage and every failed task into the incident record
version_added: 0.1.0
description:
  - While an incident is active, appends to its record (C(<incident_dir>/<id>/events.jsonl) on the
    controller, the log kept by M(sre.incident.incident)) the start and the end of every stage and
    every failed task, as they happen. If the playbook dies halfway, what happened up to then is
    already on disk.
  - A stage is a role (V(detect), V(diagnose), V(recover), V(verify), ...). A stage starts when the
    first task of a role starts, and ends when a task of another role (or a task outside any role)
    starts, when a new play starts, or when the playbook ends. The end event carries the hosts that
    ran the stage, its duration and its count of failed and ignored-failed tasks.
  - "How it knows an incident is active: when a task result carries the key C(sre_incident_record)
    (returned by M(sre.incident.incident)), or when O(incident_id) and O(incident_dir) are given up front
    (extra vars C(incident_id) and C(incident_dir), or the environment), which is how a resumed
    playbook or a later AWX job continues an incident. Stages seen before that moment (the detect
    stage runs before the incident is opened) are kept in memory and written, with their real times,
    when the incident becomes active."
  - Failed and unreachable tasks are recorded with task name, host and the failure message (cut
    to 500 characters). Never recorded are module arguments and anything of a task with
    C(no_log) (only the task name, the host and that it failed). Failures that a task ignores
    (C(ignore_errors)) are not written one by one; the stage end counts them.
  - The incident record works without this callback; it only adds the timeline.
  - A record that cannot be written produces a warning, never a failed playbook.
requirements:
  - Enable it in C(ansible.cfg) with C(callbacks_enabled = sre.incident.timeline), or with
    E(ANSIBLE_CALLBACKS_ENABLED=sre.incident.timeline).
options:
  incident_id:
    description:
      - Id of an incident already open, to record into from the start. Extra vars C(incident_id) win.
    type: str
    env:
      - name: SRE_INCIDENT_ID
    ini:
      - section: callback_sre_incident_timeline
        key: incident_id
  incident_dir:
    description:
      - Directory of incident records on the controller, with O(incident_id). Extra vars C(incident_dir) win.
    type: path
    env:
      - name: SRE_INCIDENT_DIR
    ini:
      - section: callback_sre_incident_timeline
        key: incident_dir
  owner:
    description: The C(owner) written into the events. Defaults to E(USER), else V(automation).
    type: str
    env:
      - name: SRE_INCIDENT_OWNER
    ini:
      - section: callback_sre_incident_timeline
        key: owner
notes:
  - "Event types written: C(stage) (C(data.phase) V(start) or V(end)) and C(failure)."
seealso:
  - module: sre.incident.incident
"""

import os

from ansible.plugins.callback import CallbackBase

from ansible_collections.sre.incident.plugins.module_utils._record import (
    EVENTS_FILE,
    RecordError,
    make_event,
    transact,
    validate_id,
)
from ansible_collections.sre.incident.plugins.module_utils._severity import format_ts, utc_now

RECORD_KEY = "sre_incident_record"
MSG_LIMIT = 500


def _result_of(result):
    value = getattr(result, "result", None)
    if value is None:
        value = getattr(result, "_result", None)
    return value if isinstance(value, dict) else {}


def _host_of(result):
    host = getattr(result, "host", None) or getattr(result, "_host", None)
    return host.get_name() if host is not None else None


def _task_of(result):
    return getattr(result, "task", None) or getattr(result, "_task", None)


# Roles that keep the books rather than being a runbook stage of their own.
HELPER_ROLES = frozenset(["record"])


def _role_of(task):
    role = getattr(task, "_role", None)
    if role is None:
        return None
    try:
        return role.get_name(include_role_fqcn=False)
    except TypeError:
        return role.get_name()


def _no_log(task, payload):
    return bool(payload.get("_ansible_no_log")) or getattr(task, "no_log", False) is True


class CallbackModule(CallbackBase):
    """Appends stages and failures to the incident record (see DOCUMENTATION)."""

    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "notification"
    CALLBACK_NAME = "sre.incident.timeline"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.events_path = None
        self.incident_id = None
        self.buffer = []
        self.stage = None
        self.stage_started = None
        self.stage_hosts = set()
        self.stage_failed = 0
        self.stage_ignored = 0
        self.play_name = None
        self.play_hosts = []
        self._warned = False

    # -- configuration -----------------------------------------------------------------------

    def _option(self, name):
        try:
            return self.get_option(name)
        except KeyError:
            return None

    def _owner(self):
        return self._option("owner") or os.environ.get("USER") or "automation"

    # -- the record ----------------------------------------------------------------------------

    @property
    def active(self):
        return self.events_path is not None

    def activate(self, incident_id, record_dir):
        """Start writing into the record of ``incident_id`` in ``record_dir``; flush the buffer."""
        try:
            validate_id(str(incident_id))
        except RecordError as exc:
            self._warn("not recording the timeline: %s" % exc.msg)
            return False
        events_path = os.path.join(os.path.abspath(os.path.expanduser(str(record_dir))), EVENTS_FILE)
        if events_path == self.events_path:
            return True
        if not os.path.exists(events_path):
            # check mode, or a record not (yet) written: keep buffering
            self._display.vvv("sre.incident.timeline: %s does not exist, not recording yet" % events_path)
            return False
        self.events_path = events_path
        self.incident_id = str(incident_id)
        pending, self.buffer = self.buffer, []
        self._write(pending)
        return True

    def _write(self, events):
        if not events:
            return
        if not self.active:
            self.buffer.extend(events)
            return
        try:
            transact(self.events_path, lambda existing, corrupt: events)
        except (OSError, RecordError, ValueError) as exc:
            self._warn("could not append to %s: %s" % (self.events_path, exc))

    def _warn(self, msg):
        if not self._warned:
            self._display.warning("sre.incident.timeline: %s" % msg)
            self._warned = True
        else:
            self._display.vvv("sre.incident.timeline: %s" % msg)

    def _event(self, event_type, text, data, host=None, ts=None):
        return make_event(event_type, text=text, stage=self.stage, owner=self._owner(), host=host, data=data,
                          ts=ts or utc_now())

    # -- stages ----------------------------------------------------------------------------------

    def _start_stage(self, name):
        self.stage = name
        self.stage_started = utc_now()
        self.stage_hosts = set()
        self.stage_failed = 0
        self.stage_ignored = 0
        self._write([self._event("stage", "stage %s started" % name,
                                 {"phase": "start", "play": self.play_name, "hosts": list(self.play_hosts)},
                                 ts=self.stage_started)])

    def _end_stage(self):
        if self.stage is None:
            return
        now = utc_now()
        duration = round((now - self.stage_started).total_seconds(), 3)
        self._write([self._event("stage", "stage %s ended" % self.stage, {
            "phase": "end", "play": self.play_name, "hosts": sorted(self.stage_hosts),
            "started_at": format_ts(self.stage_started), "duration_s": duration,
            "failed_tasks": self.stage_failed, "ignored_failures": self.stage_ignored,
        }, ts=now)])
        self.stage = None
        self.stage_started = None

    # -- callback hooks --------------------------------------------------------------------------

    def v2_playbook_on_play_start(self, play):
        self._end_stage()
        self.play_name = play.get_name() if hasattr(play, "get_name") else None
        hosts = getattr(play, "hosts", None) or []
        self.play_hosts = [hosts] if isinstance(hosts, str) else [str(h) for h in hosts]
        if self.active:
            return
        incident_id, incident_dir = self._given_incident(play)
        if incident_id and incident_dir:
            try:
                validate_id(str(incident_id))
            except RecordError as exc:
                self._warn("not recording the timeline: %s" % exc.msg)
                return
            self.activate(incident_id, os.path.join(os.path.abspath(os.path.expanduser(str(incident_dir))),
                                                    str(incident_id)))

    def _given_incident(self, play):
        extra = {}
        try:
            manager = play.get_variable_manager()
            extra = dict(getattr(manager, "extra_vars", None) or {})
        except Exception:  # pylint: disable=broad-except  # a callback never breaks the run
            extra = {}
        incident_id = extra.get("incident_id") or self._option("incident_id")
        incident_dir = extra.get("incident_dir") or self._option("incident_dir")
        if not incident_id or not incident_dir:
            try:
                play_vars = play.get_vars() or {}
            except Exception:  # pylint: disable=broad-except
                play_vars = {}
            incident_id = incident_id or play_vars.get("incident_id")
            incident_dir = incident_dir or play_vars.get("incident_dir")
        for value in (incident_id, incident_dir):
            if isinstance(value, str) and "{{" in value:
                return None, None  # not templated here; the module's result will activate us
        return incident_id, incident_dir

    def v2_playbook_on_task_start(self, task, is_conditional):
        role = _role_of(task)
        if role in HELPER_ROLES:
            return  # bookkeeping, not a runbook stage: the current stage goes on
        if role != self.stage:
            self._end_stage()
            if role is not None:
                self._start_stage(role)

    def v2_runner_on_ok(self, result):
        self._seen(result)
        self._maybe_activate(_result_of(result))

    def v2_runner_item_on_ok(self, result):
        self._maybe_activate(_result_of(result))

    def v2_runner_on_skipped(self, result):
        self._seen(result)

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._seen(result)
        if ignore_errors:
            self.stage_ignored += 1
            return
        self.stage_failed += 1
        self._failure(result, unreachable=False)

    def v2_runner_on_unreachable(self, result):
        self._seen(result)
        self.stage_failed += 1
        self._failure(result, unreachable=True)

    def v2_playbook_on_stats(self, stats):
        self._end_stage()
        if not self.active and self.buffer:
            self._display.vvv("sre.incident.timeline: no incident was opened, %d stage event(s) not recorded"
                              % len(self.buffer))
            self.buffer = []

    # -- helpers ---------------------------------------------------------------------------------

    def _seen(self, result):
        host = _host_of(result)
        if host and self.stage is not None:
            self.stage_hosts.add(host)

    def _maybe_activate(self, payload):
        record = payload.get(RECORD_KEY)
        if isinstance(record, dict) and record.get("id") and record.get("record_dir"):
            self.activate(record["id"], record["record_dir"])

    def _failure(self, result, unreachable):
        task = _task_of(result)
        payload = _result_of(result)
        host = _host_of(result)
        name = task.get_name() if task is not None else "?"
        action = getattr(task, "action", None)
        data = {"task": name, "action": action, "unreachable": unreachable}
        if _no_log(task, payload):
            data["no_log"] = True
            text = "task %r failed on %s (details hidden: no_log)" % (name, host)
        else:
            msg = payload.get("msg")
            msg = "" if msg is None else str(msg)
            if len(msg) > MSG_LIMIT:
                msg = msg[:MSG_LIMIT] + "..."
            data["msg"] = msg
            if isinstance(payload.get("rc"), int):
                data["rc"] = payload["rc"]
            text = "task %r %s on %s: %s" % (name, "unreachable" if unreachable else "failed", host, msg)
        self._write([self._event("failure", text, data, host=host)])
