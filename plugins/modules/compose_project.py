#!/usr/bin/python
# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: compose_project
short_description: Bring a whole compose project up, down, or rebuild it (down then up)
version_added: 0.1.0
description:
  - Whole-stack operations of the recovery ladder through the compose CLI (C(docker compose)
    v2 or C(docker-compose) v1, whichever is installed), called as an argv list.
  - The runbook's C(down -v) loses data; this module makes that an explicit choice (O(remove_volumes)),
    taken only with a verified backup that restores (O(backup_manifest), M(sre.incident.backup_restore)), and
    kept from when the backup could not be taken (O(backup_error)).
  - C(changed) compares the project's containers (id, status, health) before and after.
extends_documentation_fragment:
  - sre.incident.attributes
  - sre.incident.docker
attributes:
  check_mode:
    details: Predicts C(changed) from the containers' observed state and runs no compose command.
  diff_mode:
    support: full
    details: The diff maps each container to its status before and after.
  idempotent:
    support: partial
    details: O(state=present) and O(state=absent), not V(rebuilt).
options:
  project:
    description: The compose project name (C(-p)), for example V(recsys).
    type: str
    required: true
  project_dir:
    description: The directory holding the compose files and the C(.env) file, on the managed host.
    type: path
    required: true
  files:
    description: Compose files, relative to O(project_dir) unless absolute.
    type: list
    elements: str
    default: [docker-compose.yml]
  services:
    description:
      - Only these services (with O(state=present) or V(rebuilt)'s C(up)). Default all services
        not hidden behind an inactive compose profile.
      - An unknown service fails before anything is run, naming it.
    type: list
    elements: str
    default: []
  profiles:
    description: Compose profiles to activate (C(--profile)).
    type: list
    elements: str
    default: []
  state:
    description:
      - V(present) runs C(up -d) (see O(services) and O(no_deps)), which also recreates a container that was
        removed altogether.
      - V(absent) runs C(down).
      - V(rebuilt) is the runbook's full rebuild, C(down) then C(up -d), an action that always changes the containers.
    type: str
    choices: [present, absent, rebuilt]
    default: present
  no_deps:
    description: Do not start linked services (C(up --no-deps)).
    type: bool
    default: false
  build:
    description: Let C(up) build missing images; by default C(up --no-build), so a recovery never starts a build.
    type: bool
    default: false
  remove_volumes:
    description:
      - Remove the project's named volumes on C(down) (C(down -v)). This loses data.
      - "Only with O(state=absent) or V(rebuilt), and only together with O(backup_manifest) (in check mode
        it may be missing: the backup is not taken in check mode) or O(backup_error)."
      - RV(volumes_text) says what happened to the volumes.
    type: bool
    default: false
  backup_manifest:
    description:
      - The C(manifest.json) of a backup set of this project taken by M(sre.incident.backup). Checked just
        before C(down -v), it must cover every named volume of the project, and every file must have the size
        and SHA-256 the manifest gives; otherwise nothing is run and the module fails naming the file.
    type: path
  backup_error:
    description:
      - Why no backup set could be taken (the failed M(sre.incident.backup)'s C(msg)). With O(remove_volumes), C(down)
        then keeps the volumes instead of failing, and RV(volumes_text) says why. Excludes O(backup_manifest).
    type: str
  wait:
    description:
      - Poll, within O(timeout), until every container of the services brought up is running and, when it has a healthcheck, healthy.
      - The containers are waited for together. One that exited with no restart policy is given up at once; one that
        keeps crashing under its restart policy (restarted 3 times by the engine, and down again over 10 seconds while
        every other container brought up is ready or given up) is given up too, instead of being waited for to the end.
        A container without a healthcheck counts as ready for that only once it has run for 30 seconds.
    type: bool
    default: true
  timeout:
    description: Seconds the whole operation, waiting included, may take.
    type: float
    default: 90
  fail_on_timeout:
    description: Fail when a container is not ready within O(timeout); with V(false) the playbook decides from RV(ready).
    type: bool
    default: true
seealso:
  - module: sre.incident.compose_service
"""

EXAMPLES = r"""
- name: "Rung 3 of the ladder: full rebuild, volumes kept"
  sre.incident.compose_project:
    project: recsys
    project_dir: /srv/recsys
    state: rebuilt
    timeout: 90

- name: Recreate a service whose container was removed
  sre.incident.compose_project:
    project: recsys
    project_dir: /srv/recsys
    services: [recommendation-service]
    no_deps: true

- name: The runbook's down -v, only with an explicit data-loss decision and after a backup (kept without one)
  sre.incident.compose_project:
    project: recsys
    project_dir: /srv/recsys
    state: rebuilt
    remove_volumes: "{{ recover_allow_data_loss | bool }}"
    backup_manifest: "{{ stack_backup.manifest_path | default(omit) }}"
    backup_error: "{{ stack_backup.msg | default(omit) }}"
"""

RETURN = r"""
containers:
  description: Every container of the project after the operation (plain state dicts, as in M(sre.incident.compose_service)).
  returned: success
  type: list
  elements: dict
ready:
  description: Whether every container brought up is running and healthy (null in check mode).
  returned: success
  type: bool
  sample: true
not_ready:
  description: States of the containers that were not ready within O(timeout).
  returned: success
  type: list
  elements: dict
backup_manifest:
  description: The backup set checked before the volumes were removed (only with O(remove_volumes=true)).
  returned: success
  type: str
  sample: /var/lib/sre-incident/recsys/volume-backups/recsys-20261206T100000Z/manifest.json
volumes:
  description: The project's named volumes removed (or that would be in check mode); empty when they are kept.
  returned: success
  type: list
  elements: str
volumes_text:
  description:
    - With O(remove_volumes), what happens to the volumes, in words (null without) - the backup set they are removed
      after and how to restore it, or why they are kept (O(backup_error)). Also when the task failed.
  returned: always
  type: str
  sample: "No backup could be taken, so the volumes are kept: postgres of project recsys is not running"
commands:
  description: The compose commands run, each with C(cmd), C(rc), C(stdout), C(stderr).
  returned: success
  type: list
  elements: dict
elapsed:
  description: Seconds the operation took.
  returned: success
  type: float
  sample: 7.4
"""

from ansible_collections.sre.incident.plugins.module_utils import _compose
from ansible_collections.sre.incident.plugins.module_utils._errors import InputError
from ansible_collections.sre.incident.plugins.module_utils._module import IncidentModule

ARGUMENT_SPEC = dict(
    project=dict(type="str", required=True),
    project_dir=dict(type="path", required=True),
    files=dict(type="list", elements="str", default=["docker-compose.yml"]),
    services=dict(type="list", elements="str", default=[]),
    profiles=dict(type="list", elements="str", default=[]),
    state=dict(type="str", choices=list(_compose.PROJECT_STATES), default="present"),
    no_deps=dict(type="bool", default=False),
    build=dict(type="bool", default=False),
    remove_volumes=dict(type="bool", default=False),
    backup_manifest=dict(type="path"),
    backup_error=dict(type="str"),
    wait=dict(type="bool", default=True),
    timeout=dict(type="float", default=90.0),
    fail_on_timeout=dict(type="bool", default=True),
)


def work(module):
    p = module.params
    volumes = _compose.volumes_decision(p["remove_volumes"], p["backup_manifest"], p["backup_error"], module.check_mode)
    module.always["volumes_text"] = volumes["volumes_text"]
    if p["timeout"] <= 0:
        raise InputError("timeout must be > 0 seconds, got %s" % p["timeout"])
    result = _compose.ensure_project(
        module.connect(), module.run_command, p["project"], p["project_dir"], p["files"], p["state"],
        services=p["services"], profiles=p["profiles"], no_deps=p["no_deps"], build=p["build"],
        remove_volumes=volumes["remove_volumes"], backup_manifest=p["backup_manifest"],
        wait=p["wait"], timeout=p["timeout"], check_mode=module.check_mode,
    )
    if result["not_ready"] and p["fail_on_timeout"]:
        first = result["not_ready"][0]
        result.update(failed=True, msg="container %s (service %s) was not ready within %ss: it is %s, health %s"
                      % (first["name"], first["service"], p["timeout"], first["status"], first["health"]))
    return result


def main():
    IncidentModule(ARGUMENT_SPEC, docker=True).run(work)


if __name__ == "__main__":
    main()
