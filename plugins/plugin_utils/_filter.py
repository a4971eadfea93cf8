# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one way a filter of the collection reports bad input: a filter is a thin face on a decision in
``module_utils``, whose errors name the bad value.
"""
from __future__ import annotations

import functools

from ansible.errors import AnsibleFilterError

from ansible_collections.sre.incident.plugins.module_utils._errors import IncidentError


def decision(name, errors=(ValueError, TypeError)):
    """Decorator for the filter ``sre.incident.<name>``: ``IncidentError`` and ``errors`` raised inside
    become an ``AnsibleFilterError`` naming the filter and carrying the message."""
    caught = (IncidentError,) + tuple(errors)

    def wrap(func):
        @functools.wraps(func)
        def run(*args, **kwargs):
            try:
                return func(*args, **kwargs)
            except caught as exc:
                raise AnsibleFilterError("sre.incident.%s: %s" % (name, getattr(exc, "msg", None) or exc)) from None
        return run
    return wrap
