# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""sre.incident.recommendation_cache main(): a loopback clear-cache endpoint, the engine replaced by a fake."""

from __future__ import annotations

import functools

import pytest

from ansible_collections.sre.incident.plugins.modules import recommendation_cache

from .harness import JSONHandler, patch_engine, patch_exits, run_module, serving  # noqa: F401  pylint: disable=unused-import

KEYS = set()


class Handler(JSONHandler):

    def do_POST(self):
        if self.path == "/api/recommendations/clear-cache":
            status, body = 200, {"cleared": len(KEYS)}
            KEYS.clear()
        elif self.path == "/api/admin/refresh-scores":
            status, body = 200, {"refreshed": 60, "cache_cleared": 0}
        else:
            status, body = 503, {"error": "cache unavailable"}
        self.send_json(status, body)


@pytest.fixture(scope="module")
def server():
    with serving(Handler) as url:
        yield url


@pytest.fixture(autouse=True)
def patch_env(monkeypatch):
    def fake_exec(client, project, service, argv):
        assert (project, service) == ("recsys", "redis")
        return dict(cmd=argv, rc=0, stdout="".join(k + "\n" for k in KEYS), stderr="")
    patch_engine(monkeypatch, exec_in_service=fake_exec)
    KEYS.clear()
    KEYS.update({"recs:user-1:10", "recs:user-2:10"})


run = functools.partial(run_module, recommendation_cache)


def stack(server):
    return {"name": "recsys", "project_dir": "/srv", "service": "recommendation-service", "base_url": server,
            "health_path": "/health", "recommendations_path": "/api/recommendations/{user}", "sample_users": ["u1"]}


def test_four_runs(server):
    args = dict(stack=stack(server), state="cleared")
    r = run(args, check_mode=True, diff=True)
    assert r["changed"] is True and r["would_clear"] == 2 and len(KEYS) == 2
    assert r["diff"]["before"] == "recs:* keys: 2\n"
    r = run(args)
    assert r["changed"] is True and r["cleared"] == 2 and r["keys_after"] == 0 and not KEYS
    assert "diff" not in r
    r = run(args, check_mode=True)
    assert r["changed"] is False and r["would_clear"] == 0
    r = run(args)
    assert r["changed"] is False and r["cleared"] == 0


def test_present(server):
    r = run(dict(stack=stack(server)))
    assert r["changed"] is False and r["keys_before"] == 2 and r["state"] == "present"


def test_endpoint_failure(server):
    r = run(dict(stack=stack(server), url=server + "/nope", state="cleared"))
    assert r["failed"] is True and r["status"] == 503 and "/nope" in r["msg"]
    assert len(KEYS) == 2


def test_needs_stack_or_url():
    r = run(dict(state="cleared"))
    assert r["failed"] is True and "stack" in r["msg"]


def test_bad_url_named():
    r = run(dict(url="localhost:3000/clear", project="recsys"))
    assert r["failed"] is True and "localhost:3000/clear" in r["msg"]


def test_refreshed(server):
    args = dict(stack=dict(stack(server), refresh_path="/api/admin/refresh-scores"), state="refreshed", timeout=5)
    r = run(args, check_mode=True)
    assert r["changed"] is True and r["status"] is None and r["attempts"] == 0
    r = run(args)
    assert r["changed"] is True and r["status"] == 200 and r["refreshed"] == 60 and r["attempts"] == 1
    r = run(dict(args, refresh_path="/nope"))
    assert r["failed"] is True and r["status"] == 503 and "/nope" not in r["msg"] and server not in r["msg"]
