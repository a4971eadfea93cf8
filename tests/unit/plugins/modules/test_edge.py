# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""edge: how long the repair may take, from a timeout or the ladder's deadline."""
from __future__ import annotations

import functools
import time

import pytest

from ansible_collections.sre.incident.plugins.module_utils import _edge
from ansible_collections.sre.incident.plugins.modules import edge

from .harness import patch_engine, patch_exits, run_module  # noqa: F401  pylint: disable=unused-import

run = functools.partial(run_module, edge)
STACK = dict(name="recsys", service="api", edge="edge", edge_url="http://127.0.0.1:1", base_url="http://127.0.0.1:2",
             project_dir="/srv/recsys", health_path="/health", recommendations_path="/r/{user}", sample_users=["u1"])


@pytest.fixture
def repairs(monkeypatch):
    seen = []

    class Edge:
        def __init__(self, client, stack, run_command=None, probe_timeout=3.0):
            pass

        def ensure_serving(self, timeout=30.0, check_mode=False):
            seen.append(timeout)
            return dict(serving=True, changed=False, actions=[], reason="ok", edge="running", before={"ok": True})

        def mode(self):
            return {"mode": None}

    patch_engine(monkeypatch, connect=lambda docker_host=None, timeout=60: "client")
    monkeypatch.setattr(_edge, "Edge", Edge)
    return seen


def test_the_repair_gets_what_is_left_of_the_deadline_and_at_least_five_seconds(repairs):
    r = run(dict(stack=STACK, timeout=12))
    assert "failed" not in r, r
    run(dict(stack=STACK, deadline=time.time() + 20))
    run(dict(stack=STACK, deadline=time.time() - 60))
    assert repairs[0] == 12 and 19 < repairs[1] <= 20 and repairs[2] == edge.LEAST_S
