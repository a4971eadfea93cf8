# -*- coding: utf-8 -*-
# Copyright (c) sre.incident contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin of sre.incident.notify: notifications are sent from the managed host.

For a host managed over SSH (or any remote connection), this runs the module there, as any module
runs. For the controller's own machine (the rule of ``plugin_utils/_action.ModuleAction``: the
``local`` connection, the controller's Python, no ``become``, ``async`` or ``delegate_to``) the same
code (module_utils/_outbox.py) runs in this process instead: starting another Python only to fork
a sender would cost a module start before the evidence and the first rung. The sender, the outbox,
the options, the validation and every result are the module's.
"""

from __future__ import annotations

from ansible_collections.sre.incident.plugins.module_utils._outbox import REQUIRED_IF, argument_spec, run_checked
from ansible_collections.sre.incident.plugins.plugin_utils._action import ModuleAction, validate


class ActionModule(ModuleAction):
    def act_here(self, args, environment):
        params, failure = validate("sre.incident.notify", args, argument_spec(), required_if=REQUIRED_IF)
        if failure:
            return failure
        return run_checked(params, check_mode=bool(self._task.check_mode), environment=environment)
