# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The sre.incident.alert_clock filter (SPEC MON-1): the playbooks' first check of the alert's start."""
from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.sre.incident.plugins.filter.alert_clock import alert_clock


def test_a_malformed_time_fails_the_task_naming_it():
    with pytest.raises(AnsibleFilterError, match="alert_started_at 'garbage' is not an ISO 8601 timestamp"):
        alert_clock("garbage")


def test_a_future_start_of_the_alert_fails_the_task_naming_it():
    with pytest.raises(AnsibleFilterError, match=r"sre_alert.startsAt '2999-01-01T00:00:00Z' is in the future"):
        alert_clock("", {"labels": {"alertname": "SreServiceDown"}, "startsAt": "2999-01-01T00:00:00Z"})


def test_nothing_given_is_no_start_and_an_alert_gives_its_start():
    assert alert_clock("", None) == {"started_at": None, "alert": None}
    got = alert_clock(None, {"labels": {"alertname": "SreServiceDown"}, "startsAt": "2026-01-01T00:00:00.5Z",
                             "fingerprint": "f00"})
    assert got["started_at"] == "2026-01-01T00:00:00.500Z"
    assert got["alert"]["name"] == "SreServiceDown" and got["alert"]["fingerprint"] == "f00"
