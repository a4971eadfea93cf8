# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The ``sre.incident.drill_score`` filter: score one drill from the watch and the incident record.

Documentation: ``drill_score.yml`` next to this file (``ansible-doc -t filter sre.incident.drill_score``).
"""

from __future__ import annotations

from ansible_collections.sre.incident.plugins.module_utils import _drill
from ansible_collections.sre.incident.plugins.plugin_utils._filter import decision


@decision("drill_score", errors=(ValueError, TypeError, KeyError))
def drill_score(samples, injected_at, events=None, fault_cleared=False, degraded=False, playbook="", sla=None, applicable=True):
    if isinstance(events, str):
        events = _drill.parse_events(events)
    return _drill.score(injected_at, list(samples or []), list(events or []), bool(fault_cleared), bool(degraded),
                        playbook, sla=sla, applicable=bool(applicable))


class FilterModule:
    def filters(self):
        return {"drill_score": drill_score}
