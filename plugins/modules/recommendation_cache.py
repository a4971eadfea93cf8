# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
module: recommendation_cache
short_description: Clear the recommendation cache or refresh its scores through the service, or count its keys
version_added: 0.2.0
description:
  - "O(state=cleared) clears the recommendation cache the way the runbook says (SPEC P1-2,
    OPS-1), through the service's own endpoint C(POST /api/recommendations/clear-cache), which
    answers C({\"cleared\": n})."
  - Keys matching O(key_pattern) are counted with C(redis-cli --scan) in the project's Redis container
    (through the Docker engine, no shell), before and after clearing.
  - C(changed) is true when the service reports that it deleted at least one key. When the endpoint
    fails (Redis or the service down) the task fails with the HTTP status and the answer.
  - "O(state=refreshed) recomputes the scores the recommendations come from (the quick fix of the P1
    case \"empty results\", SPEC P1-3) through the stack's own endpoint C(POST <base_url><refresh_path>)
    (O(refresh_path), default C(incident_stack.refresh_path)). A 5xx or no answer is tried again within
    O(timeout) (three attempts at most); the failure's message never shows the endpoint's URL. C(changed) is
    true unless the answer says it refreshed nothing (C({\"refreshed\": 0})). Keys are not counted."
extends_documentation_fragment:
  - sre.incident.attributes
  - sre.incident.docker
attributes:
  check_mode:
    details: >-
      Counts the keys and posts nothing; C(changed) is true when RV(would_clear) is above V(0). With
      O(state=refreshed) nothing is sent and C(changed) is true (a real run would refresh).
  diff_mode:
    support: full
    details: Shows the key count before and after (not with O(state=refreshed)).
  idempotent:
    support: full
    details: >-
      A second O(state=cleared) finds no key to clear (unless traffic filled the cache again meanwhile).
      O(state=refreshed) recomputes the same scores again.
  platform:
    platforms: posix
options:
  state:
    description: >-
      V(cleared) clears the cache through the service's endpoint; V(refreshed) recomputes the scores through the
      stack's refresh endpoint; V(present) only reports the key count.
    type: str
    choices: [present, cleared, refreshed]
    default: present
  stack:
    description:
      - The stack description C(incident_stack), giving the clear-cache URL, the compose project and the
        Redis service. Either O(stack) or O(url) is required.
    type: dict
  url:
    description: The URL posted to (the clear-cache or the refresh endpoint); overrides the one derived from O(stack).
    type: str
  refresh_path:
    description: >-
      The path of the stack's score refresh endpoint under C(incident_stack.base_url), for O(state=refreshed);
      default C(incident_stack.refresh_path).
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
    description: Seconds the clear-cache request may take; with O(state=refreshed), all the refresh's attempts.
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

- name: Refresh the scores (P1 quick fix for empty results; the stack names its endpoint in refresh_path)
  sre.incident.recommendation_cache:
    stack: "{{ incident_stack }}"
    state: refreshed
    timeout: 30
"""

RETURN = r"""
state:
  description: The O(state) applied.
  returned: success
  type: str
  sample: cleared
url:
  description: The URL posted to (or that would be, in check mode).
  returned: success
  type: str
  sample: http://127.0.0.1:3000/api/recommendations/clear-cache
pattern:
  description: The key pattern counted.
  returned: success unless O(state=refreshed)
  type: str
  sample: "recs:*"
counted:
  description: Whether the keys were counted (O(count_keys)).
  returned: success unless O(state=refreshed)
  type: bool
  sample: true
keys_before:
  description: Keys matching O(key_pattern) before; V(null) when not counted.
  returned: success unless O(state=refreshed)
  type: int
  sample: 5
keys_after:
  description: Keys matching O(key_pattern) after (new traffic may have cached lists again); V(null) when not counted.
  returned: success unless O(state=refreshed)
  type: int
  sample: 0
cleared:
  description: Keys the service reported deleting, C(cleared) of its answer; V(0) in check mode and with O(state=present).
  returned: success unless O(state=refreshed)
  type: int
  sample: 5
would_clear:
  description: In check mode with O(state=cleared), the keys a real run would clear; otherwise V(null).
  returned: success unless O(state=refreshed)
  type: int
  sample: 5
status:
  description: The HTTP status of the answer; V(null) when nothing was posted.
  returned: success
  type: int
  sample: 200
refreshed:
  description: >-
    With O(state=refreshed), the scores the endpoint says it recomputed (C(refreshed) of its answer); V(null) when
    it does not say or nothing was sent.
  returned: O(state=refreshed)
  type: int
  sample: 60
attempts:
  description: With O(state=refreshed), the requests made (V(0) in check mode).
  returned: O(state=refreshed)
  type: int
  sample: 1
"""

import functools

from ansible_collections.sre.incident.plugins.module_utils import _cache, _compose
from ansible_collections.sre.incident.plugins.module_utils._module import IncidentModule

ARGUMENT_SPEC = dict(
    state=dict(type="str", choices=list(_cache.STATES), default="present"),
    stack=dict(type="dict"),
    url=dict(type="str"),
    refresh_path=dict(type="str"),
    project=dict(type="str"),
    redis_service=dict(type="str"),
    key_pattern=dict(type="str", default=_cache.DEFAULT_PATTERN, no_log=False),
    count_keys=dict(type="bool", default=True),
    timeout=dict(type="float", default=5.0),
)


def work(module):
    p = module.params
    _cache.resolve(p)
    counting = p["count_keys"] and p["state"] != "refreshed"
    exec_fn = functools.partial(_compose.exec_in_service, module.connect()) if counting else None
    return _cache.run(p, check_mode=module.check_mode, exec_fn=exec_fn)


def main():
    IncidentModule(ARGUMENT_SPEC, docker=True, required_one_of=[("stack", "url")]).run(work)


if __name__ == "__main__":
    main()
