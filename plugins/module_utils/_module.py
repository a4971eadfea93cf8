# -*- coding: utf-8 -*-
# Copyright (c) sre.incident contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The base of every module: one way to declare options, check imports, connect, fail and exit.

A module builds its argument spec, hands one function (its work) to :class:`IncidentModule` and
exits with what the work returned::

    def work(module):
        client = module.connect()
        return _backup.restore(client, module.params["stack"], ..., check_mode=module.check_mode)

    def main():
        IncidentModule(argument_spec(), docker=True).run(work)

- ``docker=True`` merges the shared Docker options (``_compose.DOCKER_COMMON_ARGS``: ``docker_host``,
  ``docker_timeout`` with their environment fallbacks), documented once in the
  ``sre.incident.docker`` doc fragment; such a module belongs to the ``docker`` action group of
  ``meta/runtime.yml``.
- :meth:`IncidentModule.connect` checks the docker SDK is importable (``missing_required_lib``) and
  connects with those options; a module that never needs the engine never asks for the SDK.
- :meth:`IncidentModule.run` calls the work and turns its outcome into ``exit_json`` or
  ``fail_json`` (:func:`outcome`): every ``IncidentError`` with its details, bad input
  (``ValueError``) with its message, and an ``OSError`` with the module's ``context``. Code below the
  modules raises; it never calls ``fail_json``. A work that wants to fail with its whole result
  (a wait that timed out, a probe that was asked to fail) returns it with ``failed=True`` and ``msg``.
- The result's ``diff`` is handed over only under ``--diff`` (and with ``diff="changed"`` only when
  something changed); its ``warnings`` become the task's warnings.

The action plugins that run module code in the controller's process (``incident``, ``notify``)
check their options with :func:`validate` and report with :func:`outcome`, so a task fails alike
whether the module or the action ran it.
"""

from __future__ import annotations

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.sre.incident.plugins.module_utils._errors import IncidentError


def _docker():
    """``_compose``, imported when a module needs the engine: the controller-side users of this file
    (the ``incident`` and ``notify`` actions, the timeline callback) never load the docker SDK."""
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
    """An ``AnsibleModule`` with the collection's common parts (see the module docstring).

    ``docker``: merge the shared Docker options into ``argument_spec``. Other keyword arguments
    (``required_if``, ``mutually_exclusive``, ...) go to ``AnsibleModule``; every module supports
    check mode.
    """

    def __init__(self, argument_spec, docker=False, **kwargs):
        spec = dict(argument_spec)
        if docker:
            spec.update(_docker().DOCKER_COMMON_ARGS)
        self.ansible = AnsibleModule(argument_spec=spec, supports_check_mode=True, **kwargs)
        self.params = self.ansible.params
        self.check_mode = self.ansible.check_mode
        self.diff = self.ansible._diff
        #: keys every result of this run carries, failed or not (what was found before a step
        #: that may fail); the work's own result overrides them
        self.always = {}

    def warn(self, message):
        self.ansible.warn(message)

    def run_command(self, argv, **kwargs):
        return self.ansible.run_command(argv, **kwargs)

    def require(self, library, present, import_error):
        """Fail the task naming ``library`` when it could not be imported (``present`` false)."""
        if not present:
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
        """Exit with ``work(self)``'s result, or fail with it (see :func:`outcome`)."""
        result = outcome(lambda: dict(self.always, **work(self)), diff=self.diff, diff_when=diff_when,
                         context=context, wrap=wrap)
        if result.get("failed"):
            result = dict(self.always, **result)
        for warning in result.pop("warnings", None) or []:
            self.warn(warning)
        if result.pop("failed", False):
            self.ansible.fail_json(**result)
        self.ansible.exit_json(**result)
