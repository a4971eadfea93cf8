# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
module: recommendation_cache
short_description: Clear the recommendation cache through the service, or count its keys
version_added: 0.2.0
description:
  - "O(state=cleared) clears the recommendation cache the way the runbook says (SPEC P1-2,
    OPS-1), through the service's own endpoint C(POST /api/recommendations/clear-cache), which
    answers C({\"cleared\": n})."
  - Keys matching O(key_pattern) are counted with C(redis-cli --scan) in the project's Redis container
    (through the Docker engine, no shell), before and after clearing.
  - C(changed) is true when the service reports that it deleted at least one key. When the endpoint
    fails (Redis or the service down) the task fails with the HTTP status and the answer.
extends_documentation_fragment:
  - sre.incident.attributes
  - sre.incident.docker
attributes:
  check_mode:
    details: Counts the keys and posts nothing; C(changed) is true when RV(would_clear) is above V(0).
  diff_mode:
    support: full
    details: Shows the key count before and after.
  idempotent:
    support: full
    details: A second O(state=cleared) finds no key to clear (unless traffic filled the cache again meanwhile).
  platform:
    platforms: posix
options:
  state:
    description: V(cleared) clears the cache through the service's endpoint; V(present) only reports the key count.
    type: str
    choices: [present, cleared]
    default: present
  stack:
    description:
      - The stack description C(incident_stack), giving the clear-cache URL, the compose project and the
        Redis service. Either O(stack) or O(url) is required.
    type: dict
  url:
    description: The clear-cache URL; overrides the one derived from O(stack).
    type: str
  project:
    description: The compose project holding Redis; default C(incident_stack.name).
    type: str
  redis_service:
    description: The compose service of Redis; default C(incident_stack.redis.service), else V(redis).
    type: str
  key_pattern:
    description: The pattern of the cache keys, as C(redis-cli --scan --pattern) takes it.
    type: str
    default: "recs:*"
  count_keys:
    description:
      - Count the keys before and after, through the Docker engine. Without it, check mode cannot
        tell whether anything would be cleared and reports C(changed=true). Needed by O(state=present).
    type: bool
    default: true
  timeout:
    description: Seconds the clear-cache request may take.
    type: float
    default: 5
seealso:
  - module: sre.incident.health_check
"""

EXAMPLES = r"""
- name: Clear the recommendation cache (P1 quick fix for a poisoned cache)
  sre.incident.recommendation_cache:
    stack: "{{ incident_stack }}"
    state: cleared
  register: p1_cache

- name: Clear through an explicit URL, without counting keys
  sre.incident.recommendation_cache:
    url: http://127.0.0.1:3000/api/recommendations/clear-cache
    count_keys: false
    state: cleared
"""

RETURN = r"""
state:
  description: The O(state) applied.
  returned: success
  type: str
  sample: cleared
url:
  description: The clear-cache URL.
  returned: success
  type: str
  sample: http://127.0.0.1:3000/api/recommendations/clear-cache
pattern:
  description: The key pattern counted.
  returned: success
  type: str
  sample: "recs:*"
counted:
  description: Whether the keys were counted (O(count_keys)).
  returned: success
  type: bool
  sample: true
keys_before:
  description: Keys matching O(key_pattern) before; V(null) when not counted.
  returned: success
  type: int
  sample: 5
keys_after:
  description: Keys matching O(key_pattern) after (new traffic may have cached lists again); V(null) when not counted.
  returned: success
  type: int
  sample: 0
cleared:
  description: Keys the service reported deleting, C(cleared) of its answer; V(0) in check mode and with O(state=present).
  returned: success
  type: int
  sample: 5
would_clear:
  description: In check mode with O(state=cleared), the keys a real run would clear; otherwise V(null).
  returned: success
  type: int
  sample: 5
status:
  description: The HTTP status of the clear-cache answer; V(null) when nothing was posted.
  returned: success
  type: int
  sample: 200
"""

import functools

from ansible_collections.sre.incident.plugins.module_utils import _cache, _compose
from ansible_collections.sre.incident.plugins.module_utils._module import IncidentModule

ARGUMENT_SPEC = dict(
    state=dict(type="str", choices=list(_cache.STATES), default="present"),
    stack=dict(type="dict"),
    url=dict(type="str"),
    project=dict(type="str"),
    redis_service=dict(type="str"),
    key_pattern=dict(type="str", default=_cache.DEFAULT_PATTERN, no_log=False),
    count_keys=dict(type="bool", default=True),
    timeout=dict(type="float", default=5.0),
)


def work(module):
    p = module.params
    _cache.resolve(p)
    exec_fn = functools.partial(_compose.exec_in_service, module.connect()) if p["count_keys"] else None
    return _cache.run(p, check_mode=module.check_mode, exec_fn=exec_fn)


def main():
    IncidentModule(ARGUMENT_SPEC, docker=True, required_one_of=[("stack", "url")]).run(work)


if __name__ == "__main__":
    main()
