#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) sre.incident contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: health_check
short_description: Probe HTTP endpoints several times and say whether they are healthy
version_added: 0.1.0
description:
  - Sends O(count) rounds of HTTP requests, O(interval) seconds apart, to every URL of O(url), O(urls) or O(stack)
    (exactly one is required), and reports each answer's status, latency and error, and whether the endpoints
    are RV(healthy).
  - A target that is down is a result, not a module failure - connection refused, timeouts, HTTP error statuses
    and bodies that are not JSON become probes with RV(probes[].ok=false) and an RV(probes[].error). The module
    fails only for bad input, or with O(fail_on_unhealthy=true) when the endpoints are not healthy.
  - Uses the Python standard library (urllib) on the managed host.
extends_documentation_fragment:
  - sre.incident.attributes
  - sre.incident.attributes.here
  - sre.incident.attributes.read_only
  - sre.incident.docker
options:
  stack:
    description:
      - Probe what users reach, from the stack description C(incident_stack) - C(/health) and every sample user's
        recommendations (at least C(min_recommendations) items), at the service's own port (C(base_url)) and, when
        C(edge_url) is set, through the edge (see O(where)).
      - The containers of the service, its dependencies and the edge are read while the probes run (as with
        O(containers)).
    type: dict
  where:
    description: With O(stack), the places to probe - V(service) (its own port) and V(edge) (what users reach).
    type: list
    elements: str
    choices: [service, edge]
    default: [service, edge]
  check_edge:
    description:
      - With O(stack) and O(where=[service]), once the service answers, probe what users reach through the
        edge once (C(/health) and every sample user's recommendations, all at once, at most 1 s, or
        O(timeout) when shorter) and return it as RV(edge). The wait does not wait for the edge.
    type: bool
    default: false
  down_timeout:
    description:
      - With O(stack) and O(stop_early), the engine is read first (for at most this many seconds); when it shows no
        running container of the service (exited, paused, gone), every probe waits this long instead of O(timeout),
        since nothing can answer and the probes only show what users get (RV(probe_timeout)). V(0) keeps O(timeout).
    type: float
    default: 0.5
  url:
    description: One URL to probe, with scheme V(http) or V(https) and a host.
    type: str
  urls:
    description:
      - URLs to probe, each once per round, all at the same time.
      - An entry is a URL, or a dict with C(url) and its own C(json_query) (a list that replaces O(json_query) for
        that URL; V([]) checks the status only), so one call can probe a health endpoint and JSON APIs together.
    type: list
    elements: raw
  count:
    description: Number of probe rounds. Must be at least V(1).
    type: int
    default: 3
  interval:
    description: Seconds to wait between two rounds (not after the last one).
    type: float
    default: 0.5
  timeout:
    description: Seconds each request may take, to connect and to read the answer. Must be more than V(0).
    type: float
    default: 2
  method:
    description: HTTP method of the probes. V(POST) sends an empty body.
    type: str
    choices: [GET, POST, HEAD]
    default: GET
  expect_status:
    description: The HTTP status a successful probe answers with.
    type: int
    default: 200
  json_query:
    description:
      - JMESPath expressions that must all be true on the JSON body of a successful probe, for example
        V(length(recommendations\) > `5`) or V(status == 'ok'). A body that is not JSON fails every assertion.
      - Truth follows JMESPath - V(false), V(null) and an empty string, list or object are false; every number,
        V(0) included, is true.
    type: list
    elements: str
    default: []
  stop_early:
    description:
      - Stop the rounds as soon as the verdict can no longer change (enough probes succeeded to
        reach O(min_success_ratio) whatever the rest answer, or too many failed to reach it).
        With O(stack), once no place's verdict can change, or after one round when the engine
        already shows the failing place's container exited, paused or gone.
      - With V(false) every one of the O(count) rounds runs (for latency samples).
    type: bool
    default: false
  min_success_ratio:
    description:
      - Share of successful probes, between V(0) and V(1), at or above which the endpoints are
        RV(healthy). V(1) means every probe must succeed; V(0.8) tolerates one failure in five.
    type: float
    default: 1.0
  fail_on_unhealthy:
    description: Fail the task when the endpoints are not RV(healthy).
    type: bool
    default: false
  wait_timeout:
    description:
      - Keep making attempts of O(count) rounds until the endpoints are RV(healthy) or this many seconds have passed,
        to wait for a service to come back instead of a fixed sleep. V(0) makes one attempt.
    type: float
    default: 0
  deadline:
    description:
      - Instead of O(wait_timeout), the UNIX time the wait ends at (the ladder's C(ends_at), the end of a rung's
        window). The wait gets what is left of it when the task starts, and at least 1 second.
    type: float
  give_up_when_exited:
    description:
      - Stop waiting early, saying why in RV(gave_up), when every container of this compose service has exited (it
        will not answer, so the rest of O(wait_timeout) would be wasted).
      - Under a restart policy, also when each container of the service was restarted 3 times by the engine (since
        it was last started by hand) and went down again during 10 seconds of watching while every one of
        O(give_up_when_exited.dependencies) was ready (running, and healthy when it has a healthcheck; one without
        a healthcheck only once it has run for 30 seconds, as a running database may still be starting). The watch
        starts again while a dependency is not ready, so a service that crashes while its database boots is not
        given up on.
    type: dict
    suboptions:
      project:
        description: The compose project.
        type: str
        required: true
      service:
        description: The compose service.
        type: str
        required: true
      dependencies:
        description:
          - Services the service needs (its database, its cache). The wait also stops early when one
            of them has no running container (exited, dead or removed), since the service cannot
            pass its checks while a dependency is down and waiting does not bring it back.
        type: list
        elements: str
        default: []
      docker_host:
        description: The engine to ask, instead of O(docker_host).
        type: str
  containers:
    description:
      - Also read the state of these compose services' containers through the engine, while the
        probes run, so that one call confirms an alarm and says what is down (RV(containers)).
      - A service the project does not have fails the module (a configuration error); an engine
        that does not answer, or a project without containers, does not (RV(containers_error)).
    type: dict
    suboptions:
      project:
        description: The compose project.
        type: str
        required: true
      services:
        description: The compose services to read.
        type: list
        elements: str
        required: true
      docker_host:
        description: The engine to ask, instead of O(docker_host).
        type: str
