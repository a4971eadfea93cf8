# -*- coding: utf-8 -*-
# Copyright (c) sre.incident contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin of sre.incident.postmortem: the report is written on the controller, in this process.

The record and the reports live on the controller, and the reports are Jinja2 templates shipped
with the collection (plugins/plugin_utils/templates), which AnsiballZ does not ship to a module.
So the controller reads the record, builds the report's view (module_utils/_postmortem.py) and
renders the templates (plugin_utils/_render.py) itself; nothing runs on a managed host.
"""

from __future__ import annotations

from ansible.plugins.action import ActionBase

from ansible_collections.sre.incident.plugins.module_utils._postmortem import ARGUMENT_SPEC, PostmortemError, run
from ansible_collections.sre.incident.plugins.module_utils._record import RecordError
from ansible_collections.sre.incident.plugins.plugin_utils._action import validate
from ansible_collections.sre.incident.plugins.plugin_utils._render import render


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False
    _supports_check_mode = True
    _supports_async = False

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        params, failure = validate("sre.incident.postmortem", self._task.args, ARGUMENT_SPEC)
        if failure:
            result.update(failure)
            return result
        try:
            outcome = run(params, render, check_mode=bool(self._task.check_mode))
        except (PostmortemError, RecordError) as exc:
            result.update(exc.details, failed=True, changed=False, msg=exc.msg)
            return result
        except (OSError, ValueError) as exc:
            result.update(failed=True, changed=False,
                          msg="postmortem of %s in %s: %s" % (params["id"], params["incident_dir"], exc))
            return result
        if not self._task.diff:
            outcome.pop("diff", None)
        result.update(outcome)
        return result
