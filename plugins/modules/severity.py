# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
module: severity
short_description: Classify an incident as P0 to P3 with the runbook's decision tree
version_added: 0.2.0
description:
  - Applies the runbook's decision tree (SPEC SEV-1) to facts given as options (an alert's labels, an
    operator's judgement) or measured with O(measure=true) (SPEC SEV-4); returns the severity, its SLA
    and the reasons that led to it.
  - "Impact branch: all users affected -> V(P0); else the core feature (recommendations)
    affected -> V(P1); else more than 1 % of users affected -> V(P1); else V(P2). Exactly 1 %
    is not more than 1 %, so V(P2)."
  - "All users are affected when O(all_users_affected=true), O(users_affected_pct=100) or
    O(error_rate=1) (every request failed). The core feature is affected when
    O(core_feature_affected=true) or O(recommendations_empty=true). The share of users affected
    is the larger of O(users_affected_pct) and O(error_rate) times 100, except when the share
    counts distinct real users (O(traffic) from an access log): then it is that share alone, since
    a few users retrying failed requests raise the error rate, not the share of users."
  - "Latency branch, ratio = O(latency_ms) / baseline: more than 10x -> V(P0); from 5x to 10x, both
    included -> V(P1); under 5x -> V(P2). Without a latency or without a baseline above V(0), the branch is not
    evaluated and RV(reasons) says why. Comparisons are exact on the numbers as written."
  - Both branches are evaluated and the worse severity wins.
  - The tree sizes a problem, it does not find one. A healthy service classifies as V(P2) with
    RV(problem_detected=false), which decides whether there is an incident.
  - Impossible input (a negative latency, a percentage outside 0 to 100, an error rate outside 0
    to 1) fails before anything is measured or written, naming the value.
extends_documentation_fragment:
  - sre.incident.attributes
attributes:
  check_mode:
    details: Measuring only reads. With O(record_baseline=true) check mode reports the baseline it would record and writes nothing.
  diff_mode:
    support: full
    details: With O(record_baseline=true), shows the old and the new recorded baseline.
  idempotent:
    support: partial
    details: Classifying changes nothing. Recording a baseline changes the file when the measured p50 differs from the recorded one.
  platform:
    platforms: posix
