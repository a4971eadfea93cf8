# -*- coding: utf-8 -*-
# Copyright (c) sre.incident contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Notifications beside the response, never in its way: the outbox of an incident on the host that
sends them (the managed host, as every notification before).

``start`` numbers a validated, rendered message in the incident's outbox, hands it to a sender
process detached from the task (own session, stdio on ``/dev/null``) and returns at once; the sender
posts to every channel at once, each within the message's budget (``_notify.send_all``).
``collect``, later in the run, waits at most ``budget`` seconds for the messages not collected yet
and returns each one's outcome per channel for the record.

Layout on the host, ``<outbox_dir>/<incident id>/`` (mode 0700)::

    0001-started.json        one file per message, written only by its sender (write + rename)
    0001-started.collected   written by the collector once the outcome was handed to the record
    .lock                    flock, held while a message gets its number

A message file holds names, types and outcomes only: URLs, secrets and headers stay in the
sender's memory (it gets them by ``fork``, never through a file).

Order: on each channel a message is posted only once every earlier one has an outcome there
(delivered, failed, or given up at its deadline), and after a failed one it says "earlier messages
may be missing". Across channels there is no order.
"""

from __future__ import annotations

import copy
import errno
import fcntl
import json
import os
import re
import threading
import time

from ansible_collections.sre.incident.plugins.module_utils import _notify
from ansible_collections.sre.incident.plugins.module_utils import _files, _module, _time
from ansible_collections.sre.incident.plugins.module_utils._wait import poll_until

MESSAGE_RE = re.compile(r"^(\d{4,})-([a-z]+)\.json$")
ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,159}$")
#: how long past a message's deadline its sender may take to write the outcome
GRACE_S = 1.0
POLL_S = 0.05


class Outbox:
    """The messages of one incident on this host."""

    def __init__(self, root, incident_id):
        if not isinstance(incident_id, str) or not ID_RE.match(incident_id):
            raise _notify.NotifyError("incident.id %r is not a safe name (letters, digits, '.', '_', '-'); "
                                      "it names the incident's outbox directory" % (incident_id,))
        self.root = os.path.abspath(os.path.expanduser(str(root)))
        self.dir = os.path.join(self.root, incident_id)
        self.incident_id = incident_id

    def path(self, message, suffix=".json"):
        return os.path.join(self.dir, "%04d-%s%s" % (message["seq"], message["notice"], suffix))

    def messages(self):
        """Every message file, in order; an unreadable one is reported, never dropped."""
        try:
            names = os.listdir(self.dir)
        except FileNotFoundError:
            return []
        found = []
        for name in names:
            match = MESSAGE_RE.match(name)
            if not match:
                continue
            try:
                with open(os.path.join(self.dir, name), encoding="utf-8") as stream:
                    message = json.load(stream)
                if "notice" not in message:    # written by a release that called it "stage"
                    message["notice"] = message.pop("stage", match.group(2))
            except (OSError, ValueError) as exc:
                message = {"seq": int(match.group(1)), "notice": match.group(2), "channels": [], "results": {},
                           "state": "unreadable", "error": "message file unreadable: %s" % exc}
            found.append(message)
        return sorted(found, key=lambda m: m["seq"])

    def collected(self, message):
        return os.path.exists(self.path(message, ".collected"))

    def mark_collected(self, message):
        _files.write_atomic(self.path(message, ".collected"), _time.format_ts(_time.utc_now()) + "\n", sync=False)

    def write(self, message):
        """Replace the message's file in one step (readers see the old or the new, never half)."""
        _files.write_atomic(self.path(message), json.dumps(message, sort_keys=True), sync=False)

    def enqueue(self, notice, title, channels, budget):
        """Number a new message and write it (state ``sending``); returns the message."""
        os.makedirs(self.dir, mode=0o700, exist_ok=True)
        now = time.time()
        fd = os.open(os.path.join(self.dir, ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            seqs = [int(m.group(1)) for m in map(MESSAGE_RE.match, os.listdir(self.dir)) if m]
            message = {
                "seq": max(seqs) + 1 if seqs else 1,
                "notice": notice,
                "title": title,
                "channels": [{"name": c["name"], "type": c["type"]} for c in channels],
                "budget": budget,
                "launched_at": _time.format_ts(now),
                "deadline": now + budget,
                "deadline_at": _time.format_ts(now + budget),
                "pid": None,
                "state": "sending",
                "results": {},
                "finished_at": None,
            }
            self.write(message)
        finally:
            os.close(fd)
        return message


# ---------------------------------------------------------------------------------------------
# Is a sender still at work?
# ---------------------------------------------------------------------------------------------

def process_gone(pid):
    """True when process ``pid`` no longer runs (absent, or a zombie nobody reaped yet)."""
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except OSError as exc:
        return exc.errno == errno.ESRCH
    try:
        with open("/proc/%d/stat" % pid, encoding="ascii", errors="replace") as stream:
            return stream.read().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return False


def settled(message, now=None):
    """Whether a message's outcome is final: its sender finished, is gone, or is past its deadline."""
    if message.get("state") in ("done", "unreadable"):
        return True
    now = time.time() if now is None else now
    if now > float(message.get("deadline") or 0) + GRACE_S:
        return True
    return process_gone(message.get("pid"))


# ---------------------------------------------------------------------------------------------
# The sender
# ---------------------------------------------------------------------------------------------

def earlier_failures(outbox, message, channel_name, sleep=time.sleep, wall=time.time):
    """Wait until every earlier message of the incident has an outcome on ``channel_name`` (each at
    most until its own deadline), then return ``[(notice, error), ...]`` for those that failed there."""
    found = {}

    def all_known():
        pending, found["failed"] = False, []
        for earlier in outbox.messages():
            if earlier["seq"] >= message["seq"]:
                continue
            if channel_name not in [c.get("name") for c in earlier.get("channels") or []]:
                continue
            result = (earlier.get("results") or {}).get(channel_name)
            if result is not None:
                if result.get("ok") is not True:
                    found["failed"].append((earlier["notice"], result.get("error") or "not delivered"))
            elif settled(earlier, wall()):
                found["failed"].append((earlier["notice"], earlier.get("error") or "no outcome"))
            else:
                pending = True
        return not pending

    # an earlier message is settled GRACE_S after its deadline at the latest
    last = max([float(m.get("deadline") or 0) for m in outbox.messages() if m["seq"] < message["seq"]] or [0.0])
    poll_until(all_known, last + GRACE_S + POLL_S - wall(), POLL_S, sleep=sleep)
    return found["failed"]


def missing_warning(failed):
    """The line a message carries on a channel where an earlier one failed; None when none did."""
    if not failed:
        return None
    notices = list(dict.fromkeys(notice for notice, _error in failed))
    return ("earlier messages may be missing on this channel: the %s message%s could not be delivered here (%s)"
            % (", ".join(notices), "s" if len(notices) > 1 else "", failed[-1][1]))


def run_sender(outbox, message, prepared, deadline, settings, clock=time.monotonic, sleep=time.sleep):
    """Post ``message`` to its channels (all at once, in order after the incident's earlier
    messages on each channel) and write each outcome into the message file as it comes."""
    lock = threading.Lock()   # the channels' threads write their outcomes into the one message file
    message["pid"] = os.getpid()
    outbox.write(message)

    def before_send(channel):
        return missing_warning(earlier_failures(outbox, message, channel["name"], sleep=sleep))

    def on_result(channel, result):
        with lock:
            message["results"][channel["name"]] = result
            outbox.write(message)

    _notify.send_all(prepared["channels"], _notify.payload_builder(prepared), deadline,
                     settings["connect_timeout"], settings["read_timeout"], settings["attempts"],
                     clock=clock, sleep=sleep, before_send=before_send, on_result=on_result)
    with lock:
        message["state"] = "done"
        message["finished_at"] = _time.format_ts(_time.utc_now())
        outbox.write(message)


def _close_fds(keep_from=3):
    try:
        fds = [int(fd) for fd in os.listdir("/proc/self/fd")]
    except OSError:
        fds = range(keep_from, 4096)
    for fd in fds:
        if fd >= keep_from:
            try:
                os.close(fd)
            except OSError:
                pass


def detach(work):
    """Run ``work()`` in a grandchild process detached from the caller: its own session, stdio on
    ``/dev/null``, no inherited descriptors, so the task that starts it returns at once (locally or
    over SSH, with or without pipelining). Returns the grandchild's pid."""
    read_end, write_end = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - runs in the forked processes
        try:
            os.close(read_end)
            os.setsid()
            grandchild = os.fork()
            if grandchild:
                os.write(write_end, str(grandchild).encode("ascii"))
                os._exit(0)
            os.close(write_end)
            devnull = os.open(os.devnull, os.O_RDWR)
            for fd in (0, 1, 2):
                os.dup2(devnull, fd)
            _close_fds()
            try:
                work()
            finally:
                os._exit(0)
        except BaseException:
            os._exit(1)
    os.close(write_end)
    try:
        data = os.read(read_end, 64)  # the pid, in one write; nothing when the child failed
    finally:
        os.close(read_end)
        os.waitpid(child, 0)
    if not data:
        raise OSError("could not start the sender process")
    return int(data)


def start(outbox, prepared, settings, clock=time.monotonic):
    """Number the message, start its sender and return ``(message, pid)`` at once. The sender has
    this process's environment (with the task's ``environment``, e.g. a proxy)."""
    channels = [c for c in prepared["channels"] if c["enabled"]]
    deadline = clock() + settings["budget"]
    message = outbox.enqueue(prepared["notice"], prepared["rendered"]["title"], channels, settings["budget"])
    pid = detach(lambda: run_sender(outbox, message, prepared, deadline, settings, clock=clock))
    return message, pid


# ---------------------------------------------------------------------------------------------
# Collecting
# ---------------------------------------------------------------------------------------------

def outcome(message, now):
    """One message as the record keeps it, every channel in ``results`` (an outcome that never came is a
    failure that says why)."""
    if message.get("state") == "done":
        missing = "the sender ended without an outcome for this channel"
    elif message.get("state") == "unreadable":
        missing = message.get("error")
    elif settled(message, now):
        missing = "the sender process ended without an outcome"
    else:
        missing = "no outcome yet when the collect budget ran out (the sender may still deliver it)"
    results = []
    for channel in message.get("channels") or []:
        result = (message.get("results") or {}).get(channel["name"])
        if result is None:
            result = _notify.channel_result({"name": channel["name"], "type": channel.get("type"), "enabled": True},
                                            ok=False, error=missing, attempts=None)
        results.append(result)
    delivered = [r for r in results if r["ok"] is True]
    if results and len(delivered) == len(results):
        state = "delivered"
    elif not settled(message, now):
        state = "pending"
    elif message.get("state") != "done" and not message.get("results"):
        state = "lost"
    elif delivered:
        state = "partial"
    else:
        state = "failed"
    acknowledged_at = max(r["finished_at"] for r in delivered) if state == "delivered" else None
    return {
        "seq": message["seq"],
        "notice": message["notice"],
        "title": message.get("title"),
        "state": state,
        "launched_at": message.get("launched_at"),
        "finished_at": message.get("finished_at"),
        "acknowledged_at": acknowledged_at,
        "results": results,
        "sent": len(delivered),
        "failed_count": len(results) - len(delivered),
        "summary": describe(message["notice"], state, results),
    }


def _why(result):
    why = result.get("error") or "not delivered"
    if result.get("attempts"):
        why += ", %d attempt%s" % (result["attempts"], "s" if result["attempts"] > 1 else "")
    if result.get("budget_spent"):
        why += ", budget spent"
    return "%s (%s)" % (result["name"], why)


def describe(notice, state, results):
    """``started notification: delivered to 1 of 2 channels; not delivered: chat (timed out, 2 attempts)``."""
    delivered = [r for r in results if r["ok"] is True]
    text = "%s notification: delivered to %d of %d channel%s" % (
        notice, len(delivered), len(results), "" if len(results) == 1 else "s")
    failed = [r for r in results if r["ok"] is not True]
    if failed:
        text += "; not delivered: " + "; ".join(_why(r) for r in failed)
    if state == "pending":
        text += " (still being sent when the run stopped waiting)"
    if any(r.get("warning") for r in delivered):
        text += "; it said that earlier messages may be missing on " + ", ".join(
            r["name"] for r in delivered if r.get("warning"))
    return text


def response(outcomes):
    """What the record's ``response_started`` item ("everyone notified") may say, from the first
    ``started`` message collected (None without one)."""
    started = next((o for o in outcomes if o["notice"] == "started"), None)
    if started is None:
        return None
    names = [r["name"] for r in started["results"]]
    failed = [{"name": r["name"], "error": r.get("error")} for r in started["results"] if r["ok"] is not True]
    acknowledged = bool(names) and not failed
    if acknowledged:
        text = "every enabled channel acknowledged the started message: %s" % ", ".join(names)
    else:
        text = "not every channel was notified, the item stays open: " + "; ".join(
            _why(r) for r in started["results"] if r["ok"] is not True)
    return {"acknowledged": acknowledged, "at": started["acknowledged_at"], "channels": names,
            "failed": failed, "text": text}


def collect(outbox, budget, check_mode=False, clock=time.monotonic, sleep=time.sleep, wall=time.time):
    """Wait (at most ``budget`` seconds) until every message not collected yet has a final outcome,
    then return them and mark them collected (not in check mode)."""
    found = {}

    def all_settled():
        found["waiting"] = [m for m in outbox.messages() if not outbox.collected(m)]
        return check_mode or all(settled(m, wall()) for m in found["waiting"])

    _ok, _value, waited = poll_until(all_settled, budget, POLL_S, clock=clock, sleep=sleep)
    waiting = found["waiting"]
    outcomes = [outcome(m, wall()) for m in waiting]
    if not check_mode:
        for message in waiting:
            outbox.mark_collected(message)
    undelivered = [{"seq": o["seq"], "notice": o["notice"], "channel": r["name"], "error": r.get("error")}
                   for o in outcomes for r in o["results"] if r["ok"] is not True]
    return {
        "messages": outcomes,
        "undelivered": undelivered,
        "response": response(outcomes),
        "waited_s": round(waited, 3),
        "changed": bool(waiting) and not check_mode,
    }


# ---------------------------------------------------------------------------------------------
# The task: what sre.incident.notify does, as the module on the managed host or, for a host
# managed with the local connection, in the controller's process (its action plugin)
# ---------------------------------------------------------------------------------------------

def argument_spec():
    """The options of sre.incident.notify, shared by the module and its action plugin; a fresh copy
    each time (Ansible's validation fills the nested defaults in place)."""
    return copy.deepcopy(_ARGUMENT_SPEC)


_ARGUMENT_SPEC = dict(
    mode=dict(type="str", choices=["send", "start", "collect"], default="send"),
    channels=dict(
        type="list",
        elements="dict",
        default=[],
        options=dict(
            name=dict(type="str"),
            # type and url are checked by _notify.validate_channels, whose message names the
            # channel (Ansible's own would only say "found in channels").
            type=dict(type="str"),
            url=dict(type="str", no_log=True),
            secret=dict(type="str", no_log=True),
            headers=dict(type="dict", no_log=True),
            enabled=dict(type="bool", default=True),
            at_mobiles=dict(type="list", elements="str"),
            at_user_ids=dict(type="list", elements="str"),
            at_all=dict(type="bool", default=False),
        ),
    ),
    notice=dict(type="str", choices=list(_notify.NOTICES), aliases=["stage"]),
    incident=dict(
        type="dict",
        default={},
        options=dict(
            id=dict(type="str"),
            severity=dict(type="str", choices=["P0", "P1", "P2", "P3"]),
            service=dict(type="str"),
            commander=dict(type="str"),
            war_room=dict(type="str"),
            response_deadline=dict(type="str"),
            resolve_deadline=dict(type="str"),
            started_at=dict(type="str"),
        ),
    ),
    oncall=dict(type="dict", default={}),
    text=dict(type="str"),
    connect_timeout=dict(type="float", default=_notify.DEFAULT_CONNECT_TIMEOUT),
    read_timeout=dict(type="float", default=_notify.DEFAULT_READ_TIMEOUT),
    retries=dict(type="int", default=_notify.DEFAULT_ATTEMPTS),
    budget=dict(type="float", default=_notify.DEFAULT_BUDGET),
    outbox_dir=dict(type="path", default="~/.sre-incident/outbox"),
    fail_on_error=dict(type="bool", default=False),
)
REQUIRED_IF = [("mode", "send", ("notice",)), ("mode", "start", ("notice",))]


def _collect_task(params, check_mode):
    incident_id = (params.get("incident") or {}).get("id")
    if not incident_id:
        raise _notify.NotifyError("mode=collect needs incident.id (it names the outbox to collect from)")
    _notify.validate_limits(params["retries"], params["connect_timeout"], params["read_timeout"], params["budget"])
    outbox = Outbox(params["outbox_dir"], incident_id)
    result = collect(outbox, params["budget"], check_mode=check_mode)
    if check_mode:
        result["msg"] = ("check mode: nothing was sent by this run, nothing collected (%d message(s) waiting in "
                         "the outbox)" % len(result["messages"]))
    elif not result["messages"]:
        result["msg"] = "no notification waiting in the outbox of %s" % incident_id
    else:
        result["msg"] = "; ".join(m["summary"] for m in result["messages"])
    result["outbox"] = outbox.dir
    if params["fail_on_error"] and result["undelivered"] and not check_mode:
        result.update(failed=True, msg="sre.incident.notify: not delivered: %s (set fail_on_error=false to let "
                                       "the play go on)" % result["msg"])
    return result


def run(params, check_mode=False):
    """Do what one ``sre.incident.notify`` task asks; return its result (``warnings`` a list, ``failed``
    set when it fails). Raises :class:`_notify.NotifyError` on bad input, before anything is sent."""
    mode = params["mode"]
    if mode == "collect":
        return _collect_task(params, check_mode)
    settings = dict(connect_timeout=params["connect_timeout"], read_timeout=params["read_timeout"],
                    attempts=params["retries"], budget=params["budget"])
    incident = params.get("incident") or {}
    if mode == "start" and not incident.get("id"):
        raise _notify.NotifyError("mode=start needs incident.id (it names the outbox the message is collected from)")
    outbox = Outbox(params["outbox_dir"], incident["id"]) if mode == "start" else None
    prepared = _notify.prepare(params.get("channels"), params.get("notice"), incident=incident,
                               oncall=params.get("oncall"), text=params.get("text"), **settings)
    enabled = [c for c in prepared["channels"] if c["enabled"]]
    notice = prepared["notice"]
    warnings = [] if enabled else ["sre.incident.notify: no enabled notification channel; nothing was sent"]
    if mode == "send" and enabled and not check_mode:
        result = _notify.send(prepared, **settings)
    else:  # not sent here: a dry run, no enabled channel, or mode=start (its background sender sends it)
        result = _notify.unsent(prepared)
    if check_mode or not enabled:
        names = ", ".join(c["name"] for c in enabled) or "no channel"
        result.update(changed=False, warnings=warnings,
                      msg=("check mode: would notify %s (%s); nothing sent" % (names, notice)) if check_mode else
                      "no enabled notification channel: nothing was sent (%s)" % notice)
        return result
    if mode == "start":
        message, _pid = start(outbox, prepared, settings)
        result.update(changed=True, warnings=warnings, seq=message["seq"], outbox=outbox.dir,
                      deadline_at=message["deadline_at"],
                      msg="%s notification: sending to %s in the background (message %d, given up at %s)" % (
                          notice, ", ".join(c["name"] for c in enabled), message["seq"], message["deadline_at"]))
        return result
    results = result["results"]
    sent = [r for r in results if r["enabled"]]
    result.update(changed=result["sent"] > 0, warnings=warnings,
                  msg=describe(notice, "failed" if result["failed_count"] else "delivered", sent))
    if params["fail_on_error"] and result["failed_count"]:
        failed = [r["name"] for r in results if r["ok"] is False]
        result.update(failed=True, msg="sre.incident.notify: could not notify %s; see results[].error (set "
                                       "fail_on_error=false to let the play go on)" % ", ".join(failed))
    return result


def run_checked(params, check_mode=False):
    """:func:`run` as the task reports it (``_module.outcome``): bad input becomes ``failed``/``msg``."""
    return _module.outcome(lambda: run(params, check_mode=check_mode),
                           context="could not start the sender in %s" % params.get("outbox_dir"))