requirements:
  - jmespath (only when O(json_query) or O(stack) is used)
  - docker (only when O(stack), O(give_up_when_exited) or O(containers) is used)
seealso:
  - module: sre.incident.compose_service
"""

EXAMPLES = r"""
- name: Is the recommendation service healthy?
  sre.incident.health_check:
    url: http://127.0.0.1:3000/health
  register: health

- name: Recommendations come back with more than five items, four probes out of five suffice
  sre.incident.health_check:
    urls:
      - http://127.0.0.1:3000/api/recommendations/user-1
      - http://127.0.0.1:3000/api/recommendations/user-2
    count: 5
    interval: 1
    timeout: 2
    json_query:
      - length(recommendations) > `5`
    min_success_ratio: 0.8
  register: recs

- name: Confirm an alarm in one call, health and recommendations together, deciding as soon as it can
  sre.incident.health_check:
    urls:
      - url: http://127.0.0.1:3000/health
        json_query: []
      - http://127.0.0.1:3000/api/recommendations/user-1
      - http://127.0.0.1:3000/api/recommendations/user-2
    json_query:
      - length(recommendations) > `5`
    count: 3
    min_success_ratio: 0.5
    stop_early: true
  register: alarm

- name: Report the p95 latency
  ansible.builtin.debug:
    msg: "p95 {{ recs.latency_ms.p95 }} ms, healthy={{ recs.healthy }}"
"""

RETURN = r"""
healthy:
  description:
    - Whether RV(success_ratio) is at least O(min_success_ratio).
    - With O(stack), whether each place probed answers (at least O(min_success_ratio) of its health
      probes and of its recommendation probes succeed).
  returned: success
  type: bool
  sample: true
success_ratio:
  description: Successful probes divided by the probes made, between V(0) and V(1).
  returned: success
  type: float
  sample: 0.8
