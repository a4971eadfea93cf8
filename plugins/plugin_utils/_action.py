# -*- coding: utf-8 -*-
# Copyright (c) sre.incident contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the collection's action plugins share: the task's options checked against the module's
argument spec, in the controller's process, before anything is done."""

from __future__ import annotations

from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.module_utils.errors import UnsupportedError


def validate(name, args, argument_spec, required_if=None):
    """``(parameters, None)``, or ``(None, failure)`` naming each bad option (the result of a failed task)."""
    validated = ArgumentSpecValidator(argument_spec, required_if=required_if).validate(args)
    if not validated.error_messages:
        return validated.validated_parameters, None
    problems = [("unsupported parameters: %s" % err) if isinstance(err, UnsupportedError) else str(err)
                for err in validated.errors.errors]
    return None, dict(failed=True, changed=False, msg="%s: %s" % (name, "; ".join(problems)))
