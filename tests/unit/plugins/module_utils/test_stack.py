# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

import pytest

from ansible_collections.sre.incident.plugins.module_utils._stack import DEFAULT_THRESHOLDS, StackError, port_args, thresholds, urls, validate

STACK = {
    "name": "recsys", "project_dir": "/srv/recsys", "service": "recommendation-service",
    "base_url": "http://127.0.0.1:3000/", "health_path": "/health",
    "recommendations_path": "/api/recommendations/{user}", "sample_users": ["user-1", "a b"],
    "recommendations_limit": 10,
}


def test_urls_derived_from_the_description():
    got = urls(STACK)
    assert got["health"] == "http://127.0.0.1:3000/health"
    assert got["recommendation_urls"] == [
        "http://127.0.0.1:3000/api/recommendations/user-1?limit=10",
        "http://127.0.0.1:3000/api/recommendations/a%20b?limit=10",
    ]
    assert got["clear_cache"] == "http://127.0.0.1:3000/api/recommendations/clear-cache"


def test_another_base_such_as_the_edge():
    assert urls(STACK, base="http://127.0.0.1:8080")["health"] == "http://127.0.0.1:8080/health"


@pytest.mark.parametrize("change, needle", [
    ({"base_url": "127.0.0.1:3000"}, "127.0.0.1:3000"),
    ({"service": ""}, "service"),
    ({"recommendations_path": "/api/recommendations"}, "{user}"),
    ({"sample_users": []}, "sample_users"),
    ({"edge_url": "ftp://edge"}, "ftp://edge"),
    ({"database": {"service": "pg", "port": 0}}, "database.port"),
    ({"redis": {"service": "kv", "port": "63x"}}, "'63x'"),
    ({"service_port": 70000}, "service_port"),
    # the recovery thresholds, caught before detect or diagnose, not by verify after the ladder restarted things
    ({"thresholds": {"latency_ms": 0}}, "incident_stack.thresholds.latency_ms must be a number > 0, got 0"),
    ({"thresholds": {"memory_percent": 150}}, "incident_stack.thresholds.memory_percent must be at most 100, got 150"),
    ({"thresholds": {"cpu_percent": "fast"}}, "incident_stack.thresholds.cpu_percent must be a number, got 'fast'"),
    ({"thresholds": {"cpu_percent": -5}}, "got -5"),
    ({"thresholds": {"latency_ms": True}}, "latency_ms must be a number > 0, got True"),
    ({"thresholds": {"latency_ms": float("nan")}}, "got nan"),
    ({"thresholds": {"min_recommendations": 5.5}}, "must be a whole number, got 5.5"),
    ({"min_recommendations": 0}, "incident_stack.min_recommendations must be a number > 0, got 0"),
    ({"thresholds": [500]}, "incident_stack.thresholds must be a mapping, got [500]"),
])
def test_bad_descriptions_are_named(change, needle):
    with pytest.raises(StackError) as info:
        validate(dict(STACK, **change))
    assert needle in str(info.value)


def test_port_args_for_psql_and_redis_cli_inside_their_containers():
    stack = dict(STACK, database={"service": "pg", "port": 5433}, redis={"service": "kv", "port": "6380"})
    assert validate(stack) is stack
    assert port_args(stack, "database") == ["-p", "5433"]
    assert port_args(stack, "redis") == ["-p", "6380"]
    # no port: the client's own default (5432, 6379), as before
    assert port_args(STACK, "database") == [] and port_args(dict(STACK, redis={"service": "r"}), "redis") == []
    assert port_args(None, "redis") == []
    with pytest.raises(StackError, match="redis.port"):
        port_args(dict(STACK, redis={"port": -1}), "redis")


def test_thresholds_from_the_stack_then_the_overrides():
    stack = dict(STACK, min_recommendations=8, thresholds={"latency_ms": 300, "disk_percent": 90})
    # the stack's keys of other stages (disk_percent) are theirs; an override wins
    assert validate(stack) is stack
    assert thresholds(stack, {"cpu_percent": 70}) == dict(latency_ms=300.0, cpu_percent=70.0, memory_percent=60.0,
                                                          min_recommendations=8)
    assert thresholds(dict(stack, thresholds={"min_recommendations": 7}))["min_recommendations"] == 7
    assert thresholds({}, None) == DEFAULT_THRESHOLDS


@pytest.mark.parametrize("overrides, needle", [
    ({"latency": 1}, "unknown threshold 'latency'"),
    ({"latency_ms": -1}, "thresholds.latency_ms must be a number > 0, got -1"),
    ({"cpu_percent": "fast"}, "thresholds.cpu_percent must be a number, got 'fast'"),
    ({"memory_percent": 120}, "thresholds.memory_percent must be at most 100, got 120"),
    ({"min_recommendations": 5.5}, "whole number, got 5.5"),
])
def test_bad_threshold_overrides_are_named(overrides, needle):
    with pytest.raises(StackError) as info:
        thresholds(STACK, overrides)
    assert needle in str(info.value)
