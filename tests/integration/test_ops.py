# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""ops.yml's health says what users reach through the edge, and the playbooks that change the stack outside
the recovery ladder (ops restart and clear_cache, restore_normal.yml) are refused while another incident holds
the recovery lease. Checked on both example stacks from real state: the engine's containers, HTTP answers and
Redis keys."""
from __future__ import annotations

import json
import os

import pytest

from conftest import ROOT, wait_for

pytestmark = pytest.mark.integration

HOLDER = dict(incident_id="INC-20261207-000000-p0-other-0001", owner="carol")


def words(proc):
    return " ".join(proc.stdout.split())


def test_health_names_the_edge_when_users_get_nothing(any_stack):
    """The edge stopped, the service itself still answering: the health tag is UNHEALTHY and names the edge."""
    edge = any_stack.container(any_stack.spec.edge)
    edge.stop(timeout=2)
    try:
        assert wait_for(lambda: any_stack.answers(any_stack.spec.base_url), timeout=10)   # the service itself answers ...
        assert not any_stack.answers(any_stack.spec.edge_url)   # ... users through the edge get nothing

        result = any_stack.run_playbook("ops.yml", "--tags", "health")

        assert result.returncode == 0, result.output[-3000:]
        text = words(result)
        assert "UNHEALTHY (edge_down)" in text and f"down: {any_stack.spec.edge}" in text, text[-2000:]
        assert any_stack.state(any_stack.spec.edge)["Status"] == "exited"   # a health probe changes nothing
    finally:
        edge.start()   # and healthy by its own healthcheck, so the fixture need not bring the stack up again
        assert wait_for(lambda: any_stack.healthy() and any_stack.service_answers(), timeout=30)


def test_restart_and_restore_refused_while_another_incident_holds_the_lease(any_stack, tmp_path):
    """The lease taken by the real module for another incident: ops restart/clear_cache and restore_normal.yml
    fail at once naming the holder; the service's container is not restarted and the cache is not cleared."""
    take = tmp_path / "take_lease.yml"
    take.write_text(json.dumps([{"name": "Another incident's responder", "hosts": "recsys", "gather_facts": False,
                                 "tasks": [{"sre.incident.lease": dict(HOLDER, state="acquired",
                                                                       state_dir="{{ incident_stack.state_dir }}")}]}]))
    held = any_stack.run_playbook(os.path.relpath(take, ROOT / "playbooks"))
    assert held.returncode == 0, held.output[-3000:]
    lease_file = any_stack.spec.state_dir / "lease.json"
    lease_before = lease_file.read_bytes()
    key = any_stack.spec.cache_key.format(user="ops-lease-marker")
    any_stack.redis("SET", key, "[]", "EX", "600")
    started = any_stack.state()["StartedAt"]
    try:
        for argv in (["ops.yml", "--tags", "restart,clear_cache"], ["restore_normal.yml"]):
            refused = any_stack.run_playbook(*argv)

            assert refused.returncode != 0, refused.output[-3000:]
            text = words(refused)
            assert "being recovered by someone else" in text and HOLDER["incident_id"] in text and "carol" in text, text[-2000:]
            assert any_stack.state()["StartedAt"] == started, f"{argv[0]} restarted the service"
            assert any_stack.redis("EXISTS", key) == "1", f"{argv[0]} cleared the cache"
            assert lease_file.read_bytes() == lease_before, f"{argv[0]} touched the other incident's lease"
    finally:
        lease_file.unlink(missing_ok=True)
        any_stack.redis("DEL", key)
