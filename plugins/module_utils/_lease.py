# -*- coding: utf-8 -*-
# Copyright (c) sre.incident contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The recovery lease: one responder at a time on a stack (SPEC "Everywhere", DESIGN "Where state lives").

The files in ``state_dir``, the states and the circuit breaker are documented once, for operators, in
``plugins/modules/lease.py``. ``ladder_runs.jsonl`` has one line ``{ts, incident_id, outcome, purpose}``
per recovery-ladder run and one ``{ts, reset: true, by, reason, purpose, runs_forgiven}`` per reset.
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import json
import os
import re
import secrets
import socket

from ansible_collections.sre.incident.plugins.module_utils import _files
from ansible_collections.sre.incident.plugins.module_utils._errors import IncidentError
from ansible_collections.sre.incident.plugins.module_utils._time import format_ts, parse_ts, utc_now

LEASE_FILE = "lease.json"
LOCK_FILE = "lease.lock"
RUNS_FILE = "ladder_runs.jsonl"

DEFAULT_TTL = 1800
DEFAULT_BREAKER_WINDOW = 3600
DEFAULT_BREAKER_MAX_RUNS = 3
STATES = ("acquired", "released", "present", "reset")
PURPOSES = ("incident", "demo", "test", "bench", "drill")
DEFAULT_PURPOSE = "incident"


class LeaseError(IncidentError):
    """The lease cannot be taken or the input is bad; ``details`` go into the failure."""


def describe(lease):
    """One line naming a holder: owner, incident, operation, acquired, expires, host."""
    return "owner %s, incident %s%s, acquired %s, expires %s%s" % (
        lease.get("owner"), lease.get("incident_id"),
        (", operation %s" % lease["operation"]) if lease.get("operation") else "",
        lease.get("acquired_at"), lease.get("expires_at"),
        (", host %s" % lease["host"]) if lease.get("host") else "")


def run_id(operation, owner, now):
    """The holder id of a run outside any incident: ``<operation>-<owner>-<time>-<random>``, unique per run, so
    two operators running the same playbook at once without an incident never share the lease."""
    parts = (operation, owner, parse_ts(now).strftime("%Y%m%dT%H%M%SZ"), secrets.token_hex(4))
    return "-".join(re.sub(r"[^A-Za-z0-9_.]+", "_", str(part)) for part in parts)


def read_lease(state_dir):
    """The current lease as a dict, or None. A lease file that cannot be read raises LeaseError."""
    path = os.path.join(state_dir, LEASE_FILE)
    try:
        with open(path, "r", encoding="utf-8") as handle:
            text = handle.read()
    except FileNotFoundError:
        return None
    try:
        lease = json.loads(text)
        parse_ts(lease["expires_at"], "expires_at")
        if not isinstance(lease, dict) or not lease.get("incident_id"):
            raise ValueError("no incident_id")
    except (ValueError, KeyError, TypeError) as exc:
        raise LeaseError("lease file %s is unreadable (%s); inspect it and remove it by hand if nobody "
                         "is recovering this stack" % (path, exc), lease_path=path) from None
    return lease


def read_runs(state_dir):
    """``(runs, corrupt_line_numbers)`` of the ladder-run history."""
    runs, corrupt = [], []
    try:
        with open(os.path.join(state_dir, RUNS_FILE), "rb") as handle:
            raw = handle.read()
    except (FileNotFoundError, NotADirectoryError):  # no history yet, or no state_dir
        return runs, corrupt
    for number, line in enumerate(raw.split(b"\n"), start=1):
        if not line.strip():
            continue
        try:
            run = json.loads(line.decode("utf-8"))
            parse_ts(run["ts"])
            runs.append(run)
        except (ValueError, KeyError, TypeError):
            corrupt.append(number)
    return runs, corrupt


