#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) sre.incident contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: compose_service
short_description: Start, stop, restart, kill, pause or unpause the containers of compose services
version_added: 0.1.0
description:
  - Acts on the existing containers of compose services, found by their C(com.docker.compose.project) and
    C(com.docker.compose.service) labels (one-off C(run) containers are ignored), and reports their state.
  - Uses the docker Python SDK, and never removes containers. A service whose containers were removed needs a
    compose C(up); with O(project_dir), V(started) and V(restarted) run it (the compose CLI, as
    M(sre.incident.compose_project) does), otherwise the module says so instead of guessing.
  - Every precondition is checked before anything is touched; an unknown project or service fails naming it and
    listing the project's services.
  - C(changed) comes from the observed state of each container, not from the engine's answers.
extends_documentation_fragment:
  - sre.incident.attributes
  - sre.incident.attributes.here
  - sre.incident.docker
attributes:
  check_mode:
    details: Predicts C(changed) and the diff from the observed state and acts on nothing.
  diff_mode:
    support: full
    details: Shows RV(diff).
  idempotent:
    support: partial
    details: Every O(state) but V(restarted).
options:
  project:
    description: The compose project name, as in the C(com.docker.compose.project) label (for example V(recsys)).
    type: str
    required: true
  services:
    description: The compose services to act on (every container of each), in the order given.
    type: list
    elements: str
    required: true
    aliases: [service]
  state:
    description:
      - V(present) only reports the containers' state; nothing is changed or waited for.
      - V(started) starts exited containers and unpauses paused ones; running ones are left alone (no change).
      - V(stopped) stops running, restarting or paused containers (no change when already stopped).
      - V(restarted) restarts every container (a paused one is unpaused first), so it always reports a change.
      - V(killed) sends O(signal) to running containers, others are left alone (no change). A paused one is
        unpaused first unless the signal is V(SIGKILL), which the engine delivers to paused containers.
      - V(paused) pauses running containers; asking to pause a container that is not running fails.
      - V(unpaused) unpauses paused containers; all others are left alone.
    type: str
    choices: [present, started, stopped, restarted, killed, paused, unpaused]
    default: present
  wait:
    description:
      - Poll, within O(timeout), until the containers reach the wanted state. For V(started) and V(restarted), every
        container of the services runs and, when it has a healthcheck, is healthy; for V(stopped), the containers
        stopped no longer run; for V(killed), the killed process is gone (the container exited, or its restart
        policy started a new one); for V(paused) and V(unpaused), the containers paused or unpaused.
      - The containers are waited for together, so a service that crashes while the database named beside it boots
        is waited for. One that exited with no restart policy is given up at once; one that keeps crashing under its
        restart policy (restarted 3 times by the engine, and down again over 10 seconds of waiting) is given up once
        every other container waited for is ready or given up.
    type: bool
    default: true
  timeout:
    description: Seconds the module waits in total, actions included, for the containers to be ready with O(wait=true).
    type: float
    default: 30
  fail_on_timeout:
    description:
      - Fail the task, naming the container, its state and the timeout, when one is not ready within O(timeout).
      - With V(false), the task succeeds and RV(ready=false) and RV(not_ready) tell what is missing.
    type: bool
    default: true
  signal:
    description: The signal O(state=killed) sends, by name (V(SIGKILL), V(SIGTERM), V(KILL)) or number (V(9)).
    type: str
    default: SIGKILL
  stop_timeout:
    description:
      - Seconds the engine gives a container after SIGTERM before it kills it, for V(stopped) and V(restarted).
      - When not set, the container's own stop timeout is used, or V(10).
    type: int
  project_dir:
    description:
      - The directory holding the project's compose files, on the managed host. Given, O(state=started) and
        V(restarted) recreate a service without a container (it was removed, or the whole project is gone) with
        C(up -d --no-build) of those services, within O(timeout), before acting on the others; RV(recreated)
        names them. An unknown service still fails before anything is run.
      - A recreated service is waited for even with O(wait=false) (its C(up) may have started its dependencies
        too), as M(sre.incident.compose_project) waits.
      - Not given, such a service fails the task (RV(error_kind) V(missing_container) or V(unknown_project)).
    type: path
  files:
    description: The compose files, relative to O(project_dir) unless absolute (with O(project_dir) only).
    type: list
    elements: str
    default: [docker-compose.yml]
seealso:
  - module: sre.incident.health_check
  - module: sre.incident.compose_project
