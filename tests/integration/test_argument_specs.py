# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A bad survey answer fails on the role's argument spec, before any of the role's tasks runs.

AWX surveys hand their answers to the playbook as extra vars; meta/argument_specs.yml of each
role types them and lists the choices of every enum, so a typo stops the job at once and names
the bad value, and the stack is not touched.
"""
from __future__ import annotations

import json
import os
import re
import subprocess

import pytest
import yaml

from conftest import INVENTORY, ROOT, STATE_DIR, VENV_BIN, run_playbook

pytestmark = pytest.mark.integration


def recap(output):
    """ok/changed/failed counts of the play recap line."""
    found = re.search(r"ok=(\d+)\s+changed=(\d+)\s+unreachable=\d+\s+failed=(\d+)", output)
    assert found, output[-2000:]
    return tuple(int(x) for x in found.groups())


def test_every_role_types_every_option():
    for spec in sorted(ROOT.glob("roles/*/meta/argument_specs.yml")):
        for entry, body in yaml.safe_load(spec.read_text())["argument_specs"].items():
            for name, option in (body.get("options") or {}).items():
                assert option.get("type"), f"{spec.parent.parent.name}:{entry} option {name} has no type"


def test_bad_diagnose_part_fails_before_collecting_anything(stack):
    bundles = STATE_DIR / "bundles"
    before = sorted(bundles.iterdir()) if bundles.is_dir() else []

    result = run_playbook("diagnose.yml", extra_vars={"diagnose_parts": ["bogus"], "diagnose_open_incident": False})

    assert result.returncode != 0
    assert "diagnose_parts" in result.output and "bogus" in result.output
    assert recap(result.output)[1:] == (0, 1)
    after = sorted(bundles.iterdir()) if bundles.is_dir() else []
    assert after == before, "a bundle was written although the arguments were rejected"


@pytest.mark.parametrize("role,extra,option", [
    ("degrade", {"degrade_order": ["Z"]}, "degrade_order"),
    ("notify", {"notify_notice": "bogus", "notify_channels": []}, "notify_notice"),
    ("notify", {"notify_stage": "bogus", "notify_channels": []}, "notify_notice"),    # its earlier name
    ("mitigate", {"mitigate_traffic_window_s": "bogus"}, "mitigate_traffic_window"),    # its earlier name
    ("drill", {"drill_sla_detect_s": "bogus", "drill_run_id": "x", "incident_dir": "/tmp"}, "drill_sla_respond"),
])
def test_bad_enum_fails_on_the_argument_spec(stack, tmp_path, role, extra, option):
    playbook = tmp_path / "play.yml"
    playbook.write_text(yaml.safe_dump([{"name": "bad survey answer", "hosts": "recsys", "gather_facts": False,
                                         "roles": [f"sre.incident.{role}"]}]))
    before = stack.started_at()
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_NOCOLOR="1",
               PATH=f"{VENV_BIN}:{os.environ.get('PATH', '')}")
    proc = subprocess.run([str(VENV_BIN / "ansible-playbook"), str(playbook), "-i", str(ROOT / INVENTORY),
                           "-e", json.dumps(extra)], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300, check=False)
    output = proc.stdout + proc.stderr

    assert proc.returncode != 0
    assert "Validation of arguments failed" in output and option in output
    # the validation is the only task that ran, and it failed
    assert recap(output) == (0, 0, 1)
    assert stack.started_at() == before