def breaker(state_dir, now, window=DEFAULT_BREAKER_WINDOW, max_runs=DEFAULT_BREAKER_MAX_RUNS, extra=(),
            purpose=DEFAULT_PURPOSE):
    """``{"recent_runs", "breaker_open", "last_reset", "runs_corrupt_lines", ...}`` at ``now``.

    A run counts when it has ``purpose`` (older lines without one are real incidents), was made
    after the latest reset of that purpose, and ``now - window <= ts <= now``. ``extra`` are lines
    about to be written (check mode).
    """
    now = parse_ts(now)
    since = now - datetime.timedelta(seconds=window)
    runs, corrupt = read_runs(state_dir)
    mine = [r for r in list(runs) + list(extra) if r.get("purpose", DEFAULT_PURPOSE) == purpose]
    resets = [r for r in mine if r.get("reset")]
    last_reset = resets[-1] if resets else None
    if last_reset is not None:
        since = max(since, parse_ts(last_reset["ts"]))
    recent = [r for r in mine if not r.get("reset") and since <= parse_ts(r["ts"]) <= now]
    return {"recent_runs": len(recent), "breaker_open": len(recent) >= max_runs,
            "breaker_window": window, "breaker_max_runs": max_runs, "breaker_purpose": purpose,
            "last_reset": last_reset, "runs_corrupt_lines": corrupt}