"""

EXAMPLES = r"""
- name: Restart the recommendation service and wait until it is healthy
  sre.incident.compose_service:
    project: recsys
    services: [recommendation-service]
    state: restarted
    timeout: 60

- name: Make sure redis runs (starts it if it exited, unpauses it if paused)
  sre.incident.compose_service:
    project: recsys
    service: redis
    state: started

- name: Restart the service, or recreate it when its container was removed
  sre.incident.compose_service:
    project: recsys
    services: [recommendation-service]
    state: restarted
    project_dir: /srv/recsys

- name: Restart without failing when it is slow to become healthy
  sre.incident.compose_service:
    project: recsys
    services: [recommendation-service]
    state: restarted
    timeout: 20
    fail_on_timeout: false
  register: restart

- name: Escalate when it did not come back
  ansible.builtin.debug:
    msg: "not ready: {{ restart.not_ready }}"
  when: not restart.ready
"""

RETURN = r"""
containers:
  description:
    - The containers of the services after the action (before it in check mode), as plain data; each has every key below.
  returned: success
  type: list
  elements: dict
  contains:
    name:
      description: Container name.
      type: str
      sample: recsys_recommendation-service_1
    id:
      description: Short container id.
      type: str
      sample: 3f2a1b4c5d6e
    project:
      description: Compose project.
      type: str
      sample: recsys
    service:
      description: Compose service.
      type: str
      sample: recommendation-service
    number:
      description: Compose container number.
      type: int
      sample: 1
    status:
      description: Engine status, one of V(created), V(running), V(paused), V(restarting), V(removing), V(exited), V(dead).
      type: str
      sample: running
    running:
      description: Whether RV(containers[].status) is V(running).
      type: bool
      sample: true
    health:
      description: Healthcheck status, V(none) when the container has no healthcheck, else V(starting), V(healthy) or V(unhealthy).
      type: str
      sample: healthy
    has_healthcheck:
      description: Whether the container defines a healthcheck.
      type: bool
      sample: true
    exit_code:
      description: Exit code of the last run.
      type: int
      sample: 0
    oom_killed:
      description: Whether the kernel killed it for lack of memory.
      type: bool
      sample: false
    error:
      description: The engine's error for the container, or V(null).
      type: str
      sample: null
    restart_count:
      description: Restarts done by the engine's restart policy.
      type: int
      sample: 0
    started_at:
      description: When the current or last run started (engine timestamp).
      type: str
      sample: "2024-05-01T10:00:00.123456789Z"
    finished_at:
      description: When the last run ended (engine timestamp; zero time when it never ended).
      type: str
      sample: "0001-01-01T00:00:00Z"
    image:
      description: Image id.
      type: str
      sample: sha256:0123456789abcdef
    image_name:
      description: Image name as configured.
      type: str
      sample: recsys_recommendation-service
    restart_policy:
      description: Name of the engine's restart policy.
      type: str
      sample: unless-stopped
services:
  description: Per service, a summary of its containers.
  returned: success
  type: dict
  sample:
    recommendation-service:
      containers: 1
      running: 1
      healthy: 1
      ready: true
      status: running/healthy
      actions: {"recsys_recommendation-service_1": restart}
      changed: true
      missing: false
actions:
  description: Per container name, the action taken (or that would be taken in check mode), V(null) for none.
  returned: success
  type: dict
  sample: {"recsys_recommendation-service_1": "restart", "recsys_redis_1": null}
ready:
  description:
    - Whether every container waited for reached the wanted state within O(timeout).
    - Without waiting (O(wait=false), O(state=present) or check mode), whether they are in it now.
  returned: success
  type: bool
  sample: true
not_ready:
  description: Names of the containers that did not become ready within O(timeout).
  returned: success
  type: list
  elements: str
  sample: []
waited:
  description: Names of the containers the module waited for.
  returned: success
  type: list
  elements: str
  sample: [recsys_recommendation-service_1]
elapsed:
  description: Seconds the module spent, actions and waiting included.
  returned: success
  type: float
  sample: 4.21
recreated:
  description: The services recreated with C(up -d) (O(project_dir)), or that would be in check mode.
  returned: success
  type: list
  elements: str
  sample: [recommendation-service]
commands:
  description: The compose commands run to recreate RV(recreated), each with C(cmd), C(rc), C(stdout), C(stderr).
  returned: when a service was recreated
  type: list
  elements: dict
