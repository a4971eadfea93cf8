# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The ``sre.incident.triage`` filter: the triage decision of ``playbooks/triage.yml`` for one host.

Documentation: ``triage.yml`` next to this file (``ansible-doc -t filter sre.incident.triage``).
"""

from __future__ import annotations

from ansible_collections.sre.incident.plugins.module_utils import _severity
from ansible_collections.sre.incident.plugins.plugin_utils._filter import decision


@decision("triage")
def triage(measured, given=None, kind="incident", alert=None, detect=None, baseline_ms=None, traffic=None, resources=None,
           resource_checks=None):
    for name, value in (("the measured result", measured), ("given", given), ("detect", detect), ("traffic", traffic)):
        if value is not None and not isinstance(value, dict):
            raise ValueError("%s must be a mapping, got %r" % (name, value))
    return _severity.triage(measured=measured, given=given, kind=kind, alert=alert, detect=detect,
                            baseline_ms=baseline_ms, traffic=traffic, resources=resources, resource_checks=resource_checks)


class FilterModule:
    def filters(self):
        return {"triage": triage}
