# -*- coding: utf-8 -*-
# Copyright (c) sre.incident contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Page once per finding (SPEC MON-4): which findings of a scheduled run were paged, and when.

Which findings count as one, when one is new and why the memory lives on the managed host
(``incident_stack.state_dir``) is written once, for operators, in the module's documentation
(``plugins/modules/paging.py``). The file::

    {"version": 1, "pages": {"<key>": {"host", "check", "kind", "reason", "severity",
                                         "first_paged", "last_paged", "count", "incident_id"}},
     "incidents": {"<key>": {"host", "check", "reason", "severity", "incident_id", "since"}}}

``pages``: the critical findings paged. ``incidents``: the incident each finding of a lasting condition
is recorded in, so that the next scheduled run continues it instead of opening another; a finding no
longer found is forgotten there (the condition is over). It is read and written under ``flock`` (two
runs at once page once) and replaced atomically. Pages older than :data:`KEEP_S` (or the window, if
longer) are dropped when the file is written.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re

from ansible_collections.sre.incident.plugins.module_utils import _files
from ansible_collections.sre.incident.plugins.module_utils._errors import InputError
from ansible_collections.sre.incident.plugins.module_utils._time import format_ts, parse_ts, utc_now

VERSION = 1
DEFAULT_WINDOW_S = 3600
KEEP_S = 7 * 24 * 3600
PAGED_SEVERITIES = ("P0", "P1")
#: The finding level that pages.
PAGED_LEVEL = "critical"
#: The playbook a page names, per severity.
PLAYBOOKS = {"P0": "p0_recover.yml", "P1": "p1_mitigate.yml"}
STATES = ("checked", "kept", "paged")
_NUMBER = re.compile(r"[-+]?\d+(?:[.,]\d+)?")


class PagingError(InputError):
    """Bad input or an unreadable state file; raised before anything is written."""


def normalize_reason(reason):
    """The reason with its numbers taken out and its spaces squeezed."""
    return re.sub(r"\s+", " ", _NUMBER.sub("#", str(reason or ""))).strip()


def finding_key(host, finding):
    """A stable id of ``finding`` on ``host``: its host, check, kind and reason without numbers."""
    text = "|".join([str(host), str(finding.get("check") or ""), str(finding.get("kind") or ""),
                     normalize_reason(finding.get("reason"))])
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:20]


def validate_findings(findings):
    if not isinstance(findings, list) or not all(isinstance(f, dict) for f in findings):
        raise PagingError("findings must be a list of mappings (check, kind, level, reason), got %r" % (findings,))
    for index, finding in enumerate(findings):
        if not finding.get("check") or not finding.get("reason"):
            raise PagingError("findings[%d] has no check or no reason: %r" % (index, finding))
    return findings


def validate_window(window):
    try:
        seconds = float(window)
    except (TypeError, ValueError):
        raise PagingError("window %r is not a number of seconds" % (window,)) from None
    if seconds < 0:
        raise PagingError("window %r is impossible: a number of seconds >= 0 (0 pages every run)" % (window,))
    return seconds


def empty_state():
    return {"version": VERSION, "pages": {}, "incidents": {}}


def parse_state(text, path="pages.json"):
    """The state in ``text``; an empty text is an empty state; anything else unreadable raises PagingError."""
    if not text.strip():
        return empty_state()
    try:
        state = json.loads(text)
    except ValueError as exc:
        raise PagingError("paging state %s is not JSON (%s): move it aside to start afresh" % (path, exc)) from None
    if not isinstance(state, dict) or not isinstance(state.get("pages"), dict) \
            or not isinstance(state.setdefault("incidents", {}), dict):
        raise PagingError("paging state %s is not a paging state (no pages mapping)" % path)
    return state


def _rank(severity):
    return ("P0", "P1", "P2", "P3").index(severity) if severity in ("P0", "P1", "P2", "P3") else 4


def open_incident(state, host, severity, findings):
    """The incident a lasting condition of ``host`` is recorded in: the newest one kept with one of
    ``findings``, if it was opened for a severity as bad as ``severity`` or worse (a condition that got
    worse gets an incident of its own); else None."""
    kept = [state["incidents"].get(finding_key(host, f)) for f in findings]
    kept = [k for k in kept if k and k.get("incident_id") and _rank(k.get("severity")) <= _rank(severity)]
    return max(kept, key=lambda k: k.get("since") or "")["incident_id"] if kept else None


def plan(state, host, severity, findings, window_s=DEFAULT_WINDOW_S, now=None):
    """What the scheduled run does with ``findings`` (all of a diagnosis's):
    ``{page, findings, new, repeated, keys, playbook, incident_id}``. ``findings``: the critical ones,
    which page; ``new``: those not paged within ``window_s``; ``repeated``: the others, with
    ``last_paged`` and ``incident_id``; ``page``: some are new and ``severity`` is P0 or P1;
    ``playbook``: the one a page names; ``incident_id``: :func:`open_incident`.
    """
    findings = validate_findings(findings)
    window_s = validate_window(window_s)
    now = parse_ts(now or utc_now(), "now")
    critical = [f for f in findings if f.get("level") == PAGED_LEVEL]
    new, repeated, keys = [], [], []
    for finding in critical:
        key = finding_key(host, finding)
        keys.append(key)
        seen = state["pages"].get(key)
        age = (now - parse_ts(seen["last_paged"])).total_seconds() if seen else None
        if seen is not None and age < window_s:
            repeated.append(dict(finding, key=key, last_paged=seen["last_paged"], incident_id=seen.get("incident_id"),
                                 count=seen.get("count", 1)))
        else:
            new.append(dict(finding, key=key))
    return {"page": severity in PAGED_SEVERITIES and bool(new), "findings": critical, "new": new, "repeated": repeated,
            "keys": keys, "playbook": PLAYBOOKS.get(severity), "incident_id": open_incident(state, host, severity, findings)}


