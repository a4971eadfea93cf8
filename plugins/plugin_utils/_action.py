# -*- coding: utf-8 -*-
# Copyright (c) sre.incident contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the collection's action plugins share: a task done in the controller's process after its options
are checked against the module's argument spec (:class:`ControllerAction`), and a module's code run in
this process when the managed host is this machine (:class:`ModuleAction`)."""

from __future__ import annotations

import os
import sys

from ansible.plugins.action import ActionBase
from ansible.utils.display import Display
from ansible.utils.vars import merge_hash

from ansible_collections.sre.incident.plugins.module_utils._module import Here, check_options, outcome, run_here

display = Display()


def validate(name, args, argument_spec, required_if=None):
    """``(parameters, None)``, or ``(None, failure)`` naming each bad option (the result of a failed task)."""
    params, _no_log, problems = check_options(argument_spec, args, required_if=required_if)
    if not problems:
        return params, None
    return None, dict(failed=True, changed=False, msg="%s: %s" % (name, "; ".join(problems)))


class ControllerAction(ActionBase):
    """A task done in the controller's process: the options are checked against ``ARGUMENT_SPEC``, then
    :meth:`act` returns the task's result; its errors become the failed result as a module's would
    (:func:`~ansible_collections.sre.incident.plugins.module_utils._module.outcome`)."""

    TRANSFERS_FILES = False
    _requires_connection = False
    _supports_check_mode = True
    _supports_async = False
    NAME = ARGUMENT_SPEC = REQUIRED_IF = None
    #: in diff mode the diff is shown ``always``, or only when the task ``changed`` something
    DIFF_WHEN = "always"

    def act(self, params, task_vars):
        raise NotImplementedError

    def fill(self, args, task_vars):
        """The task's options, with what the action takes from the play when they are left out (none here)."""
        return args

    def context(self, params):
        """What the task was doing when an ``OSError`` stops it (``"<context>: <error>"``); None lets it raise."""
        return None

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        task_vars = task_vars or {}
        args = self.fill(dict(self._task.args), task_vars)
        params, failure = validate(self.NAME, args, self.ARGUMENT_SPEC, required_if=self.REQUIRED_IF)
        result.update(failure or outcome(lambda: self.act(params, task_vars), diff=bool(self._task.diff),
                                         diff_when=self.DIFF_WHEN, context=self.context(params)))
        return result


class ModuleAction(ActionBase):
    """A module whose code runs in this process (the task's worker) for a host managed with the ``local``
    connection, without ``become``, ``async`` or ``delegate_to``, whose ``ansible_python_interpreter``
    is this Python (so the code finds the libraries it would as a module), with the task's
    ``environment`` set; as a module everywhere else. Options, checks and results are the module's.

    Why: another Python costs about 0.3 s a task on an idle 2-core machine (1 to 2.5 s loaded), paid
    a dozen times before a P0's first rung and its verification."""

    TRANSFERS_FILES = False
    _supports_check_mode = True
    _supports_async = True
    #: the module's ``main(here=None)``
    MAIN = None

    def here(self, task_vars):
        """Whether the module's code runs in this process (see the class)."""
        interpreter = task_vars.get("ansible_python_interpreter")
        if (getattr(self._connection, "transport", None) != "local" or self._play_context.become or self._task.async_val
                or self._task.delegate_to or not interpreter):
            return False
        try:
            interpreter = str(self._templar.template(interpreter))
        except Exception:  # pylint: disable=broad-exception-caught  # undecidable: run the module
            return False
        return os.path.normpath(os.path.abspath(interpreter)) == os.path.normpath(os.path.abspath(sys.executable))

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        task_vars = task_vars or {}
        if not self.here(task_vars):
            wrap_async = bool(self._task.async_val) and not self._connection.has_native_async
            result = merge_hash(result, self._execute_module(task_vars=task_vars, wrap_async=wrap_async))
            if not wrap_async:
                self._remove_tmp_path(self._connection._shell.tmpdir)
            return result
        environment, saved = {}, dict(os.environ)
        self._compute_environment_string(raw_environment_out=environment)
        os.environ.update({str(k): str(v) for k, v in environment.items()})
        try:
            outcome = run_here(self.MAIN, Here(dict(self._task.args), check_mode=self._task.check_mode, diff=self._task.diff))
        finally:
            os.environ.clear()
            os.environ.update(saved)
        for warning in outcome.pop("warnings", None) or []:
            display.warning(warning)
        result.update(outcome)
        return result
