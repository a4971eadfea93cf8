# -*- coding: utf-8 -*-
# Copyright (c) sre.incident contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Who is on call at a given moment (runbook "快速參考", SPEC P0-9): pure logic on the rotation in the
inventory (``incident_oncall``), for the ``sre.incident.oncall`` filter and ``sre.incident.notify``.

The rule (a shift belongs to the day it starts; wall-clock times in the rotation's time zone, so
daylight saving moves no hand-over) is documented once, in ``plugins/filter/oncall.yml``.
"""

from __future__ import annotations

import copy
import datetime as _dt
import re

from ansible_collections.sre.incident.plugins.module_utils import _time
from ansible_collections.sre.incident.plugins.module_utils._errors import InputError

try:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError
except ImportError:  # pragma: no cover - Python < 3.9
    ZoneInfo = None
    ZoneInfoNotFoundError = Exception

# The runbook's rotation; roles use it as the default of ``incident_oncall``.
DEFAULT_ROTATION = {
    "timezone": "Asia/Shanghai",
    "shifts": {
        "weekday_day": {"handle": "@oncall-day", "start": "09:00", "end": "18:00"},
        "weekday_night": {"handle": "@oncall-night"},
        "weekend": {"handle": "@oncall-weekend"},
    },
    "contacts": {
        "tech_lead": "@tech-lead",
        "incident_commander": "@incident-commander",
        "devops": "@devops",
        "dba": "@dba",
    },
}

SHIFT_NAMES = ("weekday_day", "weekday_night", "weekend")
DEFAULT_DAY_START = "09:00"
DEFAULT_DAY_END = "18:00"

_HHMM = re.compile(r"^(\d{1,2}):(\d{2})$")
_SATURDAY = 5


class OncallError(InputError):
    """Bad rotation or bad arguments; the message names the bad value."""


def parse_hhmm(value, where):
    """``"HH:MM"`` (00:00-23:59) as a :class:`datetime.time`."""
    if not isinstance(value, str):
        raise OncallError("%s must be a string 'HH:MM', got %r" % (where, value))
    match = _HHMM.match(value.strip())
    if not match:
        raise OncallError("%s must be 'HH:MM', got %r" % (where, value))
    hour, minute = int(match.group(1)), int(match.group(2))
    if hour > 23 or minute > 59:
        raise OncallError("%s is not a valid time of day: %r" % (where, value))
    return _dt.time(hour, minute)


def get_zone(name, where="timezone"):
    """The :class:`zoneinfo.ZoneInfo` of an IANA name."""
    if ZoneInfo is None:  # pragma: no cover
        raise OncallError("the zoneinfo module (Python 3.9+) is required for on-call time zones")
    if not isinstance(name, str) or not name.strip():
        raise OncallError("%s must be an IANA time zone name such as 'Asia/Shanghai', got %r" % (where, name))
    try:
        return ZoneInfo(name.strip())
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise OncallError("unknown time zone %s=%r (expected an IANA name such as 'Asia/Shanghai')" % (where, name))


def parse_instant(value, zone, where="at"):
    """``value`` (ISO 8601 string or datetime; None: now) as an aware datetime in ``zone``; a naive
    value is wall-clock time in ``zone``."""
    if value is None or (isinstance(value, str) and value.strip().lower() in ("", "now")):
        return _time.utc_now().astimezone(zone)
    if not isinstance(value, (str, _dt.datetime)):
        raise OncallError("%s must be an ISO 8601 string or a datetime, got %r" % (where, value))
    try:
        return _time.parse_ts(value, where, naive=zone).astimezone(zone)
    except ValueError:
        raise OncallError("%s must be an ISO 8601 date-time such as '2026-11-27T10:00:00+08:00', got %r" % (where, value)) from None


def _handle(shifts, name):
    shift = shifts.get(name)
    if shift is None:
        raise OncallError("the rotation has no shift %r (expected shifts %s)" % (name, ", ".join(SHIFT_NAMES)))
    if isinstance(shift, str):  # short form: ``weekend: "@oncall-weekend"``
        shift = {"handle": shift}
    if not isinstance(shift, dict):
        raise OncallError("shifts.%s must be a mapping with a 'handle', got %r" % (name, shift))
    handle = shift.get("handle")
    if not isinstance(handle, str) or not handle.strip():
        raise OncallError("shifts.%s.handle is missing or empty (got %r)" % (name, handle))
    return shift, handle.strip()


def _check_derived(shift, name, key, expected, expected_text):
    """Night/weekend times follow from the day shift; accept them only when they agree."""
    if key in shift and shift[key] is not None:
        given = parse_hhmm(shift[key], "shifts.%s.%s" % (name, key))
        if given != expected:
            raise OncallError(
                "shifts.%s.%s=%r disagrees with the day shift: it must be %s (night and weekend times "
                "follow from shifts.weekday_day.start/end)" % (name, key, shift[key], expected_text)
            )


def validate_rotation(rotation):
    """The rotation normalised: ``{timezone, day_start, day_end, handles, contacts}``."""
    if not isinstance(rotation, dict):
        raise OncallError("the on-call rotation must be a mapping (see incident_oncall), got %r" % (rotation,))
    shifts = rotation.get("shifts")
    if not isinstance(shifts, dict):
        raise OncallError("the on-call rotation needs a 'shifts' mapping with %s, got %r" % (", ".join(SHIFT_NAMES), shifts))
    unknown = sorted(str(k) for k in shifts if k not in SHIFT_NAMES)
    if unknown:
        raise OncallError("unknown shift name(s) %s (expected %s)" % (", ".join(unknown), ", ".join(SHIFT_NAMES)))

    handles, given = {}, {}
    for name in SHIFT_NAMES:
        given[name], handles[name] = _handle(shifts, name)
    day, night, weekend = (given[name] for name in SHIFT_NAMES)

    start_text = day.get("start") or DEFAULT_DAY_START
    end_text = day.get("end") or DEFAULT_DAY_END
    day_start = parse_hhmm(start_text, "shifts.weekday_day.start")
    day_end = parse_hhmm(end_text, "shifts.weekday_day.end")
    if day_start >= day_end:
        raise OncallError(
            "shifts.weekday_day.start=%r must be earlier than shifts.weekday_day.end=%r" % (start_text, end_text)
        )
    _check_derived(night, "weekday_night", "start", day_end, end_text)
    _check_derived(night, "weekday_night", "end", day_start, start_text)
    _check_derived(weekend, "weekend", "start", day_start, start_text)
    _check_derived(weekend, "weekend", "end", day_start, start_text)

    contacts = {} if rotation.get("contacts") is None else rotation["contacts"]
    if not isinstance(contacts, dict):
        raise OncallError("contacts must be a mapping such as {tech_lead: '@tech-lead'}, got %r" % (contacts,))

    return {
        "timezone": rotation.get("timezone"),
        "day_start": day_start,
        "day_end": day_end,
        "handles": handles,
        "contacts": copy.deepcopy(contacts),
    }


def _shift_starts(local_date, zone, day_start, day_end):
    """Shift start instants (UTC) around ``local_date``: list of (utc_datetime, shift_name)."""
    starts = []
    for delta in range(-4, 5):
        date = local_date + _dt.timedelta(days=delta)
        weekday = date.weekday()
        shifts = ((day_start, "weekday_day"), (day_end, "weekday_night")) if weekday < _SATURDAY else \
            ((day_start, "weekend"),) if weekday == _SATURDAY else ()
        starts += [(_dt.datetime.combine(date, clock).replace(tzinfo=zone).astimezone(_time.UTC), name) for clock, name in shifts]
    return sorted(starts, key=lambda item: item[0])


def who_is_on_call(rotation, at=None, tz=None):
    """Who is on call at ``at`` (default now): ``{shift, handle, at, timezone, shift_start, shift_end,
    contacts}``, times in ISO 8601 in ``tz`` (default the rotation's ``timezone``, else UTC)."""
    spec = validate_rotation(rotation)
    if tz is not None:
        zone = get_zone(tz, "tz")
    else:
        zone = get_zone("UTC" if spec["timezone"] is None else spec["timezone"])
    moment = parse_instant(at, zone)
    starts = _shift_starts(moment.date(), zone, spec["day_start"], spec["day_end"])
    index = sum(1 for start, _name in starts if start <= moment) - 1
    if not 0 <= index < len(starts) - 1:  # pragma: no cover - the 9-day window always brackets
        raise OncallError("could not place %r in the rotation" % (at,))
    (start, name), end = starts[index], starts[index + 1][0]
    return {
        "shift": name,
        "handle": spec["handles"][name],
        "at": moment.isoformat(),
        "timezone": zone.key,
        "shift_start": start.astimezone(zone).isoformat(),
        "shift_end": end.astimezone(zone).isoformat(),
        "contacts": spec["contacts"],
    }