urls:
  description: The URLs probed, in order.
  returned: success
  type: list
  elements: str
  sample: [http://127.0.0.1:3000/health]
probes:
  description: Every probe, in the order they were sent.
  returned: success
  type: list
  elements: dict
  contains:
    url:
      description: The URL probed.
      type: str
      returned: always
      sample: http://127.0.0.1:3000/health
    round:
      description: The round this probe belongs to, from V(1) to O(count).
      type: int
      returned: always
      sample: 1
    status:
      description: The HTTP status, or V(null) when no answer came.
      type: int
      returned: always
      sample: 200
    ok:
      description: The status was O(expect_status) and every O(json_query) assertion held.
      type: bool
      returned: always
      sample: true
    latency_ms:
      description: Milliseconds from sending the request to having read the body, or V(null) when no answer came.
      type: float
      returned: always
      sample: 12.408
    elapsed_ms:
      description: Milliseconds the probe took, also when no answer came (for example a timeout).
      type: float
      returned: always
      sample: 12.408
    error:
      description: Why the probe failed (V(connection refused), V(timed out), a status mismatch, a failed assertion), or V(null).
      type: str
      returned: always
      sample: status 503, expected 200
    body_json:
      description: The answer's body parsed as JSON, or V(null) when it is not JSON.
      type: raw
      returned: always
      sample: {"status": "ok"}
    failed_assertions:
      description: The O(json_query) expressions that did not hold for this probe.
      type: list
      elements: str
      returned: always
      sample: ["length(recommendations) > `5`"]
latency_ms:
  description:
    - Latency summary in milliseconds over the probes that got an HTTP answer of any status, so a
      refused connection does not look fast.
    - All values are V(null) when no probe got an answer.
  returned: success
  type: dict
  contains:
    min:
      description: Fastest answer.
      type: float
      returned: always
      sample: 3.1
    p50:
      description: Median (nearest rank).
      type: float
      returned: always
      sample: 4.2
    p95:
      description: 95th percentile (nearest rank).
      type: float
      returned: always
      sample: 9.7
    max:
      description: Slowest answer.
      type: float
      returned: always
      sample: 9.7
    samples:
      description: Number of probes the summary is computed from.
      type: int
      returned: always
      sample: 3
by_url:
  description: Per URL, the number of probes, successful probes, success ratio and latency summary.
  returned: success
  type: dict
  sample:
    "http://127.0.0.1:3000/health":
      total: 3
      ok: 3
      success_ratio: 1.0
      latency_ms: {"min": 3.1, "p50": 4.2, "p95": 9.7, "max": 9.7, "samples": 3}
rounds:
  description: Rounds of probes made in the last attempt (fewer than O(count) with O(stop_early)).
  returned: success
  type: int
  sample: 2
attempts:
  description: Attempts of O(count) rounds made; more than 1 only with O(wait_timeout).
  returned: success
  type: int
  sample: 1
gave_up:
  description: Why the wait ended early (O(give_up_when_exited)), or null.
  returned: success
  type: str
  sample: every container of recommendation-service exited (exit code 1)
waited:
  description: Seconds spent probing, including the waits between rounds.
  returned: success
  type: float
  sample: 1.52
containers:
  description:
    - With O(containers), the state of each container of those services (the keys of
      M(sre.incident.compose_service)'s RV(sre.incident.compose_service#module:containers)), read
      while the probes ran; a service without a container is left out. An empty list without
      O(containers) or when the engine could not say.
  returned: success
  type: list
  elements: dict
  sample: [{"service": "recommendation-service", "name": "recsys_recommendation-service_1", "status": "exited",
            "health": "none", "exit_code": 137, "oom_killed": false}]
containers_error:
  description:
    - Why O(containers) could not be read, or null. C(error_kind) is C(engine_unreachable) when the
      engine did not answer (C(engine_unreachable) is then true) and C(unknown_project) when no
      container of the project exists.
  returned: success
  type: dict
  sample: {"msg": "no container of compose project 'recsys'", "error_kind": "unknown_project", "engine_unreachable": false}
assessment:
  description:
    - With O(stack), the verdict - C(outage) (the alarm is real), C(outcome) (how an alarm that is not real ends, as
      the incident record closes - C(false_alarm), or C(resolved) when the engine's restart policy restarted the
      service within the last 10 minutes; null when the alarm is real), C(kind) (C(none), C(engine_unreachable),
      C(stack_down), C(dependency_down), C(service_down), C(edge_down), C(edge_failing)), C(down) (services
      without a running, healthy container), C(service_ok) and C(edge_ok) (null without an edge),
      C(health_ok) and C(recommendations_ok) where users are (the edge if there is one), C(success_ratio),
      C(places) (per place, the health and recommendations success ratios, per-user ratios and errors),
      C(containers) and C(impact) (C(users_probed), C(users_failing), C(failing_users), C(scope), C(measured_at)).
  returned: with O(stack)
  type: dict
  sample: {"outage": true, "outcome": null, "kind": "edge_failing", "down": [], "service_ok": true, "edge_ok": false}
summary:
  description: With O(stack), one line saying what was found (and, when the alarm is not real, the incident record's closing text).
  returned: with O(stack)
  type: str
  sample: "Alarm confirmed (edge_failing): the service itself: health 100 % ok, recommendations 100 % ok; through the edge: ..."
observed:
  description: With O(stack), RV(summary) without its verdict on an alarm - what the probes and the engine saw.
  returned: with O(stack)
  type: str
  sample: "the service itself: health 100 % ok, recommendations 100 % ok; through the edge: health 0 % ok, ..."
edge:
  description:
    - With O(check_edge), what users got through the edge once the service answered - C(serving) (every
      probe answered, with enough recommendations) and C(problems); null when the service did not answer
      or the stack has no edge.
  returned: with O(check_edge)
  type: dict
  sample: {"serving": false, "problems": ["http://127.0.0.1:8080/health: timed out"]}
probe_timeout:
  description: The timeout each probe had, in seconds (O(timeout), or O(down_timeout)).
  returned: success
  type: float
  sample: 2.0
min_success_ratio:
  description: The threshold applied, O(min_success_ratio).
  returned: success
  type: float
  sample: 1.0
"""

import concurrent.futures

from ansible_collections.sre.incident.plugins.module_utils import _compose, _detect, _http
from ansible_collections.sre.incident.plugins.module_utils._errors import IncidentError
from ansible_collections.sre.incident.plugins.module_utils._module import IncidentModule
from ansible_collections.sre.incident.plugins.module_utils._time import utc_now

#: With check_edge: the service answers, so an edge that serves answers as fast; one that does not is
#: looked at again by the edge's repair (sre.incident.edge), so this look need not wait long.
EDGE_LOOK_TIMEOUT_S = 1.0

ARGUMENT_SPEC = dict(
    stack=dict(type="dict"),
    where=dict(type="list", elements="str", choices=["service", "edge"], default=["service", "edge"]),
    check_edge=dict(type="bool", default=False),
    down_timeout=dict(type="float", default=0.5),
    url=dict(type="str"),
    urls=dict(type="list", elements="raw"),
    count=dict(type="int", default=3),
    interval=dict(type="float", default=0.5),
    timeout=dict(type="float", default=2.0),
    method=dict(type="str", default="GET", choices=["GET", "POST", "HEAD"]),
    expect_status=dict(type="int", default=200),
    json_query=dict(type="list", elements="str", default=[]),
    min_success_ratio=dict(type="float", default=1.0),
    stop_early=dict(type="bool", default=False),
    fail_on_unhealthy=dict(type="bool", default=False),
    wait_timeout=dict(type="float", default=0),
    deadline=dict(type="float"),
    give_up_when_exited=dict(type="dict", options=dict(
        project=dict(type="str", required=True),
        service=dict(type="str", required=True),
        dependencies=dict(type="list", elements="str", default=[]),
        docker_host=dict(type="str"),
    )),
    containers=dict(type="dict", options=dict(
        project=dict(type="str", required=True),
        services=dict(type="list", elements="str", required=True),
        docker_host=dict(type="str"),
    )),
)


def _exited_check(module, spec):
    """A give-up test for the wait: the service's containers all exited (nothing will answer), keep
    crashing under their restart policy, or a dependency is down (see _compose.cannot_recover)."""
    if not spec:
        return None
    try:
        client = module.connect(docker_host=spec.get("docker_host"))
    except _compose.DockerError as exc:
        raise IncidentError("give_up_when_exited: %s" % exc.msg) from None

    loop = _compose.CrashLoop()

    def exited():
        return _compose.cannot_recover(client, spec["project"], spec["service"], spec["dependencies"], crash_loop=loop)
    return exited


def _read_containers(pool, module, spec):
    if not spec:
        return None
    module.require_docker()
    return pool.submit(_compose.read_states, spec["project"], spec["services"],
                       spec.get("docker_host") or module.params["docker_host"], timeout=module.params["docker_timeout"])


def _settled_containers(reading, wait_s=0.0):
    """The containers' states once the engine answered (waiting ``wait_s`` at most); None before, or if it could not."""
    if reading is not None and not reading.done() and wait_s > 0:
        concurrent.futures.wait([reading], timeout=wait_s)
    if reading is None or not reading.done() or reading.exception() is not None:
        return None
    found = reading.result()
    return None if found.get("containers_error") else found.get("containers")


def work(module):
    p = module.params
    stack = p["stack"]
    tgts = None
    spec = p["containers"]
    if stack is not None:
        tgts = _detect.targets(stack, where=p["where"])
        urls = [dict(url=t["url"], json_query=t["json_query"]) for t in tgts]
        if spec is None:
            spec = dict(project=stack["name"], services=_detect.container_services(stack), docker_host=None)
    else:
        urls = [p["url"]] if p["url"] is not None else p["urls"]
    if p["check_edge"] and (stack is None or p["where"] != ["service"]):
        raise IncidentError("check_edge needs stack and where=[service], got where=%s" % (p["where"] if stack else None,))
    if p["down_timeout"] is None or p["down_timeout"] < 0:
        raise IncidentError("down_timeout must be >= 0 seconds, got %r" % (p["down_timeout"],))
    wants_jmespath = stack is not None or p["json_query"] or any(isinstance(u, dict) and u.get("json_query") for u in urls)
    if wants_jmespath:
        module.require("jmespath", _http.HAS_JMESPATH, _http.JMESPATH_IMPORT_ERROR)
    wait_timeout = p["wait_timeout"] if p["deadline"] is None else max(1.0, p["deadline"] - utc_now().timestamp())
    give_up = _exited_check(module, p["give_up_when_exited"])
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        # the engine is read while the probes run (with stop_early, first: see down_timeout)
        reading = _read_containers(pool, module, spec)
        timeout = p["timeout"]
        if tgts is not None and p["stop_early"] and p["down_timeout"] and reading is not None:
            # nothing answers for a service without a running container: the probes need not wait long
            found = _settled_containers(reading, p["down_timeout"])
            if found is not None and not _detect.service_running(stack, found):
                timeout = min(timeout, p["down_timeout"])
        extra = {}
        if tgts is not None:
            def judge(probes):
                return _detect.answered(tgts, probes, p["min_success_ratio"])

            def settled(probes, rounds):
                # a place failed: whether the engine confirms it decides if another round is needed, so
                # its answer (on its way since the start) is waited for, at most the time between rounds
                wait_s = 0.0 if judge(probes) else p["interval"]
                return _detect.decided(tgts, probes, rounds, p["count"], p["min_success_ratio"],
                                       containers=_settled_containers(reading, wait_s), stack=stack)
            extra = dict(judge=judge, settled=settled)
        result = _http.wait_healthy(
            urls, wait_timeout, give_up=give_up,
            count=p["count"], interval=p["interval"], timeout=timeout, method=p["method"],
            expect_status=p["expect_status"], json_queries=p["json_query"],
            min_success_ratio=p["min_success_ratio"], stop_early=p["stop_early"], **extra
        )
        if reading is None:
            result.update(containers=[], containers_error=None)
        else:
            try:
                result.update(reading.result())
            except _compose.UnknownService as exc:
                raise IncidentError("containers: %s" % exc.msg) from None
    result["probe_timeout"] = timeout
    if p["check_edge"]:
        # the service answers: one look (all probes at once) at what users get through the edge: is a reload needed?
        result["edge"] = None
        if result["healthy"] and stack.get("edge_url"):
            edge_tgts = _detect.targets(stack, where=["edge"])
            seen = _http.probe_many([dict(url=t["url"], json_query=t["json_query"]) for t in edge_tgts], count=1,
                                    timeout=min(p["timeout"], EDGE_LOOK_TIMEOUT_S))
            result["edge"] = dict(serving=_detect.answered(edge_tgts, seen["probes"], 1.0),
                                  problems=["%s: %s" % (pr["url"], pr["error"]) for pr in seen["probes"] if not pr["ok"]])
    if tgts is not None:
        verdict = _detect.assess(stack, tgts, result["probes"], result["containers"], result["containers_error"],
                                 min_ratio=p["min_success_ratio"])
        result.update(assessment=verdict, summary=_detect.summary(verdict), observed=_detect.observed(verdict))
    result["changed"] = False
    if p["fail_on_unhealthy"] and not result["healthy"]:
        errors = sorted({pr["error"] for pr in result["probes"] if pr["error"]})
        result.update(failed=True, msg="unhealthy: success ratio %s is below %s; errors: %s"
                      % (result["success_ratio"], p["min_success_ratio"], "; ".join(errors) or "none"))
    return result


def main(here=None):
    return IncidentModule(ARGUMENT_SPEC, docker=True, here=here, required_one_of=[("url", "urls", "stack")],
                          mutually_exclusive=[("url", "urls", "stack")]).run(work)


if __name__ == "__main__":
    main()
