# -*- coding: utf-8 -*-
# Copyright (c) sre.incident contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin of sre.incident.report: evidence on the managed host, the report on the controller.

With O(collect=true) the module collects the evidence on the managed host, given only the collection
options (the tracker and its token stay here). The report is rendered, posted and written here, where
Jinja2 and the template files always are.
"""

from __future__ import annotations

from ansible.module_utils.common.parameters import remove_values

from ansible_collections.sre.incident.plugins.module_utils import _report
from ansible_collections.sre.incident.plugins.module_utils._compose import DOCKER_COMMON_ARGS
from ansible_collections.sre.incident.plugins.plugin_utils._action import ControllerAction
from ansible_collections.sre.incident.plugins.plugin_utils._render import render


class ActionModule(ControllerAction):
    NAME, REQUIRED_IF = "sre.incident.report", _report.REQUIRED_IF
    ARGUMENT_SPEC = _report.argument_spec()
    DIFF_WHEN = "changed"
    _requires_connection = True   # the evidence (O(collect)) is collected on the managed host

    def _collect(self, task_vars):
        """The module on the managed host, given the collection options as the task wrote them."""
        wanted = set(_report.COLLECT_OPTIONS) | set(DOCKER_COMMON_ARGS)
        args = {k: v for k, v in self._task.args.items() if k in wanted}
        try:
            return self._execute_module(module_name="sre.incident.report", module_args=args, task_vars=task_vars)
        finally:
            self._remove_tmp_path(self._connection._shell.tmpdir)

    def context(self, params):
        return "writing the report to %s" % params["dest_dir"]

    def act(self, params, task_vars):
        """The task's result for valid options: the evidence collected (when asked), the report made."""
        _report.check(params)
        result = {}
        if params["collect"]:
            collected = self._collect(task_vars)
            if collected.get("failed"):
                return collected
            result.update((k, v) for k, v in collected.items() if k in ("warnings", "deprecations"))
            params["evidence"] = collected["evidence"]
        outcome = _report.run(params, render, check_mode=bool(self._task.check_mode))
        # as a module's exit_json would: the token (no_log) is in no value returned, whatever a tracker answers
        result.update(remove_values(outcome, {params["tracker"]["token"]} if params.get("tracker") else set()))
        return result
