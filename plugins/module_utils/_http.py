# -*- coding: utf-8 -*-
# Copyright (c) sre.incident contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""HTTP probing with the standard library (urllib), plus JMESPath assertions on JSON bodies.

A probe never raises because the target is unwell: connection refused, timeouts, HTTP error
statuses, bodies that are not JSON and failed assertions all become a result dict with
``ok: false`` and an ``error``. Only bad input (a malformed URL, an invalid JMESPath
expression, JMESPath assertions without the jmespath library) raises, and that is checked
before the first request.
"""

from __future__ import annotations

import concurrent.futures
import json
import math
import socket
import time
import urllib.error
import urllib.parse
import urllib.request

from ansible_collections.sre.incident.plugins.module_utils._wait import poll_until

try:
    import jmespath
    import jmespath.exceptions
except ImportError as exc:  # pragma: no cover - depends on the environment
    jmespath = None
    HAS_JMESPATH = False
    JMESPATH_IMPORT_ERROR = exc
else:
    HAS_JMESPATH = True
    JMESPATH_IMPORT_ERROR = None

# Bodies larger than this are not read completely (and so not parsed as JSON).
MAX_BODY_BYTES = 4 * 1024 * 1024
ALLOWED_METHODS = ("GET", "POST", "HEAD")
USER_AGENT = "sre.incident-health_check"
#: Every probe says it is synthetic: the edge's access log writes this header as the request's
#: ``user`` (format ``incident_json``), and real-traffic measurement (``_traffic``) leaves
#: ``synthetic-*`` users out, so our own probes never count as users.
SYNTHETIC_USER = "synthetic-sre-incident"


class MissingJmespath(RuntimeError):
    """JMESPath assertions were asked for but the jmespath library is not installed."""


def validate_url(url):
    """Return ``url`` if it is an absolute http(s) URL with a host; raise ValueError naming it."""
    if not isinstance(url, str) or not url.strip():
        raise ValueError("malformed URL %r: expected a non-empty string like http://127.0.0.1:3000/health" % (url,))
    if url != url.strip() or any(ch.isspace() for ch in url):
        raise ValueError("malformed URL %r: it contains whitespace" % (url,))
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme.lower() not in ("http", "https"):
        raise ValueError("malformed URL %r: the scheme must be http or https" % (url,))
    if not parsed.hostname:
        raise ValueError("malformed URL %r: it has no host" % (url,))
    try:
        parsed.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise ValueError("malformed URL %r: the port is not a number between 0 and 65535" % (url,)) from None
    return url


def validate_json_queries(json_queries):
    """Compile every JMESPath assertion; raise ValueError naming a bad one.

    Raises MissingJmespath when assertions are given and jmespath is not installed.
    Returns the list of compiled expressions (empty when there are none).
    """
    queries = list(json_queries or [])
    if not queries:
        return []
    if not HAS_JMESPATH:
        raise MissingJmespath("JMESPath assertions need the jmespath Python library: %s" % (JMESPATH_IMPORT_ERROR,))
    compiled = []
    for query in queries:
        if not isinstance(query, str) or not query.strip():
            raise ValueError("invalid JMESPath assertion %r: expected a non-empty string" % (query,))
        try:
            compiled.append(jmespath.compile(query))
        except jmespath.exceptions.ParseError as exc:
            raise ValueError("invalid JMESPath assertion %r: %s" % (query, exc)) from None
    return compiled


def _jmespath_truthy(value):
    """JMESPath's own notion of truth: false, null, '' , [] and {} are false; 0 is true."""
    if value is None or value is False:
        return False
    if isinstance(value, (str, list, dict)) and not value:
        return False
    return True


