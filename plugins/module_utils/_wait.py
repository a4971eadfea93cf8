# -*- coding: utf-8 -*-
# Copyright (c) sre.incident contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one waiting primitive of the collection: poll a condition with a bounded timeout.

Nothing in this collection sleeps for a fixed time hoping something happened; the only sleeps
are the short pauses between two polls.
"""

from __future__ import annotations

import time

DEFAULT_INTERVAL = 0.25


def poll_until(check, timeout, interval=DEFAULT_INTERVAL, clock=time.monotonic, sleep=time.sleep):
    """Call ``check()`` until it returns a truthy value or ``timeout`` seconds (monotonic) have passed.

    ``check`` runs at least once, even with ``timeout <= 0``, and its exceptions propagate. The pause
    between calls is ``interval`` but never past the deadline, so the wait is bounded by about
    ``timeout`` plus the last ``check()``. Returns ``(ok, last_value, elapsed_seconds)``, elapsed
    from the first call. ``clock`` and ``sleep`` exist for tests.
    """
    if timeout is None:
        raise ValueError("timeout must be a number of seconds, not None")
    if interval is None or interval <= 0:
        raise ValueError("interval must be > 0, got %r" % (interval,))
    start = clock()
    deadline = start + float(timeout)
    while True:
        value = check()
        now = clock()
        if value:
            return True, value, now - start
        remaining = deadline - now
        if remaining <= 0:
            return False, value, now - start
        sleep(min(float(interval), remaining))
