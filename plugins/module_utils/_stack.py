# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one description of a stack (``incident_stack``): validation and derived URLs."""
from __future__ import annotations

import math
from urllib.parse import quote, urlsplit

from ansible_collections.sre.incident.plugins.module_utils._errors import InputError

REQUIRED_KEYS = ("name", "project_dir", "service", "base_url", "health_path",
                 "recommendations_path", "sample_users")


#: The recovery thresholds (``incident_stack.thresholds``, ``incident_stack.min_recommendations``) and their defaults.
DEFAULT_THRESHOLDS = dict(latency_ms=500.0, cpu_percent=50.0, memory_percent=60.0, min_recommendations=6)


class StackError(InputError):
    """incident_stack is missing a key or holds a bad value."""


def _check_base_url(value, key):
    parts = urlsplit(str(value))
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise StackError(f"incident_stack.{key} is not an http(s) URL: {value!r}")
    return str(value).rstrip("/")


def _check_port(value, key):
    if isinstance(value, bool) or not isinstance(value, (int, str)) or not str(value).isdigit() \
            or not 1 <= int(value) <= 65535:
        raise StackError(f"incident_stack.{key} is not a TCP port (1-65535): {value!r}")
    return int(value)


def port_args(stack, key):
    """``["-p", "<port>"]`` for psql (``key`` database) or redis-cli (``key`` redis) in that service's
    container when ``incident_stack.<key>.port`` is set, else ``[]`` (the client's default port)."""
    section = (stack or {}).get(key)
    port = section.get("port") if isinstance(section, dict) else None
    if port in (None, ""):
        return []
    return ["-p", str(_check_port(port, key + ".port"))]


def validate(stack):
    """Return ``stack`` if it is usable, else raise StackError naming what is wrong."""
    if not isinstance(stack, dict):
        raise StackError(f"incident_stack must be a dict, got {type(stack).__name__}")
    missing = [k for k in REQUIRED_KEYS if k not in stack or stack[k] in (None, "")]
    if missing:
        raise StackError("incident_stack is missing " + ", ".join(missing))
    _check_base_url(stack["base_url"], "base_url")
    if stack.get("edge_url"):
        _check_base_url(stack["edge_url"], "edge_url")
    if "{user}" not in stack["recommendations_path"]:
        raise StackError("incident_stack.recommendations_path has no {user} placeholder: "
                         f"{stack['recommendations_path']!r}")
    for key in ("database", "redis"):
        port_args(stack, key)
    if stack.get("service_port") not in (None, ""):
        _check_port(stack["service_port"], "service_port")
    refresh = stack.get("refresh_path")
    if refresh not in (None, "") and not str(refresh).startswith("/"):
        raise StackError(f"incident_stack.refresh_path must be a path starting with /, got {refresh!r}")
    users = stack["sample_users"]
    if not isinstance(users, list) or not users:
        raise StackError(f"incident_stack.sample_users must be a non-empty list, got {users!r}")
    thresholds(stack)
    _validate_traffic(stack)
    return stack


def _threshold(label, key, value):
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise StackError(f"threshold {label} must be a number, got {value!r}") from None
    if isinstance(value, bool) or math.isnan(number) or number <= 0:
        raise StackError(f"threshold {label} must be a number > 0, got {value!r}")
    if key == "memory_percent" and number > 100:
        raise StackError(f"threshold {label} must be at most 100, got {value!r}")
    if key == "min_recommendations":
        if number != int(number):
            raise StackError(f"threshold {label} must be a whole number, got {value!r}")
        number = int(number)
    return number


def thresholds(stack, overrides=None):
    """The recovery thresholds: the defaults, then ``incident_stack.thresholds`` and
    ``incident_stack.min_recommendations``, then ``overrides`` (the ``thresholds`` option); each above 0,
    ``memory_percent`` at most 100, ``min_recommendations`` whole. The stack's unknown keys are left to
    other stages; an unknown override is an error."""
    stack = stack or {}
    given = stack.get("thresholds")
    if given in (None, ""):
        given = {}
    if not isinstance(given, dict):
        raise StackError(f"incident_stack.thresholds must be a mapping, got {given!r}")
    if not isinstance(overrides or {}, dict):
        raise StackError(f"thresholds must be a mapping, got {overrides!r}")
    sources = [(f"incident_stack.thresholds.{key}", key, value) for key, value in given.items() if key in DEFAULT_THRESHOLDS]
    if stack.get("min_recommendations") is not None and given.get("min_recommendations") is None:
        sources.append(("incident_stack.min_recommendations", "min_recommendations", stack["min_recommendations"]))
    for key, value in (overrides or {}).items():
        if key not in DEFAULT_THRESHOLDS:
            raise StackError(f"unknown threshold {key!r} in thresholds: known are {', '.join(DEFAULT_THRESHOLDS)}")
        sources.append((f"thresholds.{key}", key, value))
    result = dict(DEFAULT_THRESHOLDS)
    for label, key, value in sources:
        if value is not None:
            result[key] = _threshold(label, key, value)
    return result


def _validate_traffic(stack):
    """access_log, prometheus_url and prometheus_queries (real traffic, SPEC MON-2; _traffic.py)."""
    if not any(stack.get(k) not in (None, "") for k in ("access_log", "prometheus_url", "prometheus_queries")):
        return
    from ansible_collections.sre.incident.plugins.module_utils._traffic import TrafficError, validate as validate_traffic
    try:
        validate_traffic(stack)
    except TrafficError as exc:
        raise StackError(str(exc)) from None


def urls(stack, base=None):
    """Every URL the collection probes, from ``incident_stack``; ``base`` replaces the base URL (for
    example the edge URL, to check through the edge)."""
    validate(stack)
    root = _check_base_url(base, "edge_url") if base else stack["base_url"].rstrip("/")
    limit = int(stack.get("recommendations_limit", 10))
    recs = {
        user: f"{root}{stack['recommendations_path'].replace('{user}', quote(str(user), safe=''))}"
              f"?limit={limit}"
        for user in stack["sample_users"]
    }
    return {
        "base": root,
        "health": root + stack["health_path"],
        "recommendations": recs,
        "recommendation_urls": list(recs.values()),
        "clear_cache": root + stack.get("clear_cache_path", "/api/recommendations/clear-cache"),
        "metrics": root + stack.get("metrics_path", "/metrics"),
    }


def redis_cli(stack, *args):
    """argv of ``redis-cli`` for the stack's Redis, run inside its container (see :func:`port_args`)."""
    return ["redis-cli"] + port_args(stack, "redis") + [str(a) for a in args]


def cache_keys(stack):
    """The Redis key patterns of the service's cached answers (``incident_stack.redis.cache_keys``, default ``recs:*``)."""
    keys = (stack.get("redis") or {}).get("cache_keys")
    if keys in (None, "", []):
        return ["recs:*"]
    if isinstance(keys, str):
        keys = [keys]
    if not isinstance(keys, list) or not all(isinstance(k, str) and k.strip() for k in keys):
        raise StackError(f"incident_stack.redis.cache_keys must be a list of key patterns, got {keys!r}")
    return keys


def downgrade_env(stack):
    """The environment variable that switches the service to static recommendations (option B)."""
    return str(stack.get("downgrade_env") or "DOWNGRADE_MODE")