options:
  users_affected_pct:
    description: Share of users affected, in percent, from V(0) to V(100).
    type: float
  all_users_affected:
    description: Every user is affected.
    type: bool
  core_feature_affected:
    description: The core feature (recommendations) is affected.
    type: bool
  recommendations_empty:
    description: Recommendations come back empty (for some users); the core feature is affected.
    type: bool
  error_rate:
    description: Share of failed requests, a fraction from V(0) to V(1) (V(0.05) is 5 %).
    type: float
  latency_ms:
    description: Latency now, in milliseconds (for example the p50 of the recommendations).
    type: float
  samples:
    description:
      - Number of requests O(error_rate) and O(latency_ms) were computed from. V(0) (no traffic) makes them
        impossible, and with no impact fact the task fails, as an empty measurement says nothing about users.
    type: int
  kind:
    description:
      - V(incident) is classified with the tree.
      - V(improvement) and V(docs) are V(P3) with no SLA (SPEC SEV-2), without the tree; facts saying
        users are affected contradict such a kind and fail the task.
    type: str
    choices: [incident, improvement, docs]
  measure:
    description:
      - Probe the recommendations of every sample user of O(stack) O(probe_count) times and derive
        O(samples), O(error_rate), O(users_affected_pct), O(core_feature_affected),
        O(recommendations_empty) and O(latency_ms) (the p50). Facts given as options replace measured ones.
      - A sample user is affected when at least half of its probes failed (no answer, not 200) or were empty.
    type: bool
    default: false
  stack:
    description: The stack description C(incident_stack); required with O(measure=true).
    type: dict
  traffic:
    description:
      - Real traffic, the result of M(sre.incident.traffic) (SPEC MON-2). Its C(facts) replace the
        probes' C(samples), C(error_rate), C(users_affected_pct) (the share of distinct real users
        with a failed request, so SEV-4's "more than 1 % of users" is measured on real users) and
        C(latency_ms) (the real p50). Without traffic in it (no source, no request), the probes decide.
      - With real traffic the probes no longer set C(core_feature_affected) (five sample users do not
        size the impact when real users can be counted); an empty answer of a probe
        (C(recommendations_empty), which an access log cannot see) still does.
      - When the latency is real and O(baseline_ms) is not given, the baseline is the real p50 of the
        traffic's baseline window (else O(baseline_file)).
    type: dict
  probe_count:
    description: Probe rounds with O(measure=true).
    type: int
    default: 3
  probe_interval:
    description: Seconds between two probe rounds.
    type: float
    default: 0.5
  probe_timeout:
    description: Seconds one probe may take; a probe that takes longer counts as failed.
    type: float
    default: 5
  baseline_ms:
    description: The normal latency in milliseconds the latency branch compares against.
    type: float
  baseline_file:
    description:
      - "A JSON file on the managed host holding a recorded baseline, C({\"baseline_ms\": 12.5, \"recorded_at\": ...}),
        used without O(baseline_ms). A missing file means no baseline."
    type: path
  record_baseline:
    description:
      - Write the measured p50 latency to O(baseline_file) as the new baseline, after classifying
        against the previous one. Needs O(measure=true) and O(baseline_file).
      - Fails when the measurement shows failed or empty answers, so no baseline is recorded during an incident.
    type: bool
    default: false
  latency_tolerance:
    description:
      - With no impact fact, a latency at or below this many times the baseline is no problem
        (RV(problem_detected=false)); the severity is unchanged. At least V(1).
    type: float
    default: 2
  sla:
    description: "SLA overrides in seconds per severity, such as C({P1: {respond: 600}})."
    type: dict
seealso:
  - module: sre.incident.record
  - module: sre.incident.health_check
