#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) sre.incident contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: lease
short_description: One responder at a time on a stack (the recovery lease and circuit breaker)
version_added: 0.1.0
description:
  - Takes, renews, releases or reads the recovery lease of a stack on the managed host, so that two
    recoveries never act on the same stack at once (SPEC "Everywhere").
  - The lease is C(lease.json) in O(state_dir) (C(owner), C(incident_id), C(acquired_at), C(expires_at),
    C(host), and C(operation) when given), read, checked and written under a C(flock) on C(lease.lock) there, and replaced atomically.
  - Also keeps the circuit breaker's history, C(ladder_runs.jsonl) in O(state_dir), one line per
    recovery-ladder run (see O(record_run)); the playbook stops automating when RV(breaker_open).
  - Take the lease in a C(block) and release it in its C(always) section.
extends_documentation_fragment:
  - sre.incident.attributes
  - sre.incident.attributes.here
options:
  state:
    description:
      - V(acquired) takes the lease when it is free or expired (an expired holder is returned in
        RV(taken_over)) and renews it (expiry now + O(ttl)) when O(incident_id) holds it (RV(renewed)); when another
        incident holds it unexpired, the task fails at once, naming the holder (owner, incident, operation, acquired,
        expires), in check mode too (saying the run would be refused).
      - V(released) gives the lease back if O(incident_id) holds it; otherwise nothing changes and a warning
        names the real holder.
      - V(present) only reads the lease and the breaker.
      - V(reset) closes an open circuit breaker after a human fixed the cause, writing into C(ladder_runs.jsonl)
        who (O(owner)) and why (O(reason)); only later runs count again. Nothing is written when no run counts.
    type: str
    choices: [acquired, released, present, reset]
    default: present
  state_dir:
    description:
      - Absolute directory on the managed host for the lease and the run history, one per stack, such as
        C(/var/lib/sre-incident/recsys). Created with mode C(0700) by O(state=acquired) when missing.
    type: path
    required: true
  incident_id:
    description:
      - The incident taking or releasing the lease. Required for V(released) (for a run outside any incident, the
        C(incident_id) of RV(lease) that its V(acquired) returned). For V(acquired), this or O(operation).
    type: str
  operation:
    description:
      - With O(state=acquired), what takes the lease (a playbook's name such as V(restore_backup)), recorded in the
        lease and shown to anyone refused.
      - Without O(incident_id), the lease is held under a new id unique to this run,
        C(<operation>-<owner>-<time>-<random>), returned as C(incident_id) of RV(lease), so two operators running the same
        playbook at once without an incident never both get the lease. Release it with that id.
    type: str
  owner:
    description: Who holds the lease (shown to anyone refused) or resets the breaker. Default E(USER) or V(automation).
    type: str
  reason:
    description: Why the breaker is reset, for example what was fixed. Required for O(state=reset).
    type: str
  purpose:
    description:
      - Whose ladder runs these are. The breaker counts only runs of the same purpose, so demo, test, bench
        and drill runs never open the breaker of real incidents, and a reset applies to its own purpose only.
    type: str
    choices: [incident, demo, test, bench, drill]
    default: incident
  host:
    description: Name recorded in the lease as the holder's host. Defaults to the managed host's hostname.
    type: str
  ttl:
    description: Seconds the lease lasts from when it is taken or renewed, so a dead responder blocks nobody for ever.
    type: int
    default: 1800
  record_run:
    description:
      - With O(state=released), append C({ts, incident_id, outcome, purpose}) to C(ladder_runs.jsonl) when this
        call releases this incident's lease. Releasing again records nothing, so a re-run does not count twice.
    type: bool
    default: false
  outcome:
    description: The outcome stored with the run (O(record_run)), for example V(resolved) or V(failed).
    type: str
  breaker_window:
    description: Seconds back from now in which ladder runs count for RV(recent_runs).
    type: int
    default: 3600
  breaker_max_runs:
    description: RV(breaker_open) is true when RV(recent_runs) reaches this number.
    type: int
    default: 3
attributes:
  check_mode:
    details:
      - Nothing is written and no directory is created; C(changed), RV(lease) and the diff show what would be.
      - V(acquired) reads the lease and fails, as it would for real, when another incident holds it.
  diff_mode:
    support: full
    details: The holder before and after.
  idempotent:
    support: partial
    details: Releasing twice changes nothing. Re-acquiring by the holder renews the lease and reports C(changed).
  platform:
    platforms: posix
notes:
  - C(changed) is computed from the lease file read before and after, never assumed.
seealso:
  - module: sre.incident.record
"""

EXAMPLES = r"""
- name: Recover the stack while holding the lease
  block:
    - name: Take the recovery lease
      sre.incident.lease:
        state: acquired
        state_dir: /var/lib/sre-incident/recsys
        incident_id: "{{ incident_id }}"
        owner: "{{ lookup('ansible.builtin.env', 'USER') | default('automation', true) }}"
        ttl: 1800
      register: recover_lease

    - name: Record a takeover of an expired lease
      sre.incident.record:
        state: event
        id: "{{ incident_id }}"
        stage: recover
        text: "took over an expired lease of {{ recover_lease.taken_over.incident_id }}"
        data:
          taken_over: "{{ recover_lease.taken_over }}"
      delegate_to: localhost
      when: recover_lease.taken_over

    - name: Stop when the circuit breaker is open
      ansible.builtin.fail:
        msg: "{{ recover_lease.recent_runs }} ladder runs within the hour: call a human"
      when: recover_lease.breaker_open
  always:
    - name: Give the lease back and count the ladder run
      sre.incident.lease:
        state: released
        state_dir: /var/lib/sre-incident/recsys
        incident_id: "{{ incident_id }}"
        record_run: true
        outcome: "{{ recover_outcome | default('unknown') }}"

- name: Restore a backup outside any incident, alone on the stack
  block:
    - name: Take the lease for this run (an id of its own, unique per run)
      sre.incident.lease:
        state: acquired
        state_dir: /var/lib/sre-incident/recsys
        operation: restore_backup
      register: restore_lease

    - name: Restore
      ansible.builtin.debug:
        msg: "restoring while {{ restore_lease.lease.incident_id }} holds the lease"
  always:
    - name: Give the lease back, unless this run did not take it
      sre.incident.lease:
        state: released
        state_dir: /var/lib/sre-incident/recsys
        incident_id: "{{ restore_lease.lease.incident_id }}"
      when: restore_lease.held_by_us | default(false) and not restore_lease.renewed
"""

RETURN = r"""
lease:
  description: The lease after the call (what it would be in check mode), or V(null) when nobody holds it.
  returned: always
  type: dict
  sample: {owner: alice, incident_id: INC-20261127-013045-p0-recommendation-service-3f9a,
           acquired_at: "2026-11-27T01:31:00.000Z", expires_at: "2026-11-27T02:01:00.000Z", host: web1}
held:
  description: Whether somebody holds the lease after the call.
  returned: always
  type: bool
held_by_us:
  description: Whether O(incident_id) holds the lease after the call.
  returned: always
  type: bool
renewed:
  description:
    - Whether O(state=acquired) found the lease already held by O(incident_id) and only renewed it. A run that did not
      take the lease (another run of the same incident did) should leave its release to that run.
  returned: always
  type: bool
taken_over:
  description: The expired lease that was taken over by O(state=acquired), else V(null). Record it in the incident.
  returned: always
  type: dict
run_recorded:
  description: The ladder run appended by O(record_run), else V(null).
  returned: always
  type: dict
  sample: {ts: "2026-11-27T01:58:00.000Z", incident_id: INC-20261127-013045-p0-recommendation-service-3f9a, outcome: resolved}
expires_in:
  description: Seconds until the lease expires, or V(null) when none is held.
  returned: always
  type: float
reset_recorded:
  description: The breaker reset appended by O(state=reset) (C(ts), C(by), C(reason), C(purpose), C(runs_forgiven)), else V(null).
  returned: always
  type: dict
  sample: {ts: "2026-11-27T02:10:00.000Z", reset: true, by: alice, reason: "disk cleaned, service fixed", purpose: incident,
           runs_forgiven: 3}
last_reset:
  description: The latest reset of this purpose's breaker, or V(null).
  returned: always
  type: dict
breaker_purpose:
  description: The purpose whose runs were counted (O(purpose)).
  returned: always
  type: str
  sample: incident
recent_runs:
  description: Ladder runs of O(purpose) recorded within O(breaker_window) seconds before now, after the latest reset.
  returned: always
  type: int
  sample: 1
breaker_open:
  description: Whether the circuit breaker is open (see O(breaker_max_runs)).
  returned: always
  type: bool
runs_corrupt_lines:
  description: Line numbers of C(ladder_runs.jsonl) that could not be read (not counted).
  returned: always
  type: list
  elements: int
lease_path:
  description: Path of the lease file on the managed host.
  returned: always
  type: str
runs_path:
  description: Path of the ladder-run history on the managed host.
  returned: always
  type: str
holder:
  description: On refusal only, the lease that blocks this incident.
  returned: failure
  type: dict
"""

from ansible_collections.sre.incident.plugins.module_utils._lease import PURPOSES, STATES, run
from ansible_collections.sre.incident.plugins.module_utils._module import IncidentModule

ARGUMENT_SPEC = dict(
    state=dict(type="str", choices=list(STATES), default="present"),
    state_dir=dict(type="path", required=True),
    incident_id=dict(type="str"),
    operation=dict(type="str"),
    owner=dict(type="str"),
    host=dict(type="str"),
    ttl=dict(type="int", default=1800),
    record_run=dict(type="bool", default=False),
    outcome=dict(type="str"),
    reason=dict(type="str"),
    purpose=dict(type="str", choices=list(PURPOSES), default="incident"),
    breaker_window=dict(type="int", default=3600),
    breaker_max_runs=dict(type="int", default=3),
)


def work(module):
    result, warnings = run(module.params, check_mode=module.check_mode)
    return dict(result, warnings=warnings)


def main(here=None):
    module = IncidentModule(ARGUMENT_SPEC, here=here, required_if=[
        ("state", "acquired", ("incident_id", "operation"), True), ("state", "released", ("incident_id",)), ("state", "reset", ("reason",))])
    return module.run(work, context="lease in %s" % module.params["state_dir"])


if __name__ == "__main__":
    main()
