# -*- coding: utf-8 -*-
# Copyright (c) sre.incident contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin of sre.incident.notify: notifications are sent from the managed host, so the module
runs there as any module does; for the controller's own machine (plugin_utils/_action.ModuleAction)
its code (module_utils/_outbox.py) runs in this process, with the task's ``environment`` set, which
the sender inherits: another Python only to fork a sender would cost a module start before the
evidence and the first rung."""

from __future__ import annotations

from ansible_collections.sre.incident.plugins.modules import notify
from ansible_collections.sre.incident.plugins.plugin_utils._action import ModuleAction


class ActionModule(ModuleAction):
    MAIN = staticmethod(notify.main)