def _evaluate(queries, compiled, body_json):
    """Return ``(failed_queries, first_failure_message)`` for the JSON body."""
    failed = []
    message = None
    for query, expr in zip(queries, compiled):
        try:
            value = expr.search(body_json)
        except jmespath.exceptions.JMESPathError as exc:
            failed.append(query)
            message = message or "JSON assertion %r raised %s" % (query, exc)
            continue
        if not _jmespath_truthy(value):
            failed.append(query)
            message = message or "JSON assertion %r is not true (result: %s)" % (query, json.dumps(value))
    return failed, message


class _NoRaiseHTTPErrorProcessor(urllib.request.HTTPErrorProcessor):
    """Hand every status back as a response instead of raising HTTPError."""

    def http_response(self, request, response):
        return response

    https_response = http_response


_OPENER = urllib.request.build_opener(_NoRaiseHTTPErrorProcessor())


def _error_text(exc):
    reason = getattr(exc, "reason", None)
    if isinstance(reason, BaseException):
        exc = reason
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return "timed out"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    text = str(exc) or exc.__class__.__name__
    return "%s: %s" % (exc.__class__.__name__, text) if exc.__class__.__name__ not in text else text


def probe(url, timeout, method="GET", expect_status=200, json_queries=None, _compiled=None):
    """Send one HTTP request and describe the answer.

    Returns a dict: ``url``, ``status`` (int or None when no response came), ``ok`` (status is
    ``expect_status`` and every JMESPath assertion holds), ``latency_ms`` (float, time to the
    response headers and body; None when no response came), ``error`` (None when ok, else a
    short reason), ``body_json`` (the parsed body or None), ``failed_assertions`` (the
    expressions that did not hold).

    Raises ValueError for a malformed URL or JMESPath expression and MissingJmespath when
    assertions are given without jmespath; never raises because the target is down.
    """
    validate_url(url)
    method = (method or "GET").upper()
    if method not in ALLOWED_METHODS:
        raise ValueError("unsupported HTTP method %r: choose one of %s" % (method, ", ".join(ALLOWED_METHODS)))
    if timeout is None or float(timeout) <= 0:
        raise ValueError("timeout must be > 0 seconds, got %r" % (timeout,))
    queries = list(json_queries or [])
    compiled = _compiled if _compiled is not None else validate_json_queries(queries)

    result = dict(url=url, status=None, ok=False, latency_ms=None, error=None, body_json=None, failed_assertions=[])
    data = b"" if method == "POST" else None
    request = urllib.request.Request(url, data=data, method=method, headers={
        "User-Agent": USER_AGENT,
        "Accept": "application/json, */*;q=0.5",
        "X-User-Id": SYNTHETIC_USER,
    })
    start = time.monotonic()
    try:
        response = _OPENER.open(request, timeout=float(timeout))
        try:
            status = response.getcode()
            body = response.read(MAX_BODY_BYTES + 1) if method != "HEAD" else b""
        finally:
            response.close()
    except (urllib.error.URLError, OSError, ValueError) as exc:
        # URLError covers refused/unresolvable, OSError/socket.timeout covers timeouts and
        # resets while reading; http.client errors (bad status line) are ValueError/OSError
        # subclasses or HTTPException, handled below.
        result["latency_ms"] = None
        result["error"] = _error_text(exc)
        result["elapsed_ms"] = round((time.monotonic() - start) * 1000.0, 3)
        return result
    except Exception as exc:  # http.client.HTTPException and friends: still "target unwell"
        result["error"] = _error_text(exc)
        result["elapsed_ms"] = round((time.monotonic() - start) * 1000.0, 3)
        return result
    latency = (time.monotonic() - start) * 1000.0
    result["status"] = status
    result["latency_ms"] = round(latency, 3)
    result["elapsed_ms"] = result["latency_ms"]

    body_error = None
    if body and len(body) <= MAX_BODY_BYTES:
        try:
            result["body_json"] = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            body_error = "body is not JSON (%s)" % (exc.__class__.__name__,)
    elif body:
        body_error = "body larger than %d bytes, not parsed" % MAX_BODY_BYTES
    else:
        body_error = "empty body"

    errors = []
    if status != expect_status:
        errors.append("status %s, expected %s" % (status, expect_status))
    if queries:
        if result["body_json"] is None and body_error is not None:
            result["failed_assertions"] = list(queries)
            errors.append("JSON assertions not evaluated: %s" % body_error)
        else:
            failed, message = _evaluate(queries, compiled, result["body_json"])
            result["failed_assertions"] = failed
            if message:
                errors.append(message)
    result["ok"] = not errors
    result["error"] = "; ".join(errors) if errors else None
    return result


