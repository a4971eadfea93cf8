# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The recommendation cache (SPEC P1-2, OPS-1): cleared the way the runbook says, through the
service's own endpoint (answer ``{"cleared": n}``); its keys counted with ``redis-cli --scan`` in
the Redis container, so check mode can say how many would be cleared. The scores the cache holds
are refreshed through the stack's own endpoint, when it names one (``incident_stack.refresh_path``,
the quick fix of the P1 case "empty results").
"""

from __future__ import annotations

import json
import time

from ansible_collections.sre.incident.plugins.module_utils import _http, _stack
from ansible_collections.sre.incident.plugins.module_utils._errors import IncidentError

STATES = ("present", "cleared", "refreshed")
#: attempts of a refresh within its timeout (it recomputes the scores: repeating it is harmless)
REFRESH_ATTEMPTS = 3
DEFAULT_PATTERN = "recs:*"


class CacheError(IncidentError):
    """The cache could not be read or cleared; ``details`` go into the module's failure."""


def _refresh_url(stack, refresh_path):
    path = refresh_path or (stack or {}).get("refresh_path")
    if not path:
        raise ValueError("no score refresh endpoint: give refresh_path, url or a stack with refresh_path")
    if not str(path).startswith("/"):
        raise ValueError("refresh_path must be a path starting with /, got %r" % (path,))
    return _stack.urls(stack)["base"] + path


def resolve(params):
    """Where to act: dict(url, project, redis_service, pattern, port_args); ValueError names a missing or bad value."""
    stack = params.get("stack")
    url = params.get("url")
    refresh = params.get("state") == "refreshed"
    if stack:
        derived = _stack.urls(stack)["clear_cache"]  # validates the stack even when url is given
        url = url or (_refresh_url(stack, params.get("refresh_path")) if refresh else derived)
    if not url:
        raise ValueError("no %s URL: give stack (incident_stack) or url" % ("score refresh" if refresh else "clear-cache"))
    _http.validate_url(url)
    project = params.get("project") or (stack or {}).get("name")
    redis_service = params.get("redis_service") or ((stack or {}).get("redis") or {}).get("service") or "redis"
    if params.get("count_keys", True) and not refresh and not project:
        raise ValueError("counting keys needs the compose project: give stack (incident_stack) or project")
    pattern = params.get("key_pattern") or DEFAULT_PATTERN
    if any(ch.isspace() for ch in pattern):
        raise ValueError("key_pattern %r contains whitespace" % (pattern,))
    return dict(url=url, project=project, redis_service=redis_service, pattern=pattern,
                port_args=_stack.port_args(stack, "redis"))


def parse_scan(stdout):
    """Number of keys in ``redis-cli --scan`` output (one key per line; blank lines ignored)."""
    return len({line for line in (stdout or "").splitlines() if line.strip()})


def count_keys(exec_fn, project, redis_service, pattern=DEFAULT_PATTERN, port_args=()):
    """Count the keys matching ``pattern``; ``exec_fn(project, service, argv)`` -> dict(rc, stdout, stderr)."""
    result = exec_fn(project, redis_service, ["redis-cli"] + list(port_args) + ["--scan", "--pattern", pattern])
    if result["rc"] != 0 or "ERR" in (result.get("stdout") or "")[:200] or "Could not connect" in (result.get("stderr") or ""):
        raise CacheError("counting the %s keys in Redis (service %s) failed: rc %s, %s"
                         % (pattern, redis_service, result["rc"], (result.get("stderr") or result.get("stdout") or "").strip()[:300]),
                         cmd=result.get("cmd"), rc=result["rc"], stdout=result.get("stdout"), stderr=result.get("stderr"))
    return parse_scan(result["stdout"])


