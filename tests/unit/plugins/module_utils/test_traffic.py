# -*- coding: utf-8 -*-
# Copyright (c) sre.incident contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Real traffic (SPEC MON-2): the incident_json access log, Prometheus answers, the figures, sources."""

from __future__ import annotations

import json

import pytest

from ansible_collections.sre.incident.plugins.module_utils import _p1cases
from ansible_collections.sre.incident.plugins.module_utils import _severity
from ansible_collections.sre.incident.plugins.module_utils import _stack
from ansible_collections.sre.incident.plugins.module_utils import _traffic as tr

T = 1796556000.0
STACK = {"name": "recsys", "project_dir": "/srv", "service": "recommendation-service", "edge": "edge",
         "base_url": "http://127.0.0.1:3000", "health_path": "/health",
         "recommendations_path": "/api/recommendations/{user}", "sample_users": ["user-1"],
         "access_log": {"service": "edge"}}


def line(ts, status=200, uri="/api/recommendations/user-1?limit=10", request_time=0.012, user=""):
    """One line exactly as nginx writes log_format incident_json."""
    return json.dumps({"ts": ts, "method": "GET", "uri": uri, "status": status, "request_time": request_time,
                       "upstream_status": str(status), "upstream_addr": "172.22.0.5:3000",
                       "remote_addr": "172.22.0.1", "user": user, "request_id": "0f" * 16}, separators=(",", ":"))


def traffic_log(users=200, failing=(), rounds=2, start=T, status=500):
    """``rounds`` requests per user, one second apart per round; ``failing`` users get ``status``."""
    lines = []
    for r in range(rounds):
        for i in range(1, users + 1):
            user = "user-%d" % i
            lines.append(line(start + r + i / 1000.0, status if user in failing else 200,
                              uri="/api/recommendations/%s?limit=10" % user, request_time=0.010 + (i % 10) / 1000.0))
    return "\n".join(lines) + "\n"


# -- the log format ----------------------------------------------------------------------------------

def test_a_line_of_incident_json_is_read_and_the_user_comes_from_the_path_or_the_header():
    user_re = tr.user_pattern(STACK["recommendations_path"])
    entry = tr.parse_line(line(T, 503, request_time=0.25), user_re)
    assert entry == {"ts": T, "status": 503, "latency_ms": 250.0, "user": "user-1",
                     "uri": "/api/recommendations/user-1?limit=10", "upstream_status": "503"}
    assert tr.parse_line(line(T, uri="/api/recommendations/user%2D9", user=""), user_re)["user"] == "user-9"
    assert tr.parse_line(line(T, uri="/health", user="alice"), user_re)["user"] == "alice"
    assert tr.parse_line(line(T, uri="/health"), user_re)["user"] is None


@pytest.mark.parametrize("text", [
    "2026/12/06 11:00:00 [warn] 7#7: *1 upstream server temporarily disabled",
    '{"ts":"2026-12-06T11:00:00+00:00","level":"INFO","msg":"edge request","status":200}',   # the old format
    '{"ts":1796556000.1,"status":"x","request_time":0.1}', "[1, 2]", "{not json", "",
])
def test_other_lines_are_skipped(text):
    assert tr.parse_line(text) is None


def test_synthetic_users_are_left_out_and_skipped_lines_counted():
    cfg = tr.access_log_config(dict(STACK, access_log={"service": "edge", "exclude_users": ["canary-*"]}))
    assert cfg["exclude_users"] == ["synthetic-*", "canary-*"]
    text = "\n".join([line(T), line(T, user="synthetic-sre-incident"), line(T, user="synthetic-blackbox"),
                      line(T, user="canary-7"), "nginx: [warn] something"])
    entries, skipped, excluded = tr.parse_lines(text, tr.user_pattern("/api/recommendations/{user}"),
                                                cfg["exclude_users"])
    assert (len(entries), skipped, excluded) == (1, 1, 3)


# -- the figures ---------------------------------------------------------------------------------------

