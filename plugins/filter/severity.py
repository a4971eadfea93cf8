# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The ``sre.incident.severity`` filter: the runbook's decision tree over a dict of facts (the module's too);
``sre.incident.worst_severity``: the worst of several severities.

Documentation: ``severity.yml`` and ``worst_severity.yml`` next to this file (``ansible-doc -t filter sre.incident.severity``).
"""

from __future__ import annotations

from ansible_collections.sre.incident.plugins.module_utils._severity import DEFAULT_LATENCY_TOLERANCE, classify, worst_known
from ansible_collections.sre.incident.plugins.plugin_utils._filter import decision


@decision("severity")
def severity(facts, baseline_ms=None, sla=None, latency_tolerance=DEFAULT_LATENCY_TOLERANCE):
    if facts is not None and not isinstance(facts, dict):
        raise ValueError("the input must be a mapping of facts, got %r" % (facts,))
    return classify(dict(facts) if facts is not None else None, baseline_ms=baseline_ms, sla_overrides=sla,
                    latency_tolerance=latency_tolerance)


@decision("worst_severity")
def worst_severity(severities):
    return worst_known(severities)


class FilterModule:
    def filters(self):
        return {"severity": severity, "worst_severity": worst_severity}
