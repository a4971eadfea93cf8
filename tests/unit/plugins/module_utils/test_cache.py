# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""_cache: resolving where to act, counting keys, clearing, check mode and changed."""

from __future__ import annotations

import pytest

from ansible_collections.sre.incident.plugins.module_utils import _cache

STACK = {
    "name": "recsys", "project_dir": "/srv", "service": "recommendation-service", "base_url": "http://127.0.0.1:3000",
    "health_path": "/health", "recommendations_path": "/api/recommendations/{user}", "sample_users": ["u1"],
    "redis": {"service": "cache-redis"},
}


class FakeRedis:
    def __init__(self, keys):
        self.keys = set(keys)
        self.calls = []

    def exec_fn(self, project, service, argv):
        self.calls.append((project, service, argv))
        return dict(cmd=argv, rc=0, stdout="".join(k + "\n" for k in sorted(self.keys)), stderr="")

    def probe(self, url, timeout, method="GET"):
        assert method == "POST"
        n = len(self.keys)
        self.keys.clear()
        return dict(status=200, body_json={"cleared": n}, error=None, latency_ms=1.0)


def test_resolve_from_stack():
    where = _cache.resolve({"stack": STACK})
    assert where == dict(url="http://127.0.0.1:3000/api/recommendations/clear-cache", project="recsys",
                         redis_service="cache-redis", pattern="recs:*", port_args=[])
    on_6380 = dict(STACK, redis=dict(STACK["redis"], port=6380))
    assert _cache.resolve({"stack": on_6380})["port_args"] == ["-p", "6380"]
    fake = FakeRedis(["recs:u1:10"])
    assert _cache.run({"stack": on_6380, "state": "present"}, exec_fn=fake.exec_fn, probe=fake.probe)["keys_before"] == 1
    assert fake.calls[0][2] == ["redis-cli", "-p", "6380", "--scan", "--pattern", "recs:*"]


@pytest.mark.parametrize("params, named", [
    ({}, "no clear-cache URL"),
    ({"url": "ftp://x/clear"}, "ftp://x/clear"),
    ({"url": "http://127.0.0.1:3000/c"}, "compose project"),
    ({"stack": dict(STACK, sample_users=[])}, "sample_users"),
    ({"stack": STACK, "key_pattern": "recs *"}, "recs *"),
])
def test_resolve_bad_input(params, named):
    with pytest.raises(ValueError, match=named.replace("*", r"\*")):
        _cache.resolve(params)


def test_parse_scan():
    assert _cache.parse_scan("recs:a:10\nrecs:b:10\n\n") == 2
    assert _cache.parse_scan("") == 0


def test_present_counts():
    fake = FakeRedis(["recs:u1:10", "recs:u2:10"])
    r = _cache.run({"stack": STACK, "state": "present"}, exec_fn=fake.exec_fn, probe=fake.probe)
    assert r["changed"] is False and r["keys_before"] == 2 and r["keys_after"] == 2
    assert fake.calls[0] == ("recsys", "cache-redis", ["redis-cli", "--scan", "--pattern", "recs:*"])


def test_check_mode_reports_and_changes_nothing():
    fake = FakeRedis(["recs:u1:10", "recs:u2:10"])
    r = _cache.run({"stack": STACK, "state": "cleared"}, check_mode=True, exec_fn=fake.exec_fn, probe=fake.probe)
    assert r["changed"] is True and r["would_clear"] == 2 and r["cleared"] == 0
    assert len(fake.keys) == 2
    assert r["diff"] == {"before": "recs:* keys: 2\n", "after": "recs:* keys: 0\n"}


def test_clear_then_clear_again():
    fake = FakeRedis(["recs:u1:10", "recs:u2:10", "recs:u3:5"])
    r = _cache.run({"stack": STACK, "state": "cleared"}, exec_fn=fake.exec_fn, probe=fake.probe)
    assert r["changed"] is True and r["cleared"] == 3 and r["keys_before"] == 3 and r["keys_after"] == 0
    r = _cache.run({"stack": STACK, "state": "cleared"}, check_mode=True, exec_fn=fake.exec_fn, probe=fake.probe)
    assert r["changed"] is False and r["would_clear"] == 0
    r = _cache.run({"stack": STACK, "state": "cleared"}, exec_fn=fake.exec_fn, probe=fake.probe)
    assert r["changed"] is False and r["cleared"] == 0


