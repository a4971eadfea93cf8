# -*- coding: utf-8 -*-
# Copyright (c) sre.incident contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The base of every module: one way to declare options, check imports, connect, fail and exit.

A module hands its argument spec and one function (its work) to :class:`IncidentModule`::

    def main():
        IncidentModule(argument_spec(), docker=True).run(work)

- ``docker=True`` merges the shared Docker options (``_compose.DOCKER_COMMON_ARGS``, documented in
  the ``sre.incident.docker`` doc fragment); such a module belongs to the ``docker`` action group
  of ``meta/runtime.yml``. A module that never calls :meth:`IncidentModule.connect` never asks
  for the docker SDK.
- Code below the modules raises, it never calls ``fail_json``: :func:`outcome` turns errors into
  the failed result. A work that wants to fail with its whole result (a wait that timed out)
  returns it with ``failed=True`` and ``msg``. Its ``warnings`` become the task's warnings.

When the managed host is the controller's machine (``plugin_utils/_action.ModuleAction``),
``main(here=Here(args, ...))`` builds the same ``IncidentModule`` without an ``AnsibleModule`` (the
options checked against the same spec and constraints) and ``run`` returns the task's result.
"""

from __future__ import annotations

import datetime
import json
import os
import subprocess

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.module_utils.common.parameters import remove_values
from ansible.module_utils.errors import UnsupportedError

from ansible_collections.sre.incident.plugins.module_utils._errors import IncidentError


def _docker():
    """``_compose``, imported only when needed: the controller-side users of this file never load the docker SDK."""
    from ansible_collections.sre.incident.plugins.module_utils import _compose  # pylint: disable=import-outside-toplevel

    return _compose


def outcome(work, diff=False, diff_when="always", context=None, wrap=(OSError,)):
    """The result of ``work()`` as a task reports it; never raises for the collection's errors.

    - an :class:`IncidentError`: ``failed``, its ``msg``, its details (``changed`` false unless they
      say otherwise);
    - an error of a type in ``wrap`` (when ``context`` is given): ``failed``, ``"<context>: <error>"``;
    - any other ``ValueError`` (bad input): ``failed`` and its message.

    The ``diff`` of the result (or of a failure's details) stays only when ``diff`` is true, there is
    one (not None) and, with ``diff_when="changed"``, the result changed something.
    """
    try:
        result = work()
    except IncidentError as exc:
        result = dict(exc.as_failure(), failed=True)
    except (ValueError, OSError) as exc:
        if context and isinstance(exc, wrap):
            result = dict(failed=True, changed=False, msg="%s: %s" % (context, exc))
        elif isinstance(exc, ValueError):
            result = dict(failed=True, changed=False, msg=str(exc))
        else:
            raise
    shown = result.pop("diff", None)
    if diff and shown is not None and (diff_when == "always" or result.get("changed")):
        result["diff"] = shown
    return result


class IncidentModule:
    """An ``AnsibleModule`` with the collection's common parts (see the module docstring); keyword
    arguments (``required_if``, ...) go to ``AnsibleModule``. Every module supports check mode."""

    def __init__(self, argument_spec, docker=False, here=None, **kwargs):
        spec = dict(argument_spec)
        if docker:
            spec.update(_docker().DOCKER_COMMON_ARGS)
        #: keys every result of this run carries, failed or not (what was found before a step
        #: that may fail); the work's own result overrides them
        self.always = {}
        self.here = here
        if here is None:
            self.ansible = AnsibleModule(argument_spec=spec, supports_check_mode=True, **kwargs)
            self.params = self.ansible.params
            self.check_mode = self.ansible.check_mode
            self.diff = self.ansible._diff
            return
        self.ansible = None
        self.warnings = []
        self.params, self.no_log_values, problems = check_options(spec, here.args, **kwargs)
        if problems:
            raise Finished(dict(failed=True, changed=False, msg="; ".join(problems)))
        self.check_mode, self.diff = here.check_mode, here.diff

    def warn(self, message):
        if self.here is None:
            self.ansible.warn(message)
        else:
            self.warnings.append(message)

    def run_command(self, argv, environ_update=None, **kwargs):
        """``(rc, stdout, stderr)`` of ``argv`` (a list), as ``AnsibleModule.run_command``."""
        if self.here is None:
            return self.ansible.run_command(argv, environ_update=environ_update, **kwargs)
        if kwargs:
            raise ValueError("run_command in the controller's process takes argv and environ_update only, not %s"
                             % ", ".join(sorted(kwargs)))
        env = dict(os.environ, LANG="C.UTF-8", LC_ALL="C.UTF-8", LC_MESSAGES="C.UTF-8", **(environ_update or {}))
        try:
            done = subprocess.run([str(a) for a in argv], capture_output=True, env=env, stdin=subprocess.DEVNULL, check=False)
        except OSError as exc:
            return 127, "", str(exc)
        return done.returncode, done.stdout.decode("utf-8", "replace"), done.stderr.decode("utf-8", "replace")

    def require(self, library, present, import_error):
        """Fail the task naming ``library`` when it could not be imported (``present`` false)."""
        if not present:
            if self.here is not None:
                raise Finished(dict(failed=True, changed=False, msg=missing_required_lib(library),
                                    exception=str(import_error)))
            self.ansible.fail_json(msg=missing_required_lib(library), exception=str(import_error))

    def require_docker(self):
        compose = _docker()
        self.require("docker", compose.HAS_DOCKER, compose.DOCKER_IMPORT_ERROR)

    def connect(self, docker_host=None, **kwargs):
        """The engine client (``_compose.ComposeClient``) for ``docker_host`` / ``docker_timeout``;
        ``_compose.EngineUnreachable`` when the engine does not answer."""
        self.require_docker()
        return _docker().connect(docker_host or self.params["docker_host"], timeout=self.params["docker_timeout"],
                                 **kwargs)

    def run(self, work, diff_when="always", context=None, wrap=(OSError,)):
        """Exit with ``work(self)``'s result, or fail with it (see :func:`outcome`). In the
        controller's process: return the task's result (``warnings`` in it, secrets removed)."""
        try:
            result = outcome(lambda: dict(self.always, **work(self)), diff=self.diff, diff_when=diff_when,
                             context=context, wrap=wrap)
        except Finished as finished:
            result = finished.result
        if result.get("failed"):
            result = dict(self.always, **result)
        for warning in result.pop("warnings", None) or []:
            self.warn(warning)
        if self.here is not None:
            # what a module's JSON would carry (lists, not tuples), without a value of a no_log option
            result = json.loads(json.dumps(result, default=_as_json))
            if self.warnings:
                result["warnings"] = self.warnings
            return remove_values(result, self.no_log_values)
        if result.pop("failed", False):
            self.ansible.fail_json(**result)
        self.ansible.exit_json(**result)


def check_options(argument_spec, args, **constraints):
    """``(parameters, no_log values, problems)`` of ``args`` checked as ``AnsibleModule`` checks them."""
    validated = ArgumentSpecValidator(argument_spec, **constraints).validate(args)
    problems = [("unsupported parameters: %s" % err) if isinstance(err, UnsupportedError) else str(err)
                for err in validated.errors.errors]
    return validated.validated_parameters, validated._no_log_values, problems


def _as_json(value):
    """What a module's JSON makes of a value that JSON has no type for."""
    if isinstance(value, (datetime.date, datetime.datetime)):
        return value.isoformat()
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=str)
    return str(value)


class Here:
    """The task's options, check mode and diff mode, for a module's code run in the controller's process."""

    def __init__(self, args, check_mode=False, diff=False):
        self.args = dict(args)
        self.check_mode = bool(check_mode)
        self.diff = bool(diff)


class Finished(Exception):
    """The task's result, before the work ran or instead of it (bad options, a missing library), when
    the module's code runs in the controller's process."""

    def __init__(self, result):
        super().__init__(result.get("msg"))
        self.result = result


def run_here(main, here):
    """The task's result of a module's ``main(here=...)``; a failure to start is a failed result."""
    try:
        return main(here=here)
    except Finished as finished:
        return finished.result