def clear(url, timeout=5.0, probe=_http.probe):
    """POST the clear-cache endpoint; returns dict(status, cleared, latency_ms). CacheError if it did not clear."""
    answer = probe(url, timeout, method="POST")
    body = answer.get("body_json")
    if answer.get("status") != 200 or not isinstance(body, dict) or not isinstance(body.get("cleared"), int):
        raise CacheError("clearing the cache through POST %s failed: %s%s. Is the service (and Redis) up?"
                         % (url, answer.get("error") or "unexpected answer",
                            "; answer %s" % (body,) if body is not None else ""),
                         status=answer.get("status"), body=body, url=url)
    return dict(status=answer["status"], cleared=body["cleared"], latency_ms=answer.get("latency_ms"))


def refresh(url, timeout=30.0, send=_http.send_retrying, clock=time.monotonic):
    """POST the score refresh endpoint, retried within ``timeout`` seconds; returns dict(status,
    refreshed (the answer's count, None when it gives none), attempts). CacheError if it did not answer 2xx."""
    answer = send(url, clock() + timeout, attempts=REFRESH_ATTEMPTS, connect_timeout=min(2.0, timeout), read_timeout=timeout,
                  clock=clock, method="POST", data=b"",
                  headers={"User-Agent": _http.USER_AGENT, "Accept": "application/json", "X-User-Id": _http.SYNTHETIC_USER})
    try:
        body = json.loads(answer["body"].decode("utf-8")) if answer.get("body") else None
    except (UnicodeDecodeError, ValueError):
        body = None
    if answer["status"] is None or answer["error"] is not None:
        said = _http.scrub(json.dumps(body) if body is not None else None, "refresh endpoint", url)
        raise CacheError("refreshing the scores through the stack's refresh endpoint failed after %d attempt(s)%s: %s%s"
                         % (answer["attempts"], " (its %s s were spent)" % _http.seconds_text(timeout) if answer["budget_spent"] else "",
                            answer["error"] or "no answer", "; answer %s" % said if said else ""),
                         status=answer["status"], attempts=answer["attempts"], body=said)
    count = body.get("refreshed") if isinstance(body, dict) else None
    return dict(status=answer["status"], refreshed=count if isinstance(count, int) else None, attempts=answer["attempts"])


def run(params, check_mode=False, exec_fn=None, probe=_http.probe, send=_http.send_retrying):
    """The work of ``sre.incident.recommendation_cache``; ``exec_fn`` None: keys are not counted."""
    state = params.get("state") or "present"
    if state not in STATES:
        raise ValueError("unknown state %r: choose one of %s" % (state, ", ".join(STATES)))
    where = resolve(params)
    if state == "refreshed":
        result = dict(changed=True, state=state, url=where["url"], status=None, refreshed=None, attempts=0)
        if not check_mode:
            result.update(refresh(where["url"], timeout=params.get("timeout") or 30.0, send=send))
            result["changed"] = result["refreshed"] != 0
        return result
    counted = bool(params.get("count_keys", True) and exec_fn is not None)
    if state == "present" and not counted:
        raise ValueError("state=present reports the key count and needs count_keys=true")

    def count():
        return count_keys(exec_fn, where["project"], where["redis_service"], where["pattern"], where["port_args"]) if counted else None

    before = count()
    result = dict(changed=False, state=state, url=where["url"], pattern=where["pattern"], counted=counted,
                  keys_before=before, keys_after=before, cleared=0, would_clear=None, status=None)
    if state == "cleared":
        if check_mode:
            result["would_clear"] = before
            result["changed"] = before > 0 if counted else True
        else:
            answer = clear(where["url"], timeout=params.get("timeout") or 5.0, probe=probe)
            result.update(cleared=answer["cleared"], status=answer["status"], keys_after=count())
            result["changed"] = answer["cleared"] > 0
    after = result["keys_after"] if not (check_mode and result["changed"]) else 0
    result["diff"] = dict(before="%s keys: %s\n" % (where["pattern"], before),
                          after="%s keys: %s\n" % (where["pattern"], after))
    return result
