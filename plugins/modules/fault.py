# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
module: fault
short_description: Inject a real fault into a staging stack for a drill, or roll it back
version_added: 0.3.0
description:
  - The fault catalogue of the drills (SPEC DR-1, DR-2, GEN-5). Each fault is real, has its rollback (see O(name)),
    and uses only what every stack has - the Docker engine, C(nsenter), C(tc), C(ip) and C(iptables) on the managed host, stock
    tools inside the containers (C(sh), C(dd), C(df), C(psql), C(redis-cli)) - never a hook in the application.
    The playbook C(playbooks/drill.yml) injects one, lets the collection find and fix it, and always rolls it back.
  - C(changed) comes from observing the fault before and after (container status, the qdisc in the service's network
    namespace, the busy loops in its process list, the keys of Redis, the sessions in C(pg_stat_activity), the fill
    file), never from a command's exit code.
  - "Refusal (DR-4): before anything is read or touched, the module fails when O(environment) is
    V(production) or the marker file C(/etc/sre-incident/production) exists on the managed host."
extends_documentation_fragment:
  - sre.incident.attributes
  - sre.incident.docker
attributes:
  check_mode:
    details: Observes the fault and reports what would be done; touches nothing.
  diff_mode:
    support: full
    details: Shows whether the fault is injected before and after.
  idempotent:
    support: full
    details: A second O(state=injected) or O(state=rolled_back) finds the fault already in that state.
notes:
  - "V(latency) runs C(nsenter -t PID -n tc ...) on the managed host: it must be root, have C(nsenter) (util-linux),
    C(tc), C(ip) (iproute2) and C(iptables), and see the engine's processes (a managed host that is itself a container needs
    C(--pid host) and the capabilities C(SYS_ADMIN), C(NET_ADMIN), C(SYS_PTRACE))."
  - "Restarting or recreating the service's container gives it a new network namespace: that removes the V(latency)
    fault (the rollback then finds nothing to undo). The V(cpu_pressure) loops and the V(db_connections_exhausted)
    sessions end with their container too."
