# -*- coding: utf-8 -*-
# Copyright (c) sre.incident contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Severity levels of the runbook and what they promise.

Sections of this file:

* Time helpers: one timestamp format for the whole collection (UTC, ISO 8601, milliseconds,
  ``Z`` suffix), parsing and formatting.
* SLA (SPEC SEV-2, SEV-3): the default respond / resolve times per severity, operator
  overrides, the deadlines of an incident and whether a deadline was met.

Everything here is pure: no file or network access, the current time is always a parameter
(``now``/``at``) so that tests can put events exactly on a boundary.
"""

from __future__ import annotations

import datetime

# ---------------------------------------------------------------------------------------------
# Time helpers
# ---------------------------------------------------------------------------------------------

UTC = datetime.timezone.utc


def utc_now():
    """The current time as an aware UTC datetime."""
    return datetime.datetime.now(UTC)


def parse_ts(value, name="timestamp"):
    """Parse an ISO 8601 timestamp (or pass an aware datetime through) into an aware UTC datetime.

    A naive timestamp (no offset) is taken as UTC. ``Z`` is accepted as the UTC suffix.
    Raises ``ValueError`` naming ``name`` and the bad value.
    """
    if isinstance(value, datetime.datetime):
        dt = value
    elif isinstance(value, str) and value.strip():
        text = value.strip()
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        try:
            dt = datetime.datetime.fromisoformat(text)
        except ValueError:
            raise ValueError("%s %r is not an ISO 8601 timestamp (e.g. 2026-11-27T01:30:45Z)" % (name, value)) from None
    else:
        raise ValueError("%s %r is not an ISO 8601 timestamp (e.g. 2026-11-27T01:30:45Z)" % (name, value))
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC)


def format_ts(value):
    """Format a datetime (or ISO string) as ``YYYY-MM-DDTHH:MM:SS.mmmZ`` in UTC."""
    dt = parse_ts(value)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (dt.microsecond // 1000)


# ---------------------------------------------------------------------------------------------
# SLA
# ---------------------------------------------------------------------------------------------

SEVERITIES = ("P0", "P1", "P2", "P3")

MINUTE = 60
HOUR = 60 * MINUTE
DAY = 24 * HOUR

#: Seconds to respond and to resolve, per severity (SPEC SEV-3). ``None``: no SLA (P3, SEV-2).
DEFAULT_SLA = {
    "P0": {"respond": 5 * MINUTE, "resolve": 30 * MINUTE},
    "P1": {"respond": 15 * MINUTE, "resolve": 2 * HOUR},
    "P2": {"respond": 24 * HOUR, "resolve": 7 * DAY},
    "P3": {"respond": None, "resolve": None},
}

SLA_KINDS = ("respond", "resolve")

#: Values of :func:`deadline_status`.
MET, MISSED, OPEN, NONE = "met", "missed", "open", "none"


def normalize_severity(severity):
    """``'p0'``/``'P0'`` -> ``'P0'``; anything else raises ``ValueError`` naming the value."""
    if isinstance(severity, str) and severity.strip().upper() in SEVERITIES:
        return severity.strip().upper()
    raise ValueError("unknown severity %r: expected one of %s" % (severity, ", ".join(SEVERITIES)))


def _check_seconds(value, where):
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError("SLA %s must be a number of seconds or null, got %r" % (where, value))
    if value < 0:
        raise ValueError("SLA %s must not be negative, got %r" % (where, value))
    return int(value) if float(value).is_integer() else float(value)


def validate_overrides(overrides):
    """Check an overrides mapping like ``{"P0": {"respond": 300, "resolve": 1800}}``.

    Returns a normalised copy (severity keys upper-cased). Unknown severities, unknown kinds and
    negative or non-numeric values raise ``ValueError`` naming them.
    """
    if overrides is None:
        return {}
    if not isinstance(overrides, dict):
        raise ValueError("SLA overrides must be a mapping like {'P0': {'respond': 300}}, got %r" % (overrides,))
    clean = {}
    for sev, kinds in overrides.items():
        key = normalize_severity(sev)
        if not isinstance(kinds, dict):
            raise ValueError("SLA override for %s must be a mapping of respond/resolve seconds, got %r" % (key, kinds))
        clean[key] = {}
        for kind, seconds in kinds.items():
            if kind not in SLA_KINDS:
                raise ValueError("unknown SLA kind %r for %s: expected respond or resolve" % (kind, key))
            clean[key][kind] = _check_seconds(seconds, "%s.%s" % (key, kind))
    return clean


def sla_for(severity, overrides=None):
    """The SLA of ``severity`` as ``{"respond": seconds|None, "resolve": seconds|None}``.

    ``overrides`` (seconds, per severity, per kind) replace the defaults kind by kind.
    """
    sev = normalize_severity(severity)
    sla = dict(DEFAULT_SLA[sev])
    sla.update(validate_overrides(overrides).get(sev, {}))
    return sla


def deadlines(severity, started_at, overrides=None):
    """The respond and resolve deadlines of an incident that started at ``started_at``.

    Returns ``{"respond": iso|None, "resolve": iso|None}`` (``None`` where there is no SLA).
    """
    start = parse_ts(started_at, "started_at")
    sla = sla_for(severity, overrides)
    result = {}
    for kind in SLA_KINDS:
        seconds = sla[kind]
        result[kind] = None if seconds is None else format_ts(start + datetime.timedelta(seconds=seconds))
    return result


def deadline_status(deadline, at, now=None):
    """Whether a deadline was kept.

    * ``none``: there is no deadline (``deadline`` is ``None``);
    * ``met``: it happened (``at``) on or before the deadline (the exact boundary counts as met);
    * ``missed``: it happened after the deadline, or it has not happened and ``now`` is past
      the deadline;
    * ``open``: it has not happened yet and the deadline has not passed (or ``now`` not given).
    """
    if deadline is None:
        return NONE
    limit = parse_ts(deadline, "deadline")
    if at is not None:
        return MET if parse_ts(at, "at") <= limit else MISSED
    if now is not None and parse_ts(now, "now") > limit:
        return MISSED
    return OPEN


def time_left(deadline, now):
    """Seconds from ``now`` to ``deadline`` (negative when overdue); ``None`` without deadline."""
    if deadline is None:
        return None
    delta = parse_ts(deadline, "deadline") - parse_ts(now, "now")
    return round(delta.total_seconds(), 3)
