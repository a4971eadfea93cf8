# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The modules of a P0's hot path (health_check, lease, diagnose, compose_service, verify, edge)
run in the controller's process for a host managed with the local connection and the controller's
own Python, and as modules everywhere else (plugin_utils/_action.ModuleAction). Both ways, on both
example stacks: the same answers about the same real stack. Which way ran is read from Ansible's own
-vvv output (a module is put on the host as AnsiballZ_<name>.py), never from our results."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from conftest import ROOT, VENV_BIN, http_get, local_stack

PLAYBOOK = """
- hosts: recsys
  gather_facts: false
  tasks:
    - name: Probe what users reach
      sre.incident.health_check:
        stack: "{{ mh_stack }}"
        where: [service]
        count: 1
        check_edge: true
      register: mh_health
    - name: The lease, read only
      sre.incident.lease:
        state: present
        state_dir: "{{ mh_stack.state_dir }}"
      register: mh_lease
    - name: The service's container, as the engine has it (a dry restart)
      sre.incident.compose_service:
        project: "{{ mh_stack.name }}"
        services: ["{{ mh_stack.service }}"]
        state: restarted
      check_mode: true
      register: mh_service
    - name: Part of the checklist
      sre.incident.verify:
        stack: "{{ mh_stack }}"
        checks: [health, recommendations, edge]
      register: mh_verify
    - name: The edge, looked at
      sre.incident.edge:
        stack: "{{ mh_stack }}"
        state: present
      register: mh_edge
    - name: Hand the results to the test
      ansible.builtin.copy:
        content: "{{ {'health': mh_health, 'lease': mh_lease, 'service': mh_service, 'verify': mh_verify,
                      'edge': mh_edge} | to_json }}"
        dest: "{{ mh_out }}"
        mode: "0600"
      delegate_to: localhost
"""

HOT = ("health_check", "lease", "compose_service", "verify", "edge")


def _run(spec, tmp_path, interpreter, name):
    book = tmp_path / "mh.yml"
    book.write_text(PLAYBOOK)
    out = tmp_path / f"{name}.json"
    extra = dict(mh_stack=local_stack(spec), mh_out=str(out), ansible_python_interpreter=interpreter)
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_NOCOLOR="1",
               PATH=f"{VENV_BIN}:{os.environ.get('PATH', '')}")
    proc = subprocess.run([str(VENV_BIN / "ansible-playbook"), str(book), "-i", spec.inventory, "-vvv",
                           "-e", json.dumps(extra)], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300, check=False)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    return json.loads(out.read_text()), proc.stdout + proc.stderr


def _pythons_started(output, interpreter):
    """How many times Ansible started the host's Python (its -vvv "EXEC" line: with pipelining the
    module is piped into that Python, without it AnsiballZ is put first)."""
    return output.count("EXEC /bin/sh -c '%s " % interpreter)


def test_the_hot_modules_answer_alike_here_and_as_modules(any_stack, tmp_path):
    spec = any_stack.spec
    # the same Python under another name: its libraries are the controller's, but it is not the
    # controller's interpreter by name, so the modules are shipped and started as on any host
    alias = tmp_path / "python-alias"
    alias.symlink_to(sys.executable)
    started_at = any_stack.state()["StartedAt"]
    here, here_output = _run(spec, tmp_path, "{{ ansible_playbook_python }}", "here")
    there, there_output = _run(spec, tmp_path, str(alias), "there")
    assert any_stack.state()["StartedAt"] == started_at, "the dry restart restarted the service"
    playbook_python = (VENV_BIN / "ansible-playbook").read_text().splitlines()[0][2:].strip()   # its shebang
    # the last task (the copy) starts the same Pythons either way; each hot module one more as a module
    assert (_pythons_started(there_output, alias) - _pythons_started(here_output, playbook_python)
            == len(HOT)), (here_output[-3000:], there_output[-3000:])

    # what users get, read by the test itself, and both ways agree with it
    assert http_get("/health", base=spec.edge_url)[0] == 200
    for result in (here, there):
        assert result["health"]["healthy"] is True and result["health"]["edge"]["serving"] is True, result["health"]
        assert result["verify"]["passed"] is True
        assert result["service"]["changed"] is True and result["edge"]["changed"] is False
        assert not any(r.get("failed") for r in result.values())
    assert sorted(p["url"] for p in here["health"]["probes"]) == sorted(p["url"] for p in there["health"]["probes"])
    assert [c["name"] for c in here["verify"]["checks"]] == [c["name"] for c in there["verify"]["checks"]]
    assert ({k: v for k, v in here["lease"].items() if k != "invocation"}
            == {k: v for k, v in there["lease"].items() if k != "invocation"})
    for key in ("changed", "container", "diff"):
        if key in there["service"]:
            assert key in here["service"], key


@pytest.mark.parametrize("path", ["here", "there"])
def test_bad_input_is_named_either_way_and_nothing_changes(tmp_path, path):
    book = tmp_path / "bad.yml"
    book.write_text("""
- hosts: localhost
  gather_facts: false
  tasks:
    - sre.incident.lease:
        state: grabbed
        state_dir: "{{ bad_dir }}"
""")
    alias = tmp_path / "python-alias"
    alias.symlink_to(sys.executable)
    interpreter = sys.executable if path == "here" else str(alias)
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_NOCOLOR="1")
    proc = subprocess.run([str(VENV_BIN / "ansible-playbook"), str(book), "-i", "localhost,", "-c", "local",
                           "-e", json.dumps({"bad_dir": str(tmp_path / "state"), "ansible_python_interpreter": interpreter})],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode != 0
    assert "grabbed" in proc.stdout and "state" in proc.stdout
    assert not (tmp_path / "state").exists()
