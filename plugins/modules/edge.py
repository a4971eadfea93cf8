#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) sre.incident contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: edge
short_description: Make the team's nginx in front of the service answer users again
version_added: 0.2.0
description:
  - The edge is the team's own reverse proxy (nginx) in front of the service, the compose service
    C(incident_stack.edge) reached at C(incident_stack.edge_url). Users get what it answers, so a recovery counts
    only when users are answered through it.
  - With O(state=serving) the module probes C(/health) and every sample user's recommendations through the edge.
    When they fail while the service itself answers at C(incident_stack.base_url) (else the edge is not what fails
    and nothing is changed), a stopped edge is started; a running one has its configuration checked (C(nginx -t))
    and is reloaded (C(nginx -s reload)), because nginx resolves a static C(proxy_pass) host name only when it
    loads its configuration and still sends users to the old address after the service's container was recreated.
    When a reload does not bring the answers back within a few seconds, the edge container is restarted. Each step
    is followed by polling the edge, within O(timeout) (or until O(deadline)).
  - Nothing is installed in the edge's image; C(nginx) runs in the container through the engine's exec API.
extends_documentation_fragment:
  - sre.incident.attributes
  - sre.incident.attributes.here
  - sre.incident.docker
attributes:
  check_mode:
    details: Probes and reads; says what it would do (RV(actions) starts with C(would)) and changes nothing.
  diff_mode:
    support: full
    details: The diff shows whether users were answered through the edge before and after.
  idempotent:
    support: full
    details: An edge that answers users is left alone (C(changed=false)).
options:
  stack:
    description:
      - The stack description, C(incident_stack). Uses C(name), C(edge), C(edge_url), C(base_url),
        C(health_path), C(recommendations_path), C(sample_users), C(min_recommendations),
        C(project_dir), C(compose_files), and for RV(mode) C(edge_config) and C(state_dir).
    type: dict
    required: true
  state:
    description:
      - V(serving) makes the edge answer users again when only the edge fails (see the description).
      - V(present) only reports whether users are answered through the edge, the edge container's state
        and which configuration it serves (RV(mode)).
    type: str
    choices: [serving, present]
    default: serving
  timeout:
    description: Seconds the whole repair may take, polling included. Must be more than V(0).
    type: float
    default: 30
  deadline:
    description:
      - Instead of O(timeout), the UNIX time the repair should be done by (the ladder's C(ends_at), the end of the
        rung's window); the repair gets what is left of it when the task starts, and at least 5 seconds, so one
        asked for at the end of a window still acts once and looks.
    type: float
  probe_timeout:
    description: Seconds each HTTP probe may take. Must be more than V(0).
    type: float
    default: 3
"""

EXAMPLES = r"""
- name: Make the edge answer users again after the service was recreated
  sre.incident.edge:
    stack: "{{ incident_stack }}"
    state: serving
  register: edge_repair

- name: Report whether users are answered through the edge
  sre.incident.edge:
    stack: "{{ incident_stack }}"
    state: present
"""

RETURN = r"""
serving:
  description: Whether users are answered through the edge at the end (C(/health) 200 and enough recommendations for every sample user).
  returned: always
  type: bool
  sample: true
actions:
  description: What was done, in order (C(start), C(reload), C(restart)); in check mode what would be done (C(would reload)).
  returned: always
  type: list
  elements: str
  sample: [reload]
reason:
  description: One line saying why the edge serves or not, and what helped.
  returned: always
  type: str
  sample: the edge answers users again after a reload
edge:
  description: The edge container's state (C(running/healthy), C(exited(0\)), C(missing)).
  returned: always
  type: str
  sample: running/healthy
mode:
  description:
    - Which configuration the edge serves - C(normal) (the team's own), C(standby) or C(offline) (a degraded
      mode written by M(sre.incident.degrade)), C(unknown) (changed by someone else while a degraded
      mode's original is kept), or null when C(incident_stack.edge_config) is not set.
  returned: always
  type: str
  sample: normal
before:
  description: The probes through the edge before anything was done (C(ok), C(problems), C(health_status), C(recommendations)).
  returned: always
  type: dict
after:
  description: The last probes through the edge after an action.
  returned: when an action was taken
  type: dict
service:
  description: The probes of the service itself at C(incident_stack.base_url), made when the edge failed.
  returned: when the edge failed
  type: dict
"""

from ansible_collections.sre.incident.plugins.module_utils import _edge, _stack
from ansible_collections.sre.incident.plugins.module_utils._errors import InputError
from ansible_collections.sre.incident.plugins.module_utils._module import IncidentModule
from ansible_collections.sre.incident.plugins.module_utils._time import utc_now

ARGUMENT_SPEC = dict(
    stack=dict(type="dict", required=True),
    state=dict(type="str", choices=["serving", "present"], default="serving"),
    timeout=dict(type="float", default=30.0),
    deadline=dict(type="float"),
    probe_timeout=dict(type="float", default=3.0),
)
#: the least a repair gets with a deadline, however late it is asked for: a reload and a look
LEAST_S = 5.0


def validate(params):
    """The stack, checked for what the edge needs; InputError naming the problem."""
    for key in ("timeout", "probe_timeout"):
        if params[key] <= 0:
            raise InputError("%s must be > 0 seconds, got %s" % (key, params[key]))
    stack = params["stack"]
    _stack.validate(stack)
    for key in ("edge", "edge_url"):
        if not stack.get(key):
            raise InputError("incident_stack.%s is not set: the edge module needs the edge's compose service and URL" % key)
    return stack


def work(module):
    p = module.params
    stack = validate(p)
    edge = _edge.Edge(module.connect(), stack, run_command=module.run_command, probe_timeout=p["probe_timeout"])
    if p["state"] == "present":
        before = edge.serving()
        result = dict(changed=False, serving=before["ok"], actions=[], before=before, edge=edge.state_text(),
                      reason="users are answered through the edge" if before["ok"]
                      else "users are not answered through the edge: %s" % "; ".join(before["problems"][:3]))
    else:
        timeout = p["timeout"] if p["deadline"] is None else max(LEAST_S, p["deadline"] - utc_now().timestamp())
        result = edge.ensure_serving(timeout=timeout, check_mode=module.check_mode)
    result["mode"] = edge.mode()["mode"]
    word = {True: "users answered through the edge", False: "users NOT answered through the edge"}
    after = result["actions"][0] if module.check_mode and result["changed"] else word[result["serving"]]
    result["diff"] = dict(before=word[result["before"]["ok"]] + "\n", after=after + "\n")
    return result


def main(here=None):
    return IncidentModule(ARGUMENT_SPEC, docker=True, here=here).run(work)


if __name__ == "__main__":
    main()
