# -*- coding: utf-8 -*-
# Copyright (c) sre.incident contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one error hierarchy of the collection.

Code below the modules raises; it never calls ``fail_json``. Every error a task reports is an
:class:`IncidentError`: a message that says what went wrong, naming the bad value or the step, and
plain-data ``details`` that go into the failed result. The module base (``_module.py``) turns one
into the task's failure in one place (:meth:`IncidentError.as_failure`).

- :class:`InputError` (also a ``ValueError``): bad input, found before anything was changed. The
  ``*Error`` classes of validation (``StackError``, ``VerifyError``, ``TrafficError``, ...) derive
  from it.
- Errors of an outside system or a step (``DockerError`` and its kinds, ``BackupError``,
  ``DegradeError``, ``LeaseError``, ``RecordError``, ...) derive from :class:`IncidentError`.
- A refusal for safety (nothing was touched) sets ``refused``; its result then says so.
"""

from __future__ import annotations


class IncidentError(Exception):
    """A failure a task reports: ``msg`` and plain-data ``details`` (no SDK objects, no secrets)."""

    #: ``True`` / ``False``: the failed result carries ``refused``; ``None``: it does not.
    refused = None

    def __init__(self, message, /, **details):
        super().__init__(message)
        self.msg = message
        self.details = details

    def as_failure(self):
        """The failed result's keys (without ``failed``): ``changed`` false unless the details say
        otherwise, the details, ``msg`` and, for a refusal, ``refused``."""
        failure = dict(changed=False)
        failure.update(self.details)
        failure["msg"] = self.msg
        if self.refused is not None:
            failure["refused"] = self.refused
        return failure


class InputError(IncidentError, ValueError):
    """Bad input; raised before anything is changed, the message names the bad value."""