def test_two_percent_of_users_failing():
    entries, _s, _e = tr.parse_lines(traffic_log(failing={"user-101", "user-102", "user-103", "user-104"}),
                                     tr.user_pattern("/api/recommendations/{user}"))
    got = tr.figures(entries, T, T + 4)
    assert (got["requests"], got["errors"], got["users"], got["users_failing"]) == (400, 8, 200, 4)
    assert got["users_failing_pct"] == 2.0 and got["error_rate"] == 0.02
    assert got["failing_users"] == ["user-101", "user-102", "user-103", "user-104"]
    assert got["rps"] == 100.0 and got["statuses"] == {"2xx": 392, "5xx": 8}
    assert got["latency_p50_ms"] == 14.0 and got["latency_p95_ms"] == 19.0


def test_4xx_are_requests_but_not_errors_and_a_user_with_only_4xx_is_not_failing():
    entries = [tr.parse_line(line(T + 0.1, 404, user="a")), tr.parse_line(line(T + 0.2, 499, user="b")),
               tr.parse_line(line(T + 0.3, 200, user="c")), tr.parse_line(line(T + 0.4, 502, user="c"))]
    got = tr.figures(entries, T, T + 1)
    assert (got["requests"], got["errors"], got["client_errors"]) == (4, 1, 2)
    assert got["error_rate"] == 0.25 and got["client_error_rate"] == 0.5
    assert (got["users"], got["users_failing"], got["users_failing_pct"]) == (3, 1, pytest.approx(33.3333, abs=1e-3))


def test_the_window_is_half_open_on_the_lines_own_time():
    entries = [tr.parse_line(line(t, user="u%d" % i)) for i, t in enumerate((T - 0.001, T, T + 9.999, T + 10))]
    assert tr.figures(entries, T, T + 10)["requests"] == 2
    empty = tr.figures([], T, T + 10)
    assert (empty["requests"], empty["error_rate"], empty["users_failing_pct"], empty["latency_p50_ms"]) == (0, None, None, None)


# -- Prometheus ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("payload, value, note", [
    ({"status": "success", "data": {"resultType": "vector", "result": [{"metric": {}, "value": [T, "0.02"]}]}}, 0.02, None),
    ({"status": "success", "data": {"resultType": "scalar", "result": [T, "12.5"]}}, 12.5, None),
    ({"status": "success", "data": {"resultType": "vector", "result": []}}, None, "empty result"),
    ({"status": "success", "data": {"resultType": "vector", "result": [{"value": [T, "NaN"]}]}}, None, "NaN"),
    ({"status": "success", "data": {"resultType": "vector", "result": [{"value": [T, "1"]}, {"value": [T, "2"]}]}},
     None, "2 series"),
    ({"status": "error", "errorType": "bad_data", "error": "parse error"}, None, "parse error"),
    ({"status": "success", "data": {"resultType": "matrix", "result": []}}, None, "unexpected result type"),
])
def test_prometheus_answers(payload, value, note):
    got, why = tr.prometheus_value(payload)
    assert got == value
    assert (why is None) if note is None else (note in why)


def test_queries_get_window_stack_and_service():
    cfg = tr.prometheus_config(dict(STACK, prometheus_url="http://127.0.0.1:19090/",
                                    prometheus_queries={"users_failing_pct": "my_users_failing{stack=\"$stack\"}[$window]"}))
    assert cfg["url"] == "http://127.0.0.1:19090"
    assert tr.promql(cfg["queries"]["rps"], 300, STACK) == (
        'sum(rate(http_requests_total{stack="recsys",path="/api/recommendations/:user"}[300s]))')
    assert tr.promql(cfg["queries"]["users_failing_pct"], 59.6, STACK) == 'my_users_failing{stack="recsys"}[60s]'
    asked = []

    def query(url, text, at, timeout):
        asked.append((url, text, at))
        return ({"rps": 7.0, "error_rate": 1.5, "latency_p50_ms": 4.0}.get(next(
            k for k, q in cfg["queries"].items() if q and tr.promql(q, 300, STACK) == text)), "no value")

    values, notes = tr.prometheus_figures(cfg, STACK, T, 300, query=query)
    assert values == {"rps": 7.0, "error_rate": 1.0, "latency_p50_ms": 4.0}   # a rate above 1 is clamped
    assert set(notes) == {"latency_p95_ms", "users_failing_pct"}
    assert all(at == T for _u, _t, at in asked)


