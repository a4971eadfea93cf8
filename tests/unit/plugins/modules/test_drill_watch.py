# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""sre.incident.drill_watch main(): what users reach (the edge) is watched; bad input fails at once."""
from __future__ import annotations

import pytest
from ansible.module_utils.testing import patch_module_args

from ansible_collections.sre.incident.plugins.module_utils import _drill
from ansible_collections.sre.incident.plugins.modules import drill_watch

from .harness import AnsibleExitJson, AnsibleFailJson, patch_exits  # noqa: F401  pylint: disable=unused-import

STACK = {"name": "stg1", "project_dir": "/srv/stg1", "service": "recommendation-service", "base_url": "http://127.0.0.1:3501",
         "edge_url": "http://127.0.0.1:8581", "health_path": "/health", "recommendations_path": "/api/recommendations/{user}",
         "sample_users": ["user-1", "user-2"], "min_recommendations": 7, "thresholds": {"latency_ms": 400}}


def test_watches_through_the_edge_with_the_stacks_thresholds(monkeypatch):
    seen = {}

    def watch(health, recs, stop_file, **kwargs):
        seen.update(health=health, recs=recs, stop_file=stop_file, **kwargs)
        return dict(samples=[dict(t=1.0, ok=True, why=None, latency_ms=3.0)], stopped_by="stop_file")

    monkeypatch.setattr(_drill, "watch", watch)
    with patch_module_args(dict(stack=STACK, stop_file="/tmp/stop")):
        with pytest.raises(AnsibleExitJson) as done:
            drill_watch.main()
    result = done.value.args[0]
    assert result["changed"] is False and result["base_url"] == "http://127.0.0.1:8581" and len(result["samples"]) == 1
    assert seen["health"] == "http://127.0.0.1:8581/health" and seen["recs"][0].startswith("http://127.0.0.1:8581/api/recommendations/user-1")
    assert seen["min_recommendations"] == 7 and seen["latency_ms"] == 400 and seen["stop_file"] == "/tmp/stop"


def test_bad_stack_fails_before_probing(monkeypatch):
    monkeypatch.setattr(_drill, "watch", lambda *a, **k: pytest.fail("must not probe"))
    with patch_module_args(dict(stack=dict(STACK, edge_url="not a url"), stop_file="/tmp/stop")):
        with pytest.raises(AnsibleFailJson) as failed:
            drill_watch.main()
    assert "edge_url" in failed.value.args[0]["msg"]
