# -*- coding: utf-8 -*-
# Copyright (c) sre.incident contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The ``sre.incident.oncall`` filter: who is on call at a given time (SPEC P0-9).

Documentation: ``oncall.yml`` next to this file (``ansible-doc -t filter sre.incident.oncall``).
The logic lives in ``plugins/module_utils/_oncall.py``.

Default rotation (the runbook's, used by the roles as ``incident_oncall``)::

    incident_oncall:
      timezone: Asia/Shanghai
      shifts:
        weekday_day:   {handle: "@oncall-day",   start: "09:00", end: "18:00"}
        weekday_night: {handle: "@oncall-night"}
        weekend:       {handle: "@oncall-weekend"}
      contacts:
        tech_lead: "@tech-lead"
        incident_commander: "@incident-commander"
        devops: "@devops"
        dba: "@dba"
"""

from __future__ import annotations

from ansible_collections.sre.incident.plugins.module_utils._oncall import who_is_on_call
from ansible_collections.sre.incident.plugins.plugin_utils._filter import decision


@decision("oncall")
def oncall(rotation, at=None, tz=None):
    """Return ``{shift, handle, at, timezone, shift_start, shift_end, contacts}``."""
    return who_is_on_call(rotation, at=at, tz=tz)


class FilterModule:
    """On-call rotation filters."""

    def filters(self):
        return {"oncall": oncall}