@pytest.mark.parametrize("stack, named", [
    (dict(STACK, access_log="edge"), "incident_stack.access_log must be true or a mapping"),
    (dict(STACK, access_log={"service": "edge", "format": "combined"}), "access_log.format 'combined' is unknown"),
    (dict(STACK, access_log={"servce": "edge"}), "unknown key(s) servce"),
    (dict(STACK, access_log=True, edge=None), "access_log.service is not set"),
    (dict(STACK, access_log={"exclude_users": "synthetic"}), "exclude_users must be a list"),
    (dict(STACK, prometheus_url="prometheus:9090"), "prometheus_url is not an http(s) URL: 'prometheus:9090'"),
    (dict(STACK, prometheus_url="http://p:9090", prometheus_queries={"qps": "x"}), "unknown figure(s) qps"),
    (dict(STACK, prometheus_url="http://p:9090", prometheus_queries={"rps": 5}), "prometheus_queries.rps must be"),
])
def test_bad_traffic_keys_are_named_by_the_stack_validation(stack, named):
    with pytest.raises(_stack.StackError) as info:
        _stack.validate(stack)
    assert named in str(info.value)


# -- measure: both sources, precedence, sources, fallbacks ----------------------------------------------

def log_reader_of(text):
    def reader(client, stack, config, since, until):
        entries, skipped, excluded = tr.parse_lines(text, tr.user_pattern(stack["recommendations_path"]),
                                                    config["exclude_users"])
        return {"entries": entries, "containers": ["recsys_edge_1"], "lines_skipped": skipped, "excluded": excluded}
    return reader


def test_measure_the_access_log_window_against_its_baseline():
    text = traffic_log(rounds=2, start=T) + traffic_log(failing={"user-7"}, rounds=1, start=T + 100)
    got = tr.measure(STACK, client=object(), until=T + 101, window_s=1, baseline_s=100, log_reader=log_reader_of(text))
    assert got["source"] == "access_log" and got["facts_source"] == "access_log"
    assert got["facts"] == {"samples": 200, "error_rate": 0.005, "users_affected_pct": 0.5, "latency_ms": 14.0}
    assert got["baseline"]["requests"] == 400 and got["baseline"]["error_rate"] == 0.0
    assert got["baseline_ms"] == 14.0 and got["baseline_ms_source"] == "access_log"
    assert got["window"]["since"] == "2026-12-06T11:21:40.000Z"


def test_prometheus_wins_where_it_answers_and_the_access_log_fills_the_rest():
    stack = dict(STACK, prometheus_url="http://127.0.0.1:19090")

    def query(url, text, at, timeout):
        return (0.05, None) if "5.." in text else (None, "unreachable: refused")

    got = tr.measure(stack, client=object(), until=T + 2, window_s=2, baseline_s=0,
                     log_reader=log_reader_of(traffic_log(failing={"user-1"}, rounds=2)), query=query)
    assert got["sources"] == {"rps": "access_log", "error_rate": "prometheus", "users_failing_pct": "access_log",
                              "latency_p50_ms": "access_log", "latency_p95_ms": "access_log"}
    assert got["window"]["error_rate"] == 0.05 and got["source"] == "access_log+prometheus"
    assert got["prometheus"]["notes"]["rps"] == "unreachable: refused"


def test_no_source_no_facts_and_a_sick_source_is_reported_not_raised():
    assert tr.measure(dict(STACK, access_log=None))["facts"] == {}

    def broken(client, stack, config, since, until):
        raise tr.TrafficError("no container of service 'edge' in project 'recsys' holds the access log")

    got = tr.measure(STACK, client=object(), until=T, log_reader=broken)
    assert got["facts"] == {} and got["source"] == "none"
    assert "no container of service 'edge'" in got["access_log"]["error"]
    assert tr.measure(STACK, client=None, until=T)["access_log"]["error"] == "no engine connection"


