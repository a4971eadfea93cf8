# -*- coding: utf-8 -*-
# Copyright (c) sre.incident contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The ``sre.incident.oncall`` filter: who is on call at a given time (SPEC P0-9).

Documentation: ``oncall.yml`` next to this file (``ansible-doc -t filter sre.incident.oncall``).
"""

from __future__ import annotations

from ansible_collections.sre.incident.plugins.module_utils._oncall import who_is_on_call
from ansible_collections.sre.incident.plugins.plugin_utils._filter import decision


@decision("oncall")
def oncall(rotation, at=None, tz=None):
    return who_is_on_call(rotation, at=at, tz=tz)


class FilterModule:
    def filters(self):
        return {"oncall": oncall}
