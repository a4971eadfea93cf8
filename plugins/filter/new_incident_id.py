# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
name: new_incident_id
short_description: A new incident id
version_added: 0.1.0
description:
  - "Returns a new incident id like C(INC-20261127-013045-p0-recommendation-service-localhost-3f9a):
    the UTC time, the severity, the service (and optionally the host), and a short random suffix
    that keeps two incidents opened in the same second apart."
  - The playbooks take the id before opening the record, so the recovery lease can name it.
options:
  _input:
    description: The severity, V(P0) to V(P3).
    type: str
    required: true
  service:
    description: The affected service.
    type: str
    required: true
  host:
    description: The managed host, when each host's stack is its own incident.
    type: str
"""

EXAMPLES = r"""
- name: Name the incident before taking the lease
  ansible.builtin.set_fact:
    incident_id: "{{ 'P0' | sre.incident.new_incident_id(incident_stack.service, inventory_hostname) }}"
"""

RETURN = r"""
_value:
  description: The new id, a safe file name.
  type: str
"""

from ansible_collections.sre.incident.plugins.module_utils._record import generate_id
from ansible_collections.sre.incident.plugins.plugin_utils._filter import decision


@decision("new_incident_id")
def new_incident_id(severity, service, host=None):
    return generate_id(severity, "%s-%s" % (service, host) if host else service)


class FilterModule:
    def filters(self):
        return {"new_incident_id": new_incident_id}
