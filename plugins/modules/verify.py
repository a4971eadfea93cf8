#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) sre.incident contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: verify
short_description: Verify a recovery against the runbook's checklist, then watch for a rebound
version_added: 0.1.0
description:
  - Runs the runbook's recovery checks (O(checks)) at the same time and reports each with its measured
    value, its threshold and pass or fail.
  - With O(watch_window) above V(0) and every check passed, it then watches for a rebound, one sample per
    O(watch_interval), and stops early at a sample whose error rate is above O(rebound_error_rate).
  - The checks and the watch can be two calls, the second given the first's result as O(checked).
extends_documentation_fragment:
  - sre.incident.attributes
  - sre.incident.attributes.here
  - sre.incident.attributes.read_only
  - sre.incident.docker
options:
  stack:
    description:
      - The stack description C(incident_stack), giving the URLs, the compose project and service, the
        sample users, C(min_recommendations) and C(thresholds).
    type: dict
    required: true
    aliases: [incident_stack]
  since:
    description:
      - When the fix was applied; error log lines before it are not counted. Default, the last 60 seconds.
      - An ISO 8601 time such as V(2026-11-27T01:30:45Z) (UTC without an offset), seconds before now with
        an optional unit such as V(300), V(-300) (the same) or V(5m), or a UNIX time such as V(@1795744000),
        as for O(sre.incident.diagnose#module:errors_since).
    type: str
  checks:
    description:
      - The checks to run, in this order. An empty list runs only the watch (to tick the checklist before it).
      - V(health) passes when every probe of the health URL answers 200.
      - V(recommendations) passes when every probe of every sample user answers 200 with at least
        C(incident_stack.min_recommendations) items (default V(6), the runbook's "more than 5").
      - V(latency) passes when the slowest recommendation probe (not a percentile) took less than
        C(incident_stack.thresholds.latency_ms) (default V(500)) ms. A probe without an answer fails it.
        With several O(probe_rounds) the first round, warming the caches a restart emptied, is not judged.
      - V(log_errors) passes when the service's container logs hold no error line since O(since), as the
        collection's one log classifier counts them (see the notes of M(sre.incident.diagnose)).
      - V(resources) passes when every container of the service uses less than
        C(incident_stack.thresholds.cpu_percent) (default V(50)) percent CPU and
        C(incident_stack.thresholds.memory_percent) (default V(60)) percent memory, as C(docker stats) shows.
      - V(edge) probes C(/health) and every sample user's recommendations through C(incident_stack.edge_url),
        as users reach them; a recovery is verified only when users are answered there. Without an
        C(edge_url) it is not run and RV(not_checked) says so.
      - Only V(log_errors) and V(resources) talk to the Docker engine (and need the docker SDK).
    type: list
    elements: str
    choices: [health, recommendations, latency, log_errors, resources, edge]
    default: [health, recommendations, latency, log_errors, resources, edge]
  thresholds:
    description:
      - Overrides of C(incident_stack.thresholds) and C(incident_stack.min_recommendations), with keys
        C(latency_ms), C(cpu_percent), C(memory_percent) and C(min_recommendations), each above V(0).
        An unknown key fails the task.
    type: dict
    default: {}
  probe_rounds:
    description: How many times the checks probe the health URL and each sample user.
    type: int
    default: 2
  probe_timeout:
    description: Seconds one HTTP probe may take.
    type: float
    default: 2
  watch_window:
    description:
      - Seconds to watch after the checks passed (the runbook watches V(900)); the task lasts about this
        long unless a rebound stops it early. V(0) does not watch.
    type: float
    default: 0
  watch_interval:
    description:
      - Seconds between two watch samples (the runbook samples every V(60)). Samples are taken at V(0),
        O(watch_interval), twice O(watch_interval) and so on, while below O(watch_window), and a closing one
        at the end of O(watch_window), so the whole window is looked at (V(900) every V(60) takes 16 samples).
    type: float
    default: 60
  rebound_error_rate:
    description:
      - The error rate (RV(samples[].error_rate)), between V(0) and V(1), that a watch sample must stay
        at or below. V(0) stops at the first failing probe.
    type: float
    default: 0
  traffic:
    description:
      - Judge the watch on real traffic too (SPEC MON-2). At each sample, the real requests since the
        previous one (for the first, since O(since)) are read from the edge's access log
        (C(incident_stack.access_log)) or Prometheus (C(incident_stack.prometheus_url)) as
        M(sre.incident.traffic) reads them; the sample is a rebound when their 5xx share is above
        O(rebound_error_rate) or their p95 latency reaches C(incident_stack.thresholds.latency_ms).
      - An interval without real requests, or a stack without a traffic source, judges the probes only.
    type: bool
    default: false
  checked:
    description:
      - The registered result of an earlier call that ran the checks (with no watch). This call then runs
        no checks (O(checks) must be V([])), watches when those checks passed, and returns the verification
        as a whole, the earlier checks and this watch (RV(passed), RV(summary), RV(ticks)), as the verify
        role does to tick the checks' items (and C(recovery_verified)) before a 15-minute watch and the
        watch's items after it.
      - O(since) defaults to its RV(since).
    type: dict
  fail_on_failure:
    description: Fail the task when a check or the watch does not pass; else the playbook decides from RV(passed).
    type: bool
    default: false
notes:
  - Error lines quoted in RV(checks[].detail) are cut to 300 characters, and secrets are masked.
  - In check mode the checks run (they only read) but the watch does not (a dry run does not spend the
    window); RV(watch_skipped) says so.
seealso:
  - module: sre.incident.health_check
"""

EXAMPLES = r"""
- name: Verify the recovery since the fix, then watch 15 minutes
  sre.incident.verify:
    stack: "{{ incident_stack }}"
    since: "{{ recover_result.fixed_at }}"
    watch_window: 900
    watch_interval: 60
  register: verify

- name: A drill shortens the watch and tolerates one failing probe in five
  sre.incident.verify:
    stack: "{{ incident_stack }}"
    watch_window: 30
    watch_interval: 5
    rebound_error_rate: 0.2
    fail_on_failure: true

- name: The checks first (their checklist items can be ticked at once) ...
  sre.incident.verify:
    stack: "{{ incident_stack }}"
    since: "{{ recover_result.fixed_at }}"
  register: checks

- name: ... then the watch, deciding the verification as a whole
  sre.incident.verify:
    stack: "{{ incident_stack }}"
    checked: "{{ checks }}"
    checks: []
    watch_window: 900
  register: verification

- name: Only HTTP checks, with a stricter latency
  sre.incident.verify:
    stack: "{{ incident_stack }}"
    checks: [health, recommendations, latency]
    thresholds:
      latency_ms: 200
  register: quick
"""

RETURN = r"""
passed:
  description: Every check passed and, when there was a watch, the watch passed.
  returned: success
  type: bool
  sample: true
checks:
  description: Every check that ran, in the order of O(checks).
  returned: success
  type: list
  elements: dict
  contains:
    name:
      description: The check, one of O(checks).
      type: str
      sample: latency
    passed:
      description: Whether the measured value is within the threshold.
      type: bool
      sample: true
    value:
      description:
        - The measured value. V(health) the HTTP status (of the first failing probe),
          V(recommendations) the fewest items of a probe, V(latency) the slowest answer in ms,
          V(log_errors) the number of error lines, V(resources) a dict with the highest
          C(cpu_percent) and C(memory_percent), V(edge) the users answered through the edge.
        - V(null) when nothing could be measured (no answer, no container).
      type: raw
      sample: 31.4
    threshold:
      description: The threshold, in the unit of RV(checks[].value).
      type: raw
      sample: 500
    detail:
      description: One line saying what was measured, or why it failed.
      type: str
      sample: max 31.4 ms, p50 2.6 ms, p95 31.4 ms over 10 answers
not_checked:
  description: Checks asked for that could not be run, each with the reason (a check not run is not a pass).
  returned: success
  type: list
  elements: str
  sample: ["edge: incident_stack.edge_url is not set, so what users reach was not probed"]
failed_checks:
  description: Names of the checks that did not pass.
  returned: success
  type: list
  elements: str
  sample: [log_errors]
checklist:
  description:
    - The recovery checklist items of the incident record this result can tick, each with C(passed),
      C(value), C(check) (where it comes from) and C(text) (the value in words, for the record).
    - C(health_200), C(recommendations_returned) (one user gets enough items),
      C(several_users_ok) (every sample user, at least two), C(latency_under_500ms),
      C(users_answered_via_edge), C(no_new_errors) and C(resources_normal).
  returned: success
  type: dict
  sample: {"health_200": {"passed": true, "value": 200, "check": "health"}}
since:
  description: The time error lines were counted from, in UTC.
  returned: success
  type: str
  sample: "2026-11-27T01:30:45.000Z"
thresholds:
  description: The thresholds applied.
  returned: success
  type: dict
  sample: {"latency_ms": 500, "cpu_percent": 50, "memory_percent": 60, "min_recommendations": 6}
samples:
  description: The watch samples, oldest first; empty without a watch.
  returned: success
  type: list
  elements: dict
  contains:
    ts:
      description: When the sample was taken, in UTC.
      type: str
      sample: "2026-11-27T01:31:45.000Z"
    offset_s:
      description: Seconds from the start of the watch to the start of this sample.
      type: float
      sample: 60.0
    duration_s:
      description: Seconds the sample took.
      type: float
      sample: 0.04
    error_rate:
      description: Failing probes divided by the sample's probes.
      type: float
      sample: 0.0
    errors:
      description: Failing probes.
      type: int
      sample: 0
    probes:
      description: Probes of the sample (the health URL and one per sample user).
      type: int
      sample: 6
    latency_ms:
      description: The slowest recommendation answer in ms, V(null) when none answered.
      type: float
      sample: 28.1
    latency_p50_ms:
      description: The median recommendation answer in ms.
      type: float
      sample: 12.0
    log_errors:
      description: Error lines logged since the previous sample (the first sample counts from O(since)).
      type: int
      sample: 0
    failing:
      description: The failing probes with their error.
      type: list
      elements: str
      sample: ["health: connection refused"]
    traffic:
      description:
        - The real traffic of the interval ending at this sample, C(requests), C(rps), C(error_rate),
          C(errors), C(users), C(users_failing), C(latency_p50_ms), C(latency_p95_ms), C(since), C(until),
          C(source), C(sources) (per figure), and C(error) when a source could not be read.
      type: dict
      returned: when O(traffic=true)
      sample: {"requests": 120, "error_rate": 0.0, "latency_p95_ms": 18.0, "source": "access_log"}
    traffic_rebound:
      description: Why the real traffic rebounded in this interval, or V(null).
      type: str
      returned: when O(traffic=true)
      sample: "real error rate 0.05 > 0 (access_log: 6 of 120 requests, 3 users failing)"
watch_passed:
  description: Whether the watch ended without a rebound; V(null) when there was no watch.
  returned: success
  type: bool
  sample: true
rebound_at:
  description: When the error rate rebounded (the sample's time), V(null) without a rebound.
  returned: success
  type: str
  sample: null
watch_skipped:
  description: Why a requested watch did not run (checks failed, check mode), or V(null).
  returned: success
  type: str
  sample: null
summary:
  description: One line, what passed or every failed check with its value and threshold (the failure message).
  returned: success
  type: str
  sample: "recovery not verified: latency = 612.3 (threshold 500): max 612.3 ms, p50 605.1 ms, p95 612.3 ms over 10 answers"
rebound:
  description: The rebound in one line, its time and what failed (probes, real traffic), or V(null) without one.
  returned: success
  type: str
  sample: "Error rate rebounded at 2026-11-27T01:33:45.000Z: health: connection refused"
ticks:
  description:
    - The incident record's checklist items this result ticks, each with its value as text (for
      M(sre.incident.record) with O(sre.incident.record#module:state=tick)).
    - The items of the checks this call ran that passed (see RV(checklist)), and C(recovery_verified)
      (P0 checklist, with RV(summary)) when every check it ran passed - the runbook's "verify recovery"
      at t+20m is these checks; the 15-minute watch after them has its own items. After a watch,
      C(watch_every_minute) and, without a rebound, C(error_rate_no_rebound). A rebound leaves
      C(error_rate_no_rebound) open and RV(passed) false, and the incident is not resolved.
  returned: success
  type: dict
  sample: {"health_200": "HTTP 200", "watch_every_minute": "16 samples every 60 s over 900 s"}
rebound_error_rate:
  description: The O(rebound_error_rate) a watch sample had to stay at or below.
  returned: success
  type: float
  sample: 0.0
elapsed:
  description: Seconds the checks and the watch took.
  returned: success
  type: float
  sample: 1.2
"""

import time

from ansible_collections.sre.incident.plugins.module_utils import _compose, _stack, _time, _traffic, _verify
from ansible_collections.sre.incident.plugins.module_utils._module import IncidentModule

DEFAULT_SINCE_S = 60

ARGUMENT_SPEC = dict(
    stack=dict(type="dict", required=True, aliases=["incident_stack"]),
    since=dict(type="str"),
    checks=dict(type="list", elements="str", choices=list(_verify.CHECKS), default=list(_verify.CHECKS)),
    thresholds=dict(type="dict", default={}),
    probe_rounds=dict(type="int", default=2),
    probe_timeout=dict(type="float", default=2.0),
    watch_window=dict(type="float", default=0.0),
    watch_interval=dict(type="float", default=60.0),
    rebound_error_rate=dict(type="float", default=0.0),
    traffic=dict(type="bool", default=False),
    checked=dict(type="dict"),
    fail_on_failure=dict(type="bool", default=False),
)

#: What this module returns about its checks, taken over from O(checked).
CHECKED_KEYS = ("passed", "checks", "failed_checks", "checklist", "not_checked", "since", "thresholds")


def validate(p, now):
    """Check the input before anything is probed; returns (since epoch, thresholds)."""
    _stack.validate(p["stack"])
    thresholds = _stack.thresholds(p["stack"], p["thresholds"])
    if p["probe_rounds"] < 1:
        raise _verify.VerifyError("probe_rounds must be >= 1, got %r" % (p["probe_rounds"],))
    if p["probe_timeout"] <= 0:
        raise _verify.VerifyError("probe_timeout must be > 0 seconds, got %r" % (p["probe_timeout"],))
    _verify.validate_watch(p["watch_window"], p["watch_interval"], p["rebound_error_rate"])
    checked = p["checked"]
    if checked is not None:
        missing = [k for k in CHECKED_KEYS if k not in checked]
        if missing or not isinstance(checked["passed"], bool) or not isinstance(checked["checks"], list):
            raise _verify.VerifyError("checked must be the result of an earlier verify call, got one without %s: %r"
                                      % (", ".join(missing) or "a boolean passed and a list of checks", checked))
        if p["checks"]:
            raise _verify.VerifyError("checks must be [] with checked (the checks were run by the earlier call), got %r"
                                      % (p["checks"],))
    since = _time.parse_since(p["since"] or (checked or {}).get("since"), now)
    return (now - DEFAULT_SINCE_S if since is None else since), thresholds


def run(p, client, since, thresholds, traffic_client=None, check_mode=False):
    """The checks (or those of O(checked)), then the watch when asked for, the checks passed and this is
    not a dry run (``traffic_client`` reads the access log)."""
    started = time.monotonic()
    if p["checked"] is None:
        result = _verify.evaluate(p["stack"], since, checks=p["checks"], thresholds=thresholds, client=client,
                                  probe_rounds=p["probe_rounds"], probe_timeout=p["probe_timeout"],
                                  container_state=_compose.container_state)
    else:
        result = {key: p["checked"][key] for key in CHECKED_KEYS}
    result.update(samples=[], watch_passed=None, rebound_at=None, watch_skipped=None)
    if p["watch_window"] > 0:
        if check_mode:
            result["watch_skipped"] = "check mode: a dry run would watch %g s, and does not" % p["watch_window"]
        elif result["passed"]:
            reader = _traffic.watch_reader(p["stack"], traffic_client) if p["traffic"] else None
            watched = _verify.watch(p["stack"], p["watch_window"], p["watch_interval"], since,
                                    rebound_error_rate=p["rebound_error_rate"], client=client,
                                    min_recommendations=thresholds["min_recommendations"],
                                    probe_timeout=p["probe_timeout"], traffic=reader,
                                    traffic_latency_ms=thresholds["latency_ms"])
            result.update(samples=watched["samples"], watch_passed=watched["passed"], rebound_at=watched["rebound_at"])
            result["passed"] = result["passed"] and watched["passed"]
        else:
            result["watch_skipped"] = "checks failed: %s" % ", ".join(result["failed_checks"])
    result["rebound_error_rate"] = p["rebound_error_rate"]
    result["summary"] = _verify.summarize(result)
    result["rebound"] = _verify.rebound_text(result)
    result["ticks"] = _verify.ticks(result, ran_checks=p["checked"] is None, window_s=p["watch_window"],
                                    interval_s=p["watch_interval"])
    result["elapsed"] = round(time.monotonic() - started, 3)
    return result


def _traffic_client(module, client):
    """The engine connection for the access log of a traffic watch (None: none needed or none to be had)."""
    p = module.params
    if not (p["traffic"] and p["watch_window"] > 0 and _traffic.access_log_config(p["stack"])):
        return None
    if client is not None or not _compose.HAS_DOCKER:
        return client
    try:
        return module.connect()
    except _compose.DockerError:
        return None  # the access log then reports it cannot be read; the probes still judge


def work(module):
    p = module.params
    needs_docker = any(c in _verify.DOCKER_CHECKS for c in p["checks"])
    since, thresholds = validate(p, time.time())
    client = module.connect(max_pool_size=16) if needs_docker else None
    result = run(p, client, since, thresholds, traffic_client=_traffic_client(module, client),
                 check_mode=module.check_mode)
    if p["fail_on_failure"] and not result["passed"]:
        result.update(failed=True, msg=result["summary"])
    return dict(result, changed=False)


def main(here=None):
    return IncidentModule(ARGUMENT_SPEC, docker=True, here=here).run(work)


if __name__ == "__main__":
    main()
