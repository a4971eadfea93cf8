# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
name: stack_urls
short_description: The URLs of a stack, derived from its C(incident_stack) description
version_added: 0.1.0
description:
  - Derives every URL the collection probes (health, recommendations of each sample user,
    clear-cache, metrics) from C(incident_stack), so no role or playbook re-declares them.
  - Fails with a message naming the key when C(incident_stack) is incomplete or malformed.
options:
  _input:
    description: The stack description, C(incident_stack).
    type: dict
    required: true
  base:
    description: Use this base URL instead of C(incident_stack.base_url), for example the edge.
    type: str
"""

EXAMPLES = r"""
- name: Probe the service's health
  sre.incident.health_check:
    url: "{{ (incident_stack | sre.incident.stack_urls).health }}"

- name: Probe the recommendations of every sample user through the edge
  sre.incident.health_check:
    urls: "{{ (incident_stack | sre.incident.stack_urls(base=incident_stack.edge_url)).recommendation_urls }}"
"""

RETURN = r"""
_value:
  description: The URLs.
  type: dict
  contains:
    base: {description: The base URL used., type: str}
    health: {description: The health URL., type: str}
    recommendations: {description: Sample user to recommendations URL., type: dict}
    recommendation_urls: {description: "The recommendations URLs, in sample-user order.", type: list}
    clear_cache: {description: The clear-cache URL., type: str}
    metrics: {description: The Prometheus metrics URL., type: str}
"""

from ansible_collections.sre.incident.plugins.module_utils._stack import urls
from ansible_collections.sre.incident.plugins.plugin_utils._filter import decision

stack_urls = decision("stack_urls")(urls)


class FilterModule:
    def filters(self):
        return {"stack_urls": stack_urls}
