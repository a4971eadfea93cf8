# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The ``sre.incident.p1_cases`` filter: the runbook's four P1 cases detected from diagnostics facts;
``sre.incident.p1_fixes``: their quick fixes, which to run in order and what they did.

Documentation: ``p1_cases.yml`` and ``p1_fixes.yml`` next to this file (``ansible-doc -t filter sre.incident.p1_fixes``).
"""

from __future__ import annotations

from ansible_collections.sre.incident.plugins.module_utils._p1cases import detect, quick_fixes
from ansible_collections.sre.incident.plugins.plugin_utils._filter import decision


@decision("p1_cases")
def p1_cases(summary, baseline_ms=None, probes=None, thresholds=None, limit=10, min_recommendations=6, owners=None,
             traffic=None):
    return detect(summary, probes=probes, baseline_ms=baseline_ms, thresholds=thresholds, limit=limit,
                  min_recommendations=min_recommendations, owners=owners, traffic=traffic)


@decision("p1_fixes")
def p1_fixes(detected, restart="auto", refresh_path="", dependencies=None, done=None, dry_run=False):
    return quick_fixes(detected, restart=restart, refresh_path=refresh_path, dependencies=dependencies, done=done,
                       dry_run=dry_run)


class FilterModule:
    def filters(self):
        return {"p1_cases": p1_cases, "p1_fixes": p1_fixes}
