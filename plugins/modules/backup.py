#!/usr/bin/python
# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: backup
short_description: Take a backup set of a compose stack's data that M(sre.incident.backup_restore) can put back
version_added: 0.2.0
description:
  - Takes a backup set of O(stack) into a new directory under O(dest) (for example before a rebuild that removes
    volumes, C(recover_allow_data_loss=true)), all through the Docker engine; nothing is added to the team's images.
  - "The database (C(incident_stack.database)): one consistent C(pg_dump --format=custom) by the image's own client,
    run through the engine's exec in its container and streamed into the set. It covers the volume of the server's
    C(data_directory)."
  - "Redis (C(incident_stack.redis)): C(BGSAVE), polled with C(INFO persistence) and C(LASTSAVE), then the RDB file
    copied out of its volume through the engine's archive API. It covers the volume of Redis' C(dir)."
  - Every other volume of the project is streamed out as a tar, every container using it stopped first (a helper
    container, created and never started, mounts it read-only). A C(tmpfs) volume, empty once its containers stop,
    is listed without a file.
  - "The set's C(manifest.json) (written last, mode 0600, in a 0700 directory) lists each file with its SHA-256,
    size, source (service, container, volume, database), when and how it was made, and which file covers each
    volume. Every file is hashed as it is written and again from the disk before the module returns."
  - When the database's or Redis' container is not running, or anything fails, no set is kept (the partial files
    are removed), the containers stopped are started again, and the module fails naming the cause.
extends_documentation_fragment:
  - sre.incident.attributes
  - sre.incident.docker
attributes:
  check_mode:
    details: Reads the stack and returns in RV(plan) what would be taken for each volume; nothing is written or stopped.
  diff_mode:
    support: none
  idempotent:
    support: none
    details: Each run takes a new backup set.
options:
  stack:
    description:
      - The one description of the stack, C(incident_stack). Uses C(name), C(database) (C(service) default
        V(postgres), C(name), C(user) default V(postgres), C(port) default V(5432), C(exec_user), the user the
        client programs run as in the database's container, default V(postgres)) and C(redis) (C(service) default
        V(redis), C(port) default V(6379)).
      - A project without a container of the database (or Redis) service has no dump (or RDB) in the set.
    type: dict
    required: true
  dest:
    description: The directory on the managed host under which the set's directory (C(<project>-<UTC time>)) is made.
    type: path
    required: true
  incident_id:
    description: The incident the backup is taken for, written into the manifest.
    type: str
  leave_stopped:
    description: Leave the containers stopped for the volume tars stopped (the ladder's rebuild takes them down anyway).
    type: bool
    default: false
  timeout:
    description: Seconds the C(BGSAVE) may take to be written.
    type: float
    default: 300
seealso:
  - module: sre.incident.backup_restore
  - module: sre.incident.compose_project
"""

EXAMPLES = r"""
- name: Back up the stack's data before a rebuild that removes its volumes
  sre.incident.backup:
    stack: "{{ incident_stack }}"
    dest: "{{ incident_stack.state_dir }}/volume-backups"
    incident_id: "{{ incident_id }}"
    leave_stopped: true
  register: stack_backup

- name: Rebuild, removing the volumes only after the backup (the manifest is checked again first)
  sre.incident.compose_project:
    project: "{{ incident_stack.name }}"
    project_dir: "{{ incident_stack.project_dir }}"
    state: rebuilt
    remove_volumes: true
    backup_manifest: "{{ stack_backup.manifest_path }}"
"""

RETURN = r"""
manifest_path:
  description: The set's manifest, the argument of M(sre.incident.backup_restore) and C(playbooks/restore_backup.yml -e backup=...).
  returned: success, not in check mode
  type: str
  sample: /var/lib/sre-incident/recsys/volume-backups/recsys-20261206T100000Z/manifest.json
dir:
  description: The set's directory.
  returned: success, not in check mode
  type: str
manifest:
  description: The manifest's content (C(format), C(project), C(incident_id), C(created_at), C(artefacts), C(volumes)).
  returned: success, not in check mode
  type: dict
  sample:
    format: sre.incident/backup/1
    project: recsys
    artefacts:
      - file: database-recommendation_db.dump
        kind: database
        sha256: 8e0f00de1688a4feb2085cec7c207d36adc92a41e281d7ba1f5d0afc4d71b855
        bytes: 23327
        source: {service: postgres, container: recsys_postgres_1, volume: recsys_postgres-data, database: recommendation_db}
    volumes:
      recsys_postgres-data: {by: database, file: database-recommendation_db.dump}
      recsys_app-logs: {by: tmpfs, file: null}
plan:
  description: One line per volume of the project saying how it is (or would be) backed up.
  returned: always
  type: list
  elements: str
  sample: ["recsys_postgres-data: pg_dump --format=custom of database recommendation_db in recsys_postgres_1"]
stopped:
  description: Containers stopped to copy a volume (see O(leave_stopped)).
  returned: success
  type: list
  elements: str
elapsed:
  description: Seconds the backup took.
  returned: success
  type: float
"""

from ansible_collections.sre.incident.plugins.module_utils import _backup
from ansible_collections.sre.incident.plugins.module_utils._errors import InputError
from ansible_collections.sre.incident.plugins.module_utils._module import IncidentModule

ARGUMENT_SPEC = dict(
    stack=dict(type="dict", required=True),
    dest=dict(type="path", required=True),
    incident_id=dict(type="str"),
    leave_stopped=dict(type="bool", default=False),
    timeout=dict(type="float", default=300.0),
)


def work(module):
    p = module.params
    module.always["plan"] = []
    if p["timeout"] <= 0:
        raise InputError("timeout must be > 0 seconds, got %s" % p["timeout"])
    _backup.validate(p["stack"])
    client = module.connect()
    found = _backup.survey(client, p["stack"])
    module.always["plan"] = _backup.describe(found)
    if module.check_mode:
        if found["problems"]:
            raise _backup.BackupError("no backup could be taken: %s" % "; ".join(found["problems"]))
        return dict(changed=True, stopped=[], elapsed=0.0)
    return dict(_backup.take(client, p["stack"], p["dest"], incident_id=p["incident_id"],
                             leave_stopped=p["leave_stopped"], timeout=p["timeout"]), changed=True)


def main():
    IncidentModule(ARGUMENT_SPEC, docker=True).run(work)


if __name__ == "__main__":
    main()
