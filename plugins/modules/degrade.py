#!/usr/bin/python
# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: degrade
short_description: Enable or leave a degraded mode (standby, static, cache snapshot, offline)
version_added: 0.1.0
description:
  - The runbook's stage 4 (degrade when recovery failed), with four options tried in turn (O(order)) until
    one verifies (O(verify)).
  - V(A) or V(standby) starts the standby service (compose profile C(standby), C(up -d --no-deps)), waits until it
    is healthy and switches the edge upstream to it (C(edge-mode standby), run in the edge container). Verified
    through the edge, every sample user gets at least C(incident_stack.min_recommendations) recommendations.
  - V(B) or V(static) recreates the service with C(DOWNGRADE_MODE=true) (a restart would not apply a changed
    environment). Verified directly and through the edge, every sample user gets the site-wide top N with
    C(source=static).
  - V(C) or V(cache_snapshot) puts the cached recommendations (C(recs:*)) of the newest snapshot C(dump-<ts>.rdb) in
    O(snapshot_dir) (taken by C(playbooks/diagnose.yml)) back into the live Redis without expiry, keeping fresher
    entries; nothing else changes and Redis is not restarted. The module reads the snapshot itself, since Redis drops
    expired entries when it loads a file. A marker file C(<state_dir>/degraded-cache-snapshot.json) records what was
    restored. It needs the service to answer (it serves the cache), else nothing is touched. Verified through the
    edge, every sample user is answered, from the cache for those whose entry came back.
  - V(D) or V(offline) switches the edge to C(offline). The edge answers C(/api/recommendations/...) with
    503 and a friendly JSON error while C(/health) through the edge stays truthful.
  - Which modes are on is observed (edge mode, the service container's C(DOWNGRADE_MODE), the standby
    container, the C(C) marker), so C(changed) and the diff come from the stack, not from what was run.
  - O(state=disabled) leaves every degraded mode, and refuses while the service is not verified healthy
    (C(/health) 200 and enough recommendations for every sample user). The service is switched back first
    (and the static mode put back if the service does not serve full recommendations), the edge last.
extends_documentation_fragment:
  - sre.incident.attributes
  - sre.incident.docker
attributes:
  check_mode:
    details: Observes the active modes and says what would be tried or switched off; nothing is changed.
  diff_mode:
    support: full
    details: The active degraded modes before and after.
  idempotent:
    support: full
    details: Enabling a mode that is on and verifies, or disabling when no mode is on, changes nothing.
options:
  state:
    description: V(enabled) turns a degraded mode on, V(disabled) returns to normal service.
    type: str
    choices: [enabled, disabled]
    default: enabled
  mode:
    description:
      - The mode to enable, by letter or name. V(auto) tries O(order) in turn.
      - Ignored with O(state=disabled), which switches off every mode.
    type: str
    choices: [auto, A, B, C, D, standby, static, cache_snapshot, offline]
    default: auto
  order:
    description: The options V(auto) tries, in this order (letters or names, each at most once).
    type: list
    elements: str
    default: [A, B, C, D]
  stack:
    description:
      - The one description of the stack, C(incident_stack). Uses C(name), C(project_dir), C(compose_files),
        C(service), C(service_port), C(standby), C(standby_profile), C(downgrade_env), C(edge), C(edge_config),
        C(base_url), C(edge_url), C(health_path), C(recommendations_path), C(sample_users), C(min_recommendations),
        C(recommendations_limit), C(thresholds.latency_ms), C(redis.service), C(redis.cache_keys),
        C(redis.cache_value_query) and C(state_dir).
    type: dict
    required: true
  verify:
    description:
      - Verify each option after it is applied; an option that does not verify is reverted and the next one
        tried. With V(false) the first option applied without error wins.
    type: bool
    default: true
  timeout:
    description: Seconds each option may take to be applied and verified (and the return to normal).
    type: float
    default: 60
  force:
    description: With O(state=disabled), leave degraded mode even though the service is not verified healthy.
    type: bool
    default: false
  snapshot_dir:
    description: Where option C looks for Redis snapshots. Default C(<stack.state_dir>/redis-snapshots).
    type: path
notes:
  - The module acts on the managed host that runs the stack; the snapshot directory and the marker file are
    on that host.
  - What each option needs, does, checks and reverts, in detail, is in the collection's C(docs/degraded_modes.md).
seealso:
  - module: sre.incident.compose_project
  - module: sre.incident.health_check
"""

EXAMPLES = r"""
- name: Degrade, trying the standby, static recommendations, the cache snapshot, then offline
  sre.incident.degrade:
    stack: "{{ incident_stack }}"
  register: degraded

- name: Prefer static recommendations, then offline
  sre.incident.degrade:
    stack: "{{ incident_stack }}"
    order: [static, offline]
    timeout: 45

