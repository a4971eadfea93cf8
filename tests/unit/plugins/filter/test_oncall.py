# -*- coding: utf-8 -*-
# Copyright (c) sre.incident contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The sre.incident.oncall filter: every hand-over edge, two time zones, DST, bad input."""

from __future__ import annotations

import copy
import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ansible.errors import AnsibleFilterError

from ansible_collections.sre.incident.plugins.filter.oncall import FilterModule, oncall
from ansible_collections.sre.incident.plugins.module_utils._oncall import DEFAULT_ROTATION

ROTATION = copy.deepcopy(DEFAULT_ROTATION)

# Week of Monday 2026-11-23 .. Sunday 2026-11-29, Monday 2026-11-30.
# (day-of-week, local time) -> (shift, local shift_start, local shift_end)
EDGES = [
    ("2026-11-23T08:59", "weekend", "2026-11-21T09:00", "2026-11-23T09:00"),        # Mon 08:59
    ("2026-11-23T09:00", "weekday_day", "2026-11-23T09:00", "2026-11-23T18:00"),    # Mon 09:00
    ("2026-11-23T17:59", "weekday_day", "2026-11-23T09:00", "2026-11-23T18:00"),    # Mon 17:59
    ("2026-11-23T18:00", "weekday_night", "2026-11-23T18:00", "2026-11-24T09:00"),  # Mon 18:00
    ("2026-11-24T08:59", "weekday_night", "2026-11-23T18:00", "2026-11-24T09:00"),  # Tue 08:59
    ("2026-11-24T09:00", "weekday_day", "2026-11-24T09:00", "2026-11-24T18:00"),    # Tue 09:00
    ("2026-11-26T23:30", "weekday_night", "2026-11-26T18:00", "2026-11-27T09:00"),  # Thu late
    ("2026-11-27T17:59", "weekday_day", "2026-11-27T09:00", "2026-11-27T18:00"),    # Fri 17:59
    ("2026-11-27T18:00", "weekday_night", "2026-11-27T18:00", "2026-11-28T09:00"),  # Fri 18:00
    ("2026-11-28T00:00", "weekday_night", "2026-11-27T18:00", "2026-11-28T09:00"),  # Sat 00:00 (Fri's night)
    ("2026-11-28T08:59", "weekday_night", "2026-11-27T18:00", "2026-11-28T09:00"),  # Sat 08:59 (Fri's night)
    ("2026-11-28T09:00", "weekend", "2026-11-28T09:00", "2026-11-30T09:00"),        # Sat 09:00
    ("2026-11-28T18:00", "weekend", "2026-11-28T09:00", "2026-11-30T09:00"),        # Sat 18:00
    ("2026-11-29T23:00", "weekend", "2026-11-28T09:00", "2026-11-30T09:00"),        # Sun 23:00
    ("2026-11-30T00:00", "weekend", "2026-11-28T09:00", "2026-11-30T09:00"),        # Mon 00:00
    ("2026-11-30T08:59", "weekend", "2026-11-28T09:00", "2026-11-30T09:00"),        # Mon 08:59
    ("2026-11-30T09:00", "weekday_day", "2026-11-30T09:00", "2026-11-30T18:00"),    # Mon 09:00
]
HANDLES = {"weekday_day": "@oncall-day", "weekday_night": "@oncall-night", "weekend": "@oncall-weekend"}
ZONES = ["Asia/Shanghai", "America/New_York", "UTC"]


def _local(text, zone):
    return dt.datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(zone))


@pytest.mark.parametrize("zone", ZONES)
@pytest.mark.parametrize("at, shift, start, end", EDGES)
def test_edges_naive_at_in_tz(zone, at, shift, start, end):
    got = oncall(ROTATION, at=at, tz=zone)
    assert got["shift"] == shift
    assert got["handle"] == HANDLES[shift]
    assert got["timezone"] == zone
    assert got["at"] == _local(at, zone).isoformat()
    assert got["shift_start"] == _local(start, zone).isoformat()
    assert got["shift_end"] == _local(end, zone).isoformat()
    assert got["contacts"] == DEFAULT_ROTATION["contacts"]


@pytest.mark.parametrize("at, shift, start, end", EDGES)
def test_edges_with_offset_in_new_york(at, shift, start, end):
    """An aware `at` is converted to tz first: 08:59 New York given as UTC (EST, -05:00)."""
    zone = "America/New_York"
    aware_utc = _local(at, zone).astimezone(dt.timezone.utc).isoformat().replace("+00:00", "Z")
    got = oncall(ROTATION, at=aware_utc, tz=zone)
    assert got["shift"] == shift
    assert got["at"] == _local(at, zone).isoformat()


