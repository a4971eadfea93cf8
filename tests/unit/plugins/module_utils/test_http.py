# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from ansible_collections.sre.incident.plugins.module_utils import _http


class Handler(BaseHTTPRequestHandler):
    """Routes of a tiny fake service."""

    def log_message(self, *args):  # keep pytest output clean
        pass

    def _send(self, status, body, ctype="application/json"):
        data = body if isinstance(body, bytes) else body.encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def do_GET(self):
        if self.path == "/health":
            self._send(200, json.dumps({"status": "ok", "checks": {"db": True}}))
        elif self.path == "/recs":
            self._send(200, json.dumps({"recommendations": list(range(10)), "count": 0}))
        elif self.path == "/few":
            self._send(200, json.dumps({"recommendations": [1, 2]}))
        elif self.path == "/down":
            self._send(503, json.dumps({"status": "down"}))
        elif self.path == "/html":
            self._send(200, "<html>not json</html>", "text/html")
        elif self.path == "/slow":
            time.sleep(1.0)
            self._send(200, "{}")
        elif self.path == "/flaky":
            self.server.flaky += 1
            self._send(200 if self.server.flaky % 2 else 500, "{}")
        elif self.path == "/moved":
            self.send_response(302)
            self.send_header("Location", "/health")
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif self.path == "/busy":
            self.send_response(503)
            self.send_header("Retry-After", "0.7")
            self.send_header("Content-Length", "0")
            self.end_headers()
        else:
            self._send(404, "{}")

    def do_POST(self):
        self._send(201, json.dumps({"method": "POST"}))

    def do_HEAD(self):
        self._send(200, "")


@pytest.fixture(scope="module")
def server():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.flaky = 0
    srv.daemon_threads = True
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield "http://127.0.0.1:%d" % srv.server_address[1]
    srv.shutdown()
    srv.server_close()


@pytest.fixture
def closed_port():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


def test_probe_ok(server):
    r = _http.probe(server + "/health", 2)
    assert r["ok"] is True
    assert r["status"] == 200
    assert r["error"] is None
    assert r["body_json"] == {"status": "ok", "checks": {"db": True}}
    assert r["latency_ms"] > 0
    assert r["failed_assertions"] == []


def test_probe_json_assertions(server):
    r = _http.probe(server + "/recs", 2, json_queries=["length(recommendations) > `5`", "count"])
    # JMESPath truth: 0 is true
    assert r["ok"] is True, r
    r = _http.probe(server + "/few", 2, json_queries=["length(recommendations) > `5`"])
    assert r["ok"] is False
    assert r["status"] == 200
    assert r["failed_assertions"] == ["length(recommendations) > `5`"]
    assert "length(recommendations) > `5`" in r["error"]


def test_probe_assertion_type_error_is_a_failed_assertion(server):
    r = _http.probe(server + "/health", 2, json_queries=["length(missing) > `1`"])
    assert r["ok"] is False
    assert r["failed_assertions"] == ["length(missing) > `1`"]


def test_probe_status_mismatch_is_a_result(server):
    r = _http.probe(server + "/down", 2)
    assert r["ok"] is False
    assert r["status"] == 503
    assert r["body_json"] == {"status": "down"}
    assert "503" in r["error"]
    assert r["latency_ms"] is not None


def test_probe_expect_other_status(server):
    assert _http.probe(server + "/down", 2, expect_status=503)["ok"] is True
    assert _http.probe(server + "/nowhere", 2, expect_status=404)["ok"] is True


def test_probe_not_json(server):
    r = _http.probe(server + "/html", 2)
    assert r["ok"] is True  # no assertions: status decides
    assert r["body_json"] is None
    r = _http.probe(server + "/html", 2, json_queries=["status"])
    assert r["ok"] is False
    assert r["failed_assertions"] == ["status"]
    assert "not JSON" in r["error"]