notes:
  - The filter P(sre.incident.severity#filter) applies the same tree to a dict of facts.
"""

EXAMPLES = r"""
- name: Classify from an alert's labels
  sre.incident.severity:
    users_affected_pct: 3
    latency_ms: 120
    baseline_ms: 50
  register: triage_class
  # triage_class.severity == 'P1' (3 % of users, more than 1 %)

- name: Measure the service and classify against the recorded baseline
  sre.incident.severity:
    measure: true
    stack: "{{ incident_stack }}"
    baseline_file: "{{ incident_stack.state_dir }}/baseline.json"
  register: triage_class

- name: A documentation fix is P3
  sre.incident.severity:
    kind: docs
"""

RETURN = r"""
severity:
  description: The severity, V(P0) (worst) to V(P3).
  returned: success
  type: str
  sample: P0
sla:
  description: Seconds to respond and to resolve for RV(severity); V(null) for no SLA.
  returned: success
  type: dict
  sample: {"respond": 300, "resolve": 1800}
reasons:
  description: The path of reasons, impact branch, latency branch, and which one won.
  returned: success
  type: list
  elements: str
  sample:
    - users affected 100.0 % (all) -> P0
    - latency 11.3x baseline (565 ms vs 50 ms), more than 10x -> P0
    - worse of impact P0 and latency P0 -> P0
decided_by:
  description: V(impact), V(latency), V(both) (the branches agree) or V(kind) (P3).
  returned: success
  type: str
  sample: both
problem_detected:
  description: Some impact fact shows users affected, or the latency is more than O(latency_tolerance) times the baseline.
  returned: success
  type: bool
  sample: true
kind:
  description: The kind classified, O(kind).
  returned: success
  type: str
  sample: incident
facts:
  description: The facts classified, given and measured, normalised.
  returned: success
  type: dict
  sample: {"samples": 15, "error_rate": 0.0, "users_affected_pct": 0.0, "latency_ms": 565.2, "baseline_ms": 50, "kind": "incident"}
branches:
  description: "Each branch's result. C(impact) has C(severity) and C(reasons); C(latency) has C(evaluated), C(severity), C(ratio), C(reason)."
  returned: success
  type: dict
  sample:
    impact: {"evaluated": true, "severity": "P2", "reasons": ["not all users affected", "users affected 0.0 %, not more than 1 % -> P2"]}
    latency: {"evaluated": true, "severity": "P0", "ratio": 11.3, "latency_ms": 565, "baseline_ms": 50, "reason": "..."}
baseline:
  description:
    - The baseline used, C(baseline_ms), its C(source) (V(option), V(access_log) or V(prometheus) (the
      real traffic's baseline window), V(file), V(facts) or V(none)), C(file), C(recorded) (the file's
      content before) and C(new) (the baseline recorded with O(record_baseline)).
  returned: success
  type: dict
  sample: {"baseline_ms": 50, "source": "file", "file": "/var/lib/sre-incident/recsys/baseline.json"}
baseline_recorded:
  description: A new baseline was written to O(baseline_file) (never in check mode).
  returned: success
  type: bool
  sample: false
samples:
  description: "With O(measure=true), every probe: C(user), C(round), C(status), C(latency_ms), C(count) (recommendations), C(source), C(error)."
  returned: success
  type: list
  elements: dict
  sample: [{"user": "user-1", "round": 1, "status": 200, "latency_ms": 4.1, "count": 10, "source": "cache", "error": null}]
users:
  description: "With O(measure=true), per sample user: C(probes), C(failed), C(empty) and C(affected)."
  returned: success
  type: dict
  sample: {"user-1": {"probes": 3, "failed": 0, "empty": 0, "affected": false}}
sources:
  description: Where each fact of RV(facts) came from, V(probes), V(access_log), V(prometheus) or V(given) (an option).
  returned: success
  type: dict
  sample: {"samples": "access_log", "error_rate": "access_log", "users_affected_pct": "access_log", "latency_ms": "access_log",
           "recommendations_empty": "probes"}
traffic_source:
  description: The sources of the real traffic used (RV(sources) per fact), or V(null) when none was used.
  returned: success
  type: str
  sample: access_log
latency:
  description: "With O(measure=true), the latency summary of the probes: C(min), C(p50), C(p95), C(max), C(samples)."
  returned: success
  type: dict
  sample: {"min": 3.1, "p50": 4.2, "p95": 9.7, "max": 9.7, "samples": 15}
"""

from ansible_collections.sre.incident.plugins.module_utils import _severity
from ansible_collections.sre.incident.plugins.module_utils._module import IncidentModule

ARGUMENT_SPEC = dict(
    users_affected_pct=dict(type="float"),
    all_users_affected=dict(type="bool"),
    core_feature_affected=dict(type="bool"),
    recommendations_empty=dict(type="bool"),
    error_rate=dict(type="float"),
    latency_ms=dict(type="float"),
    samples=dict(type="int"),
    kind=dict(type="str", choices=list(_severity.KINDS)),
    measure=dict(type="bool", default=False),
    stack=dict(type="dict"),
    traffic=dict(type="dict"),
    probe_count=dict(type="int", default=3),
    probe_interval=dict(type="float", default=0.5),
    probe_timeout=dict(type="float", default=5.0),
    baseline_ms=dict(type="float"),
    baseline_file=dict(type="path"),
    record_baseline=dict(type="bool", default=False),
    latency_tolerance=dict(type="float", default=_severity.DEFAULT_LATENCY_TOLERANCE),
    sla=dict(type="dict"),
)


def main():
    module = IncidentModule(ARGUMENT_SPEC,
                            required_if=[("measure", True, ("stack",)), ("record_baseline", True, ("baseline_file",))])
    module.run(lambda m: _severity.run(m.params, check_mode=m.check_mode), diff_when="changed")


if __name__ == "__main__":
    main()
