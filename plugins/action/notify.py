# -*- coding: utf-8 -*-
# Copyright (c) sre.incident contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin of sre.incident.notify: notifications are sent from the managed host.

For a host managed over SSH (or any remote connection), this runs the module there, as any module
runs. For a host managed with the ``local`` connection the managed host *is* the controller's
machine, and starting another Python there only to fork a sender costs a module start (about
0.3 s on an idle 2-core machine, 1 to 2.5 s on a loaded one) before the evidence and the first
rung; so the same code (module_utils/_outbox.py) runs in this process instead, as
``sre.incident.record``'s action plugin does for the record. The sender, the outbox, the options,
the validation and every result are the module's. With ``become`` or ``async`` on the task the
module runs, so that it runs as the user and the way the task asks.
"""

from __future__ import annotations

from ansible.plugins.action import ActionBase
from ansible.utils.display import Display
from ansible.utils.vars import merge_hash

from ansible_collections.sre.incident.plugins.module_utils._outbox import REQUIRED_IF, argument_spec, run_checked
from ansible_collections.sre.incident.plugins.plugin_utils._action import validate

display = Display()


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _supports_check_mode = True
    _supports_async = True

    def _in_this_process(self):
        return (getattr(self._connection, "transport", None) == "local" and not self._play_context.become
                and not self._task.async_val)

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        if not self._in_this_process():
            wrap_async = bool(self._task.async_val) and not self._connection.has_native_async
            result = merge_hash(result, self._execute_module(task_vars=task_vars, wrap_async=wrap_async))
            if not wrap_async:
                self._remove_tmp_path(self._connection._shell.tmpdir)
            return result
        params, failure = validate("sre.incident.notify", self._task.args, argument_spec(), required_if=REQUIRED_IF)
        if failure:
            result.update(failure)
            return result
        environment = {}
        self._compute_environment_string(raw_environment_out=environment)
        outcome = run_checked(params, check_mode=bool(self._task.check_mode),
                              environment={str(k): str(v) for k, v in environment.items()})
        for warning in outcome.pop("warnings", []):
            display.warning(warning)
        result.update(outcome)
        return result