def test_same_instant_differs_by_zone():
    # Friday 2026-11-27 20:00 in Shanghai is Friday 07:00 in New York.
    at = "2026-11-27T20:00:00+08:00"
    assert oncall(ROTATION, at=at, tz="Asia/Shanghai")["shift"] == "weekday_night"
    ny = oncall(ROTATION, at=at, tz="America/New_York")
    assert ny["shift"] == "weekday_night"  # Thursday's night in New York
    assert ny["shift_start"] == "2026-11-26T18:00:00-05:00"
    assert ny["at"] == "2026-11-27T07:00:00-05:00"
    # Saturday 2026-11-28 10:00 Shanghai = Friday 21:00 New York.
    at = "2026-11-28T10:00:00+08:00"
    assert oncall(ROTATION, at=at, tz="Asia/Shanghai")["shift"] == "weekend"
    assert oncall(ROTATION, at=at, tz="America/New_York")["shift"] == "weekday_night"


def test_default_tz_is_rotation_timezone_else_utc():
    got = oncall(ROTATION, at="2026-11-27T10:00:00+08:00")
    assert got["timezone"] == "Asia/Shanghai" and got["shift"] == "weekday_day"
    assert got["shift_start"] == "2026-11-27T09:00:00+08:00"
    no_tz = {k: v for k, v in ROTATION.items() if k != "timezone"}
    got = oncall(no_tz, at="2026-11-27T10:00:00+08:00")  # 02:00 UTC on Friday
    assert got["timezone"] == "UTC" and got["shift"] == "weekday_night"
    assert got["at"] == "2026-11-27T02:00:00+00:00"


def test_brief_example():
    got = oncall(ROTATION, at="2026-11-27T10:00:00+08:00", tz="Asia/Shanghai")
    assert got == {
        "shift": "weekday_day",
        "handle": "@oncall-day",
        "at": "2026-11-27T10:00:00+08:00",
        "timezone": "Asia/Shanghai",
        "shift_start": "2026-11-27T09:00:00+08:00",
        "shift_end": "2026-11-27T18:00:00+08:00",
        "contacts": {"tech_lead": "@tech-lead", "incident_commander": "@incident-commander",
                     "devops": "@devops", "dba": "@dba"},
    }


# --- DST in New York: 2026-03-08 (spring forward, Sunday) and 2026-11-01 (fall back, Sunday) ------

@pytest.mark.parametrize("at, shift, start, end", [
    ("2026-03-06T18:00", "weekday_night", "2026-03-06T18:00:00-05:00", "2026-03-07T09:00:00-05:00"),
    ("2026-03-07T08:59", "weekday_night", "2026-03-06T18:00:00-05:00", "2026-03-07T09:00:00-05:00"),
    ("2026-03-07T09:00", "weekend", "2026-03-07T09:00:00-05:00", "2026-03-09T09:00:00-04:00"),
    ("2026-03-08T01:59", "weekend", "2026-03-07T09:00:00-05:00", "2026-03-09T09:00:00-04:00"),
    ("2026-03-08T03:00", "weekend", "2026-03-07T09:00:00-05:00", "2026-03-09T09:00:00-04:00"),
    ("2026-03-09T08:59", "weekend", "2026-03-07T09:00:00-05:00", "2026-03-09T09:00:00-04:00"),
    ("2026-03-09T09:00", "weekday_day", "2026-03-09T09:00:00-04:00", "2026-03-09T18:00:00-04:00"),
    ("2026-10-31T08:59", "weekday_night", "2026-10-30T18:00:00-04:00", "2026-10-31T09:00:00-04:00"),
    ("2026-10-31T09:00", "weekend", "2026-10-31T09:00:00-04:00", "2026-11-02T09:00:00-05:00"),
    ("2026-11-01T01:30", "weekend", "2026-10-31T09:00:00-04:00", "2026-11-02T09:00:00-05:00"),
    ("2026-11-02T08:59", "weekend", "2026-10-31T09:00:00-04:00", "2026-11-02T09:00:00-05:00"),
    ("2026-11-02T09:00", "weekday_day", "2026-11-02T09:00:00-05:00", "2026-11-02T18:00:00-05:00"),
])
def test_new_york_dst_weekends(at, shift, start, end):
    got = oncall(ROTATION, at=at, tz="America/New_York")
    assert (got["shift"], got["shift_start"], got["shift_end"]) == (shift, start, end)


def test_dst_weekend_lengths():
    spring = oncall(ROTATION, at="2026-03-08T12:00", tz="America/New_York")
    fall = oncall(ROTATION, at="2026-11-01T12:00", tz="America/New_York")

    def hours(got):
        return (dt.datetime.fromisoformat(got["shift_end"]) - dt.datetime.fromisoformat(got["shift_start"])).total_seconds() / 3600

    assert hours(spring) == 47 and hours(fall) == 49


def test_utc_instants_around_spring_forward():
    # 2026-03-09 09:00 EDT is 13:00 UTC; a day earlier it would have been 14:00 UTC.
    assert oncall(ROTATION, at="2026-03-09T12:59:00Z", tz="America/New_York")["shift"] == "weekend"
    assert oncall(ROTATION, at="2026-03-09T13:00:00Z", tz="America/New_York")["shift"] == "weekday_day"


# --- configuration ------------------------------------------------------------------------------