def test_fewer_requests_than_min_requests_are_not_used():
    got = tr.measure(STACK, client=object(), until=T + 2, window_s=2, baseline_s=0, min_requests=500,
                     log_reader=log_reader_of(traffic_log(rounds=2)))
    assert got["facts"] == {} and got["sources"]["error_rate"] is None and got["window"]["requests"] == 400


@pytest.mark.parametrize("kwargs, named", [
    ({"window_s": 0}, "window 0 is impossible"), ({"window_s": "x"}, "window 'x' is not a number"),
    ({"baseline_s": -1}, "baseline -1 is impossible"), ({"min_requests": 0}, "min_requests 0 is impossible"),
])
def test_bad_windows_are_named(kwargs, named):
    with pytest.raises(tr.TrafficError, match=named):
        tr.measure(STACK, until=T, **kwargs)


def test_until_accepts_iso_epoch_and_seconds_before_now():
    assert tr.parse_until(None, T) == T
    assert tr.parse_until("-60", T) == T - 60
    assert tr.parse_until(str(T - 5), T) == T - 5
    assert tr.parse_until("2026-12-06T11:20:00Z", T) == T
    with pytest.raises(tr.TrafficError, match="end 'soon' is not an ISO 8601 timestamp"):
        tr.parse_until("soon", T)


# -- classification on real users -----------------------------------------------------------------------

def classify_on(text, until, window_s, baseline_s=0, probes_facts=None):
    traffic = tr.measure(STACK, client=object(), until=until, window_s=window_s, baseline_s=baseline_s,
                         log_reader=log_reader_of(text))

    def probe_many(urls, count, interval, timeout):   # five healthy sample users
        probes = [{"url": u, "round": 1, "status": 200, "latency_ms": 3.0,
                   "body_json": {"recommendations": [{}] * 10, "source": "cache"}} for u in urls]
        return {"probes": probes, "latency_ms": {"p50": 3.0}}

    return _severity.run({"measure": True, "stack": STACK, "traffic": traffic}, probe_many=probe_many)


def test_two_percent_of_real_users_is_p1_half_a_percent_is_p2():
    p1 = classify_on(traffic_log(failing={"user-101", "user-102", "user-103", "user-104"}), T + 2, 2)
    assert p1["severity"] == "P1" and p1["facts"]["users_affected_pct"] == 2.0
    assert p1["sources"]["users_affected_pct"] == "access_log" and p1["traffic_source"] == "access_log"
    assert "users affected 2.0 % of real users, more than 1 % -> P1" in p1["reasons"]
    p2 = classify_on(traffic_log(failing={"user-150"}), T + 2, 2)
    assert p2["severity"] == "P2" and p2["problem_detected"] is True
    assert "users affected 0.5 % of real users, not more than 1 % -> P2" in p2["reasons"]


def test_a_user_retrying_raises_the_error_rate_not_the_share_of_real_users():
    # user-150 fails and retries nine times: 10 of 209 requests fail (4.8 %), still 1 user of 200
    text = traffic_log(failing={"user-150"}, rounds=1) + "\n".join(
        line(T + 0.5 + i / 100.0, 500, uri="/api/recommendations/user-150") for i in range(9)) + "\n"
    got = classify_on(text, T + 1, 1)
    assert got["facts"]["error_rate"] > 0.04 and got["facts"]["users_affected_pct"] == 0.5
    assert got["severity"] == "P2"
    # the same figures without users_counted (a synthetic share) would take the error rate: P1
    assert _severity.classify({"users_affected_pct": 0.5, "error_rate": got["facts"]["error_rate"]})["severity"] == "P1"