def test_probe_connection_refused(closed_port):
    r = _http.probe("http://127.0.0.1:%d/health" % closed_port, 2)
    assert r["ok"] is False
    assert r["status"] is None
    assert r["latency_ms"] is None
    assert "refused" in r["error"]


def test_probe_timeout(server):
    start = time.monotonic()
    r = _http.probe(server + "/slow", 0.2)
    assert time.monotonic() - start < 0.9
    assert r["ok"] is False
    assert r["status"] is None
    assert "timed out" in r["error"]


def test_probe_unresolvable_host():
    r = _http.probe("http://no-such-host.invalid/", 2)
    assert r["ok"] is False
    assert r["error"]


def test_probe_post_and_head(server):
    assert _http.probe(server + "/x", 2, method="POST", expect_status=201)["body_json"] == {"method": "POST"}
    r = _http.probe(server + "/health", 2, method="HEAD")
    assert r["ok"] is True and r["body_json"] is None


@pytest.mark.parametrize("url", [
    "127.0.0.1:3000/health",
    "ftp://127.0.0.1/x",
    "http://",
    "http:///path",
    "",
    "http://127.0.0.1:notaport/",
    "http://127.0.0.1:99999/",
    " http://127.0.0.1/",
    "http://127.0.0.1/a b",
    None,
])
def test_malformed_url_is_rejected_naming_it(url):
    with pytest.raises(ValueError) as info:
        _http.probe(url, 1)
    assert repr(url) in str(info.value)


def test_valid_urls():
    for url in ("http://127.0.0.1:3000/health", "https://example.invalid", "http://[::1]:80/x?y=1"):
        assert _http.validate_url(url) == url


def test_invalid_jmespath_rejected_before_probing():
    with pytest.raises(ValueError, match="length\\(") as info:
        _http.probe_many(["http://127.0.0.1:9/"], count=1, json_queries=["length(("])
    assert "invalid JMESPath" in str(info.value)


def test_missing_jmespath(monkeypatch):
    monkeypatch.setattr(_http, "HAS_JMESPATH", False)
    with pytest.raises(_http.MissingJmespath):
        _http.validate_json_queries(["a"])
    assert _http.validate_json_queries([]) == []


@pytest.mark.parametrize("kwargs, word", [
    (dict(count=0), "count"),
    (dict(count=True), "count"),
    (dict(timeout=0), "timeout"),
    (dict(interval=-1), "interval"),
    (dict(min_success_ratio=1.5), "min_success_ratio"),
    (dict(min_success_ratio=-0.1), "min_success_ratio"),
    (dict(method="PUT"), "PUT"),
])
def test_probe_many_validation(kwargs, word):
    with pytest.raises(ValueError, match=word):
        _http.probe_many(["http://127.0.0.1:9/"], **kwargs)


def test_probe_many_validates_every_url_first(server):
    sleeps = []
    with pytest.raises(ValueError, match="bad://x"):
        _http.probe_many([server + "/health", "bad://x"], count=2, sleep=sleeps.append)
    assert sleeps == []


def test_probe_many_healthy(server):
    sleeps = []
    r = _http.probe_many([server + "/health", server + "/recs"], count=3, interval=0.01, sleep=sleeps.append)
    assert r["healthy"] is True
    assert r["success_ratio"] == 1.0
    assert len(r["probes"]) == 6
    assert [p["round"] for p in r["probes"]] == [1, 1, 2, 2, 3, 3]
    assert sleeps == [0.01, 0.01]  # between rounds only
    lat = r["latency_ms"]
    assert lat["samples"] == 6
    assert lat["min"] <= lat["p50"] <= lat["p95"] <= lat["max"]
    assert r["by_url"][server + "/recs"]["total"] == 3


def test_probe_many_ratio_threshold(server, closed_port):
    dead = "http://127.0.0.1:%d/" % closed_port
    r = _http.probe_many([server + "/health", dead], count=2, interval=0, min_success_ratio=0.5)
    assert r["success_ratio"] == 0.5
    assert r["healthy"] is True
    # latency only from probes that got an answer
    assert r["latency_ms"]["samples"] == 2
    r = _http.probe_many([server + "/health", dead], count=1, interval=0)
    assert r["healthy"] is False


