# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
name: ladder_plan
short_description: The recovery ladder's next step, against the SLA clock
version_added: 0.1.0
description:
  - The runbook's ladder is V(restart_service), V(restart_dependencies), V(rebuild); when only
    the edge fails (O(kind) V(edge_down) or V(edge_failing)) it starts with V(repair_edge).
    Given the last rung tried, returns the rungs still to try and whether the next one may
    be climbed.
  - A rung is climbed only if what is left of the resolve deadline covers its window plus the
    verification budget; otherwise C(climb) is false and C(reason) says why, so the playbook
    degrades and escalates instead of spending the last minutes on a rung that cannot finish.
  - Given O(previous) (the step before) and the checks registered after its rung (O(health), O(edge)),
    it also says what that rung did (RV(_value.done)) and whether the ladder goes on (RV(_value.decision)),
    and sums the ladder up so far (RV(_value.result)). The role C(sre.incident.recover) runs the rung it names.
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
  previous: {description: "The step before (this filter's result), or empty for the first step.", type: dict}
  health: {description: The registered P(sre.incident.health_check#module) result after the previous step's rung., type: dict}
  edge: {description: The registered P(sre.incident.edge#module) result after the previous step's rung., type: dict}
  dry_run: {description: "Check mode: a rung climbed acts on nothing, so the ladder says what it would do and ends.",
            type: bool, default: false}
  lease: {description: The P(sre.incident.lease#module) result; an open circuit breaker ends the ladder before any rung., type: dict}
  breaker_window: {description: "The breaker's window in seconds, for the reason.", type: int}
  breaker_max_runs: {description: "The breaker's limit of runs, for the reason.", type: int}
  engine_restarting: {description: "The engine's restart policy is bringing the service back (detect's C(restart_policy.restarting)).",
                      type: bool, default: false}
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
    decision: {description: "V(climb), V(degrade), or null when the ladder already ended (nothing to record).", type: str}
    started: {description: UNIX time the climbed rung starts (null unless climbing)., type: float}
    ends_at: {description: "UNIX time the climbed rung's window ends (null unless climbing): the waits and the edge's repair
                after its action get what is left of it (P(sre.incident.edge#module)'s O(sre.incident.edge#module:deadline)).",
              type: float}
    service_state: {description: "The P(sre.incident.compose_service#module) state the climbed rung brings the service to:
                      V(started) while the engine's restart policy brings it back and no rung ran yet (a restart on top would
                      only start its clock again), else V(restarted); null unless climbing.", type: str}
    done: {description: "What the previous step's rung did (C(rung), C(result), C(elapsed_s), C(service_answers),
             C(edge_serves), C(edge_actions)), null when no rung ran.", type: dict}
    done_text: {description: "What the previous step's rung did, in words (null when no rung ran).", type: str}
    ended: {description: "Whether the ladder ended (fixed, dry run, breaker, clock or no rung left).", type: bool}
    result: {description: "The ladder so far: C(fixed), C(rung), C(fixed_at), C(rungs_tried), C(breaker_open), C(escalate),
               C(dry_run), C(would), C(reason).", type: dict}
"""

from ansible_collections.sre.incident.plugins.module_utils._ladder import step
from ansible_collections.sre.incident.plugins.plugin_utils._filter import decision


@decision("ladder_plan")
def ladder_plan(resolve_deadline, windows=None, verify_budget=0, after=None, kind=None, stack=None, previous=None,
                health=None, edge=None, dry_run=False, lease=None, breaker_window=None, breaker_max_runs=None,
                engine_restarting=False):
    return step(previous or None, health, edge, bool(dry_run), lease, breaker_window, breaker_max_runs,
                resolve_deadline or None, windows, verify_budget, after or None, kind=kind or None, stack=stack,
                engine_restarting=bool(engine_restarting))


class FilterModule:
    def filters(self):
        return {"ladder_plan": ladder_plan}
