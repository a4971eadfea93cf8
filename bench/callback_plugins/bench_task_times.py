# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Per-task wall time of a playbook run, for bench/bench_recover.py --profile (not part of the collection).

A task's time runs from its start to the start of the next task (or the end of the playbook), so
the times add up to the run: they include Ansible's own work between tasks. Written as JSON lines
(start, end, seconds, role, task) to the file named by SRE_BENCH_TASK_TIMES when the run ends.
Enabled with ANSIBLE_CALLBACK_PLUGINS=bench/callback_plugins and
ANSIBLE_CALLBACKS_ENABLED=sre.incident.timeline,bench_task_times (the stock profile_tasks lives in
ansible.posix, which ansible-core alone does not ship).
"""
from __future__ import annotations

import json
import os
import time

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = r"""
name: bench_task_times
type: aggregate
short_description: Writes the wall time of every task to a file (benchmarks only)
description:
  - Writes one JSON line per task (start, end, seconds, role, task) to E(SRE_BENCH_TASK_TIMES) when the playbook ends.
"""


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "bench_task_times"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self):
        super().__init__()
        self._path = os.environ.get("SRE_BENCH_TASK_TIMES")
        self._current = None
        self._rows = []

    def _close(self):
        if self._current is not None:
            start, role, name = self._current
            end = time.time()
            self._rows.append({"start": start, "end": end, "seconds": round(end - start, 3), "role": role, "task": name})
            self._current = None

    def v2_playbook_on_task_start(self, task, is_conditional):
        self._close()
        role = task._role.get_name() if task._role else ""
        self._current = (time.time(), role, task.get_name())

    def v2_playbook_on_handler_task_start(self, task):
        self.v2_playbook_on_task_start(task, False)

    def v2_playbook_on_stats(self, stats):
        self._close()
        if self._path:
            with open(self._path, "w", encoding="utf-8") as out:
                for row in self._rows:
                    out.write(json.dumps(row) + "\n")
