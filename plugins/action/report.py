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
from ansible.plugins.action import ActionBase

from ansible_collections.sre.incident.plugins.module_utils import _report
from ansible_collections.sre.incident.plugins.module_utils._compose import DOCKER_COMMON_ARGS
from ansible_collections.sre.incident.plugins.plugin_utils._action import validate
from ansible_collections.sre.incident.plugins.plugin_utils._render import render


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _supports_check_mode = True
    _supports_async = False

    def _collect(self, task_vars):
        """The module on the managed host, given the collection options as the task wrote them."""
        wanted = set(_report.COLLECT_OPTIONS) | set(DOCKER_COMMON_ARGS)
        args = {k: v for k, v in self._task.args.items() if k in wanted}
        try:
            return self._execute_module(module_name="sre.incident.report", module_args=args, task_vars=task_vars)
        finally:
            self._remove_tmp_path(self._connection._shell.tmpdir)

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        params, failure = validate("sre.incident.report", self._task.args, _report.argument_spec(),
                                   required_if=_report.REQUIRED_IF)
        result.update(failure or self._act(params, task_vars))
        return result

    def _act(self, params, task_vars):
        """The task's result for valid options: the evidence collected (when asked), the report made."""
        result = {}
        try:
            _report.check(params)
            if params["collect"]:
                collected = self._collect(task_vars)
                if collected.get("failed"):
                    return collected
                result.update((k, v) for k, v in collected.items() if k in ("warnings", "deprecations"))
                params["evidence"] = collected["evidence"]
            outcome = _report.run(params, render, check_mode=bool(self._task.check_mode))
        except ValueError as exc:
            return dict(result, failed=True, changed=False, msg=str(exc))
        except _report.ReportError as exc:
            return dict(result, **dict(exc.details, failed=True, changed=False, msg=exc.msg))
        except OSError as exc:
            return dict(result, failed=True, changed=False, msg="writing the report to %s: %s" % (params["dest_dir"], exc))
        if not (self._task.diff and outcome["changed"]):
            del outcome["diff"]
        # as a module's exit_json would: the token (no_log) is in no value returned, whatever a tracker answers
        result.update(remove_values(outcome, {params["tracker"]["token"]} if params.get("tracker") else set()))
        return result
