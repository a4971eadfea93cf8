# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Faults for the integration tests: one call of sre.incident.fault on the stack under test (GEN-5: nothing in
the application), through tests/integration/files/fault_module.yml."""
from __future__ import annotations

import json
import time

from conftest import INVENTORY, run_playbook

PLAYBOOK = "../tests/integration/files/fault_module.yml"   # run_playbook prefixes playbooks/


def fault_call(tmp_path, check=False, inventory=INVENTORY, **args):
    """The module's result, failed or not (a test reads its own facts; this is for setup and failures)."""
    out = tmp_path / f"fault-{time.monotonic_ns()}.json"
    proc = run_playbook(PLAYBOOK, extra_vars={"fault_args": args, "fault_result_file": str(out)}, check=check, inventory=inventory)
    assert out.exists(), proc.output[-3000:]
    return json.loads(out.read_text())


def fault(tmp_path, check=False, inventory=INVENTORY, **args):
    """One call that must succeed."""
    result = fault_call(tmp_path, check=check, inventory=inventory, **args)
    assert not result.get("failed"), result.get("msg")
    return result
