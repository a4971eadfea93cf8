# -*- coding: utf-8 -*-
# Copyright (c) sre.incident contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin of sre.incident.incident: the record lives on the controller, so the controller
writes it itself, in this process, instead of shipping the module to a Python it starts.

One record call then costs a few milliseconds instead of a module round trip (hundreds of
milliseconds), which an incident pays a dozen times before the service is verified. The options,
their validation and every result are those of the module (plugins/modules/incident.py): both call
the same code in module_utils/_record.py.
"""

from __future__ import annotations

from ansible.plugins.action import ActionBase
from ansible.utils.display import Display

from ansible_collections.sre.incident.plugins.module_utils._module import validate
from ansible_collections.sre.incident.plugins.module_utils._record import ARGUMENT_SPEC, REQUIRED_IF, run_checked

display = Display()


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False
    _supports_check_mode = True
    _supports_async = False

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        params, failure = validate(ARGUMENT_SPEC, self._task.args, "sre.incident.incident", required_if=REQUIRED_IF)
        if failure:
            result.update(failure)
            return result
        outcome = run_checked(params, check_mode=bool(self._task.check_mode), diff=bool(self._task.diff))
        for warning in outcome.pop("warnings", []):
            display.warning(warning)
        result.update(outcome)
        return result
