#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) sre.incident contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: traffic
short_description: Measure what real users got, from the edge's access log and Prometheus
version_added: 0.4.0
description:
  - Reads real traffic of a window and of a baseline window just before it (SPEC MON-2) from the edge's
    access log and Prometheus (see O(stack)), and returns for each the requests per second, the error
    rate, the share of distinct users with a failed request and the p50 and p95 latency.
  - Each figure comes from Prometheus when it answered, else from the access log when the window
    held at least O(min_requests) requests, else it is V(null) and so is its entry in RV(sources);
    the caller then falls back to its synthetic probes.
  - "Errors are answers with a 5xx status. A 4xx (499, the client giving up, included) is the
    client's error: it counts as a request but not as an error, and a user whose requests only got
    4xx is not failing; 4xx are reported as C(client_errors)."
  - A source that cannot be read (the engine unreachable, no edge container, Prometheus down) is
    reported (C(error) of RV(access_log), C(notes) of RV(prometheus)), not a failure.
extends_documentation_fragment:
  - sre.incident.attributes
  - sre.incident.attributes.read_only
  - sre.incident.docker
options:
  stack:
    description:
      - The stack description C(incident_stack). Its C(access_log), C(edge), C(recommendations_path),
        C(prometheus_url) and C(prometheus_queries) say where traffic is read.
      - "C(access_log): V(true) (the edge, format C(incident_json)) or a mapping with C(service) (the
        compose service whose log it is, default the stack's C(edge)), C(format) (only V(incident_json)) and C(exclude_users)
        (shell patterns of users to leave out, for example synthetic probes sending
        C(X-User-Id: synthetic-probe)). Its JSON lines (the nginx C(log_format) is in C(docs/monitoring.md)) are read
        from the stdout of that service's container through the Docker engine, between the two times. A line in
        another format is skipped and counted (C(lines_skipped) of RV(access_log))."
      - "C(prometheus_url): its HTTP API C(/api/v1/query) is asked the queries of C(prometheus_queries) (figures
        C(rps), C(error_rate), C(users_failing_pct), C(latency_p50_ms), C(latency_p95_ms); C($window), C($stack) and
        C($service) are filled in). The defaults fit the example stack and C(examples/monitoring); C(users_failing_pct)
        has none, Prometheus counting requests and not users."
    type: dict
    required: true
    aliases: [incident_stack]
  window:
    description: Seconds of traffic measured, ending at O(end).
    type: float
    default: 300
  baseline:
    description: Seconds of the baseline window, ending where the window starts. V(0) measures no baseline.
    type: float
    default: 3600
  end:
    description: End of the window, an ISO 8601 or UNIX time, or a negative number of seconds before now. Default now.
    type: str
  min_requests:
    description: Fewer requests than this in a window and the access log's figures for it are not used.
    type: int
    default: 1
  prometheus_timeout:
    description: Seconds one Prometheus query may take.
    type: float
    default: 5
seealso:
  - module: sre.incident.severity
  - module: sre.incident.verify
"""

EXAMPLES = r"""
- name: The last 5 minutes of real traffic against the hour before
  sre.incident.traffic:
    stack: "{{ incident_stack }}"
    window: 300
    baseline: 3600
  register: triage_traffic

- name: Classify on real users
  sre.incident.severity:
    measure: true
    stack: "{{ incident_stack }}"
    traffic: "{{ triage_traffic }}"
"""

RETURN = r"""
window:
  description:
    - The figures of the window. C(rps), C(error_rate) (5xx / requests), C(users_failing_pct),
      C(latency_p50_ms), C(latency_p95_ms) as chosen from the sources; from the access log also
      C(requests), C(errors), C(client_errors), C(client_error_rate), C(users), C(users_failing),
      C(failing_users) (at most 20 names) and C(statuses) (count per class such as C(5xx)).
    - C(since), C(until) (ISO 8601) and C(seconds).
  returned: success
  type: dict
  sample: {"rps": 12.5, "error_rate": 0.02, "users_failing_pct": 2.0, "latency_p50_ms": 4.0, "latency_p95_ms": 9.0,
           "requests": 3750, "errors": 75, "users": 200, "users_failing": 4, "seconds": 300}
baseline:
  description: The same figures for the baseline window.
  returned: success
  type: dict
sources:
  description: Per figure of RV(window), V(prometheus), V(access_log) or V(null) (no source had it).
  returned: success
  type: dict
  sample: {"rps": "access_log", "error_rate": "access_log", "users_failing_pct": "access_log",
           "latency_p50_ms": "prometheus", "latency_p95_ms": "prometheus"}
baseline_sources:
  description: Per figure of RV(baseline), where it came from.
  returned: success
  type: dict
source:
  description: The sources RV(window) used, V(access_log), V(prometheus), V(access_log+prometheus) or V(none).
  returned: success
  type: str
  sample: access_log
facts:
  description:
    - The window as facts of M(sre.incident.severity) (C(samples), C(error_rate), C(users_affected_pct),
      C(latency_ms) = p50); empty when no source had traffic.
  returned: success
  type: dict
  sample: {"samples": 3750, "error_rate": 0.02, "users_affected_pct": 2.0, "latency_ms": 4.0}
facts_source:
  description: Where RV(facts) came from, like RV(source).
  returned: success
  type: str
baseline_ms:
  description: The p50 latency of the baseline window, V(null) without traffic then.
  returned: success
  type: float
baseline_ms_source:
  description: Where RV(baseline_ms) came from.
  returned: success
  type: str
access_log:
  description: C(configured), C(available), C(service), C(containers) read, C(lines_skipped), C(excluded) and C(error).
  returned: success
  type: dict
prometheus:
  description: C(configured), C(url), C(queries) used, and C(notes) / C(baseline_notes) per figure without a value.
  returned: success
  type: dict
"""

import time

from ansible_collections.sre.incident.plugins.module_utils import _compose, _stack, _traffic
from ansible_collections.sre.incident.plugins.module_utils._module import IncidentModule

ARGUMENT_SPEC = dict(
    stack=dict(type="dict", required=True, aliases=["incident_stack"]),
    window=dict(type="float", default=float(_traffic.DEFAULT_WINDOW_S)),
    baseline=dict(type="float", default=float(_traffic.DEFAULT_BASELINE_S)),
    end=dict(type="str"),
    min_requests=dict(type="int", default=_traffic.DEFAULT_MIN_REQUESTS),
    prometheus_timeout=dict(type="float", default=_traffic.DEFAULT_PROMETHEUS_TIMEOUT),
)


def work(module):
    p = module.params
    _stack.validate(p["stack"])
    log_cfg, _prom = _traffic.validate(p["stack"])
    until = _traffic.parse_until(p["end"], time.time())
    _traffic.check_window("window", p["window"])
    _traffic.check_window("baseline", p["baseline"], minimum=0.0)
    _traffic.check_window("min_requests", p["min_requests"])
    _traffic.check_window("prometheus_timeout", p["prometheus_timeout"], minimum=0.1)
    client = engine_error = None
    if log_cfg is not None:
        try:
            client = module.connect()
        except _compose.DockerError as exc:
            engine_error = exc.msg  # Prometheus may still answer
    result = _traffic.measure(p["stack"], client=client, until=until, window_s=p["window"], baseline_s=p["baseline"],
                              min_requests=p["min_requests"], prometheus_timeout=p["prometheus_timeout"])
    if engine_error:
        result["access_log"]["error"] = engine_error
    return dict(result, changed=False)


def main():
    IncidentModule(ARGUMENT_SPEC, docker=True).run(work)


if __name__ == "__main__":
    main()