def test_without_counting():
    fake = FakeRedis(["recs:u1:10"])
    r = _cache.run({"stack": STACK, "state": "cleared", "count_keys": False}, check_mode=True, exec_fn=None, probe=fake.probe)
    assert r["changed"] is True and r["keys_before"] is None
    with pytest.raises(ValueError, match="count_keys"):
        _cache.run({"stack": STACK, "state": "present", "count_keys": False}, exec_fn=None)


def test_endpoint_failure_is_reported():
    def down(url, timeout, method="GET"):
        return dict(status=503, body_json={"error": "cache unavailable"}, error="status 503, expected 200")
    with pytest.raises(_cache.CacheError, match="503") as info:
        _cache.clear("http://127.0.0.1:3000/c", probe=down)
    assert info.value.details["status"] == 503


def test_redis_unreachable_is_reported():
    def broken(project, service, argv):
        return dict(cmd=argv, rc=1, stdout="", stderr="Could not connect to Redis at 127.0.0.1:6379")
    with pytest.raises(_cache.CacheError, match="Could not connect"):
        _cache.count_keys(broken, "recsys", "redis")


def test_unknown_state():
    with pytest.raises(ValueError, match="'wiped'"):
        _cache.run({"stack": STACK, "state": "wiped"})


# --------------------------------------------------------------------------- refreshed

REFRESHING = dict(STACK, refresh_path="/api/admin/refresh-scores")


class FakeRefresh:
    """send_retrying's answers, one per attempt, and the calls."""

    def __init__(self, *answers):
        self.answers, self.calls = list(answers), []

    def send(self, url, deadline, attempts=1, clock=None, **request):
        self.calls.append(dict(url=url, deadline=deadline, attempts=attempts, clock=clock, **request))
        return self.answers.pop(0)


def answered(status, body, error=None, attempts=1, budget_spent=False):
    return dict(status=status, body=body, error=error, attempts=attempts, budget_spent=budget_spent, headers={})


def test_refresh_posts_to_the_stacks_endpoint():
    fake = FakeRefresh(answered(200, b'{"refreshed": 60, "cache_cleared": 2}'))
    r = _cache.run({"stack": REFRESHING, "state": "refreshed", "timeout": 30}, send=fake.send)
    assert r == dict(changed=True, state="refreshed", url="http://127.0.0.1:3000/api/admin/refresh-scores", status=200,
                     refreshed=60, attempts=1)
    call = fake.calls[0]
    assert call["method"] == "POST" and call["attempts"] == _cache.REFRESH_ATTEMPTS and call["read_timeout"] == 30
    assert call["headers"]["X-User-Id"] == "synthetic-sre-incident"


def test_refresh_path_option_and_nothing_refreshed_is_no_change():
    fake = FakeRefresh(answered(200, b'{"refreshed": 0}'))
    r = _cache.run({"stack": STACK, "state": "refreshed", "refresh_path": "/admin/scores"}, send=fake.send)
    assert r["changed"] is False and r["url"].endswith("/admin/scores")


def test_refresh_in_check_mode_sends_nothing():
    fake = FakeRefresh()
    r = _cache.run({"stack": REFRESHING, "state": "refreshed"}, check_mode=True, send=fake.send)
    assert r["changed"] is True and r["status"] is None and r["attempts"] == 0 and fake.calls == []


def test_refresh_failure_names_no_url():
    fake = FakeRefresh(answered(503, b'{"error": "score refresh failed: database error"}', error="HTTP 503", attempts=3))
    with pytest.raises(_cache.CacheError, match="after 3 attempt.*HTTP 503.*database error") as info:
        _cache.refresh("http://user:pw@127.0.0.1:3000/api/admin/refresh-scores?token=s3cret", send=fake.send)
    assert "s3cret" not in info.value.msg and "pw@" not in info.value.msg and info.value.details["status"] == 503
    fake = FakeRefresh(answered(None, b"", error="connection refused", attempts=2, budget_spent=True))
    with pytest.raises(_cache.CacheError, match="its 5 s were spent.*connection refused"):
        _cache.refresh("http://127.0.0.1:3000/r", timeout=5, send=fake.send)


@pytest.mark.parametrize("params, named", [
    ({"stack": STACK, "state": "refreshed"}, "refresh_path"),
    ({"stack": STACK, "state": "refreshed", "refresh_path": "admin/scores"}, "admin/scores"),
])
def test_refresh_bad_input(params, named):
    with pytest.raises(ValueError, match=named):
        _cache.run(params, send=FakeRefresh().send)
