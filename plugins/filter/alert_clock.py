# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
name: alert_clock
short_description: The start of an incident from the alert that started the run
version_added: 0.4.0
description:
  - "Returns C({started_at, alert}) for M(sre.incident.record) (SPEC MON-1): C(started_at) is
    the time given by hand or by AWX (C(alert_started_at)), else the C(startsAt) of the
    Alertmanager alert EDA handed on (C(sre_alert)), else V(null) (the incident then starts at its
    detection). C(alert) keeps the alert's name, fingerprint, source, start and labels, V(null)
    without an alert."
  - A time that is not ISO 8601, or more than 60 seconds after the controller's clock, fails,
    naming the variable it came from (C(alert_started_at) or C(sre_alert.startsAt)). The playbooks
    call this first, so a bad time stops the run before anything changes.
options:
  _input:
    description: The given start, C(alert_started_at) (ISO 8601); empty or V(null) for none.
    type: str
    required: true
  alert:
    description: The alert (C(sre_alert)), a mapping or its JSON text; empty or V(null) for none.
    type: raw
"""

EXAMPLES = r"""
- name: Check the alert's start before anything changes
  ansible.builtin.set_fact:
    record_clock: "{{ alert_started_at | default('') | sre.incident.alert_clock(alert=sre_alert | default(none)) }}"
"""

RETURN = r"""
_value:
  description: C(started_at) (ISO 8601 UTC, or V(null)) and C(alert) (C(name fingerprint source starts_at labels), or V(null)).
  type: dict
"""

from ansible_collections.sre.incident.plugins.module_utils._record import alert_clock as _alert_clock
from ansible_collections.sre.incident.plugins.plugin_utils._filter import decision


@decision("alert_clock")
def alert_clock(alert_started_at, alert=None):
    return _alert_clock(alert_started_at, alert)


class FilterModule:
    def filters(self):
        return {"alert_clock": alert_clock}
