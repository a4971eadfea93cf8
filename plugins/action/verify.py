# -*- coding: utf-8 -*-
# Copyright (c) sre.incident contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin of sre.incident.verify: the module's code in the controller's process when the
managed host is the controller's machine, the module elsewhere (plugin_utils/_action.ModuleAction)."""

from __future__ import annotations

from ansible_collections.sre.incident.plugins.modules import verify
from ansible_collections.sre.incident.plugins.plugin_utils._action import ModuleAction


class ActionModule(ModuleAction):
    MAIN = staticmethod(verify.main)