def _append_run(state_dir, run):
    line = (json.dumps(run, sort_keys=True) + "\n").encode("utf-8")
    fd = os.open(os.path.join(state_dir, RUNS_FILE), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, line)
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def _locked(state_dir):
    """``flock`` on ``state_dir/lease.lock`` (exclusive), for the read-check-write of the lease."""
    fd = os.open(os.path.join(state_dir, LOCK_FILE), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # drops the lock


def validate(params):
    """Check the input before anything is touched; returns the cleaned parameters."""
    state = params.get("state") or "present"
    if state not in STATES:
        raise LeaseError("unknown state %r: expected one of %s" % (state, ", ".join(STATES)))
    state_dir = params.get("state_dir")
    if not state_dir or not isinstance(state_dir, str):
        raise LeaseError("state_dir is required, got %r" % (state_dir,))
    if not os.path.isabs(os.path.expanduser(state_dir)):
        raise LeaseError("state_dir must be an absolute path on the managed host, got %r" % (state_dir,))
    incident_id = params.get("incident_id")
    operation = params.get("operation")
    if operation is not None and not re.match(r"^[A-Za-z0-9_.-]+$", str(operation)):
        raise LeaseError("operation must be a name of letters, digits, '_', '.' or '-', got %r" % (operation,))
    if operation is not None and state != "acquired":
        raise LeaseError("operation applies to state=acquired only (got state=%s)" % state)
    if state == "acquired" and not (incident_id or operation):
        raise LeaseError("incident_id or operation is required for state=acquired")
    if state == "released" and not incident_id:
        raise LeaseError("incident_id is required for state=released (the lease's incident_id, also for an operation's run)")
    for name, default in (("ttl", DEFAULT_TTL), ("breaker_window", DEFAULT_BREAKER_WINDOW),
                          ("breaker_max_runs", DEFAULT_BREAKER_MAX_RUNS)):
        value = default if params.get(name) is None else params[name]
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise LeaseError("%s must be an integer >= 1, got %r" % (name, value))
        params = dict(params, **{name: value})
    if params.get("record_run") and state != "released":
        raise LeaseError("record_run applies to state=released only (got state=%s)" % state)
    purpose = params.get("purpose") or DEFAULT_PURPOSE
    if purpose not in PURPOSES:
        raise LeaseError("unknown purpose %r: expected one of %s" % (purpose, ", ".join(PURPOSES)))
    if state == "reset" and not str(params.get("reason") or "").strip():
        raise LeaseError("a breaker reset needs a reason (what was fixed, or why the automation may run again)")
    return dict(params, state=state, state_dir=os.path.expanduser(state_dir), purpose=purpose)


def run(params, check_mode=False, now=None):
    """``(result, warnings)`` of ``sre.incident.lease``; LeaseError on bad input or a lease held by another incident."""
    params = validate(params)
    now = parse_ts(now or utc_now(), "now")
    state_dir = params["state_dir"]
    lease_path = os.path.join(state_dir, LEASE_FILE)
    state = params["state"]
    owner = params.get("owner") or _default_owner()
    incident_id = params.get("incident_id") or (run_id(params["operation"], owner, now) if state == "acquired" else None)
    warnings = []
    dir_exists = os.path.isdir(state_dir)
    created_dir = False
    if not dir_exists and state == "acquired" and not check_mode:
        _files.private_dir(state_dir)
        created_dir = dir_exists = True

    new_run = None
    with _locked(state_dir) if dir_exists and not check_mode and state != "present" else contextlib.nullcontext():
        before = read_lease(state_dir) if dir_exists else None
        after = before
        taken_over = None
        renewed = False
        if state == "acquired":
            expires = format_ts(now + datetime.timedelta(seconds=params["ttl"]))
            if before is None or now >= parse_ts(before["expires_at"], "expires_at"):
                taken_over = before
                after = {"owner": owner, "incident_id": incident_id,
                         "acquired_at": format_ts(now), "expires_at": expires,
                         "host": params.get("host") or socket.gethostname()}
                if params.get("operation"):
                    after["operation"] = params["operation"]
            elif before.get("incident_id") == incident_id:
                after = dict(before, expires_at=expires)
                renewed = True
            else:
                raise LeaseError(
                    "%sthe stack is being recovered by someone else, lease held by %s (in %s); wait for it "
                    "to be released or to expire" % ("check mode, nothing taken: this run would be refused, " if check_mode else "",
                                                     describe(before), state_dir),
                    holder=before, lease_path=lease_path)
            if after != before and not check_mode:
                _files.write_json(lease_path, after, indent=None)
        elif state == "released" and before is not None:
            if before.get("incident_id") == incident_id:
                after = None
                if params.get("record_run"):
                    new_run = {"ts": format_ts(now), "incident_id": incident_id,
                               "outcome": params.get("outcome") or "unknown", "purpose": params["purpose"]}
                if not check_mode:
                    if new_run:
                        _append_run(state_dir, new_run)
                    os.unlink(lease_path)
            else:
                warnings.append("lease not released: it is held by %s, not by incident %s"
                                % (describe(before), incident_id))
        reset = None
        if state == "reset" and dir_exists:
            current = breaker(state_dir, now, params["breaker_window"], params["breaker_max_runs"], purpose=params["purpose"])
            if current["recent_runs"]:
                reset = {"ts": format_ts(now), "reset": True, "by": owner,
                         "reason": str(params["reason"]).strip(), "purpose": params["purpose"],
                         "runs_forgiven": current["recent_runs"]}
                if not check_mode:
                    _append_run(state_dir, reset)
        pending = [r for r in (new_run, reset) if r] if check_mode else ()
        counts = breaker(state_dir, now, params["breaker_window"], params["breaker_max_runs"], extra=pending,
                         purpose=params["purpose"])

    changed = after != before or created_dir or reset is not None
    held_by_us = bool(after and after.get("incident_id") == incident_id and incident_id)
    result = {
        "changed": changed,
        "lease": after,
        "held": after is not None,
        "held_by_us": held_by_us,
        "renewed": renewed,
        "taken_over": taken_over,
        "run_recorded": new_run,
        "reset_recorded": reset,
        "lease_path": lease_path,
        "runs_path": os.path.join(state_dir, RUNS_FILE),
        "expires_in": (round((parse_ts(after["expires_at"]) - now).total_seconds(), 3) if after else None),
        "diff": {"before": _holder(before), "after": _holder(after)} if state != "reset" else
                {"before": {"recent_runs": (reset or {}).get("runs_forgiven", counts["recent_runs"])},
                 "after": {"recent_runs": counts["recent_runs"]}},
    }
    result.update(counts)
    return result, warnings


def _holder(lease):
    if lease is None:
        return {"holder": None}
    return {"holder": {k: lease.get(k) for k in ("owner", "incident_id", "operation", "acquired_at", "expires_at", "host")
                       if k != "operation" or lease.get(k)}}


def _default_owner():
    return os.environ.get("USER") or os.environ.get("LOGNAME") or "automation"
