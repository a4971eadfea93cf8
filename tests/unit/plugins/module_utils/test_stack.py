# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

import pytest

from ansible_collections.sre.incident.plugins.module_utils._stack import StackError, port_args, urls, validate

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
