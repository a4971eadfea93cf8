# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one reader and writer of timestamps (_time.py) and the one "since"."""
from __future__ import annotations

import datetime

import pytest

from ansible_collections.sre.incident.plugins.module_utils import _time

UTC = datetime.timezone.utc


@pytest.mark.parametrize("text, expected", [
    ("1970-01-01T00:01:00Z", 60),
    ("1970-01-01T01:00:00+01:00", 0),
    ("1970-01-01T01:00:00+0100", 0),
    ("1970-01-01T01:00:00+01", 0),
    ("1969-12-31T23:00:00-01:00", 0),
    ("1970-01-01 00:00:01.5", 1.5),
    ("1970-01-01T00:00:01,25z", 1.25),
    ("1970-01-01T00:02", 120),
    ("1970-01-02", 86400),
    ("  1970-01-01T00:00:07Z  ", 7),
])
def test_iso_8601_forms(text, expected):
    assert _time.epoch(text) == expected


def test_the_engines_nanoseconds_are_read_to_the_microsecond():
    assert _time.epoch("2026-11-27T01:46:09.429123456Z") == pytest.approx(1795743969.429123, abs=1e-6)
    assert _time.parse_ts("2026-11-27T01:46:09.4Z").microsecond == 400000


@pytest.mark.parametrize("bad", ["yesterday", "2026-13-45T00:00:00Z", "2026-11-27T25:00:00Z", "1795744000", "", None, 5])
def test_bad_timestamps_are_named(bad):
    with pytest.raises(ValueError, match="detected_at"):
        _time.parse_ts(bad, "detected_at")


def test_datetimes_pass_naive_as_utc():
    naive = datetime.datetime(2026, 1, 2, 3, 4, 5)
    assert _time.parse_ts(naive) == naive.replace(tzinfo=UTC)
    eight = datetime.timezone(datetime.timedelta(hours=8))
    assert _time.parse_ts(datetime.datetime(2026, 1, 2, 11, 4, 5, tzinfo=eight)) == naive.replace(tzinfo=UTC)


def test_one_written_format():
    assert _time.format_ts("2026-11-27T01:30:45") == "2026-11-27T01:30:45.000Z"
    assert _time.format_ts(datetime.datetime(2026, 1, 2, 3, 4, 5, 678999, tzinfo=UTC)) == "2026-01-02T03:04:05.678Z"
    assert _time.format_ts(1795743045.25) == "2026-11-27T01:30:45.250Z"
    assert _time.format_ts(None) is None
    assert _time.format_seconds(1795743045.25) == "2026-11-27T01:30:45Z"
    assert _time.stamp(1795743045.25) == "20261127T013045Z"
    assert _time.format_seconds().endswith("Z") and len(_time.stamp()) == 16


def test_the_clock_is_aware_utc():
    assert _time.utc_now().tzinfo == UTC


@pytest.mark.parametrize("value, expected", [
    (None, None),
    ("", None),
    ("  ", None),
    ("30", 970),
    (30, 970),
    ("-300", 700),
    (-300, 700),
    ("2m", 880),
    ("1h", 1000 - 3600),
    ("1d", 1000 - 86400),
    ("1.5s", 998.5),
    ("1970-01-01T00:00:05Z", 5),
    ("2026-11-27T09:30:45+08:00", 1795743045),
    ("@1795744000", 1795744000),
    ("@1795744000.5", 1795744000.5),
])
def test_since_one_meaning_for_every_caller(value, expected):
    assert _time.parse_since(value, now=1000.0) == expected


@pytest.mark.parametrize("bad, word", [
    ("yesterday", "not an ISO 8601 time"),
    ("2026-13-45T00:00:00Z", "not an ISO 8601 time"),
    (True, "errors_since"),
    ("@soon", "not a UNIX time"),
    ("5w", "not an ISO 8601 time"),
    # a bare UNIX time would be decades ago: refused, naming the @ form
    ("1795744000", "@1795744000"),
])
def test_bad_since_is_named(bad, word):
    with pytest.raises(ValueError, match=word) as info:
        _time.parse_since(bad, now=0, name="errors_since")
    assert "errors_since" in str(info.value)


def test_since_defaults_to_the_clock():
    assert abs(_time.parse_since("0") - _time.utc_now().timestamp()) < 5


def test_the_names_stamp_reads_back():
    assert _time.epoch(_time.stamp(1795743045)) == 1795743045
