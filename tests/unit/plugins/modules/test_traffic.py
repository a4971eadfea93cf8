# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""sre.incident.traffic and the traffic watch of sre.incident.verify, main() in-process.

Prometheus is a loopback HTTP server answering /api/v1/query like the real one; the engine is a
fake whose edge container's log holds incident_json lines.
"""
from __future__ import annotations

import functools
import json
import time
import urllib.parse

import pytest

from ansible_collections.sre.incident.plugins.module_utils import _compose
from ansible_collections.sre.incident.plugins.modules import verify, traffic

from .harness import JSONHandler, patch_engine, patch_exits, run_module, serving  # noqa: F401  pylint: disable=unused-import

ASKED = []


class Prometheus(JSONHandler):
    """/api/v1/query: 5 % errors, 42 ms p50; every other figure an empty vector. /health etc. for the probes."""

    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        if url.path == "/api/v1/query":
            query = urllib.parse.parse_qs(url.query)
            ASKED.append((query["query"][0], float(query["time"][0])))
            text = query["query"][0]
            value = "0.05" if '5.."' in text else ("42" if "0.5," in text else None)
            result = [{"metric": {}, "value": [time.time(), value]}] if value else []
            self.send_json(200, {"status": "success", "data": {"resultType": "vector", "result": result}})
        elif url.path == "/health":
            self.send_json(200, {"status": "ok"})
        elif url.path.startswith("/api/recommendations/"):
            self.send_json(200, {"recommendations": list(range(10))})
        else:
            self.send_json(404, {})


@pytest.fixture(scope="module")
def server():
    with serving(Prometheus) as url:
        yield url


def stack(base, **extra):
    return dict(dict(name="recsys", project_dir="/srv/recsys", service="recommendation-service", base_url=base,
                     health_path="/health", recommendations_path="/api/recommendations/{user}",
                     sample_users=["user-1"], thresholds=dict(latency_ms=500), edge="edge"), **extra)


run = functools.partial(run_module, traffic)


def test_prometheus_figures_with_their_source_in_check_mode(server):
    ASKED.clear()
    r = run(dict(stack=stack(server, prometheus_url=server), window=60, baseline=600, end="1796556000"),
            check_mode=True)
    assert r["changed"] is False and "failed" not in r, r
    assert r["window"]["error_rate"] == 0.05 and r["window"]["latency_p50_ms"] == 42.0
    assert r["sources"] == {"rps": None, "error_rate": "prometheus", "users_failing_pct": None,
                            "latency_p50_ms": "prometheus", "latency_p95_ms": None}
    assert r["facts"] == {"error_rate": 0.05, "latency_ms": 42.0} and r["facts_source"] == "prometheus"
    assert r["prometheus"]["notes"]["rps"].startswith("empty result")
    # the window at its end, the baseline at the window's start, over their own lengths
    assert ('sum(rate(http_requests_total{stack="recsys",path="/api/recommendations/:user"}[60s]))', 1796556000.0) in ASKED
    assert ('sum(rate(http_requests_total{stack="recsys",path="/api/recommendations/:user"}[600s]))', 1796555940.0) in ASKED


class FakeEngine:
    def __init__(self, text):
        self.text = text
        self.asked = []

    def find_containers(self, project, service=None, all=True):
        return [type("C", (), {"name": "%s_%s_1" % (project, service)})()]

    def logs(self, container, since=None, until=None, timestamps=True, tail=None):
        self.asked.append((container.name, since, until))
        return self.text


def test_access_log_read_through_the_engine(monkeypatch, server):
    now = time.time()
    lines = [json.dumps({"ts": now - 5 + i / 100.0, "method": "GET", "uri": "/api/recommendations/user-%d" % i,
                         "status": 500 if i == 3 else 200, "request_time": 0.01, "upstream_status": "200",
                         "upstream_addr": "a", "remote_addr": "b", "user": "", "request_id": "x"}) for i in range(50)]
    engine = FakeEngine("\n".join(lines) + "\nnginx: [warn] noise\n")
    patch_engine(monkeypatch, connect=lambda host, timeout: engine)
    r = run(dict(stack=stack(server, access_log=True), window=30, baseline=0))
    assert r["access_log"]["containers"] == ["recsys_edge_1"] and r["access_log"]["lines_skipped"] == 1
    assert (r["window"]["users"], r["window"]["users_failing"], r["window"]["errors"]) == (50, 1, 1)
    assert r["facts"]["users_affected_pct"] == 2.0 and r["source"] == "access_log"
    name, since, until = engine.asked[0]
    assert name == "recsys_edge_1" and since <= now - 30 and until >= now


def test_an_unreachable_engine_is_reported_not_failed(monkeypatch, server):
    def unreachable(host, timeout):
        raise _compose.EngineUnreachable("cannot reach the Docker engine at unix:///nowhere")
    patch_engine(monkeypatch, connect=unreachable)
    r = run(dict(stack=stack(server, access_log=True)))
    assert "failed" not in r and r["facts"] == {} and "cannot reach the Docker engine" in r["access_log"]["error"]


@pytest.mark.parametrize("args, named", [
    (dict(window=0), "window 0.0 is impossible"),
    (dict(end="tomorrow"), "end 'tomorrow' is not an ISO 8601 timestamp"),
    (dict(min_requests=0), "min_requests 0 is impossible"),
])
def test_bad_input_is_named(server, args, named):
    r = run(dict(args, stack=stack(server, access_log=True)))
    assert r.get("failed") and named in r["msg"], r


def test_a_bad_traffic_key_fails_naming_it(server):
    r = run(dict(stack=stack(server, prometheus_url="ftp://x")))
    assert r.get("failed") and "prometheus_url is not an http(s) URL: 'ftp://x'" in r["msg"]


def test_the_watch_fails_on_a_real_error_rate_the_probes_do_not_see(server):
    """Every probe answers 200, but Prometheus says 5 % of the real requests fail: a rebound."""
    r = run_module(verify, dict(stack=stack(server, prometheus_url=server), checks=[], watch_window=5,
                                watch_interval=1, traffic=True))
    assert r["watch_passed"] is False, r
    sample = r["samples"][-1]
    assert sample["error_rate"] == 0.0 and len(r["samples"]) == 1
    assert sample["traffic"]["error_rate"] == 0.05 and sample["traffic"]["source"] == "prometheus"
    assert sample["traffic_rebound"].startswith("real error rate 0.05 > 0 (prometheus")
    assert "watch: real error rate 0.05" in r["summary"]
    # the same watch without traffic passes: only the probes judge
    r = run_module(verify, dict(stack=stack(server, prometheus_url=server), checks=[], watch_window=0.3,
                                watch_interval=0.1))
    assert r["watch_passed"] is True and "traffic" not in r["samples"][0]
