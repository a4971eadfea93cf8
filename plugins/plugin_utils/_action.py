# -*- coding: utf-8 -*-
# Copyright (c) sre.incident contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the collection's action plugins share: the task's options checked against the module's
argument spec, in the controller's process, before anything is done."""

from __future__ import annotations

from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.module_utils.errors import UnsupportedError
from ansible.plugins.action import ActionBase


def validate(name, args, argument_spec, required_if=None):
    """``(parameters, None)``, or ``(None, failure)`` naming each bad option (the result of a failed task)."""
    validated = ArgumentSpecValidator(argument_spec, required_if=required_if).validate(args)
    if not validated.error_messages:
        return validated.validated_parameters, None
    problems = [("unsupported parameters: %s" % err) if isinstance(err, UnsupportedError) else str(err)
                for err in validated.errors.errors]
    return None, dict(failed=True, changed=False, msg="%s: %s" % (name, "; ".join(problems)))


class ControllerAction(ActionBase):
    """A task done wholly in the controller's process (no connection, no module): the options are
    checked against ``ARGUMENT_SPEC``, then :meth:`act` returns the task's result."""

    TRANSFERS_FILES = False
    _requires_connection = False
    _supports_check_mode = True
    _supports_async = False
    NAME = ARGUMENT_SPEC = REQUIRED_IF = None

    def act(self, params):
        raise NotImplementedError

    def fill(self, args, task_vars):
        """The task's options, with what the action takes from the play when they are left out (none here)."""
        return args

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        args = self.fill(dict(self._task.args), task_vars or {})
        params, failure = validate(self.NAME, args, self.ARGUMENT_SPEC, required_if=self.REQUIRED_IF)
        result.update(failure or self.act(params))
        return result
