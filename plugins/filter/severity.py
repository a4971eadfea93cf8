# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The ``sre.incident.severity`` filter: the runbook's decision tree over a dict of facts.

Documentation: ``severity.yml`` next to this file (``ansible-doc -t filter sre.incident.severity``).
The logic lives in ``plugins/module_utils/_severity.py`` (``classify``), shared with the
``sre.incident.severity`` module.
"""

from __future__ import annotations

from ansible.errors import AnsibleFilterError

from ansible_collections.sre.incident.plugins.module_utils._severity import DEFAULT_LATENCY_TOLERANCE, classify


def severity(facts, baseline_ms=None, sla=None, latency_tolerance=DEFAULT_LATENCY_TOLERANCE):
    """Return ``{severity, sla, reasons, branches, decided_by, facts, kind, problem_detected}``."""
    if facts is not None and not isinstance(facts, dict):
        raise AnsibleFilterError("sre.incident.severity: the input must be a mapping of facts, got %r" % (facts,))
    try:
        return classify(dict(facts) if facts is not None else None, baseline_ms=baseline_ms, sla_overrides=sla,
                        latency_tolerance=latency_tolerance)
    except (ValueError, TypeError) as exc:
        raise AnsibleFilterError("sre.incident.severity: %s" % exc) from None


class FilterModule:
    """Severity filters."""

    def filters(self):
        return {"severity": severity}
