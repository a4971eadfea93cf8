# -*- coding: utf-8 -*-
# Copyright (c) sre.incident contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""SLA part of _severity (SPEC SEV-2, SEV-3)."""

from __future__ import annotations

import datetime

import pytest
from hypothesis import given, strategies as st

from ansible_collections.sre.incident.plugins.module_utils import _severity as sev
from ansible_collections.sre.incident.plugins.module_utils._time import parse_ts

START = "2026-11-27T01:30:45Z"


@pytest.mark.parametrize("severity, respond, resolve", [
    ("P0", 300, 1800),
    ("P1", 900, 7200),
    ("P2", 86400, 604800),
    ("P3", None, None),
    ("p0", 300, 1800),
])
def test_default_sla(severity, respond, resolve):
    assert sev.sla_for(severity) == {"respond": respond, "resolve": resolve}


def test_overrides_replace_kind_by_kind():
    assert sev.sla_for("P0", {"P0": {"respond": 120}}) == {"respond": 120, "resolve": 1800}
    assert sev.sla_for("P1", {"P0": {"respond": 120}}) == {"respond": 900, "resolve": 7200}
    assert sev.sla_for("P3", {"p3": {"resolve": 3600}}) == {"respond": None, "resolve": 3600}
    assert sev.sla_for("P2", {"P2": {"resolve": None}}) == {"respond": 86400, "resolve": None}


@pytest.mark.parametrize("overrides, needle", [
    ({"P9": {"respond": 1}}, "P9"),
    ({"P0": {"repsond": 1}}, "repsond"),
    ({"P0": {"respond": -1}}, "-1"),
    ({"P0": {"respond": "soon"}}, "soon"),
    ({"P0": {"respond": True}}, "True"),
    ({"P0": 5}, "5"),
    (["P0"], "P0"),
])
def test_bad_overrides_name_the_value(overrides, needle):
    with pytest.raises(ValueError, match=needle):
        sev.sla_for("P0", overrides)


@pytest.mark.parametrize("bad", ["P4", "SEV1", "", None, 0])
def test_unknown_severity_is_named(bad):
    with pytest.raises(ValueError) as info:
        sev.sla_for(bad)
    assert repr(bad) in str(info.value)


def test_deadlines_p0():
    assert sev.deadlines("P0", START) == {"respond": "2026-11-27T01:35:45.000Z", "resolve": "2026-11-27T02:00:45.000Z"}


def test_deadlines_p3_none_and_offsets_are_utc():
    assert sev.deadlines("P3", START) == {"respond": None, "resolve": None}
    assert sev.deadlines("P1", "2026-11-27T09:30:45+08:00")["respond"] == "2026-11-27T01:45:45.000Z"


def test_deadline_status_boundary_is_met():
    deadline = "2026-11-27T01:35:45.000Z"
    assert sev.deadline_status(deadline, "2026-11-27T01:35:45.000Z") == "met"
    assert sev.deadline_status(deadline, "2026-11-27T01:35:45.001Z") == "missed"
    assert sev.deadline_status(deadline, "2026-11-27T01:35:44.999Z") == "met"
    assert sev.deadline_status(deadline, None) == "open"
    assert sev.deadline_status(deadline, None, now="2026-11-27T01:35:45.000Z") == "open"
    assert sev.deadline_status(deadline, None, now="2026-11-27T01:35:45.001Z") == "missed"
    assert sev.deadline_status(None, "2026-11-27T01:35:45Z") == "none"


def test_time_left():
    assert sev.time_left("2026-11-27T01:35:45Z", "2026-11-27T01:30:45Z") == 300
    assert sev.time_left("2026-11-27T01:35:45Z", "2026-11-27T01:36:45.500Z") == -60.5
    assert sev.time_left(None, START) is None


@given(st.sampled_from(["P0", "P1", "P2"]),
       st.datetimes(min_value=datetime.datetime(2000, 1, 1), max_value=datetime.datetime(2100, 1, 1)),
       st.integers(min_value=0, max_value=10 ** 7))
def test_deadline_is_start_plus_sla(severity, start, respond):
    start = start.replace(microsecond=(start.microsecond // 1000) * 1000, tzinfo=datetime.timezone.utc)
    got = sev.deadlines(severity, start, {severity: {"respond": respond}})
    assert parse_ts(got["respond"]) - start == datetime.timedelta(seconds=respond)
    assert sev.deadline_status(got["respond"], got["respond"]) == "met"
