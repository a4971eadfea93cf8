# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
name: p0_outcome
short_description: How a P0 ends, from the ladder, the verification and the degraded mode
version_added: 0.1.0
description:
  - A P0 is resolved only when the ladder fixed it and the verification after the fix passed (users are
    answered through the edge). Otherwise it ends degraded when O(degrade) says a degraded mode serves
    users, and escalated when not.
options:
  _input:
    description: The ladder's result, C(recover_result) of the role C(sre.incident.recover).
    type: dict
    required: true
  verify:
    description: The P(sre.incident.verify#module) result after the fix (C(verify_result)); empty when it did not run.
    type: dict
  degrade:
    description: The P(sre.incident.degrade#module) result (C(degrade_result)); empty before the degraded mode was tried.
    type: dict
"""

EXAMPLES = r"""
- name: Decide whether the P0 is resolved
  ansible.builtin.set_fact:
    p0: "{{ recover_result | sre.incident.p0_outcome(verify=verify_result | default({})) }}"
"""

RETURN = r"""
_value:
  description: The P0's outcome.
  type: dict
  contains:
    resolved: {description: Whether the ladder fixed it and the fix verified., type: bool}
    outcome: {description: "V(resolved), V(degraded) or V(escalated), as the record closes; V(escalated) for an
                unresolved P0 until O(degrade) says a degraded mode serves users.", type: str}
    degraded_mode: {description: The degraded mode that serves users (null unless V(degraded))., type: str}
    reason: {description: "The ladder's reason, and why a fix did not count when it did not verify.", type: str}
    summary: {description: "The reason and, unless resolved, which degraded mode serves users or that none does: the
                escalation's and the record's text.", type: str}
    notice: {description: "The one notice the channels get about how the P0 ended - V(resolved), else V(escalate) (a
               degraded mode keeps users served, the service still needs a human).", type: str}
"""

from ansible_collections.sre.incident.plugins.module_utils._ladder import p0_outcome as decide
from ansible_collections.sre.incident.plugins.plugin_utils._filter import decision


@decision("p0_outcome")
def p0_outcome(ladder, verify=None, degrade=None):
    return decide(ladder, verify or None, degrade or None)


class FilterModule:
    def filters(self):
        return {"p0_outcome": p0_outcome}