- name: Back to normal, once the service is healthy again
  sre.incident.degrade:
    stack: "{{ incident_stack }}"
    state: disabled
"""

RETURN = r"""
degraded:
  description:
    - With O(state=enabled), whether a degraded mode serves users - RV(active_mode), verified (or, with
      O(verify=false), applied). False when no option verified, in check mode (nothing was applied), and with
      O(state=disabled).
  returned: always
  type: bool
  sample: true
summary:
  description: One line saying what serves users (or would, in check mode) and what was tried, for the output and the incident record.
  returned: always
  type: str
  sample: "degraded mode static (B) is on. Tried: standby (A): not applicable: no standby: incident_stack.standby is not set; static (B): applied and verified"
active_mode:
  description: The degraded mode this run enabled or found on (V(standby), V(static), V(cache_snapshot), V(offline)); null when none.
  returned: always
  type: str
  sample: static
active_option:
  description: The runbook letter of RV(active_mode) (V(A) to V(D)); null when none.
  returned: always
  type: str
  sample: B
active_modes:
  description: Every degraded mode observed on after the run (empty after O(state=disabled)).
  returned: always
  type: list
  elements: str
  sample: [static]
tried:
  description:
    - Each option tried (or, with O(state=disabled), switched off), in order, with C(option), C(mode), C(applied),
      C(verified), C(reverted), C(already_active), C(error) and C(measured) (what was seen, per sample user).
  returned: always
  type: list
  elements: dict
  sample: [{"option": "A", "mode": "standby", "applied": true, "verified": false, "reverted": true,
            "error": "standby recommendation-service-standby is not ready: exited(1)/none"},
           {"option": "B", "mode": "static", "applied": true, "verified": true, "reverted": false, "error": null}]
tried_summary:
  description: One line per entry of RV(tried).
  returned: always
  type: list
  elements: str
  sample: ["standby (A): applied, not verified, reverted: standby recommendation-service-standby is not ready: exited(1)/none"]
snapshot:
  description: The Redis snapshot option C restored (path on the managed host).
  returned: when option C was tried or is on
  type: str
  sample: /var/lib/sre-incident/recsys/redis-snapshots/dump-20261127T013045Z.rdb
snapshot_age_s:
  description: How old the snapshot option C restored is, in seconds.
  returned: when option C was tried or is on
  type: float
  sample: 3600.5
before:
  description: What was observed before (C(edge_mode), C(downgrade_mode), C(standby_running), C(cache_snapshot), C(active)).
  returned: always
  type: dict
after:
  description: What was observed after (same keys as RV(before)).
  returned: always
  type: dict
health:
  description: With O(state=disabled), the service's own checks (C(ok), C(problems), C(health_status), C(recommendations)).
  returned: with O(state=disabled)
  type: dict
would_try:
  description: In check mode, the options that would be tried in turn.
  returned: in check mode, when a mode would be enabled
  type: list
  elements: str
  sample: [A, B, C, D]
"""

from ansible_collections.sre.incident.plugins.module_utils import _degrade
from ansible_collections.sre.incident.plugins.module_utils._errors import InputError
from ansible_collections.sre.incident.plugins.module_utils._module import IncidentModule

ARGUMENT_SPEC = dict(
    state=dict(type="str", choices=["enabled", "disabled"], default="enabled"),
    mode=dict(type="str", choices=list(_degrade.MODE_CHOICES), default="auto"),
    order=dict(type="list", elements="str", default=list(_degrade.DEFAULT_ORDER)),
    stack=dict(type="dict", required=True),
    verify=dict(type="bool", default=True),
    timeout=dict(type="float", default=_degrade.DEFAULT_TIMEOUT),
    force=dict(type="bool", default=False),
    snapshot_dir=dict(type="path"),
)


def work(module):
    p = module.params
    if p["timeout"] <= 0:
        raise InputError("timeout must be > 0 seconds, got %s" % p["timeout"])
    mode = _degrade.normalize_mode(p["mode"])
    order = _degrade.normalize_order(p["order"])
    needs_c = p["state"] == "enabled" and ("C" in order if mode == "auto" else mode == "C")
    stack = _degrade.validate_stack(p["stack"], needs_c=needs_c, snapshot_dir=p["snapshot_dir"])
    ctx = _degrade.Context(module.connect(), module.run_command, stack, timeout=p["timeout"],
                           snapshot_dir=p["snapshot_dir"])
    if p["state"] == "disabled":
        return _degrade.disable(ctx, force=p["force"], check_mode=module.check_mode)
    return _degrade.enable(ctx, mode=mode, order=order, verify=p["verify"], check_mode=module.check_mode)


def main():
    IncidentModule(ARGUMENT_SPEC, docker=True).run(work)


if __name__ == "__main__":
    main()
