# -*- coding: utf-8 -*-
# Copyright (c) sre.incident contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin of sre.incident.notify: the module, in this process when it can be (_action.ModuleAction).

The sender it forks inherits the task's ``environment``; another Python only to fork it would cost a
module start before the evidence and the first rung."""

from __future__ import annotations

from ansible_collections.sre.incident.plugins.modules import notify
from ansible_collections.sre.incident.plugins.plugin_utils._action import ModuleAction


class ActionModule(ModuleAction):
    MAIN = staticmethod(notify.main)
