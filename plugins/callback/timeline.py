# -*- coding: utf-8 -*-
# Copyright (c) sre.incident contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: timeline
type: notification
short_description: Writes the failed tasks that nothing else records into the incident record
version_added: 0.1.0
description:
  - While an incident is active, appends to its record (C(<incident_dir>/<id>/events.jsonl) on the
    controller, the log kept by M(sre.incident.record)) every task that fails where nothing else
    records it, as it happens. A task that fails cannot record that itself. A failure that a block's
    C(rescue) catches is the play's to record (the playbooks of this collection write it with
    M(sre.incident.record) there), and a closed record takes no more failures. The record works without
    this callback; everything else comes through M(sre.incident.record) alone, the stages too.
  - A failure is recorded with the task name, the host, the stage (the role of the task) and the
    failure message (cut to 500 characters). Never recorded are module arguments and anything of a
    task with C(no_log) (only the task name, the host and that it failed). Failures that a task
    ignores (C(ignore_errors)) are not recorded.
  - "How it knows an incident is active: when a task result carries the key C(sre_incident_record)
    (returned by M(sre.incident.record)), or when O(incident_id) and O(incident_dir) are given up front,
    which is how a resumed playbook or a later AWX job continues an incident. Failures before that
    moment (a detection that fails before the incident is opened) are kept in memory and written,
    with their real times, when the incident becomes active."
  - When a play runs on several hosts, each with its own incident (V(p0_recover.yml) against a
    group), a failed task goes into the record of its host.
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
  - "Event type written: C(failure) (C(data.task), C(data.action), C(data.unreachable), C(data.msg))."
seealso:
  - module: sre.incident.record
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


def _role_of(task):
    role = getattr(task, "_role", None)
    if role is None:
        return None
    try:
        return role.get_name(include_role_fqcn=False)
    except TypeError:
        return role.get_name()


def _rescued(task):
    """Whether a block's ``rescue`` catches the failure of ``task`` (the play then records it itself)."""
    child, parent = task, getattr(task, "_parent", None)
    while parent is not None:
        if getattr(parent, "rescue", None) and getattr(child, "_uuid", None) in [t._uuid for t in parent.block or []]:
            return True
        child, parent = parent, getattr(parent, "_parent", None)
    return False


def _dry_run():
    """True under ``ansible-playbook --check``."""
    try:
        from ansible import context  # pylint: disable=import-outside-toplevel
        return bool((context.CLIARGS or {}).get("check"))
    except Exception:  # pylint: disable=broad-except  # a callback never breaks the run
        return False


def _takes(hosts, host):
    """Whether a record taking the events of ``hosts`` (None among them: every host) takes an event
    of ``host`` (None: of no host in particular)."""
    return host is None or None in hosts or host in hosts


def _no_log(task, payload):
    return bool(payload.get("_ansible_no_log")) or getattr(task, "no_log", False) is True


class CallbackModule(CallbackBase):
    """Appends the failed tasks to the incident record (see DOCUMENTATION)."""

    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "notification"
    CALLBACK_NAME = "sre.incident.timeline"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # events.jsonl path of each active record -> the hosts whose failures it takes (None: all)
        self.records = {}
        # every failure of this run, (host, event), for records activated later
        self.log = []
        self._warned = False

    def _option(self, name):
        try:
            return self.get_option(name)
        except KeyError:
            return None

    def _owner(self):
        return self._option("owner") or os.environ.get("USER") or "automation"

    @property
    def active(self):
        return bool(self.records)

    @property
    def buffer(self):
        """The failures kept in memory and not written anywhere yet (no record is active)."""
        return [] if self.active else [event for _host, event in self.log]

    def activate(self, incident_id, record_dir, host=None):
        """Write into the record of ``incident_id`` in ``record_dir`` the failures of ``host`` (None: of
        every host; each host of a play may have its own incident), those of this run so far first."""
        try:
            validate_id(str(incident_id))
        except RecordError as exc:
            self._warn("not recording the failures: %s" % exc.msg)
            return False
        if _dry_run():
            return False  # --check writes no record
        events_path = os.path.join(os.path.abspath(os.path.expanduser(str(record_dir))), EVENTS_FILE)
        hosts = self.records.get(events_path)
        if hosts is not None and _takes(hosts, host):
            return True
        if not os.path.exists(events_path):
            # check mode, or a record not (yet) written: keep buffering
            self._display.vvv("sre.incident.timeline: %s does not exist, not recording yet" % events_path)
            return False
        new_hosts = {host} if hosts is None else hosts | {host}
        backlog = [event for event_host, event in self.log
                   if _takes(new_hosts, event_host) and not (hosts is not None and _takes(hosts, event_host))]
        self.records[events_path] = new_hosts
        self._append(events_path, backlog)
        return True

    def _write(self, event, host):
        """Keep ``event`` (of ``host``) and append it to the records that take it."""
        self.log.append((host, event))
        for events_path, hosts in self.records.items():
            if _takes(hosts, host):
                self._append(events_path, [event])

    def _append(self, events_path, events):
        if not events:
            return
        try:
            # a closed record is the incident's last word: a failure after it (the play failing on a P0
            # that ended degraded) is the outcome already written, not news
            transact(events_path, lambda existing, corrupt: [] if any(e.get("type") == "closed" for e in existing)
                     else events)
        except (OSError, RecordError, ValueError) as exc:
            self._warn("could not append to %s: %s" % (events_path, exc))

    def _warn(self, msg):
        if not self._warned:
            self._display.warning("sre.incident.timeline: %s" % msg)
            self._warned = True
        else:
            self._display.vvv("sre.incident.timeline: %s" % msg)

    def v2_playbook_on_play_start(self, play):
        if self.active:
            return
        incident_id, incident_dir = self._given_incident(play)
        if incident_id and incident_dir:
            self.activate(incident_id, os.path.join(str(incident_dir), str(incident_id)))

    def _given_incident(self, play):
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

    def v2_runner_on_ok(self, result):
        self._maybe_activate(_result_of(result), _host_of(result))

    v2_runner_item_on_ok = v2_runner_on_ok

    def v2_runner_on_failed(self, result, ignore_errors=False):
        if not ignore_errors:
            self._failure(result, unreachable=False)

    def v2_runner_on_unreachable(self, result):
        self._failure(result, unreachable=True)

    def v2_playbook_on_stats(self, stats):
        if not self.active and self.log:
            self._display.vvv("sre.incident.timeline: no incident was opened, %d failure(s) not recorded"
                              % len(self.log))
            self.log = []

    def _maybe_activate(self, payload, host):
        record = payload.get(RECORD_KEY)
        if isinstance(record, dict) and record.get("id") and record.get("record_dir"):
            self.activate(record["id"], record["record_dir"], host=host)

    def _failure(self, result, unreachable):
        task = _task_of(result)
        if not unreachable and _rescued(task):
            return
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
        event = make_event("failure", text=text, stage=_role_of(task), owner=self._owner(), host=host, data=data)
        self._write(event, host)
