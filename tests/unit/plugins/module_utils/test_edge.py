# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The edge's configuration texts (degraded modes A and D) and what users get, without an engine."""
from __future__ import annotations

import time

import pytest

from ansible_collections.sre.incident.plugins.module_utils import _edge

STACK = dict(name="shop", project_dir="/srv/shop", service="recs-api", service_port=8000, standby="recs-api-standby",
             base_url="http://127.0.0.1:3100", edge_url="http://127.0.0.1:8180", health_path="/health",
             recommendations_path="/api/recommendations/{user}", sample_users=["c-1", "c-2"], min_recommendations=6)

STOCK = """log_format incident_json escape=json '{"ts":$msec,"uri":"$request_uri"}';
server {
    listen 80;   # the shop's only site
    server_name _;
    location / {
        proxy_pass http://recs-api:8000;
        proxy_set_header Host $host;
    }
    location = /robots.txt { return 200 "User-agent: *\\nDisallow: { }\\n"; }
}
"""

VARIABLE = """http {
    resolver 127.0.0.11 valid=5s;
    server {
        listen 8080 default_server;
        location = /edge/status { return 200 '{"status":"ok"}'; }
        location / {
            set $upstream recs-api:8000;
            proxy_pass http://$upstream;
        }
    }
    server {
        listen 9000;
        location / { return 404; }
    }
}
"""


def test_server_blocks_skip_comments_and_quoted_braces():
    blocks = _edge.server_blocks(STOCK)
    assert len(blocks) == 1
    opened, closed = blocks[0]
    assert STOCK[opened] == "{" and STOCK[closed] == "}"
    assert STOCK[closed + 1:].strip() == ""


def test_server_blocks_nested_in_http_and_unbalanced_refused():
    assert len(_edge.server_blocks(VARIABLE)) == 2
    with pytest.raises(_edge.EdgeConfigError, match="unclosed"):
        _edge.server_blocks("server { location / {")
    with pytest.raises(_edge.EdgeConfigError, match="unbalanced"):
        _edge.server_blocks("}")


def test_offline_adds_a_regex_location_to_every_proxying_server_and_keeps_the_rest():
    text = _edge.render_offline(STOCK, STACK, "/var/lib/x/edge")
    assert _edge.mode_of(text) == "offline"
    assert text.count('location ~ "^/api/recommendations/"') == 1
    assert "return 503 '" in text and '"retry_after_s":300' in text
    # without our header, the inserted block and the per-request resolution, the team's file is there byte for byte
    body = text.split("back byte for byte.\n", 1)[1]
    start = body.index("\n    # sre.incident degraded mode D")
    end = body.index("ipv6=off;\n") + len("ipv6=off;\n")
    assert body[:start].endswith("server {")
    kept = body[:start] + body[end:]
    assert kept.replace("set $sre_incident_upstream_1 recs-api:8000; proxy_pass http://$sre_incident_upstream_1;",
                        "proxy_pass http://recs-api:8000;") == STOCK
    # only the server that proxies gets it
    two = _edge.render_offline(VARIABLE, STACK, "/d")
    assert two.count("location ~") == 1


def test_offline_without_a_proxying_server_is_refused():
    with pytest.raises(_edge.EdgeConfigError, match="no server block with a proxy_pass"):
        _edge.render_offline("server { location / { return 200; } }", STACK, "/d")


def test_standby_points_the_upstream_at_the_standby_only_where_service_and_port_match():
    text = _edge.render_standby(STOCK + "# recs-api-canary:8000 recs-api:80001 xrecs-api:8000\n", STACK, "/d")
    assert _edge.mode_of(text) == "standby"
    assert "proxy_pass http://recs-api-standby:8000;" in text
    assert "recs-api-canary:8000 recs-api:80001 xrecs-api:8000" in text
    assert "set $upstream recs-api-standby:8000;" in _edge.render_standby(VARIABLE, STACK, "/d")


def test_standby_not_applicable_reasons_name_the_missing_piece():
    with pytest.raises(_edge.EdgeConfigError, match="standby is not set"):
        _edge.render_standby(STOCK, dict(STACK, standby=""), "/d")
    with pytest.raises(_edge.EdgeConfigError, match="service_port is not set"):
        _edge.render_standby(STOCK, dict(STACK, service_port=None), "/d")
    with pytest.raises(_edge.EdgeConfigError, match="does not name recs-api:9000"):
        _edge.render_standby(STOCK, dict(STACK, service_port=9000), "/d")