def test_real_latency_is_judged_against_the_real_baseline():
    slow = "\n".join(line(T + 100 + i / 10.0, request_time=0.150, user="u%d" % i) for i in range(10)) + "\n"
    got = classify_on(traffic_log(rounds=1, start=T) + slow, T + 101, 1, baseline_s=100)
    assert got["baseline"]["source"] == "access_log" and got["baseline"]["baseline_ms"] == 14.0
    assert got["branches"]["latency"]["ratio"] == pytest.approx(150 / 14.0, abs=0.01)
    assert got["severity"] == "P0"   # more than 10x the real baseline


def test_without_real_traffic_the_probes_decide():
    got = classify_on("", T + 2, 2)
    assert got["traffic_source"] is None and got["sources"]["users_affected_pct"] == "probes"


# -- the P1 detectors ----------------------------------------------------------------------------------

def test_the_cache_case_judges_real_latency_against_the_real_baseline():
    traffic = {"window": {"latency_p50_ms": 90.0, "error_rate": 0.01, "errors": 4, "requests": 400, "users_failing": 2},
               "sources": {"latency_p50_ms": "access_log", "error_rate": "access_log"},
               "baseline_ms": 15.0, "baseline_ms_source": "access_log"}
    probes = [{"user": "user-1", "status": 200, "latency_ms": 3.0, "count": 10, "source": "cache"}]
    got = _p1cases.detect({"db_connections_pct": 90, "db_connections_used": 45, "db_max_connections": 50},
                          probes=probes, baseline_ms=50, traffic=traffic)
    assert got["latency_source"] == "access_log" and got["baseline_source"] == "access_log"
    cache = [c for c in got["cases"] if c["name"] == "cache_failure"][0]
    assert cache["detected"] and "real p50 latency 90 ms is 6x the baseline 15 ms" in cache["evidence"][0]
    db = [c for c in got["cases"] if c["name"] == "db_connections_exhausted"][0]
    assert "real traffic: error rate 1% (4 of 400 requests, 2 users failing; access_log)" in db["evidence"]
    # the probes alone (3 ms against 50 ms) would not see it
    assert "cache_failure" not in _p1cases.detect({}, probes=probes, baseline_ms=50)["detected"]


# -- the verify watch ----------------------------------------------------------------------------------

def test_a_rebound_of_the_real_error_rate_or_latency():
    sources = {"error_rate": "access_log", "latency_p95_ms": "access_log"}
    assert tr.rebound({"error_rate": 0.0, "latency_p95_ms": 20.0}, sources, 0.0, 500) is None
    why = tr.rebound({"error_rate": 0.01, "errors": 1, "requests": 100, "users_failing": 1, "latency_p95_ms": 20.0},
                     sources, 0.0, 500)
    assert why == "real error rate 0.01 > 0 (access_log: 1 of 100 requests, 1 users failing)"
    assert tr.rebound({"error_rate": 0.01}, sources, 0.05, 500) is None
    assert "real p95 latency 500 ms >= 500 ms" in tr.rebound({"error_rate": 0.0, "latency_p95_ms": 500.0}, sources, 0, 500)
    assert tr.rebound({"error_rate": None, "latency_p95_ms": None}, {}, 0, 500) is None


def test_a_watch_sample_from_a_broken_reader_judges_nothing():
    def broken(since, until):
        raise OSError("engine gone")
    got = tr.watch_sample(broken, T, T + 60)
    assert got["traffic_rebound"] is None and "engine gone" in got["traffic"]["error"]


def test_the_watch_reader_reads_each_interval_without_baseline():
    calls = []

    def fake_measure(stack, **kwargs):
        calls.append(kwargs)
        return {"window": {"error_rate": 0.0}, "sources": {"error_rate": "access_log"}, "source": "access_log",
                "access_log": {"error": None}}

    reader = tr.watch_reader(STACK, client=object(), measure_fn=fake_measure)
    assert reader(T, T + 60)["source"] == "access_log"
    assert calls[0]["until"] == T + 60 and calls[0]["window_s"] == 60 and calls[0]["baseline_s"] == 0
    assert tr.watch_reader(dict(STACK, access_log=None), client=None) is None
