# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The ``sre.incident.p1_cases`` filter: the runbook's four P1 cases detected from diagnostics facts.

Documentation: ``p1_cases.yml`` next to this file (``ansible-doc -t filter sre.incident.p1_cases``).
The logic lives in ``plugins/module_utils/_p1cases.py`` (``detect``).
"""

from __future__ import annotations

from ansible.errors import AnsibleFilterError

from ansible_collections.sre.incident.plugins.module_utils._p1cases import detect


def p1_cases(summary, baseline_ms=None, probes=None, thresholds=None, limit=10, min_recommendations=6, owners=None,
             traffic=None):
    """Return ``{detected, cases, latency_ms, latency_source, baseline_ms, baseline_source, thresholds}``."""
    try:
        return detect(summary, probes=probes, baseline_ms=baseline_ms, thresholds=thresholds, limit=limit,
                      min_recommendations=min_recommendations, owners=owners, traffic=traffic)
    except (ValueError, TypeError) as exc:
        raise AnsibleFilterError("sre.incident.p1_cases: %s" % exc) from None


class FilterModule:
    """P1 case filters."""

    def filters(self):
        return {"p1_cases": p1_cases}