def percentile(values, pct):
    """Nearest-rank percentile of ``values`` (already numbers); None for an empty list."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, int(math.ceil(pct / 100.0 * len(ordered))))
    return ordered[min(rank, len(ordered)) - 1]


def latency_stats(probes):
    """min/p50/p95/max in ms over the probes that got a response (any status).

    Probes without a response (refused, timed out) have no latency and are left out, so a
    dead target does not look fast. All four values are None when no probe got a response.
    """
    values = [p["latency_ms"] for p in probes if p.get("latency_ms") is not None]
    if not values:
        return dict(min=None, p50=None, p95=None, max=None, samples=0)
    return dict(
        min=round(min(values), 3),
        p50=round(percentile(values, 50), 3),
        p95=round(percentile(values, 95), 3),
        max=round(max(values), 3),
        samples=len(values),
    )


def _targets(urls, json_queries):
    """``urls`` (a URL, or a list of URLs and ``{url, json_query}`` dicts) as ``[(url, queries)]``.

    A dict's own ``json_query`` replaces ``json_queries`` for that URL (``[]``: status only).
    """
    if isinstance(urls, (str, dict)):
        urls = [urls]
    targets = []
    for item in list(urls or []):
        if isinstance(item, dict):
            unknown = sorted(set(item) - {"url", "json_query"})
            if unknown or not isinstance(item.get("url"), str):
                raise ValueError("a URL entry must be a string or a dict with 'url' (and optionally "
                                 "'json_query'), got %r" % (item,))
            own = item.get("json_query")
            if own is not None and (isinstance(own, str) or not isinstance(own, (list, tuple))):
                raise ValueError("json_query of %s must be a list of expressions, got %r" % (item["url"], own))
            targets.append((item["url"], list(json_queries or []) if own is None else [str(q) for q in own]))
        elif isinstance(item, str):
            targets.append((item, list(json_queries or [])))
        else:
            raise ValueError("a URL entry must be a string or a dict with 'url', got %r" % (item,))
    if not targets:
        raise ValueError("no URL to probe: give at least one")
    return targets


def decided(ok, done, total, min_success_ratio):
    """True when the verdict of ``total`` probes is already known after ``done`` with ``ok`` successes:
    the ratio is reached whatever the rest answer, or can no longer be reached."""
    need = float(min_success_ratio) * total
    return ok >= need or ok + (total - done) < need


def probe_many(urls, count=3, interval=0.5, timeout=2.0, method="GET", expect_status=200,
               json_queries=None, min_success_ratio=1.0, stop_early=False, sleep=time.sleep, settled=None, judge=None):
    """Probe every URL ``count`` times, ``interval`` seconds between two rounds.

    ``urls`` is a URL or a list of URLs and ``{url, json_query}`` dicts (a dict's own
    ``json_query`` replaces ``json_queries`` for that URL). A round probes each URL once, all at
    the same time (results in the order of the URLs). With ``stop_early`` the rounds stop as soon
    as the verdict can no longer change (see :func:`decided`, or ``settled(probes, rounds)`` when
    given, for a verdict made of several groups of URLs); ``rounds`` says how many ran.
    ``judge(probes)``, when given, decides ``healthy`` instead of the overall success ratio.
    Returns a dict: ``urls``, ``probes`` (every result of :func:`probe`, with ``round``
    added), ``success_ratio`` (ok probes / probes made), ``healthy`` (``success_ratio >=
    min_success_ratio``), ``latency_ms`` (see :func:`latency_stats`) and ``by_url``
    ({url: {success_ratio, ok, total, latency_ms}}).

    All input is validated before the first request (ValueError naming the bad value).
    """
    targets = _targets(urls, json_queries)
    for url, _queries in targets:
        validate_url(url)
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ValueError("count must be an integer >= 1, got %r" % (count,))
    if interval is None or float(interval) < 0:
        raise ValueError("interval must be >= 0 seconds, got %r" % (interval,))
    if timeout is None or float(timeout) <= 0:
        raise ValueError("timeout must be > 0 seconds, got %r" % (timeout,))
    if min_success_ratio is None or not 0.0 <= float(min_success_ratio) <= 1.0:
        raise ValueError("min_success_ratio must be between 0 and 1, got %r" % (min_success_ratio,))
    method = (method or "GET").upper()
    if method not in ALLOWED_METHODS:
        raise ValueError("unsupported HTTP method %r: choose one of %s" % (method, ", ".join(ALLOWED_METHODS)))
    compiled = [validate_json_queries(queries) for _url, queries in targets]

    def one(index):
        url, queries = targets[index]
        return probe(url, timeout, method=method, expect_status=expect_status, json_queries=queries,
                     _compiled=compiled[index])

    urls = [url for url, _queries in targets]
    probes = []
    total = count * len(targets)
    # The URLs of a round are probed at once: a hung service costs one timeout per round, not
    # one per URL. Results keep the order of the URLs.
    with concurrent.futures.ThreadPoolExecutor(max_workers=min(len(targets), 16)) as pool:
        for round_no in range(count):
            if round_no and interval:
                sleep(float(interval))
            for result in pool.map(one, range(len(targets))):
                result["round"] = round_no + 1
                probes.append(result)
            if not stop_early:
                continue
            if settled(probes, round_no + 1) if settled is not None else \
                    decided(sum(1 for p in probes if p["ok"]), len(probes), total, min_success_ratio):
                break

    ok_count = sum(1 for p in probes if p["ok"])
    ratio = ok_count / float(len(probes))
    by_url = {}
    for url in urls:
        mine = [p for p in probes if p["url"] == url]
        ok_mine = sum(1 for p in mine if p["ok"])
        by_url[url] = dict(total=len(mine), ok=ok_mine, success_ratio=round(ok_mine / float(len(mine)), 4),
                           latency_ms=latency_stats(mine))
    return dict(
        urls=urls,
        probes=probes,
        success_ratio=round(ratio, 4),
        healthy=judge(probes) if judge is not None else ratio >= float(min_success_ratio),
        min_success_ratio=float(min_success_ratio),
        latency_ms=latency_stats(probes),
        by_url=by_url,
        rounds=probes[-1]["round"],
    )


def wait_healthy(urls, wait_timeout, poll_interval=0.25, give_up=None, **kwargs):
    """Repeat :func:`probe_many` until it is healthy or ``wait_timeout`` seconds have passed.

    ``give_up`` (optional) is called after each unhealthy round; a non-empty string it returns
    ends the wait early (for example "the container exited"), and is returned as ``gave_up``.
    Returns the last :func:`probe_many` result plus ``attempts`` (rounds of probing),
    ``waited`` (seconds) and ``gave_up``. With ``wait_timeout`` 0 this is one round.
    """
    if wait_timeout is None or float(wait_timeout) < 0:
        raise ValueError("wait_timeout must be >= 0 seconds, got %r" % (wait_timeout,))
    attempts = []
    reason = {}

    def check():
        result = probe_many(urls, **kwargs)
        attempts.append(result)
        if result["healthy"]:
            return True
        why = give_up() if give_up is not None else None
        if why:
            reason["why"] = why
            return True
        return False

    _ok, _value, waited = poll_until(check, float(wait_timeout), interval=poll_interval)
    result = attempts[-1]
    result.update(attempts=len(attempts), waited=round(waited, 3), gave_up=reason.get("why"))
    return result
