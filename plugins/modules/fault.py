# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
module: fault
short_description: Inject a real fault into a staging stack for a drill, or roll it back
version_added: 0.3.0
description:
  - The fault catalogue of the drills (SPEC DR-1, DR-2). Each fault is real and has its rollback
    (see O(name)); the playbook C(playbooks/drill.yml) injects one, lets the collection find and fix
    it, and always rolls it back.
  - O(state=injected) injects the fault unless it is injected already; O(state=rolled_back) undoes it
    and is a no-op when nothing is injected, so it is safe to call at any time;
    O(state=present) only reports whether the fault is injected.
  - C(changed) comes from observing the fault before and after (container status, the Redis key,
    the saved copy of C(item_scores), the helper's connections in C(pg_stat_activity), the fill file),
    never from a command's exit code.
  - "Refusal (DR-4): before anything is read or touched, the module fails when O(environment) is
    V(production) or the marker file C(/etc/sre-incident/production) exists on the managed host."
author:
  - SRE incident team (@sre-incident)
extends_documentation_fragment:
  - sre.incident.attributes
  - sre.incident.docker
attributes:
  check_mode:
    support: full
    details: Observes the fault and reports what would be done; touches nothing.
  diff_mode:
    support: full
    details: Shows whether the fault is injected before and after.
  idempotent:
    support: full
    details: A second O(state=injected) or O(state=rolled_back) finds the fault already in that state.
  platform:
    platforms: posix
options:
  name:
    description:
      - The fault.
      - V(app_crash) kills the service's container (SIGKILL); rollback starts it.
      - V(app_hang) pauses the service's container; rollback unpauses it.
      - V(redis_down), V(postgres_down) stop the dependency; rollback starts it and waits until it is healthy.
      - V(cache_wipe) (empty results) saves the rows of C(item_scores) into C(sre_drill.item_scores_saved), empties
        C(item_scores) and deletes the cached lists C(recs:*); rollback puts the saved rows back exactly, drops the
        copy and deletes C(recs:*).
      - V(latency) sets the Redis key C(recsys:delay_ms) to O(delay_ms); rollback deletes the key.
      - V(db_connections_exhausted) (the runbook's connection leak) starts a helper process in the service's own
        container that opens connections with the service's database settings until all but O(spare_connections) of
        the slots the application may use (C(max_connections) minus C(superuser_reserved_connections)) are held,
        so connections are near C(max_connections) and some requests fail. Restarting the service ends the leak, as in the
        runbook; rollback terminates the connections (the helper exits).
      - V(disk_fill) fills the bounded log volume (O(log_dir)) of the service's container with one file; rollback
        deletes it.
    type: str
    required: true
    choices: [app_crash, app_hang, redis_down, postgres_down, cache_wipe, latency, db_connections_exhausted, disk_fill]
  state:
    description: V(injected), V(rolled_back), or V(present) to only report.
    type: str
    choices: [present, injected, rolled_back]
    default: present
  stack:
    description: The stack description C(incident_stack) (compose project, service, database and Redis services).
    type: dict
    required: true
  environment:
    description:
      - The environment of the managed host, normally C(incident_environment) of the inventory.
        V(production) makes the module fail before touching anything.
    type: str
    default: ""
  delay_ms:
    description: The latency injected by V(latency), in milliseconds.
    type: int
    default: 800
  spare_connections:
    description: Connection slots of the application that V(db_connections_exhausted) leaves free.
    type: int
    default: 5
  hold_seconds:
    description: The longest time the connection helper lives, a safety net should the rollback never run.
    type: int
    default: 1800
  log_dir:
    description: The mount point of the bounded log volume in the service's container.
    type: str
    default: /var/log/recsys
  max_fill_mb:
    description: V(disk_fill) refuses to fill a file system larger than this (only a bounded volume is filled).
    type: int
    default: 256
  timeout:
    description: Seconds to wait for a started container to be ready, or for connections to be opened or released.
    type: float
    default: 60
  checksum:
    description: Also return RV(checksum), row counts and md5 of every row of O(checksum_tables) (read-only).
    type: bool
    default: false
  checksum_tables:
    description: The tables of RV(checksum).
    type: list
    elements: str
    default: [items, users, interactions, item_scores]
seealso:
  - module: sre.incident.compose_service
"""

EXAMPLES = r"""
- name: Inject added latency on a staging host
  sre.incident.fault:
    name: latency
    delay_ms: 800
    state: injected
    stack: "{{ incident_stack }}"
    environment: "{{ incident_environment | default('') }}"

- name: Roll it back (safe when nothing is injected)
  sre.incident.fault:
    name: latency
    state: rolled_back
    stack: "{{ incident_stack }}"
    environment: "{{ incident_environment | default('') }}"

- name: Data checksum of the stack's database (DR-3)
  sre.incident.fault:
    name: cache_wipe
    state: present
    checksum: true
    stack: "{{ incident_stack }}"
  register: drill_checksum
"""

RETURN = r"""
fault:
  description: The fault (O(name)).
  returned: success
  type: str
  sample: latency
state:
  description: The O(state) applied.
  returned: success
  type: str
  sample: injected
severity:
  description: >-
    The severity the fault is expected to raise: V(P0) faults (the service down) are answered by C(p0_recover.yml),
    V(P1) faults by C(triage.yml), which measures and classifies.
  returned: success
  type: str
  sample: P1
description:
  description: What the fault does.
  returned: success
  type: str
  sample: added latency on every recommendation (Redis key recsys:delay_ms)
injected:
  description: Whether the fault is injected after the task (in check mode, what it would be).
  returned: success
  type: bool
  sample: true
before:
  description: What was observed before, with C(injected) and a C(detail) text.
  returned: success
  type: dict
  sample: {"injected": false, "detail": "recsys:delay_ms = None", "delay_ms": null}
after:
  description: What was observed after.
  returned: success
  type: dict
  sample: {"injected": true, "detail": "recsys:delay_ms = 800", "delay_ms": "800"}
actions:
  description: What was done, in order (in check mode, what would be done).
  returned: success
  type: list
  elements: str
  sample: ["set recsys:delay_ms = 800"]
rollback:
  description: How to roll the fault back, as a module call (C(module), C(args)) and a C(text).
  returned: success
  type: dict
  sample: {"module": "sre.incident.fault", "args": {"name": "latency", "state": "rolled_back"}, "text": "redis-cli DEL recsys:delay_ms"}
checksum:
  description: With O(checksum=true), C(tables) (per table C(rows) and C(md5)) and one C(md5) over them; else V(null).
  returned: success
  type: dict
  sample: {"md5": "0f3c...", "tables": {"items": {"rows": 60, "md5": "9a1b..."}}}
"""

from ansible_collections.sre.incident.plugins.module_utils import _fault
from ansible_collections.sre.incident.plugins.module_utils._module import IncidentModule

ARGUMENT_SPEC = dict(
    name=dict(type="str", required=True, choices=sorted(_fault.FAULTS)),
    state=dict(type="str", choices=list(_fault.STATES), default="present"),
    stack=dict(type="dict", required=True),
    environment=dict(type="str", default=""),
    delay_ms=dict(type="int", default=800),
    spare_connections=dict(type="int", default=5),
    hold_seconds=dict(type="int", default=1800),
    log_dir=dict(type="str", default="/var/log/recsys"),
    max_fill_mb=dict(type="int", default=256),
    timeout=dict(type="float", default=60.0),
    checksum=dict(type="bool", default=False),
    checksum_tables=dict(type="list", elements="str", default=list(_fault.DEFAULT_TABLES)),
)


def work(module):
    p = module.params
    # a production host is refused, and bad input named, before the engine is asked anything
    _fault.refuse_production(p["environment"])
    _fault.validate(p)
    return _fault.run(p, _fault.Target(module.connect(), p["stack"]["name"]), check_mode=module.check_mode)


def main():
    IncidentModule(ARGUMENT_SPEC, docker=True).run(work)


if __name__ == "__main__":
    main()
