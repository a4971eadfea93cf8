# -*- coding: utf-8 -*-
# Copyright (c) sre.incident contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin of sre.incident.notify: notifications are sent from the managed host.

For a host managed over SSH (or any remote connection), this runs the module there, as any module
runs. For a host managed with the ``local`` connection the managed host *is* the controller's
machine, and starting another Python there only to fork a sender costs a module start (about
0.3 s on an idle 2-core machine, 1 to 2.5 s on a loaded one) before the evidence and the first
rung; so the same code (module_utils/_outbox.py) runs in this process instead, as
``sre.incident.record``'s action plugin does for the record (``plugin_utils/_action.ModuleAction``).
The sender, the outbox, the options, the validation and every result are the module's. With
``become``, ``async`` or ``delegate_to`` on the task the module runs, so that it runs as the user,
the way and where the task asks.
"""

from __future__ import annotations

from ansible_collections.sre.incident.plugins.module_utils._outbox import REQUIRED_IF, argument_spec, run_checked
from ansible_collections.sre.incident.plugins.plugin_utils._action import ModuleAction, validate


class ActionModule(ModuleAction):
    OWN_PYTHON = False   # the sender needs the standard library only

    def act_here(self, args, environment):
        params, failure = validate("sre.incident.notify", args, argument_spec(), required_if=REQUIRED_IF)
        if failure:
            return failure
        return run_checked(params, check_mode=bool(self._task.check_mode), environment=environment)
