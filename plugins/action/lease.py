# -*- coding: utf-8 -*-
# Copyright (c) sre.incident contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin of sre.incident.lease: the module, in this process when it can be (_action.ModuleAction)."""

from __future__ import annotations

from ansible_collections.sre.incident.plugins.modules import lease
from ansible_collections.sre.incident.plugins.plugin_utils._action import ModuleAction


class ActionModule(ModuleAction):
    MAIN = staticmethod(lease.main)
