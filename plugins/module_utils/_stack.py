# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one description of a stack (``incident_stack``): validation and derived URLs."""
from __future__ import annotations

from urllib.parse import quote, urlsplit

REQUIRED_KEYS = ("name", "project_dir", "service", "base_url", "health_path",
                 "recommendations_path", "sample_users")


class StackError(ValueError):
    """incident_stack is missing a key or holds a bad value."""


def _check_base_url(value, key):
    parts = urlsplit(str(value))
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise StackError(f"incident_stack.{key} is not an http(s) URL: {value!r}")
    return str(value).rstrip("/")


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
    refresh = stack.get("refresh_path")
    if refresh not in (None, "") and not str(refresh).startswith("/"):
        raise StackError(f"incident_stack.refresh_path must be a path starting with /, got {refresh!r}")
    port = stack.get("service_port")
    if port not in (None, "") and (isinstance(port, bool) or not str(port).isdigit() or not 1 <= int(port) <= 65535):
        raise StackError(f"incident_stack.service_port must be a port number (1-65535), got {port!r}")
    users = stack["sample_users"]
    if not isinstance(users, list) or not users:
        raise StackError(f"incident_stack.sample_users must be a non-empty list, got {users!r}")
    return stack


def urls(stack, base=None):
    """Every URL the collection probes, derived from ``incident_stack``.

    ``base`` replaces the base URL (for example the edge URL, to check through the edge).
    """
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
