#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) sre.incident contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: paging
short_description: Remember which findings were paged, so a scheduled run pages once per finding
version_added: 0.4.0
description:
  - The scheduled diagnostics (C(playbooks/diagnose.yml)) page on a P0 or P1 verdict once per finding
    (SPEC MON-4). This module keeps that memory in O(path) and says which findings are new.
  - "A finding is identified by O(host), its C(check), its C(kind) and its C(reason) with the numbers
    taken out: C(disk / 87 % full) and C(disk / 88 % full) are the same finding, C(dependency redis is
    exited) and C(dependency postgres is exited) are two."
  - Only critical findings page (RV(findings)); a finding is new when it was never paged, or last paged
    O(window) seconds ago or longer.
  - "It also remembers the incident each finding of a lasting condition is recorded in (O(state=kept) or
    O(state=paged) with O(incident_id)): the next run of the same condition gets it back in RV(incident_id)
    and continues that incident instead of opening another. A finding no longer found is forgotten there
    (its condition is over); a condition that got worse than the incident's severity gets none back."
  - "The file is on the managed host because under AWX each job runs in a fresh execution environment:
    the controller forgets between two scheduled runs. It is written under a lock (two runs at once page
    once), replaced atomically, mode 0600; entries older than 7 days (or the window, if longer) are dropped."
extends_documentation_fragment:
  - sre.incident.attributes
attributes:
  check_mode:
    details: With O(state=paged) or O(state=kept), reports what it would remember and writes nothing.
  diff_mode:
    support: full
    details: The remembered pages before and after.
  idempotent:
    support: full
    details: Paging or keeping the same findings with the same incident again within the window changes nothing.
  platform:
    platforms: posix
options:
  path:
    description: The memory, a JSON file on the managed host (usually C(<incident_stack.state_dir>/pages.json)).
    type: path
    required: true
  host:
    description: The host the findings are about (usually C(inventory_hostname)).
    type: str
    required: true
  severity:
    description: The verdict's severity; only V(P0) and V(P1) page (RV(page)). Kept with the incident.
    type: str
    required: true
    choices: [P0, P1, P2, P3, none]
  findings:
    description: Every finding of the run, each with C(check), C(level), C(kind), C(reason) (as C(diagnose_result.findings) has them).
    type: list
    elements: dict
    required: true
  window:
    description: Seconds during which a paged finding is not paged again. V(0) pages on every run.
    type: float
    default: 3600
  incident_id:
    description: The incident of this run (opened or continued), kept with the findings and named by the page.
    type: str
  state:
    description:
      - V(checked) reads only.
      - V(kept) keeps O(incident_id) with the findings and forgets the findings of O(host) no longer found.
      - V(paged) does the same and remembers the new critical findings as paged now (not those within the window).
    type: str
    choices: [checked, kept, paged]
    default: checked
seealso:
  - module: sre.incident.notify
  - module: sre.incident.diagnose
"""

EXAMPLES = r"""
- name: Which findings were not paged within the hour?
  sre.incident.paging:
    path: "{{ incident_stack.state_dir }}/pages.json"
    host: "{{ inventory_hostname }}"
    severity: "{{ diagnose_result.severity }}"
    findings: "{{ diagnose_result.findings }}"
    window: 3600
  register: diagnose_page_plan
  # diagnose_page_plan.page, .new (what to page), .playbook (to name), .incident_id (the incident to continue)

- name: Remember them once the channels were told
  sre.incident.paging:
    state: paged
    path: "{{ incident_stack.state_dir }}/pages.json"
    host: "{{ inventory_hostname }}"
    severity: "{{ diagnose_result.severity }}"
    findings: "{{ diagnose_result.findings }}"
    incident_id: INC-20261127-013045-p0-recommendation-service-localhost-3f9a
"""

RETURN = r"""
page:
  description: The severity is V(P0) or V(P1) and some critical finding is new.
  returned: always
  type: bool
  sample: true
findings:
  description: The critical findings of O(findings), the ones that page.
  returned: always
  type: list
  elements: dict
playbook:
  description: The playbook a page names (V(p0_recover.yml) for V(P0), V(p1_mitigate.yml) for V(P1)), else V(null).
  returned: always
  type: str
  sample: p0_recover.yml
incident_id:
  description:
    - The incident kept with one of O(findings) by an earlier run (the newest), when it was opened for a
      severity as bad as O(severity) or worse; else V(null). A scheduled run continues it.
  returned: always
  type: str
  sample: INC-20261127-013045-p0-recommendation-service-localhost-3f9a
new:
  description: The findings not paged within the window, each with its C(key).
  returned: always
  type: list
  elements: dict
  sample: [{"check": "service_running", "kind": "down", "level": "critical", "reason": "the service is exited", "key": "4f1c..."}]
repeated:
  description: The findings paged within the window, each with C(key), C(last_paged), C(count) and C(incident_id).
  returned: always
  type: list
  elements: dict
remembered:
  description: Keys of the findings remembered as paged by this call (would be, in check mode).
  returned: always
  type: list
  elements: str
path:
  description: The memory's file.
  returned: always
  type: str
window:
  description: The window in seconds.
  returned: always
  type: float
"""

from ansible_collections.sre.incident.plugins.module_utils import _paging
from ansible_collections.sre.incident.plugins.module_utils._module import IncidentModule

ARGUMENT_SPEC = dict(
    path=dict(type="path", required=True),
    host=dict(type="str", required=True),
    severity=dict(type="str", required=True, choices=["P0", "P1", "P2", "P3", "none"]),
    findings=dict(type="list", elements="dict", required=True),
    window=dict(type="float", default=float(_paging.DEFAULT_WINDOW_S)),
    incident_id=dict(type="str"),
    state=dict(type="str", choices=list(_paging.STATES), default="checked"),
)


def main():
    module = IncidentModule(ARGUMENT_SPEC)
    module.run(lambda m: _paging.run(m.params, check_mode=m.check_mode), context="paging state %s" % module.params["path"])


if __name__ == "__main__":
    main()