def test_probe_many_all_down(closed_port):
    r = _http.probe_many("http://127.0.0.1:%d/" % closed_port, count=2, interval=0)
    assert r["healthy"] is False
    assert r["success_ratio"] == 0.0
    assert r["latency_ms"] == dict(min=None, p50=None, p95=None, max=None, samples=0)


def test_percentile_nearest_rank():
    values = list(range(1, 21))
    assert _http.percentile(values, 50) == 10
    assert _http.percentile(values, 95) == 19
    assert _http.percentile([7], 95) == 7
    assert _http.percentile([], 50) is None


# -- per-URL assertions and stopping when the verdict is known ----------------------------------

def test_per_url_json_query_replaces_the_shared_one(server):
    r = _http.probe_many([{"url": server + "/health", "json_query": []}, server + "/recs"], count=1,
                         json_queries=["length(recommendations) > `5`"])
    assert r["healthy"] is True
    assert r["urls"] == [server + "/health", server + "/recs"]
    # the shared assertion would fail on /health: it was not applied there
    shared = _http.probe_many([server + "/health", server + "/recs"], count=1,
                              json_queries=["length(recommendations) > `5`"])
    assert shared["by_url"][server + "/health"]["ok"] == 0


@pytest.mark.parametrize("entry", [{"href": "http://x"}, {"url": 3}, {"url": "http://x", "json_query": "a"},
                                   {"url": "http://x", "extra": 1}, 7])
def test_bad_url_entry_is_rejected_naming_it(entry):
    with pytest.raises(ValueError) as err:
        _http.probe_many([entry], count=1)
    assert repr(entry) in str(err.value) or "json_query of" in str(err.value)


@pytest.mark.parametrize("ok,done,total,ratio,expected", [
    (0, 6, 18, 0.5, False),    # 0 + 12 left can still reach 9
    (0, 12, 18, 0.5, True),    # 0 + 6 left cannot reach 9: unhealthy
    (9, 12, 18, 0.5, True),    # 9 reached: healthy whatever comes
    (8, 12, 18, 0.5, False),
    (5, 6, 6, 1.0, True),      # all done
    (0, 1, 3, 1.0, True),      # one failure sinks a ratio of 1
    (2, 2, 3, 1.0, False),
])
def test_decided(ok, done, total, ratio, expected):
    assert _http.decided(ok, done, total, ratio) is expected


def test_stop_early_skips_rounds_once_the_verdict_is_known(server, closed_port):
    slept = []
    down = _http.probe_many(["http://127.0.0.1:%d/health" % closed_port], count=3, interval=0.5, min_success_ratio=0.5, stop_early=True,
                            sleep=slept.append)
    assert down["healthy"] is False and down["rounds"] == 2 and len(down["probes"]) == 2 and slept == [0.5]
    up = _http.probe_many([server + "/health"], count=3, min_success_ratio=0.5, stop_early=True, sleep=slept.append)
    assert up["healthy"] is True and up["rounds"] == 2
    full = _http.probe_many([server + "/health"], count=3, min_success_ratio=0.5, sleep=slept.append)
    assert full["rounds"] == 3 and len(full["probes"]) == 3


# ------------------------------------------------------------------ the client: send, send_retrying, scrub

def test_send_answers_with_any_status_and_its_body(server):
    answer = _http.send(server + "/down")
    assert answer["status"] == 503 and json.loads(answer["body"]) == {"status": "down"}
    assert answer["failure"] is None and answer["latency_ms"] == answer["elapsed_ms"] > 0
    assert answer["headers"]["Content-Type"] == "application/json"