state:
  description: The O(state) applied.
  returned: success
  type: str
  sample: restarted
diff:
  description: The status/health of each service's containers before and after.
  returned: when diff mode is on
  type: dict
  sample: {"before": {"redis": "exited(137)/none"}, "after": {"redis": "running/none"}}
engine_unreachable:
  description: Set to V(true) when the task failed because the Docker engine did not answer.
  returned: failure
  type: bool
  sample: true
error_kind:
  description:
    - Why the task failed, one of V(engine_unreachable), V(unknown_project), V(unknown_service),
      V(missing_container), V(invalid_transition), V(compose_error), V(docker_error).
    - Not set when the task failed because a container did not become ready; then RV(not_ready) names them.
  returned: failure
  type: str
  sample: unknown_service
not_ready_states:
  description: The state of each container that did not become ready, as in RV(containers).
  returned: failure, when a container did not become ready within O(timeout)
  type: list
  elements: dict
  sample: [{"name": "recsys_recommendation-service_1", "status": "running", "health": "starting"}]
known_services:
  description: The project's services, when the task failed for an unknown service.
  returned: failure
  type: list
  elements: str
  sample: [edge, postgres, recommendation-service, redis]
"""

from ansible_collections.sre.incident.plugins.module_utils import _compose
from ansible_collections.sre.incident.plugins.module_utils._errors import InputError
from ansible_collections.sre.incident.plugins.module_utils._module import IncidentModule

ARGUMENT_SPEC = dict(
    project=dict(type="str", required=True),
    services=dict(type="list", elements="str", required=True, aliases=["service"]),
    state=dict(type="str", default="present", choices=list(_compose.STATES)),
    wait=dict(type="bool", default=True),
    timeout=dict(type="float", default=30.0),
    fail_on_timeout=dict(type="bool", default=True),
    signal=dict(type="str", default="SIGKILL"),
    stop_timeout=dict(type="int"),
    project_dir=dict(type="path"),
    files=dict(type="list", elements="str", default=["docker-compose.yml"]),
)


def validate(params):
    """Raise InputError naming bad input (before the engine is asked anything)."""
    if not params["project"].strip():
        raise InputError("project must not be empty")
    if not params["services"] or not all(s and s.strip() for s in params["services"]):
        raise InputError("services must name at least one service, without empty names: %r" % (params["services"],))
    if params["timeout"] < 0:
        raise InputError("timeout must be >= 0 seconds, got %r" % (params["timeout"],))
    if params["stop_timeout"] is not None and params["stop_timeout"] < 0:
        raise InputError("stop_timeout must be >= 0 seconds, got %r" % (params["stop_timeout"],))
    if params["docker_timeout"] is not None and params["docker_timeout"] <= 0:
        raise InputError("docker_timeout must be > 0 seconds, got %r" % (params["docker_timeout"],))
    _compose.normalize_signal(params["signal"])


def work(module):
    p = module.params
    validate(p)
    client, recreate = module.connect(), None
    if p["project_dir"]:
        def recreate(services, timeout):
            return _compose.ensure_project(client, module.run_command, p["project"], p["project_dir"], p["files"],
                                           "present", services=services, wait=True, timeout=timeout,
                                           check_mode=module.check_mode)
    result = _compose.ensure_services(
        client, p["project"], p["services"], p["state"], wait=p["wait"], timeout=p["timeout"],
        signal=p["signal"], stop_timeout=p["stop_timeout"], check_mode=module.check_mode, recreate=recreate,
    )
    if result["not_ready"] and p["fail_on_timeout"]:
        first = result["not_ready_states"][0]
        goal = "become ready" if p["state"] in ("started", "restarted", "unpaused") else "reach state=%s" % p["state"]
        result.update(failed=True, msg=(
            "container %s (service %s) did not %s within %ss (state=%s): it is %s, health %s%s. "
            "See not_ready_states; raise timeout, or set fail_on_timeout=false to decide in the playbook"
            % (first["name"], first["service"], goal, p["timeout"], p["state"], first["status"], first["health"],
               "; also not ready: %s" % ", ".join(result["not_ready"][1:]) if len(result["not_ready"]) > 1 else "")))
    else:
        result.pop("not_ready_states")
    return result


def main(here=None):
    return IncidentModule(ARGUMENT_SPEC, docker=True, here=here).run(work)


if __name__ == "__main__":
    main()
