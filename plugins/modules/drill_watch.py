#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) sre.incident contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: drill_watch
short_description: Watch a drilled service from the users' side until told to stop
version_added: 0.4.0
description:
  - The drill's own measurement (SPEC DR-2), independent of the playbook that answers the fault. Every O(interval)
    seconds a round probes the health URL and every sample user's recommendations at once, and records with its
    start time whether users were served - C(/health) answers 200, every sample user gets at least
    O(min_recommendations) items, the median answer takes at most O(latency_ms) (an injected delay slows every
    answer, a busy machine only some).
  - Runs until O(stop_file) exists on the managed host (the drill creates it once the severity playbook has ended)
    and then the last O(settle_rounds) rounds were good or O(settle_timeout) more seconds passed (a blip at the
    very end is told from users not served), or until O(max_duration) seconds have passed; then returns every
    round. Start it with C(async) and C(poll=0), collect it with M(ansible.builtin.async_status).
  - Uses the Python standard library on the managed host.
extends_documentation_fragment:
  - sre.incident.attributes
  - sre.incident.attributes.read_only
options:
  stack:
    description:
      - The stack description C(incident_stack); the URLs and sample users come from it, and the
        defaults of O(min_recommendations) and O(latency_ms).
    type: dict
    required: true
  base_url:
    description:
      - Probe through this base URL instead of C(incident_stack.edge_url) (what users reach), or
        C(incident_stack.base_url) when the stack has no edge.
    type: str
  stop_file:
    description: Stop after the round during which this file (on the managed host) exists.
    type: path
    required: true
  interval:
    description: Seconds from the start of one round to the start of the next (a round that takes longer starts the next at once).
    type: float
    default: 0.5
  timeout:
    description: Seconds one probe may take; no answer within it is a failed round.
    type: float
    default: 2
  max_duration:
    description: Stop after this many seconds even without O(stop_file).
    type: float
    default: 3600
  settle_rounds:
    description: Good rounds in a row that end the watch once O(stop_file) exists.
    type: int
    default: 2
  settle_timeout:
    description: Seconds the watch goes on at most once O(stop_file) exists.
    type: float
    default: 10
  min_recommendations:
    description: Items each sample user must get; default C(incident_stack.min_recommendations), else V(6).
    type: int
  latency_ms:
    description: >-
      The median latency of a round's recommendation answers allowed, in ms; default
      C(incident_stack.thresholds.latency_ms), else V(500).
    type: float
seealso:
  - module: sre.incident.fault
  - module: sre.incident.health_check
"""

EXAMPLES = r"""
- name: Watch the service from before the injection on
  sre.incident.drill_watch:
    stack: "{{ incident_stack }}"
    stop_file: /tmp/drill-watch.stop
  async: 3600
  poll: 0
  register: drill_watch_job

- name: Inject the fault and run the severity playbook here

- name: Stop the watch
  ansible.builtin.file:
    path: /tmp/drill-watch.stop
    state: touch
    mode: "0600"

- name: Collect the rounds
  ansible.builtin.async_status:
    jid: "{{ drill_watch_job.ansible_job_id }}"
  register: drill_watch
  until: drill_watch.finished
  retries: 60
  delay: 1
"""

RETURN = r"""
samples:
  description: One entry per round, in order.
  returned: success
  type: list
  elements: dict
  contains:
    t:
      description: "UNIX time the round started (the managed host's clock)."
      type: float
    ok:
      description: "Users were served in this round."
      type: bool
    why:
      description: "What failed, or null."
      type: str
    latency_ms:
      description: "The median latency of the round's recommendation answers, or null without answers."
      type: float
  sample: [{"t": 1764218000.5, "ok": false, "why": "health no answer; user-1: connection refused", "latency_ms": null}]
stopped_by:
  description: V(stop_file) or V(max_duration).
  returned: success
  type: str
  sample: stop_file
base_url:
  description: The base URL probed.
  returned: success
  type: str
  sample: http://127.0.0.1:8080
"""

from ansible_collections.sre.incident.plugins.module_utils import _drill, _stack
from ansible_collections.sre.incident.plugins.module_utils._module import IncidentModule

ARGUMENT_SPEC = dict(
    stack=dict(type="dict", required=True),
    base_url=dict(type="str"),
    stop_file=dict(type="path", required=True),
    interval=dict(type="float", default=0.5),
    timeout=dict(type="float", default=2.0),
    max_duration=dict(type="float", default=3600.0),
    settle_rounds=dict(type="int", default=2),
    settle_timeout=dict(type="float", default=10.0),
    min_recommendations=dict(type="int"),
    latency_ms=dict(type="float"),
)


def work(module):
    p = module.params
    stack = p["stack"]
    urls = _stack.urls(stack, base=p["base_url"] or stack.get("edge_url") or stack.get("base_url"))
    minimum = p["min_recommendations"] if p["min_recommendations"] is not None else int(stack.get("min_recommendations") or 6)
    limit = p["latency_ms"] if p["latency_ms"] is not None else float((stack.get("thresholds") or {}).get("latency_ms") or 500)
    result = _drill.watch(urls["health"], urls["recommendation_urls"], p["stop_file"], interval=p["interval"],
                          timeout=p["timeout"], max_duration=p["max_duration"], min_recommendations=minimum,
                          latency_ms=limit, settle_rounds=p["settle_rounds"], settle_timeout=p["settle_timeout"])
    return dict(result, changed=False, base_url=urls["base"])


def main():
    IncidentModule(ARGUMENT_SPEC).run(work)


if __name__ == "__main__":
    main()
