# -*- coding: utf-8 -*-
# Copyright (c) sre.incident contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one error hierarchy of the collection: every error a task reports is an :class:`IncidentError`,
which the module base (``_module.py``) turns into the task's failure. Validation errors derive from
:class:`InputError`; errors of an outside system or a step (``DockerError``, ``BackupError``, ...)
from :class:`IncidentError`. A refusal for safety (nothing was touched) sets ``refused``.
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
        """The failed result's keys (without ``failed``)."""
        failure = {"changed": False, **self.details, "msg": self.msg}
        if self.refused is not None:
            failure["refused"] = self.refused
        return failure


class InputError(IncidentError, ValueError):
    """Bad input; raised before anything is changed, the message names the bad value."""
