# -*- coding: utf-8 -*-
# Copyright (c) sre.incident contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The HTTP client of the collection (urllib), and the health probes built on it.

Nothing here raises because the target is unwell: no answer, a timeout, an error status, a body
that is not JSON or a failed JMESPath assertion is a result that says why. Only bad input raises,
before the first request. Redirects are not followed unless asked (a POST would turn into a GET, or
carry its payload elsewhere); proxies come from the environment.
"""

from __future__ import annotations

import concurrent.futures
import functools
import http.client
import json
import math
import re
import socket
import time
import urllib.error
import urllib.parse
import urllib.request

from ansible_collections.sre.incident.plugins.module_utils._errors import IncidentError
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

# the budget of send_retrying
MIN_ATTEMPT_S = 0.25           # an attempt needs at least this much of the budget to be started
MIN_READ_S = 0.05              # a read timeout is never 0 (that would make the socket non-blocking)
BACKOFF_BASE = 0.5
BACKOFF_CAP = 1.5              # every sleep stays under 2 s
RETRY_STATUSES = frozenset([429])  # plus every 5xx
_URL_RE = re.compile(r"[a-zA-Z][a-zA-Z0-9+.-]*://[^\s'\"<>]+")


# --------------------------------------------------------------------------- one request

class ConnectTimeout(OSError):
    """The TCP connection (with a proxy tunnel and the TLS handshake) did not complete in time."""


def seconds_text(value):
    """``5``, ``2.5``, ``0.25`` (for messages)."""
    return ("%.2f" % value).rstrip("0").rstrip(".") if value is not None else "?"


class _Timed:
    """``timeout`` bounds the connect (with a proxy tunnel and the TLS handshake); ``read_timeout()``,
    called once connected, every read after it."""

    def __init__(self, *args, read_timeout=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.read_timeout = read_timeout

    def connect(self):
        try:
            super().connect()
        except (socket.timeout, TimeoutError) as exc:
            raise ConnectTimeout("connect timed out after %s s" % seconds_text(self.timeout)) from exc
        self.sock.settimeout(self.read_timeout())


class _TimedHTTPConnection(_Timed, http.client.HTTPConnection):
    pass


class _TimedHTTPSConnection(_Timed, http.client.HTTPSConnection):
    pass


class _TimedHandler(urllib.request.HTTPHandler, urllib.request.HTTPSHandler):
    """Opens http and https URLs with the timed connections (and so replaces both default handlers)."""

    def __init__(self, read_timeout):
        super().__init__()
        self._read_timeout = read_timeout

    def http_open(self, req):
        return self.do_open(functools.partial(_TimedHTTPConnection, read_timeout=self._read_timeout), req)

    def https_open(self, req):
        return self.do_open(functools.partial(_TimedHTTPSConnection, read_timeout=self._read_timeout), req,
                            context=self._context)


class _Answers(urllib.request.HTTPErrorProcessor):
    """Hand every status back as an answer instead of raising HTTPError; with ``redirects``, a 3xx
    goes to the redirect handler first."""

    def __init__(self, redirects):
        super().__init__()
        self.redirects = redirects

    def http_response(self, request, response):
        if self.redirects and 300 <= response.status < 400:
            return super().http_response(request, response)
        return response

    https_response = http_response


def _opener(read_timeout, redirects):
    return urllib.request.build_opener(_Answers(redirects), _TimedHandler(read_timeout))


def _failure(exc):
    """``(failure kind, error text, detail)`` of an exception raised by a request."""
    sending = isinstance(exc, urllib.error.URLError)   # raised before the answer began
    reason = exc.reason if sending and isinstance(exc.reason, BaseException) else exc
    detail = str(reason) if sending else str(exc)
    if isinstance(reason, ConnectTimeout):
        return "connect_timeout", "timed out", detail
    if isinstance(reason, (socket.timeout, TimeoutError)):
        return ("send_timeout" if sending else "read_timeout"), "timed out", detail
    text = str(reason) or reason.__class__.__name__
    if reason.__class__.__name__ not in text:
        text = "%s: %s" % (reason.__class__.__name__, text)
    if isinstance(reason, ConnectionRefusedError):
        return "connection", "connection refused", detail
    if isinstance(reason, (OSError, ValueError, http.client.HTTPException)):
        return "connection", text, detail
    return "other", text, detail


def _no_answer(**extra):
    return dict(status=None, reason=None, headers={}, body=b"", latency_ms=None, failure=None, error=None,
                detail=None, **extra)


def send(url, method="GET", data=None, headers=None, timeout=2.0, read_timeout=None, redirects=False,
         max_body=MAX_BODY_BYTES):
    """One HTTP request.

    ``timeout``: seconds to connect; ``read_timeout``: seconds for every read once connected (a
    number, or a callable giving it at that moment; default ``timeout``). The body is read up to
    ``max_body + 1`` bytes (HEAD: not at all). Returns dict(status (None: no answer), reason,
    headers, body, latency_ms (to the end of the body; None without an answer), elapsed_ms, failure
    (None, ``connect_timeout``, ``send_timeout``, ``read_timeout``, ``connection`` or ``other``),
    error (short: ``timed out``, ``connection refused``, ...), detail (the underlying error's text)).
    """
    if read_timeout is None:
        read_timeout = timeout
    armed = read_timeout if callable(read_timeout) else (lambda: read_timeout)
    request = urllib.request.Request(url, data=data, method=method, headers=dict(headers or {}))
    answer = _no_answer()
    start = time.monotonic()
    try:
        try:
            response = _opener(armed, redirects).open(request, timeout=float(timeout))
        except urllib.error.HTTPError as exc:   # a redirect that could not be followed
            response = exc
        try:
            answer.update(status=response.getcode(), reason=response.reason, headers=dict(response.headers or {}))
            answer["body"] = response.read(max_body + 1) if method != "HEAD" else b""
        finally:
            response.close()
    except Exception as exc:  # pylint: disable=broad-exception-caught
        # every failure of the target is a result, never an exception
        answer["status"] = None
        answer["failure"], answer["error"], answer["detail"] = _failure(exc)
    answer["elapsed_ms"] = round((time.monotonic() - start) * 1000.0, 3)
    if answer["status"] is not None:
        answer["latency_ms"] = answer["elapsed_ms"]
    return answer


# --------------------------------------------------------------------------- retries within a budget

def connect_timeout_for(now, deadline, connect_timeout):
    """The connect timeout of an attempt starting at ``now``, cut to the deadline; None when less
    than :data:`MIN_ATTEMPT_S` is left (too little for an attempt to mean anything)."""
    left = deadline - now
    return None if left < MIN_ATTEMPT_S else min(connect_timeout, left)


def read_timeout_for(now, deadline, read_timeout):
    """The read timeout once connected at ``now``: the configured one, cut to the deadline (never 0,
    which would make the socket non-blocking)."""
    return max(MIN_READ_S, min(read_timeout, deadline - now))


def retry_delay(attempt, retry_after, now, deadline, base=BACKOFF_BASE):
    """How long to sleep before the next attempt, or None when the next attempt would not fit in the
    budget (the sleep plus :data:`MIN_ATTEMPT_S` must end by the deadline). The backoff is base, 2*base,
    4*base ... capped at :data:`BACKOFF_CAP`; a server's short ``Retry-After`` is honoured up to it."""
    delay = min(base * (2 ** (attempt - 1)), BACKOFF_CAP)
    if retry_after is not None:
        delay = min(max(delay, retry_after), BACKOFF_CAP)
    return None if now + delay + MIN_ATTEMPT_S > deadline else delay


def _retry_after(headers):
    try:
        value = float((headers or {}).get("Retry-After"))
    except (TypeError, ValueError):
        return None
    return value if value >= 0 else None


def judge_status(answer):
    """The default judgement of an answer: ``(None, False)`` for a 2xx, else ``(error, retryable)``:
    no answer is retried unless its failure is unknown, a 5xx or 429 is retried."""
    status = answer["status"]
    if status is None:
        return answer["error"], answer["failure"] != "other"
    if 200 <= status < 300:
        return None, False
    return "HTTP %d" % status, status >= 500 or status in RETRY_STATUSES


def send_retrying(url, deadline, attempts=1, connect_timeout=2.0, read_timeout=5.0, judge=judge_status,
                  clock=time.monotonic, sleep=time.sleep, backoff_base=BACKOFF_BASE, **request):
    """:func:`send` until ``judge(answer)`` finds it good (see :func:`judge_status`), at most ``attempts``
    times, everything by ``deadline`` (a ``clock()`` value).

    ``url`` may be a callable giving each attempt's URL (a signed URL carries its time). Returns the
    last answer (``status`` None and no ``failure`` when none was tried) with ``attempts`` (made),
    ``error`` (the judgement's), ``read_timeout`` (armed for the last attempt, None when it did not
    connect) and ``budget_spent`` (the deadline, not the attempts, ended the tries).
    """
    answer = _no_answer(read_timeout=None)
    made = 0
    budget_spent = False
    for attempt in range(1, attempts + 1):
        connect = connect_timeout_for(clock(), deadline, connect_timeout)
        if connect is None:
            budget_spent = True
            break
        armed = {}

        def read_now():
            armed["read"] = read_timeout_for(clock(), deadline, read_timeout)
            return armed["read"]

        answer = send(url() if callable(url) else url, timeout=connect, read_timeout=read_now, **request)
        made = attempt
        answer["read_timeout"] = armed.get("read")
        answer["error"], retryable = judge(answer)
        if answer["error"] is None or not retryable or attempt == attempts:
            break
        delay = retry_delay(attempt, _retry_after(answer["headers"]), clock(), deadline, backoff_base)
        if delay is None:
            budget_spent = True
            break
        sleep(delay)
    answer.update(attempts=made, budget_spent=budget_spent)
    return answer


# --------------------------------------------------------------------------- redaction

def scrub(text, label, url=None, secrets=()):
    """What a message may say about a request: ``text`` with ``url`` (whole, without its query, its
    path, its query and the query's values of four or more characters), ``secrets`` and any URL
    replaced by ``<label>``. None stays None."""
    if text is None:
        return None
    text = str(text)
    url = url or ""
    found = [url, url.split("?", 1)[0]] + [s for s in secrets if s]
    parsed = urllib.parse.urlsplit(url)
    if parsed.path and parsed.path != "/":
        found.append(parsed.path)
    if parsed.query:
        found.append(parsed.query)
        found.extend(v for _k, v in urllib.parse.parse_qsl(parsed.query) if len(v) >= 4)
    for secret in sorted((s for s in found if s), key=len, reverse=True):
        text = text.replace(secret, "<%s>" % label)
    return _URL_RE.sub("<%s>" % label, text)


# --------------------------------------------------------------------------- probes

class MissingJmespath(IncidentError, RuntimeError):
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
    """The compiled JMESPath assertions; ValueError naming a bad one, MissingJmespath without jmespath."""
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
    return not (value is None or value is False or (isinstance(value, (str, list, dict)) and not value))


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


def _method(method):
    method = (method or "GET").upper()
    if method not in ALLOWED_METHODS:
        raise ValueError("unsupported HTTP method %r: choose one of %s" % (method, ", ".join(ALLOWED_METHODS)))
    return method


def probe(url, timeout, method="GET", expect_status=200, json_queries=None, _compiled=None):
    """One request, described: dict(url, status (None: no answer), ok (status is ``expect_status`` and
    every assertion holds), latency_ms, elapsed_ms, error (None when ok, else a short reason),
    body_json (or None), failed_assertions).
    """
    validate_url(url)
    method = _method(method)
    if timeout is None or float(timeout) <= 0:
        raise ValueError("timeout must be > 0 seconds, got %r" % (timeout,))
    queries = list(json_queries or [])
    compiled = _compiled if _compiled is not None else validate_json_queries(queries)

    result = dict(url=url, status=None, ok=False, latency_ms=None, error=None, body_json=None, failed_assertions=[])
    answer = send(url, method=method, data=b"" if method == "POST" else None, timeout=float(timeout), headers={
        "User-Agent": USER_AGENT,
        "Accept": "application/json, */*;q=0.5",
        "X-User-Id": SYNTHETIC_USER,
    })
    result.update(status=answer["status"], latency_ms=answer["latency_ms"], elapsed_ms=answer["elapsed_ms"])
    if answer["status"] is None:
        result["error"] = answer["error"]
        return result
    status, body = answer["status"], answer["body"]

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


_UP = ("up", "ok", "healthy", "pass", "passing", "true")


def down_in_health_body(body):
    """The dependencies a /health body says are down, for the common shapes: a list ``down``, or a
    mapping ``dependencies`` / ``checks`` / ``components`` whose entries carry a ``status`` (or are
    the status) other than up/ok/healthy/pass. Empty when the body says nothing of the kind."""
    if not isinstance(body, dict):
        return []
    if isinstance(body.get("down"), list):
        return [str(name) for name in body["down"]]
    for key in ("dependencies", "checks", "components"):
        entries = body.get(key)
        if isinstance(entries, dict):
            return [str(name) for name, entry in entries.items()
                    if str(entry.get("status") if isinstance(entry, dict) else entry).strip().lower() not in _UP]
    return []


def latency_stats(probes):
    """min/p50/p95/max in ms over the probes that got a response (any status): a dead target does not
    look fast. All four are None when no probe got one."""
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
    """``urls`` (a URL, or a list of URLs and ``{url, json_query}`` dicts) as ``[(url, queries)]``; a
    dict's own ``json_query`` replaces ``json_queries`` for that URL (``[]``: status only)."""
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
    """Probe every URL (see :func:`_targets`) ``count`` times, ``interval`` seconds between two rounds.

    With ``stop_early`` the rounds stop once the verdict cannot change (:func:`decided`, or
    ``settled(probes, rounds)`` for a verdict of several groups of URLs). ``judge(probes)``, when
    given, decides ``healthy`` instead of ``success_ratio >= min_success_ratio``. Returns dict(urls,
    probes (with ``round``), success_ratio, healthy, min_success_ratio, latency_ms, by_url ({url:
    {success_ratio, ok, total, latency_ms}}), rounds).
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
    method = _method(method)
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
            if stop_early and (settled(probes, round_no + 1) if settled is not None else
                               decided(sum(1 for p in probes if p["ok"]), len(probes), total, min_success_ratio)):
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
    """Repeat :func:`probe_many` until it is healthy or ``wait_timeout`` seconds have passed (0: one round).

    A non-empty string returned by ``give_up()`` after an unhealthy round ends the wait early ("the
    container exited") and is returned as ``gave_up``. Returns the last :func:`probe_many` result
    plus ``attempts``, ``waited`` (seconds) and ``gave_up``.
    """
    if wait_timeout is None or float(wait_timeout) < 0:
        raise ValueError("wait_timeout must be >= 0 seconds, got %r" % (wait_timeout,))
    attempts = []

    def check():
        """True when healthy, else why to give up (falsy: keep waiting)."""
        attempts.append(probe_many(urls, **kwargs))
        return bool(attempts[-1]["healthy"]) or (give_up() if give_up is not None else None)

    _ok, value, waited = poll_until(check, float(wait_timeout), interval=poll_interval)
    result = attempts[-1]
    result.update(attempts=len(attempts), waited=round(waited, 3), gave_up=None if value is True else value or None)
    return result
