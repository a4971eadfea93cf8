# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""sre.incident.report main(), the managed host's part: the evidence, read only."""

from __future__ import annotations

import functools

from ansible_collections.sre.incident.plugins.module_utils import _compose
from ansible_collections.sre.incident.plugins.modules import report

from .harness import JSONHandler, patch_exits, run_module, serving, warnings_seen  # noqa: F401  pylint: disable=unused-import

run = functools.partial(run_module, report)


STACK = {"name": "recsys", "project_dir": "/srv", "service": "recommendation-service", "base_url": "http://127.0.0.1:1",
         "health_path": "/health", "recommendations_path": "/api/recommendations/{user}", "sample_users": ["u1"]}


class Service(JSONHandler):
    def do_GET(self):
        if self.path == "/health":
            self.send_json(200, {"status": "ok", "version": "1.2.3"})
        else:
            self.send_json(400, {"error": "limit must be an integer"})


def test_collects_version_and_reproduction_without_an_engine(monkeypatch, warnings_seen):
    monkeypatch.setattr(_compose, "HAS_DOCKER", False)
    with serving(Service) as url:
        r = run(dict(collect=True, stack=dict(STACK, base_url=url), reproduce_urls=[url + "/api/recommendations/u1?limit=abc"]), check_mode=True)
    assert r["changed"] is False and "failed" not in r
    evidence = r["evidence"]
    assert evidence["app_version"] == "1.2.3" and evidence["reproduce"][0]["status"] == 400
    assert "no Docker engine: no log excerpt, no image" in evidence["notes"]
    assert any("docker Python SDK" in w for w in warnings_seen)


def test_bad_input():
    assert "stack" in run(dict(collect=True))["msg"]
    r = run(dict(collect=True, stack=STACK, reproduce_urls=["nope"]))
    assert r["failed"] is True and "nope" in r["msg"]
    r = run(dict(collect=True, stack={"name": "recsys", "service": "s"}))
    assert r["failed"] is True and "project_dir" in r["msg"]