def keep(state, host, severity, findings, incident_id=None, now=None):
    """``(new_state, changed_keys)``: every finding of ``host`` kept with ``incident_id`` (when one is
    given), and the findings of ``host`` no longer found forgotten (their condition is over)."""
    findings = validate_findings(findings)
    stamp = format_ts(parse_ts(now or utc_now(), "now"))
    incidents = dict(state.get("incidents") or {})
    current = {finding_key(host, f): f for f in findings}
    changed = [key for key, entry in incidents.items() if entry.get("host") == str(host) and key not in current]
    for key in changed:
        del incidents[key]
    for key, finding in current.items() if incident_id else ():
        old = incidents.get(key) or {}
        if (old.get("incident_id"), old.get("severity")) != (incident_id, severity):
            incidents[key] = {"host": str(host), "check": finding.get("check"), "reason": str(finding.get("reason")),
                              "severity": severity, "incident_id": incident_id, "since": stamp}
            changed.append(key)
    return dict(state, incidents=incidents), changed


def remember(state, host, severity, findings, window_s=DEFAULT_WINDOW_S, now=None, incident_id=None):
    """``(new_state, changed_keys)``: the critical findings not paged within the window marked paged ``now``."""
    decided = plan(state, host, severity, findings, window_s, now)
    now = parse_ts(now or utc_now(), "now")
    stamp = format_ts(now)
    keep_s = max(KEEP_S, validate_window(window_s))
    pages = {key: entry for key, entry in state["pages"].items() if (now - parse_ts(entry["last_paged"])).total_seconds() < keep_s}
    changed = []
    for finding in decided["new"]:
        old = pages.get(finding["key"]) or {}
        pages[finding["key"]] = {
            "host": str(host), "check": finding.get("check"), "kind": finding.get("kind"),
            "reason": str(finding.get("reason")), "severity": severity,
            "first_paged": old.get("first_paged") or stamp, "last_paged": stamp,
            "count": int(old.get("count", 0)) + 1, "incident_id": incident_id,
        }
        changed.append(finding["key"])
    return dict(state, version=VERSION, pages=pages), changed


def _update(state, params, findings, window, now):
    """``(new_state, remembered_keys, changed)`` of a ``paged`` or ``kept`` call."""
    remembered = []
    if params["state"] == "paged":
        state, remembered = remember(state, params["host"], params["severity"], findings, window, now, params.get("incident_id"))
    state, kept = keep(state, params["host"], params["severity"], findings, params.get("incident_id"), now)
    return state, remembered, bool(remembered or kept)


def read(path):
    """The state in ``path`` (an empty state when the file does not exist)."""
    try:
        with open(path, "rb") as handle:
            return parse_state(handle.read().decode("utf-8", "replace"), path)
    except FileNotFoundError:
        return empty_state()
    except OSError as exc:
        raise PagingError("paging state %s cannot be read: %s" % (path, exc)) from None


def run(params, check_mode=False, now=None):
    """The work of ``sre.incident.paging``; returns the module's result (raises PagingError)."""
    path = params["path"]
    params = dict(params, state=params.get("state") or "checked")
    if params["state"] not in STATES:
        raise PagingError("state %r is not one of %s" % (params["state"], ", ".join(STATES)))
    findings = validate_findings(params.get("findings") or [])
    window = validate_window(params.get("window", DEFAULT_WINDOW_S))
    before = read(path)
    decided = plan(before, params["host"], params["severity"], findings, window, now)
    result = dict(decided, changed=False, path=path, window=window, remembered=[])
    del result["keys"]
    if params["state"] == "checked":
        return result
    would, remembered, changed = _update(before, params, findings, window, now)
    if check_mode or not changed:
        result.update(changed=changed, remembered=remembered)
        if changed:
            result["diff"] = {"before": _summary(before), "after": _summary(would)}
        return result
    os.makedirs(os.path.dirname(os.path.abspath(path)), mode=0o700, exist_ok=True)
    lock_fd = os.open(path + ".lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(lock_fd, fcntl.LOCK_EX)
        current = read(path)                       # again, under the lock: another run may have paged
        after, remembered, changed = _update(current, params, findings, window, now)
        if changed:
            _files.write_json(path, after)
    finally:
        os.close(lock_fd)
    result.update(changed=changed, remembered=remembered,
                  diff={"before": _summary(current), "after": _summary(after)})
    return result


def _summary(state):
    return "".join("%s %s %s: %s (last paged %s)\n" % (e.get("host"), e.get("severity"), e.get("check"), e.get("reason"),
                                                       e.get("last_paged"))
                   for _k, e in sorted(state["pages"].items())) \
        + "".join("%s %s %s: %s (incident %s)\n" % (e.get("host"), e.get("severity"), e.get("check"), e.get("reason"),
                                                    e.get("incident_id"))
                  for _k, e in sorted((state.get("incidents") or {}).items()))
