# -*- coding: utf-8 -*-
# Copyright (c) sre.incident contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Real traffic as the impact signal (SPEC MON-2): what users actually did, over a window.

The two sources (the edge's ``incident_json`` access log, read through the engine, and the
Prometheus HTTP API), the figures, which source wins for each figure and the ``incident_stack``
keys are documented once, in ``docs/monitoring.md`` ("MON-2: real traffic as the impact signal").
Everything here is pure but :func:`read_access_log` (the engine), :func:`query_prometheus` (HTTP) and
:func:`measure`, which calls them through injectable readers.
"""

from __future__ import annotations

import collections
import fnmatch
import json
import math
import re
import time
import urllib.parse

from ansible_collections.sre.incident.plugins.module_utils import _http
from ansible_collections.sre.incident.plugins.module_utils._errors import InputError
from ansible_collections.sre.incident.plugins.module_utils._http import percentile
from ansible_collections.sre.incident.plugins.module_utils._time import format_ts, parse_ts

FORMAT = "incident_json"
#: Users that are always synthetic (the collection's probes, the example's blackbox exporter).
SYNTHETIC_USERS = ("synthetic-*",)
FIGURES = ("rps", "error_rate", "users_failing_pct", "latency_p50_ms", "latency_p95_ms")

DEFAULT_WINDOW_S = 300
DEFAULT_BASELINE_S = 3600
DEFAULT_MIN_REQUESTS = 1
DEFAULT_PROMETHEUS_TIMEOUT = 5.0

#: The queries for the example stack (``examples/monitoring``): the service's own
#: ``http_requests_total{path,status}`` and ``http_request_duration_seconds`` histogram, scraped
#: with the label ``stack`` = the compose project. Prometheus counts requests, not users, so
#: ``users_failing_pct`` has no default query and comes from the access log.
RECS_PATH = 'path="/api/recommendations/:user"'
DEFAULT_QUERIES = {
    "rps": 'sum(rate(http_requests_total{stack="$stack",%s}[$window]))' % RECS_PATH,
    "error_rate": ('sum(rate(http_requests_total{stack="$stack",%s,status=~"5.."}[$window])) / '
                   'sum(rate(http_requests_total{stack="$stack",%s}[$window]))' % (RECS_PATH, RECS_PATH)),
    "latency_p50_ms": ('1000 * histogram_quantile(0.5, sum by (le) (rate(http_request_duration_seconds_bucket'
                       '{stack="$stack",%s}[$window])))' % RECS_PATH),
    "latency_p95_ms": ('1000 * histogram_quantile(0.95, sum by (le) (rate(http_request_duration_seconds_bucket'
                       '{stack="$stack",%s}[$window])))' % RECS_PATH),
    "users_failing_pct": "",
}

#: Lines read from one container's log at most (the engine keeps the json-file driver's size anyway).
MAX_LINES = 2000000


class TrafficError(InputError):
    """Bad input (the stack's traffic keys, a window); raised before anything is read."""


# --------------------------------------------------------------------------- configuration

def access_log_config(stack):
    """``incident_stack.access_log`` as ``{service, format, exclude_users}``, or None when not set
    (``true``: the edge's log in the ``incident_json`` format)."""
    value = stack.get("access_log")
    if value in (None, False, "", {}):
        return None
    if value is True:
        value = {}
    if not isinstance(value, dict):
        raise TrafficError("incident_stack.access_log must be true or a mapping (service, format, exclude_users), "
                           "got %r" % (value,))
    unknown = sorted(str(k) for k in value if k not in ("service", "format", "exclude_users"))
    if unknown:
        raise TrafficError("incident_stack.access_log has unknown key(s) %s: expected service, format, exclude_users"
                           % ", ".join(unknown))
    service = value.get("service") or stack.get("edge")
    if not service or not isinstance(service, str):
        raise TrafficError("incident_stack.access_log.service is not set and incident_stack.edge names no edge: "
                           "which container's log holds the access log?")
    fmt = value.get("format") or FORMAT
    if fmt != FORMAT:
        raise TrafficError("incident_stack.access_log.format %r is unknown: the collection reads %s (docs/monitoring.md)"
                           % (fmt, FORMAT))
    exclude = value.get("exclude_users") or []
    if not isinstance(exclude, list) or not all(isinstance(p, str) and p for p in exclude):
        raise TrafficError("incident_stack.access_log.exclude_users must be a list of user patterns, got %r" % (exclude,))
    return {"service": service, "format": fmt, "exclude_users": list(SYNTHETIC_USERS) + list(exclude)}


def prometheus_config(stack):
    """``{url, queries}`` from ``incident_stack.prometheus_url`` / ``prometheus_queries``, or None."""
    url = stack.get("prometheus_url")
    if url in (None, ""):
        return None
    parts = urllib.parse.urlsplit(str(url))
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise TrafficError("incident_stack.prometheus_url is not an http(s) URL: %r" % (url,))
    given = stack.get("prometheus_queries")
    given = {} if given is None else given
    if not isinstance(given, dict):
        raise TrafficError("incident_stack.prometheus_queries must be a mapping of figure -> PromQL, got %r" % (given,))
    unknown = sorted(str(k) for k in given if k not in FIGURES)
    if unknown:
        raise TrafficError("incident_stack.prometheus_queries has unknown figure(s) %s: expected some of %s"
                           % (", ".join(unknown), ", ".join(FIGURES)))
    queries = dict(DEFAULT_QUERIES)
    for key, query in given.items():
        if query is not None and not isinstance(query, str):
            raise TrafficError("incident_stack.prometheus_queries.%s must be a PromQL string, got %r" % (key, query))
        queries[key] = query or ""
    return {"url": str(url).rstrip("/"), "queries": queries}


def validate(stack):
    """Check the traffic keys of ``incident_stack``; returns ``(access_log, prometheus)`` configs."""
    return access_log_config(stack), prometheus_config(stack)


def check_window(name, value, minimum=1.0):
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise TrafficError("%s %r is not a number of seconds" % (name, value)) from None
    if not math.isfinite(number) or number < minimum:
        raise TrafficError("%s %r is impossible: at least %s seconds" % (name, value, minimum))
    return number


def parse_until(value, now):
    """``until`` as a UNIX time: None (now), a UNIX time, seconds before now if negative, or ISO 8601."""
    if value is None or value == "":
        return float(now)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        number = float(value)
    else:
        text = str(value).strip()
        try:
            number = float(text)
        except ValueError:
            try:
                return parse_ts(text, "end").timestamp()
            except ValueError as exc:
                raise TrafficError(str(exc)) from None
    if not math.isfinite(number):
        raise TrafficError("end %r is not a time" % (value,))
    return float(now) + number if number < 0 else number


# --------------------------------------------------------------------------- the access log

def user_pattern(recommendations_path):
    """A regex that takes ``{user}`` out of a request URI of the recommendations path."""
    if not recommendations_path or "{user}" not in recommendations_path:
        return None
    head, tail = recommendations_path.split("{user}", 1)
    return re.compile("^" + re.escape(head) + "([^/?#]+)" + re.escape(tail) + "(?:[?#].*)?$")


def parse_line(line, user_re=None):
    """One ``incident_json`` line as ``{ts, status, latency_ms, user, uri, upstream_status}``, else None."""
    line = line.strip()
    if not line.startswith("{"):
        return None
    try:
        entry = json.loads(line)
    except ValueError:
        return None
    if not isinstance(entry, dict):
        return None
    try:
        ts = float(entry["ts"])
        status = int(entry["status"])
        request_time = float(entry.get("request_time"))
    except (KeyError, TypeError, ValueError):
        return None
    if not math.isfinite(ts) or not math.isfinite(request_time):
        return None
    uri = str(entry.get("uri") or "")
    user = str(entry.get("user") or "").strip()
    if not user and user_re is not None:
        match = user_re.match(uri)
        if match:
            user = urllib.parse.unquote(match.group(1))
    return {"ts": ts, "status": status, "latency_ms": round(request_time * 1000.0, 3), "user": user or None,
            "uri": uri, "upstream_status": entry.get("upstream_status")}


def parse_lines(text, user_re=None, exclude_users=()):
    """``(entries, skipped, excluded)`` from the text of a log."""
    entries, skipped, excluded = [], 0, 0
    for line in (text or "").splitlines():
        if not line.strip():
            continue
        entry = parse_line(line, user_re)
        if entry is None:
            skipped += 1
        elif entry["user"] and any(fnmatch.fnmatchcase(entry["user"], p) for p in exclude_users):
            excluded += 1
        else:
            entries.append(entry)
    return entries, skipped, excluded


def figures(entries, since, until):
    """The figures of the requests whose ``ts`` lies in ``[since, until)`` (docs/monitoring.md, "The figures")."""
    seconds = float(until) - float(since)
    mine = [e for e in entries if since <= e["ts"] < until]
    requests = len(mine)
    errors = sum(1 for e in mine if e["status"] >= 500)
    client_errors = sum(1 for e in mine if 400 <= e["status"] < 500)
    users = {}
    for e in mine:
        if e["user"]:
            users[e["user"]] = users.get(e["user"], False) or e["status"] >= 500
    failing = sorted(u for u, bad in users.items() if bad)
    latencies = [e["latency_ms"] for e in mine]
    statuses = dict(collections.Counter("%dxx" % (e["status"] // 100) for e in mine))
    return {
        "requests": requests,
        "seconds": round(seconds, 3),
        "rps": round(requests / seconds, 4) if seconds > 0 else None,
        "errors": errors,
        "error_rate": round(errors / float(requests), 6) if requests else None,
        "client_errors": client_errors,
        "client_error_rate": round(client_errors / float(requests), 6) if requests else None,
        "users": len(users),
        "users_failing": len(failing),
        "users_failing_pct": round(100.0 * len(failing) / len(users), 4) if users else None,
        "failing_users": failing[:20],
        "latency_p50_ms": round(percentile(latencies, 50), 3) if latencies else None,
        "latency_p95_ms": round(percentile(latencies, 95), 3) if latencies else None,
        "statuses": statuses,
    }


def read_access_log(client, stack, config, since, until):
    """``{entries, containers, lines_skipped, excluded}`` of the access log between ``since`` and ``until``
    (UNIX times); ``_compose.DockerError`` when the engine cannot be read, TrafficError without a container."""
    containers = client.find_containers(stack["name"], config["service"], all=True)
    if not containers:
        raise TrafficError("no container of service %r in project %r holds the access log"
                           % (config["service"], stack["name"]))
    user_re = user_pattern(stack.get("recommendations_path"))
    entries, skipped, excluded = [], 0, 0
    for container in containers:
        # the engine compares whole seconds and stamps a line when it receives it: read a second
        # more on both sides, then keep what the lines' own ts put in the window
        text = client.logs(container, since=max(1, int(math.floor(since)) - 1), until=int(math.ceil(until)) + 1,
                           timestamps=False)
        lines = text.splitlines()[-MAX_LINES:]
        found, bad, left_out = parse_lines("\n".join(lines), user_re, config["exclude_users"])
        entries.extend(found)
        skipped += bad
        excluded += left_out
    return {"entries": entries, "containers": [getattr(c, "name", str(c)) for c in containers],
            "lines_skipped": skipped, "excluded": excluded}


# --------------------------------------------------------------------------- Prometheus

def promql(query, window_s, stack):
    """``query`` with ``$window``, ``$stack`` and ``$service`` filled in."""
    return (query.replace("$window", "%ds" % int(round(window_s)))
            .replace("$stack", str(stack.get("name", ""))).replace("$service", str(stack.get("service", ""))))


def prometheus_value(payload):
    """The number of an ``/api/v1/query`` answer, or ``(None, why)``; returns ``(value, note)``."""
    if not isinstance(payload, dict) or payload.get("status") != "success":
        return None, "error: %s" % ((payload or {}).get("error") if isinstance(payload, dict) else payload)
    data = payload.get("data") or {}
    kind, result = data.get("resultType"), data.get("result")
    if kind == "scalar" and isinstance(result, list) and len(result) == 2:
        raw = result[1]
    elif kind == "vector" and isinstance(result, list):
        if not result:
            return None, "empty result (no such series)"
        if len(result) > 1:
            return None, "%d series: the query must return one (aggregate it with sum)" % len(result)
        raw = (result[0].get("value") or [None, None])[1]
    else:
        return None, "unexpected result type %r" % (kind,)
    try:
        value = float(raw)
    except (TypeError, ValueError):
        return None, "not a number: %r" % (raw,)
    if not math.isfinite(value):
        return None, "%s (no requests in the window)" % raw
    return value, None


def query_prometheus(url, query, at, timeout=DEFAULT_PROMETHEUS_TIMEOUT):
    """Evaluate ``query`` at ``at`` (UNIX time); ``(value or None, note or None)``. Never raises for a sick server."""
    target = "%s/api/v1/query?%s" % (url, urllib.parse.urlencode({"query": query, "time": "%.3f" % at}))
    answer = _http.send(target, headers={"Accept": "application/json", "User-Agent": "sre.incident-traffic"},
                        timeout=timeout, redirects=True)
    if answer["status"] is None:
        return None, "unreachable: %s" % answer["detail"]
    try:
        payload = json.loads(answer["body"].decode("utf-8", "replace"))
    except ValueError as exc:
        return None, ("HTTP %s" % answer["status"]) if answer["status"] >= 400 else "unreachable: %s" % exc
    return prometheus_value(payload)


def prometheus_figures(config, stack, until, window_s, query=query_prometheus, timeout=DEFAULT_PROMETHEUS_TIMEOUT):
    """``(figures, notes)``: each configured figure evaluated at ``until`` over ``window_s``."""
    values, notes = {}, {}
    for figure in FIGURES:
        text = config["queries"].get(figure)
        if not text:
            continue
        value, note = query(config["url"], promql(text, window_s, stack), until, timeout)
        if value is None:
            notes[figure] = note
            continue
        whole = {"error_rate": 1.0, "users_failing_pct": 100.0}.get(figure)  # a share stays within 0 and its whole
        if whole:
            value = min(max(value, 0.0), whole)
        values[figure] = round(value, 6)
    return values, notes


# --------------------------------------------------------------------------- both, for a window

def combine(prom, log, min_requests):
    """Each figure from Prometheus, else the access log (with enough requests); ``(values, sources)``."""
    values, sources = {}, {}
    log_ok = log is not None and log["requests"] >= min_requests
    for figure in FIGURES:
        if prom is not None and prom.get(figure) is not None:
            values[figure], sources[figure] = prom[figure], "prometheus"
        elif log_ok and log.get(figure) is not None:
            values[figure], sources[figure] = log[figure], "access_log"
        else:
            values[figure], sources[figure] = None, None
    if log is not None:
        for key in ("requests", "errors", "client_errors", "client_error_rate", "users", "users_failing",
                    "failing_users", "statuses"):
            values[key] = log.get(key)
    return values, sources


def classify_facts(window, sources, seconds):
    """The facts of ``sre.incident.severity`` from a window's figures (empty when there is no traffic)."""
    facts = {}
    if not any(sources.get(f) for f in ("error_rate", "users_failing_pct", "latency_p50_ms")):
        return facts
    requests = window.get("requests")
    if sources.get("error_rate") == "prometheus" and window.get("rps") is not None and not requests:
        requests = int(round(window["rps"] * seconds))
    if requests:
        facts["samples"] = int(requests)
    for fact, figure in (("error_rate", "error_rate"), ("users_affected_pct", "users_failing_pct"),
                         ("latency_ms", "latency_p50_ms")):
        if window.get(figure) is not None:
            facts[fact] = window[figure]
    return facts


def _source_word(sources):
    return "+".join(sorted({s for s in sources.values() if s})) or "none"


def measure(stack, client=None, until=None, window_s=DEFAULT_WINDOW_S, baseline_s=DEFAULT_BASELINE_S,
            min_requests=DEFAULT_MIN_REQUESTS, prometheus_timeout=DEFAULT_PROMETHEUS_TIMEOUT,
            log_reader=read_access_log, query=query_prometheus, now=time.time):
    """Real traffic over the window ``[until - window_s, until)`` and the baseline before it.

    ``client``: a ``_compose.ComposeClient`` (None: the access log is not read). A source that is
    unwell is reported, its figures ``None``; it never raises.
    """
    log_cfg, prom_cfg = validate(stack)
    window_s = check_window("window", window_s)
    baseline_s = check_window("baseline", baseline_s, minimum=0.0)
    min_requests = int(check_window("min_requests", min_requests, minimum=1.0))
    end = float(until) if until is not None else now()
    start = end - window_s
    base_start = start - baseline_s
    log_info = {"configured": log_cfg is not None, "available": False, "service": (log_cfg or {}).get("service"),
                "containers": [], "lines_skipped": 0, "excluded": 0, "error": None}
    prom_info = {"configured": prom_cfg is not None, "url": (prom_cfg or {}).get("url"),
                 "queries": dict((prom_cfg or {}).get("queries") or {}), "notes": {}, "baseline_notes": {}}
    log_window = log_base = None
    if log_cfg is not None and client is not None:
        try:
            read = log_reader(client, stack, log_cfg, base_start if baseline_s else start, end)
        except Exception as exc:  # the engine or the edge is unwell: a finding, not a failure
            log_info["error"] = "%s: %s" % (type(exc).__name__, getattr(exc, "msg", None) or exc)
        else:
            log_info.update(available=True, containers=read["containers"], lines_skipped=read["lines_skipped"],
                            excluded=read["excluded"])
            log_window = figures(read["entries"], start, end)
            log_base = figures(read["entries"], base_start, start) if baseline_s else None
    elif log_cfg is not None:
        log_info["error"] = "no engine connection"
    prom_window = prom_base = None
    if prom_cfg is not None:
        prom_window, prom_info["notes"] = prometheus_figures(prom_cfg, stack, end, window_s, query, prometheus_timeout)
        if baseline_s:
            prom_base, prom_info["baseline_notes"] = prometheus_figures(prom_cfg, stack, start, baseline_s, query,
                                                                        prometheus_timeout)
    window, sources = combine(prom_window, log_window, min_requests)
    if baseline_s:
        baseline, baseline_sources = combine(prom_base, log_base, min_requests)
    else:
        baseline, baseline_sources = {}, {f: None for f in FIGURES}
    window.update(since=format_ts(start), until=format_ts(end), seconds=window_s)
    baseline.update(since=format_ts(base_start), until=format_ts(start), seconds=baseline_s)
    facts = classify_facts(window, sources, window_s)
    return {
        "window": window, "baseline": baseline, "sources": sources, "baseline_sources": baseline_sources,
        "source": _source_word(sources), "facts": facts, "facts_source": _source_word(
            {k: sources.get(k) for k in ("error_rate", "users_failing_pct", "latency_p50_ms")}),
        "baseline_ms": baseline.get("latency_p50_ms"), "baseline_ms_source": baseline_sources.get("latency_p50_ms"),
        "access_log": log_info, "prometheus": prom_info,
    }


# --------------------------------------------------------------------------- the verify watch

def rebound(window, sources, rebound_error_rate=0.0, latency_ms=None):
    """Why the real traffic of a watch interval rebounded, or None: the real error rate above
    ``rebound_error_rate`` (0: any 5xx), or the real p95 latency at or above ``latency_ms`` (the
    runbook's "under 500 ms"). A figure no source gave is not judged.
    """
    reasons = []
    rate = window.get("error_rate")
    if rate is not None and sources.get("error_rate") and rate > float(rebound_error_rate):
        reasons.append("real error rate %s > %s (%s: %s of %s requests, %s users failing)" % (
            _num(rate), _num(rebound_error_rate), sources["error_rate"], window.get("errors"), window.get("requests"),
            window.get("users_failing")))
    p95 = window.get("latency_p95_ms")
    if latency_ms is not None and p95 is not None and sources.get("latency_p95_ms") and p95 >= float(latency_ms):
        reasons.append("real p95 latency %s ms >= %s ms (%s)" % (_num(p95), _num(latency_ms), sources["latency_p95_ms"]))
    return "; ".join(reasons) or None


def _num(value):
    return ("%.4f" % float(value)).rstrip("0").rstrip(".")


def watch_sample(reader, since, until, rebound_error_rate=0.0, latency_ms=None):
    """``{traffic, traffic_rebound}``: the figures of ``[since, until)`` with their sources, and
    :func:`rebound`'s reason or None. A reader that fails is reported in ``traffic.error`` and judges
    nothing (the probes still do).
    """
    try:
        got = reader(since, until)
    except Exception as exc:  # a source that cannot be read is not a rebound of the service
        return {"traffic": {"error": "%s: %s" % (type(exc).__name__, exc), "source": "none"}, "traffic_rebound": None}
    window = got["window"]
    keep = ("requests", "rps", "error_rate", "errors", "users", "users_failing", "latency_p50_ms", "latency_p95_ms",
            "since", "until")
    figures_kept = {k: window.get(k) for k in keep}
    figures_kept.update(source=got["source"], sources=got["sources"])
    if got.get("errors"):
        figures_kept["error"] = "; ".join("%s: %s" % item for item in sorted(got["errors"].items()))
    return {"traffic": figures_kept, "traffic_rebound": rebound(window, got["sources"], rebound_error_rate, latency_ms)}


def watch_reader(stack, client, min_requests=DEFAULT_MIN_REQUESTS, prometheus_timeout=DEFAULT_PROMETHEUS_TIMEOUT,
                 measure_fn=measure):
    """A function ``(since, until) -> {window, sources, source}`` of the real traffic between two samples
    of the verify watch (no baseline), or None when the stack has no traffic source."""
    log_cfg, prom_cfg = validate(stack)
    if log_cfg is None and prom_cfg is None:
        return None

    def read(since, until):
        seconds = max(1.0, float(until) - float(since))
        got = measure_fn(stack, client=client, until=until, window_s=seconds, baseline_s=0, min_requests=min_requests,
                         prometheus_timeout=prometheus_timeout)
        return {"window": got["window"], "sources": got["sources"], "source": got["source"],
                "errors": {"access_log": got["access_log"]["error"]} if got["access_log"]["error"] else {}}
    return read
