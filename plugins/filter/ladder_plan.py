# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
name: ladder_plan
short_description: The next rung of the recovery ladder, against the SLA clock
version_added: 0.1.0
description:
  - The runbook's ladder is V(restart_service), V(restart_dependencies), V(rebuild); when only
    the edge fails (O(kind) V(edge_down) or V(edge_failing)) it starts with V(repair_edge).
    Given the last rung tried, returns the rungs still to try and whether the next one may
    be climbed.
  - A rung is climbed only if what is left of the resolve deadline covers its window plus the
    verification budget; otherwise C(climb) is false and C(reason) says why, so the playbook
    degrades and escalates instead of spending the last minutes on a rung that cannot finish.
options:
  _input:
    description: The resolve deadline (ISO 8601), or empty for none.
    type: str
    required: true
  windows:
    description: Seconds per window (V(repair_edge), V(restart_service), V(restart_dependencies),
      V(restart_service_after_dependencies), V(rebuild)); missing ones take the runbook's values.
    type: dict
  verify_budget:
    description: Seconds to keep for the verification after a rung.
    type: float
    default: 0
  after:
    description: The last rung tried (resume), or empty to start at the bottom.
    type: str
  kind:
    description: Detect's kind of failure; V(edge_down) and V(edge_failing) start the ladder with V(repair_edge).
    type: str
  stack:
    description: C(incident_stack), for the names in RV(_value.next_text).
    type: dict
"""

EXAMPLES = r"""
- name: Decide whether the next rung fits in the time left
  ansible.builtin.set_fact:
    recover_plan: >-
      {{ record_incident.deadlines.resolve | sre.incident.ladder_plan(windows=recover_ladder_windows,
         verify_budget=30, after=record_incident.last_rung) }}
"""

RETURN = r"""
_value:
  description: The plan.
  type: dict
  contains:
    rungs: {description: The rungs still to try., type: list, elements: str}
    next: {description: The next rung (null when the ladder is exhausted)., type: str}
    climb: {description: Whether the next rung may be climbed., type: bool}
    time_left_s: {description: Seconds left on the resolve deadline (null without one)., type: float}
    budget_s: {description: The next rung's window., type: float}
    next_text: {description: "What the next rung does, in words (for example C(restart recommendation-service))", type: str}
    needed_s: {description: The next rung's window plus the verification budget., type: float}
    reason: {description: One line for the record., type: str}
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.sre.incident.plugins.module_utils._ladder import plan


def ladder_plan(resolve_deadline, windows=None, verify_budget=0, after=None, kind=None, stack=None):
    try:
        return plan(resolve_deadline or None, windows=windows, verify_budget=verify_budget, after=after or None,
                    kind=kind or None, stack=stack)
    except ValueError as exc:
        raise AnsibleFilterError(str(exc)) from exc


class FilterModule:
    def filters(self):
        return {"ladder_plan": ladder_plan}
