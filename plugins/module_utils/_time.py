# -*- coding: utf-8 -*-
# Copyright (c) sre.incident contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Time: the clock, and the one reader and writer of timestamps of the collection.

Written in UTC, ISO 8601 with milliseconds and ``Z`` (:func:`format_ts`); read (:func:`parse_ts`)
as ISO 8601 / RFC 3339 with any number of fraction digits (the engine's nanoseconds), a time
without an offset being UTC. Code that needs "now" takes a ``now`` argument so tests can fix it.
"""

from __future__ import annotations

import datetime
import re
import time

UTC = datetime.timezone.utc

_ISO_RE = re.compile(
    r"^(\d{4})-?(\d\d)-?(\d\d)"
    r"(?:[Tt ](\d\d):?(\d\d)(?::?(\d\d)(?:[.,](\d+))?)?)?"
    r"\s*(?:([Zz])|([+-])(\d\d)(?::?(\d\d))?)?$"
)
_DURATION_RE = re.compile(r"^-?(\d+(?:\.\d+)?)\s*([smhd]?)$")
_UNIT_S = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
# no lower bound an incident asks for lies this far back: a bigger bare number is a UNIX time
# written without its @, and is refused rather than taken as decades ago
_MAX_AGO_S = 10 * 365 * 86400


def utc_now():
    """The current time as an aware UTC datetime."""
    return datetime.datetime.now(UTC)


def parse_ts(value, name="timestamp", naive=UTC):
    """An aware UTC datetime from an ISO 8601 timestamp (or a datetime); a value without an offset is
    read in the zone ``naive``. ValueError names ``name`` and the bad value."""
    if isinstance(value, datetime.datetime):
        return (value if value.tzinfo else value.replace(tzinfo=naive)).astimezone(UTC)
    match = _ISO_RE.match(value.strip()) if isinstance(value, str) else None
    if not match:
        raise ValueError("%s %r is not an ISO 8601 timestamp (e.g. 2026-11-27T01:30:45Z)" % (name, value))
    year, month, day, hour, minute, second, fraction, zulu, sign, off_h, off_m = match.groups()
    try:
        moment = datetime.datetime(int(year), int(month), int(day), int(hour or 0), int(minute or 0),
                                   int(second or 0), int((fraction or "0")[:6].ljust(6, "0")))
        offset = datetime.timedelta(hours=int(off_h or 0), minutes=int(off_m or 0))
        zone = UTC if zulu else naive if not sign else datetime.timezone(offset if sign == "+" else -offset)
    except ValueError as exc:
        raise ValueError("%s %r is not an ISO 8601 timestamp: %s" % (name, value, exc)) from None
    return moment.replace(tzinfo=zone).astimezone(UTC)


def epoch(value, name="timestamp"):
    """UNIX seconds of an ISO 8601 timestamp (see :func:`parse_ts`)."""
    return parse_ts(value, name).timestamp()


def _moment(value):
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return datetime.datetime.fromtimestamp(float(value), tz=UTC)
    return parse_ts(value)


def format_ts(value):
    """``YYYY-MM-DDTHH:MM:SS.mmmZ`` of a datetime, an ISO 8601 string or UNIX seconds; None stays None."""
    if value is None:
        return None
    moment = _moment(value)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (moment.microsecond // 1000)


def format_seconds(value=None):
    """``YYYY-MM-DDTHH:MM:SSZ`` of a datetime, an ISO 8601 string or UNIX seconds (default now)."""
    return _moment(utc_now() if value is None else value).strftime("%Y-%m-%dT%H:%M:%SZ")


def stamp(value=None):
    """``YYYYMMDDTHHMMSSZ`` (for names that sort by time) of a datetime or UNIX seconds (default now)."""
    return _moment(utc_now() if value is None else value).strftime("%Y%m%dT%H%M%SZ")


def parse_since(value, now=None, name="since"):
    """UNIX seconds of a lower bound in time (None for None / ``""``): an ISO 8601 time, a duration
    before ``now`` (``300``, ``-300`` (the same), ``15m``, ``24h``, ``1d``) or ``@<UNIX time>``."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, bool):
        raise ValueError("%s must be an ISO 8601 time, a duration or @<UNIX time>, got %r" % (name, value))
    text = str(value).strip()
    if text.startswith("@"):
        try:
            return float(text[1:])
        except ValueError:
            raise ValueError("%s %r is not a UNIX time (@ and seconds, e.g. @1795744000)" % (name, value)) from None
    match = _DURATION_RE.match(text)
    if not match:
        try:
            return epoch(text, name)
        except ValueError:
            raise ValueError("%s %r is not an ISO 8601 time (e.g. 2026-11-27T01:30:00Z), a duration (300, 15m, "
                             "24h) or @<UNIX time>" % (name, value)) from None
    seconds = float(match.group(1)) * _UNIT_S[match.group(2)]
    if seconds > _MAX_AGO_S:
        raise ValueError("%s %r would be %d days ago: write a UNIX time as @%s" % (name, value, seconds // 86400,
                                                                                   match.group(1)))
    return (time.time() if now is None else now) - seconds
