# -*- coding: utf-8 -*-
# Copyright (c) sre.incident contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin of sre.incident.record: the record lives on the controller, so the controller writes it
itself, in this process: a few milliseconds instead of a module round trip (hundreds), paid a dozen times
before the service is verified. Options and results are the module's (the same code, module_utils/_record.py).
"""

from __future__ import annotations

from ansible.utils.display import Display

from ansible_collections.sre.incident.plugins.module_utils._record import ARGUMENT_SPEC, REQUIRED_IF, run_checked
from ansible_collections.sre.incident.plugins.plugin_utils._action import ControllerAction

display = Display()


#: Options a task may leave out, and the play's variable each is then taken from; not the id of
#: state=opened (an id given there resumes that incident).
FROM_THE_PLAY = (("incident_dir", "incident_dir"), ("id", "incident_id"), ("host", "inventory_hostname"))


class ActionModule(ControllerAction):
    NAME, ARGUMENT_SPEC, REQUIRED_IF = "sre.incident.record", ARGUMENT_SPEC, REQUIRED_IF

    def fill(self, args, task_vars):
        for option, variable in FROM_THE_PLAY:
            if option == "id" and args.get("state") == "opened":
                continue
            if args.get(option) is None and task_vars.get(variable) not in (None, ""):
                args[option] = self._templar.template(task_vars[variable])
        return args

    def act(self, params, task_vars):
        outcome = run_checked(params, check_mode=bool(self._task.check_mode), diff=bool(self._task.diff))
        for warning in outcome.pop("warnings", []):
            display.warning(warning)
        return outcome
