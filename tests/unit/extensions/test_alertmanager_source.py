# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The Alertmanager event source: one event per alert, repeats of a fingerprint dropped."""
from __future__ import annotations

import importlib.util
from pathlib import Path

# the source needs aiohttp (tests/unit/requirements.txt): a missing one fails here, it is never skipped
import aiohttp  # noqa: F401  pylint: disable=unused-import

PATH = Path(__file__).resolve().parents[3] / "extensions/eda/plugins/event_source/alertmanager.py"
SPEC = importlib.util.spec_from_file_location("sre_alertmanager_source", PATH)
SOURCE = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(SOURCE)


def payload(*alerts):
    return {"status": "firing", "receiver": "sre", "groupKey": "g", "alerts": list(alerts)}


def test_repeat_of_a_firing_alert_is_dropped_and_resolved_goes_through():
    now = [0.0]
    dedupe = SOURCE.Deduper(60, clock=lambda: now[0])
    alert = {"status": "firing", "labels": {"alertname": "Down", "instance_host": "web1"}, "fingerprint": "abc"}
    first = SOURCE.events_of(payload(alert), dedupe, "instance_host")
    assert [e["alert"]["fingerprint"] for e in first] == ["abc"]
    assert first[0]["meta"] == {"hosts": "web1"}
    assert SOURCE.events_of(payload(alert), dedupe, "instance_host") == []
    assert len(SOURCE.events_of(payload(dict(alert, status="resolved")), dedupe, "instance_host")) == 1
    now[0] = 61.0
    assert len(SOURCE.events_of(payload(alert), dedupe, "instance_host")) == 1


def test_fingerprint_falls_back_to_the_labels_and_zero_turns_dedupe_off():
    alert = {"labels": {"b": "2", "a": "1"}}
    assert SOURCE.fingerprint(alert) == SOURCE.fingerprint({"labels": {"a": "1", "b": "2"}})
    dedupe = SOURCE.Deduper(0)
    assert len(SOURCE.events_of(payload(alert, alert), dedupe, "instance_host")) == 2