def test_send_follows_redirects_only_when_asked(server):
    assert _http.send(server + "/moved")["status"] == 302
    followed = _http.send(server + "/moved", redirects=True)
    assert followed["status"] == 200 and json.loads(followed["body"])["status"] == "ok"


def test_send_without_an_answer_says_why(closed_port):
    answer = _http.send("http://127.0.0.1:%d/" % closed_port)
    assert answer["status"] is None and answer["latency_ms"] is None
    assert answer["failure"] == "connection" and answer["error"] == "connection refused"
    assert "refused" in answer["detail"].lower()


def test_send_read_timeout_is_its_own(server):
    # /slow answers after 1 s: within the 5 s connect timeout, not within the 0.2 s read timeout
    answer = _http.send(server + "/slow", timeout=5.0, read_timeout=0.2)
    assert answer["failure"] == "read_timeout" and answer["error"] == "timed out" and answer["status"] is None


def test_send_body_is_cut_at_max_body(server):
    assert len(_http.send(server + "/recs", max_body=5)["body"]) == 6


def test_send_retrying_retries_5xx_and_stops_at_the_first_good_answer(server):
    sleeps = []
    answer = _http.send_retrying(server + "/flaky", time.monotonic() + 10, attempts=4, sleep=sleeps.append)
    assert answer["status"] == 200 and answer["error"] is None and answer["attempts"] in (1, 2)
    assert sleeps == ([] if answer["attempts"] == 1 else [0.5])


def test_send_retrying_honours_a_short_retry_after_and_the_budget(server):
    sleeps = []
    answer = _http.send_retrying(server + "/busy", time.monotonic() + 10, attempts=3, sleep=sleeps.append)
    assert answer["status"] == 503 and answer["error"] == "HTTP 503" and answer["attempts"] == 3
    assert sleeps == [0.7, 1.0] and answer["budget_spent"] is False
    # the next attempt would not fit: the budget ends the tries, not the attempts
    answer = _http.send_retrying(server + "/busy", time.monotonic() + 0.8, attempts=3, sleep=sleeps.append)
    assert answer["attempts"] == 1 and answer["budget_spent"] is True


def test_send_retrying_does_not_start_without_budget(server):
    answer = _http.send_retrying(server + "/health", time.monotonic() + 0.1, attempts=3)
    assert answer["attempts"] == 0 and answer["budget_spent"] is True and answer["status"] is None


def test_send_retrying_gives_each_attempt_its_url(server):
    seen = []

    def url():
        seen.append(len(seen))
        return server + "/down"
    answer = _http.send_retrying(url, time.monotonic() + 10, attempts=2, sleep=lambda s: None)
    assert seen == [0, 1] and answer["attempts"] == 2


def test_scrub_removes_the_url_its_parts_secrets_and_any_url():
    url = "https://hooks.example.com/services/T0K3N?access_token=abcdef&x=1"
    text = "POST %s failed; token abcdef; path /services/T0K3N; secret s3cr3t; see http://other.example/y" % url
    cleaned = _http.scrub(text, "chat", url=url, secrets=["s3cr3t", None, ""])
    for gone in ("T0K3N", "abcdef", "s3cr3t", "https://", "http://"):
        assert gone not in cleaned
    assert cleaned.count("<chat>") >= 4
    assert _http.scrub(None, "chat") is None


@pytest.mark.parametrize("body, down", [
    ({"status": "degraded", "down": ["redis"]}, ["redis"]),
    ({"status": "degraded", "dependencies": {"postgres": {"status": "up"}, "redis": {"status": "down"}}}, ["redis"]),
    ({"status": "DOWN", "components": {"db": {"status": "DOWN"}, "ping": {"status": "UP"}}}, ["db"]),
    ({"checks": {"cache": "fail", "db": "pass"}}, ["cache"]),
    ({"status": "ok"}, []),
    (None, []),
    ("not json", []),
])
def test_down_in_health_body_reads_the_common_shapes(body, down):
    assert _http.down_in_health_body(body) == down
