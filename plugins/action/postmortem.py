# -*- coding: utf-8 -*-
# Copyright (c) sre.incident contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin of sre.incident.postmortem: the report is written on the controller, in this process.

The record and the reports live on the controller, and AnsiballZ does not ship the collection's
templates to a module; nothing runs on a managed host.
"""

from __future__ import annotations

from ansible_collections.sre.incident.plugins.module_utils._postmortem import ARGUMENT_SPEC, run
from ansible_collections.sre.incident.plugins.plugin_utils._action import ControllerAction
from ansible_collections.sre.incident.plugins.plugin_utils._render import render


class ActionModule(ControllerAction):
    NAME, ARGUMENT_SPEC = "sre.incident.postmortem", ARGUMENT_SPEC

    def context(self, params):
        return "postmortem of %s in %s" % (params["id"], params["incident_dir"])

    def act(self, params, task_vars):
        return run(params, render, check_mode=bool(self._task.check_mode))