options:
  name:
    description:
      - The fault.
      - V(app_crash) kills the service's container (SIGKILL); rollback starts it.
      - V(app_hang) pauses the service's container; rollback unpauses it.
      - V(redis_down), V(postgres_down) stop the dependency; rollback starts it and waits until it is healthy.
      - V(latency) slows every answer of the service from the managed host, in the service container's network
        namespace - an C(htb) root qdisc whose filter picks the packets from the service's port (C(service_port)), so
        the service's own connections to PostgreSQL and Redis are not slowed and C(/health) stays truthful. With C(netem)
        in the kernel those packets are delayed O(delay_ms)/2 each (a new connection pays it twice); without it each
        client connection gets its own rate-capped class (256 classes, by client port), the segments of new connections
        to the service's port are clamped to 200 bytes (C(iptables) C(TCPMSS) on the clients' SYNs) and C(gso_max_segs) is
        1 so that an answer is several packets, and the rate is calibrated with one measurement of the sample users'
        recommendations (slowed further when they are clearly faster than asked; a loaded machine only makes them slower)
        to make them take about O(delay_ms). Rollback deletes the qdisc and the clamp and puts C(gso_max_segs) back as
        read before (saved in C(incident_stack.state_dir)), and reads it back.
      - V(cpu_pressure) starts O(cpu_workers) busy loops (C(sh), at nice 19 when C(nice) exists) in the service's
        container; they end by themselves after O(hold_seconds); rollback kills them.
      - V(db_connections_exhausted) (connections near C(max_connections)) opens idle C(psql) sessions
        (C(pg_sleep), application name C(sre-incident-drill-hold)) in the database container as C(database.user) until all
        but O(spare_connections) of the slots the application may use (C(max_connections) minus
        C(superuser_reserved_connections)) are held; rollback terminates them.
      - V(cache_wipe) runs C(FLUSHDB) on the stack's Redis (it must hold cache data only). Flushed keys cannot be
        restored (a cache), so rollback requests every sample user's recommendations once so that the service refills it,
        and reads C(DBSIZE) back.
      - V(disk_fill) fills a writable volume (named volume or tmpfs, never a bind mount) of the service's container with
        one file (O(fill_path), else the smallest such volume), refusing a file system larger than O(max_fill_mb);
        rollback deletes the file. A service without a writable volume makes it not applicable (RV(applicable)).
    type: str
    required: true
    choices: [app_crash, app_hang, redis_down, postgres_down, latency, cpu_pressure, db_connections_exhausted, cache_wipe, disk_fill]
  state:
    description:
      - V(injected) injects the fault unless it is injected already.
      - V(rolled_back) undoes it and is a no-op when nothing is injected, so it is safe to call at any time.
      - V(present) only reports whether the fault is injected (and whether it applies to this stack, RV(applicable)).
    type: str
    choices: [present, injected, rolled_back]
    default: present
  stack:
    description:
      - "The stack description C(incident_stack). Keys read: C(name) (the compose project), C(service),
        C(service_port), C(base_url), C(sample_users) (to measure and calibrate the latency, and to refill a wiped
        cache), C(state_dir), C(database.service), C(database.name), C(database.user), C(database.port),
        C(redis.service), C(redis.port)."
    type: dict
    required: true
  environment:
    description: The managed host's environment, normally the inventory's C(incident_environment) (see the refusal).
    type: str
    default: ""
  delay_ms:
    description: How long V(latency) makes a recommendations answer take, in milliseconds (50 to 10000).
    type: int
    default: 800
  cpu_workers:
    description: Busy loops started by V(cpu_pressure) (1 to 16).
    type: int
    default: 1
  spare_connections:
    description: Connection slots of the application that V(db_connections_exhausted) leaves free.
    type: int
    default: 5
  hold_seconds:
    description: >-
      The longest time the sessions of V(db_connections_exhausted) and the loops of V(cpu_pressure) live, a safety net
      should the rollback never run.
    type: int
    default: 1800
  fill_path:
    description: >-
      The mount point (in the service's container) of the volume V(disk_fill) fills; default the smallest writable
      volume of the container.
    type: str
  max_fill_mb:
    description: V(disk_fill) refuses to fill a file system larger than this (only a bounded volume is filled).
    type: int
    default: 256
  timeout:
    description: Seconds to wait for a started container to be ready, or for sessions or loops to start or end.
    type: float
    default: 60
  checksum:
    description: Also return RV(checksum), row counts and md5 of every row of O(checksum_tables) (read-only).
    type: bool
    default: false
  checksum_tables:
    description: The tables of RV(checksum); default every table of the schema C(public).
    type: list
    elements: str
    default: []
seealso:
  - module: sre.incident.compose_service
  - module: sre.incident.drill_watch
"""

EXAMPLES = r"""
- name: Slow every answer of the service down to about 800 ms, on a staging host
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
entry:
  description: >-
    How a responder learns of the fault: V(page) (the service is down for everyone: the P0 page, C(p0_recover.yml)) or
    V(alert) (an alert that C(triage.yml) measures and classifies itself). The module never says what severity to give.
  returned: success
  type: str
  sample: alert
description:
  description: What the fault does.
  returned: success
  type: str
  sample: every answer of the service slowed to about delay_ms (tc from the host)
users:
  description: What users of the reference stack see while the fault is on (measured; documentation).
  returned: success
  type: str
  sample: every recommendation about delay_ms slower; /health answers
applicable:
  description: Whether the fault can act on this stack (V(false) for V(disk_fill) on a service without a writable volume).
  returned: success
  type: bool
  sample: true
injected:
  description: Whether the fault is injected after the task (in check mode, what it would be).
  returned: success
  type: bool
  sample: true
before:
  description: What was observed before, with C(injected), C(applicable) and a C(detail) text.
  returned: success
  type: dict
  sample: {"injected": false, "applicable": true, "detail": "no qdisc d7d7: and no MSS clamp in recommendation-service's namespace",
           "devices": [], "clamped_ports": []}
after:
  description: What was observed after.
  returned: success
  type: dict
  sample: {"injected": true, "applicable": true, "detail": "qdisc d7d7: on eth0; MSS clamp on port 3000", "devices": ["eth0"],
           "clamped_ports": [3000]}
actions:
  description: What was done, in order (in check mode, what would be done).
  returned: success
  type: list
  elements: str
  sample: ["no netem in this kernel: each client connection to port 3000 capped at 1580 bytes/s ...",
           "recommendations now take 812 ms (median of one round through http://127.0.0.1:3000; 4 ms before)"]
effect:
  description: >-
    What the injection measured: for V(latency) C(mode) (V(netem) or V(rate)), C(latency_ms) (median of one round of
    the sample users' recommendations after the injection) and C(latency_before_ms); empty for the other faults.
  returned: success
  type: dict
  sample: {"mode": "rate", "latency_ms": 812.4, "latency_before_ms": 4.1}
rollback:
  description: How to roll the fault back, as a module call (C(module), C(args)) and a C(text).
  returned: success
  type: dict
  sample: {"module": "sre.incident.fault", "args": {"name": "cache_wipe", "state": "rolled_back"},
           "text": "nothing can bring flushed cache keys back: let the service refill redis"}
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
    cpu_workers=dict(type="int", default=1),
    spare_connections=dict(type="int", default=5),
    hold_seconds=dict(type="int", default=1800),
    fill_path=dict(type="str"),
    max_fill_mb=dict(type="int", default=256),
    timeout=dict(type="float", default=60.0),
    checksum=dict(type="bool", default=False),
    checksum_tables=dict(type="list", elements="str", default=[]),
)


def work(module):
    p = module.params
    # a production host is refused, and bad input named, before the engine is asked anything
    _fault.refuse_production(p["environment"])
    _fault.validate(p)
    target = _fault.Target(module.connect(), p["stack"]["name"], run=module.run_command,
                           which=lambda name: module.ansible.get_bin_path(name, opt_dirs=["/usr/sbin", "/sbin"]))
    return _fault.run(p, target, check_mode=module.check_mode)


def main():
    IncidentModule(ARGUMENT_SPEC, docker=True).run(work)


if __name__ == "__main__":
    main()
