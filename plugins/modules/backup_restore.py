#!/usr/bin/python
# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: backup_restore
short_description: Put a backup set taken by M(sre.incident.backup) back into a compose stack
version_added: 0.2.0
description:
  - Before changing anything, checks that every file of the set (O(manifest)) has its size and SHA-256, that the set
    is of this compose project, that the database service has a running container, that Redis keeps its RDB where
    the backup came from and does not run with C(appendonly yes) (it would load its AOF, not the RDB), and that each
    volume exists. Otherwise nothing is changed and the module fails naming the file or the reason.
  - The database is restored whole or not at all by C(pg_restore --clean --if-exists --single-transaction
    --exit-on-error), run through the engine's exec in its container with the dump streamed into its input. It
    waits at most 60 s for a lock the service's sessions hold.
  - Redis is stopped, the RDB file put into its volume through the engine's archive API with the owner and mode it
    had, read back and compared, then Redis is started and polled until it is ready and has loaded the file.
  - Each other volume gets its tar back through a helper container (created, never started) while the containers
    using it are stopped. Files added to the volume after the backup stay there.
extends_documentation_fragment:
  - sre.incident.attributes
  - sre.incident.docker
attributes:
  check_mode:
    details: Verifies every checksum and the stack, and returns in RV(steps) what would be restored; nothing is changed.
  diff_mode:
    support: none
  idempotent:
    support: none
    details: Each run restores the set again (the result is the same data, but the restore is an action).
options:
  stack:
    description:
      - The one description of the stack, C(incident_stack) (C(name), C(database.user), C(database.port),
        C(database.exec_user), C(redis.port); see M(sre.incident.backup)).
    type: dict
    required: true
  manifest:
    description: Path of the set's C(manifest.json) on the managed host.
    type: path
    required: true
  timeout:
    description: Seconds the whole restore, waiting for Redis included, may take.
    type: float
    default: 300
seealso:
  - module: sre.incident.backup
"""

EXAMPLES = r"""
- name: Restore the backup taken before the rebuild
  sre.incident.backup_restore:
    stack: "{{ incident_stack }}"
    manifest: /var/lib/sre-incident/recsys/volume-backups/recsys-20261206T100000Z/manifest.json
"""

RETURN = r"""
steps:
  description:
    - One entry per file of the set, in the order restored. Each has C(kind), C(file), C(sha256), C(bytes),
      C(text) and C(result). C(result) starts with C(would restore) in check mode.
    - After a restore, C(checks) holds what was checked. For the database, C(pg_restore_rc) and C(bytes_sent).
      For Redis, C(rdb_in_volume_sha256), C(keys_loaded) (Redis 7), C(keys_now) and C(keys_at_backup). For a
      volume, the containers that were stopped and started again.
  returned: success
  type: list
  elements: dict
manifest:
  description: The manifest that was restored.
  returned: success
  type: dict
elapsed:
  description: Seconds the restore took.
  returned: success, not in check mode
  type: float
"""

from ansible_collections.sre.incident.plugins.module_utils import _backup
from ansible_collections.sre.incident.plugins.module_utils._errors import InputError
from ansible_collections.sre.incident.plugins.module_utils._module import IncidentModule

ARGUMENT_SPEC = dict(
    stack=dict(type="dict", required=True),
    manifest=dict(type="path", required=True),
    timeout=dict(type="float", default=300.0),
)


def work(module):
    p = module.params
    if p["timeout"] <= 0:
        raise InputError("timeout must be > 0 seconds, got %s" % p["timeout"])
    _backup.validate(p["stack"])
    # the set is checked before the engine is even asked: a bad file refuses at once
    _backup.verify(p["manifest"])
    return _backup.restore(module.connect(), p["stack"], p["manifest"], check_mode=module.check_mode,
                           timeout=p["timeout"])


def main():
    IncidentModule(ARGUMENT_SPEC, docker=True).run(work)


if __name__ == "__main__":
    main()
