# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
module: log_cleanup
short_description: Free disk space by cleaning the service's logs and old evidence bundles
version_added: 0.3.0
description:
  - "The quick fix of the runbook's P1 case disk space low (SPEC P1-3, 磁盤空間不足: 清理日誌)."
  - Removes the regular files of O(log_dir) in the service's running container (through the Docker
    engine, no shell) that do not match O(keep), that is rotated, compressed or stray files.
  - When the volume is still at least O(truncate_above_pct) % full, truncates the kept log files to
    zero; the service reopens its log file per line, so no restart is needed.
  - Removes all but the newest O(bundles_keep) evidence bundles in O(bundles_dir) on the managed host.
  - Never removes anything outside O(log_dir) and O(bundles_dir); data volumes are not touched.
extends_documentation_fragment:
  - sre.incident.attributes
  - sre.incident.docker
attributes:
  check_mode:
    details: Lists what would be removed or truncated and the space it would free.
  diff_mode:
    support: full
    details: Shows the usage of O(log_dir) before and after.
  idempotent:
    support: full
    details: A second run finds nothing left to remove (unless the service wrote more meanwhile).
  platform:
    platforms: posix
options:
  stack:
    description: The stack description C(incident_stack), giving the project, the service and the default O(bundles_dir).
    type: dict
    required: true
  service:
    description: The compose service whose container holds O(log_dir); default C(incident_stack.service).
    type: str
  log_dir:
    description: The log directory inside the container (the app's C(RECSYS_LOG_DIR)); default C(incident_stack.log_dir), else V(/var/log/recsys).
    type: str
  keep:
    description: Shell patterns of the file names the service writes now, kept (or only truncated).
    type: list
    elements: str
    default: ["app-*.log"]
  truncate_above_pct:
    description: Truncate the kept logs when the volume is still at least this full; V(null) never truncates.
    type: float
    default: 85
  bundles_dir:
    description: Directory of evidence bundles on the managed host; default C(<incident_stack.state_dir>/bundles). Empty string skips it.
    type: path
  bundles_keep:
    description: The newest bundles kept.
    type: int
    default: 3
seealso:
  - module: sre.incident.diagnose
"""

EXAMPLES = r"""
- name: Clean the logs of the service (P1 quick fix for a full log volume)
  sre.incident.log_cleanup:
    stack: "{{ incident_stack }}"
  register: mitigate_cleanup

- name: What would be removed?
  sre.incident.log_cleanup:
    stack: "{{ incident_stack }}"
    bundles_keep: 5
  check_mode: true
"""

RETURN = r"""
log_dir:
  description: The directory cleaned, inside the container.
  returned: success
  type: str
  sample: /var/log/recsys
removed:
  description: Files removed (or that would be), each with C(path) and C(size) in bytes.
  returned: success
  type: list
  elements: dict
  sample: [{"path": "/var/log/recsys/app-primary.log.1", "size": 52428800}]
truncated:
  description: Active log files truncated to zero, each with C(path) and C(size) before.
  returned: success
  type: list
  elements: dict
  sample: []
bundles_removed:
  description: Evidence bundles (directories and archives) removed, each with C(path) and C(size).
  returned: success
  type: list
  elements: dict
  sample: [{"path": "/var/lib/sre-incident/recsys/bundles/20261127T013045Z-scheduled.tar.gz", "size": 20480}]
freed_bytes:
  description: Bytes freed (or that would be).
  returned: success
  type: int
  sample: 52428800
used_pct_before:
  description: Usage of the filesystem of O(log_dir) before, in percent.
  returned: success
  type: float
  sample: 98.0
used_pct_after:
  description: Usage after (in check mode, the projection).
  returned: success
  type: float
  sample: 1.0
kept:
  description: The active log files kept.
  returned: success
  type: list
  elements: str
  sample: [/var/log/recsys/app-primary.log]
"""

import functools
import os

from ansible_collections.sre.incident.plugins.module_utils import _compose, _log_cleanup
from ansible_collections.sre.incident.plugins.module_utils._errors import InputError
from ansible_collections.sre.incident.plugins.module_utils._module import IncidentModule

ARGUMENT_SPEC = dict(
    stack=dict(type="dict", required=True),
    service=dict(type="str"),
    log_dir=dict(type="str"),
    keep=dict(type="list", elements="str", default=list(_log_cleanup.DEFAULT_KEEP)),
    truncate_above_pct=dict(type="float", default=85.0),
    bundles_dir=dict(type="path"),
    bundles_keep=dict(type="int", default=3),
)


def work(module):
    p = module.params
    stack = p["stack"]
    project, service = stack.get("name"), p["service"] or stack.get("service")
    if not project or not service:
        raise InputError("stack (incident_stack) needs name and service, got name=%r service=%r" % (project, service))
    bundles_dir = p["bundles_dir"]
    if bundles_dir is None and stack.get("state_dir"):
        bundles_dir = os.path.join(stack["state_dir"], "bundles")
    params = dict(log_dir=p["log_dir"] or stack.get("log_dir") or "/var/log/recsys", keep=p["keep"],
                  truncate_above_pct=p["truncate_above_pct"], bundles_dir=bundles_dir or None, bundles_keep=p["bundles_keep"])
    exec_fn = functools.partial(_compose.exec_in_service, module.connect(), project, service)
    return _log_cleanup.run_log_cleanup(params, exec_fn, check_mode=module.check_mode)


def main():
    IncidentModule(ARGUMENT_SPEC, docker=True).run(work)


if __name__ == "__main__":
    main()