def test_custom_day_hours_and_string_handles():
    rotation = {"timezone": "Europe/Berlin",
                "shifts": {"weekday_day": {"handle": "@d", "start": "08:30", "end": "17:00"},
                           "weekday_night": "@n", "weekend": {"handle": "@w", "start": "08:30"}}}
    assert oncall(rotation, at="2026-11-23T08:29")["shift"] == "weekend"
    assert oncall(rotation, at="2026-11-23T08:30")["handle"] == "@d"
    assert oncall(rotation, at="2026-11-23T17:00")["handle"] == "@n"
    assert oncall(rotation, at="2026-11-28T08:30")["handle"] == "@w"
    assert oncall(rotation, at="2026-11-28T08:30")["contacts"] == {}


def test_default_at_is_now():
    got = oncall(ROTATION)
    at = dt.datetime.fromisoformat(got["at"])
    assert abs((at - dt.datetime.now(dt.timezone.utc)).total_seconds()) < 60
    assert dt.datetime.fromisoformat(got["shift_start"]) <= at < dt.datetime.fromisoformat(got["shift_end"])


def test_contacts_are_a_copy():
    got = oncall(ROTATION, at="2026-11-27T10:00")
    got["contacts"]["dba"] = "@changed"
    assert ROTATION["contacts"]["dba"] == "@dba"


def test_registered_as_filter():
    assert FilterModule().filters()["oncall"] is oncall


# --- bad input ----------------------------------------------------------------------------------

def _with(path, value):
    rotation = copy.deepcopy(DEFAULT_ROTATION)
    node = rotation
    for key in path[:-1]:
        node = node[key]
    if value is KeyError:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return rotation


@pytest.mark.parametrize("rotation, kwargs, needle", [
    (_with(["timezone"], "Mars/Olympus_Mons"), {}, "Mars/Olympus_Mons"),
    (ROTATION, {"tz": "Nowhere/Land"}, "Nowhere/Land"),
    (ROTATION, {"tz": "../etc/passwd"}, "../etc/passwd"),
    (_with(["shifts", "weekday_day", "start"], "25:00"), {}, "25:00"),
    (_with(["shifts", "weekday_day", "end"], "18:60"), {}, "18:60"),
    (_with(["shifts", "weekday_day", "end"], "six pm"), {}, "six pm"),
    (_with(["shifts", "weekday_day", "end"], "08:00"), {}, "must be earlier"),
    (_with(["shifts", "weekday_night", "handle"], KeyError), {}, "shifts.weekday_night.handle"),
    (_with(["shifts", "weekend", "handle"], ""), {}, "shifts.weekend.handle"),
    (_with(["shifts", "weekend"], KeyError), {}, "'weekend'"),
    (_with(["shifts", "holiday"], {"handle": "@h"}), {}, "holiday"),
    (_with(["shifts", "weekday_night", "start"], "19:00"), {}, "shifts.weekday_night.start='19:00'"),
    (_with(["shifts"], KeyError), {}, "'shifts'"),
    (_with(["contacts"], ["@a"]), {}, "contacts"),
    (ROTATION, {"at": "next tuesday"}, "next tuesday"),
    (ROTATION, {"at": "2026-13-01T10:00"}, "2026-13-01T10:00"),
    ("not a mapping", {}, "not a mapping"),
    (None, {}, "must be a mapping"),
])
def test_bad_input_names_the_value(rotation, kwargs, needle):
    with pytest.raises(AnsibleFilterError) as info:
        oncall(rotation, **kwargs)
    assert needle in str(info.value)


# --- property: exactly one shift, boundaries bracket the moment, day shift iff weekday hours -------

@settings(max_examples=300, deadline=None)
@given(
    moment=st.datetimes(min_value=dt.datetime(2020, 1, 1), max_value=dt.datetime(2035, 12, 31)),
    zone=st.sampled_from(["Asia/Shanghai", "America/New_York", "Europe/London", "Australia/Sydney", "UTC"]),
)
def test_property_against_a_direct_rule(moment, zone):
    utc = moment.replace(tzinfo=dt.timezone.utc)
    got = oncall(ROTATION, at=utc.isoformat(), tz=zone)
    local = utc.astimezone(ZoneInfo(zone))
    start = dt.datetime.fromisoformat(got["shift_start"])
    end = dt.datetime.fromisoformat(got["shift_end"])
    assert start <= utc < end
    minutes = local.hour * 60 + local.minute
    weekday = local.weekday()
    day = 9 * 60 <= minutes < 18 * 60
    if weekday < 5 and day:
        expected = "weekday_day"
    elif (weekday < 4 and not day) or (weekday == 4 and minutes >= 18 * 60) or \
            (weekday in (1, 2, 3, 4) and minutes < 9 * 60) or (weekday == 5 and minutes < 9 * 60):
        expected = "weekday_night"
    else:
        expected = "weekend"
    # Monday before 09:00 belongs to the weekend, not to Sunday's (non-existent) night.
    if weekday == 0 and minutes < 9 * 60:
        expected = "weekend"
    assert got["shift"] == expected, (local.isoformat(), got)
