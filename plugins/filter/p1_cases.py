# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The ``sre.incident.p1_cases`` filter: the runbook's four P1 cases detected from diagnostics facts.

Documentation: ``p1_cases.yml`` next to this file (``ansible-doc -t filter sre.incident.p1_cases``).
"""

from __future__ import annotations

from ansible_collections.sre.incident.plugins.module_utils._p1cases import detect
from ansible_collections.sre.incident.plugins.plugin_utils._filter import decision


@decision("p1_cases")
def p1_cases(summary, baseline_ms=None, probes=None, thresholds=None, limit=10, min_recommendations=6, owners=None,
             traffic=None):
    return detect(summary, probes=probes, baseline_ms=baseline_ms, thresholds=thresholds, limit=limit,
                  min_recommendations=min_recommendations, owners=owners, traffic=traffic)


class FilterModule:
    def filters(self):
        return {"p1_cases": p1_cases}