def test_mode_of_reads_only_our_header():
    assert _edge.mode_of(STOCK) is None
    assert _edge.mode_of("# sre.incident degraded mode A (standby), written by ...\nserver {}") == "standby"
    assert _edge.mode_of("# sre.incident degraded mode X (other)") is None


def fake_probe(answers):
    def probe(url, timeout):
        status, body = answers(url)
        return dict(url=url, status=status, ok=status == 200, latency_ms=5.0 if status else None,
                    error=None if status else "connection refused", body_json=body)
    return probe


def test_users_answered_counts_items_per_user_and_names_failures():
    recs = {"recommendations": list(range(8)), "source": "db"}

    def answers(url):
        if url.endswith("/health"):
            return 200, {"status": "ok"}
        return (502, None) if "c-2" in url else (200, recs)
    got = _edge.users_answered(STACK, STACK["edge_url"], probe=fake_probe(answers))
    assert got["ok"] is False and got["health_status"] == 200
    assert got["recommendations"]["c-1"]["count"] == 8 and got["recommendations"]["c-2"]["status"] == 502
    assert got["problems"] == ["c-2: status 502, None item(s)"]
    assert _edge.users_answered(STACK, STACK["edge_url"], probe=fake_probe(lambda u: (200, recs)))["ok"] is True
    down = _edge.users_answered(STACK, STACK["base_url"], probe=fake_probe(lambda u: (None, None)))
    assert down["ok"] is False and down["problems"][0] == "/health answered connection refused"


def test_users_are_asked_at_once_so_a_hanging_edge_costs_one_timeout():
    def hangs(url, timeout):
        time.sleep(0.3)
        return dict(url=url, status=None, ok=False, latency_ms=None, error="timed out", body_json=None)
    started = time.monotonic()
    got = _edge.users_answered(STACK, STACK["edge_url"], probe=hangs)
    assert time.monotonic() - started < 0.3 * 2, "the URLs were asked one after another"
    assert got["ok"] is False and len(got["problems"]) == 1 + len(STACK["sample_users"])


def test_offline_resolves_a_static_upstream_per_request_but_not_an_upstream_block_or_an_address():
    text = ("upstream pool { server recs-api:8000; }\n"
            "server { location /a { proxy_pass http://pool; } location /b { proxy_pass http://10.0.0.5:8000; }\n"
            "  location /c { proxy_pass http://recs-api:8000/v1/; } location /d { proxy_pass http://recs-api; } }\n")
    out, count = _edge.resolve_per_request(text)
    assert count == 1
    assert "proxy_pass http://pool;" in out and "proxy_pass http://10.0.0.5:8000;" in out
    assert "proxy_pass http://recs-api:8000/v1/;" in out   # a URI part changes meaning with a variable: left alone
    assert "set $sre_incident_upstream_1 recs-api; proxy_pass http://$sre_incident_upstream_1;" in out
    # a server with its own resolver keeps it (a second one in the same block would not load)
    own = _edge.render_offline("server { resolver 10.0.0.2; location / { proxy_pass http://recs-api:8000; } }", STACK, "/d")
    assert own.count("resolver") == 1


class _Engine:
    """The few ComposeClient calls Edge.load makes, on one edge container in ``status``."""

    def __init__(self, status):
        self.container = type("C", (), {"name": "shop_web_1", "attrs": {
            "Name": "/shop_web_1", "State": {"Status": status},
            "Config": {"Labels": {"com.docker.compose.project": "shop", "com.docker.compose.service": "web"}}}})()
        self.calls = []

    def find_containers(self, project, service=None):
        return [self.container]

    def exec_in(self, container, argv):
        self.calls.append(" ".join(argv))
        return dict(rc=0, stdout="", stderr="syntax is ok")

    def start(self, container):
        self.calls.append("start")

    def restart(self, container):
        self.calls.append("restart")


@pytest.mark.parametrize("status, calls", [
    ("running", ["nginx -t", "nginx -s reload"]),
    # a stock nginx whose upstream's container exited cannot start: its new file is its check
    ("exited", ["start"]),
    ("restarting", ["restart"]),
])
def test_load_reloads_a_running_edge_and_starts_one_that_is_down(status, calls):
    engine = _Engine(status)
    edge = _edge.Edge(engine, dict(STACK, edge="web", edge_config="/etc/nginx/conf.d/default.conf"))
    edge.load()
    assert engine.calls == calls
