# -*- coding: utf-8 -*-
# Copyright (c) sre.incident contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Verify a recovery against the runbook's checklist, then watch for a rebound (P0-5).

:func:`evaluate` runs the checks of "第 3 階段：驗證和監控" / "恢復檢查清單" concurrently and returns each
as ``{name, passed, value, threshold, detail}`` (what each judges: ``docs/verify.md``). :func:`watch`
then samples the service once per interval for a window and stops early at a rebound.
"""

from __future__ import annotations

import concurrent.futures
import math
import time

from ansible_collections.sre.incident.plugins.module_utils import _http, _logs, _stack, _time, _traffic
from ansible_collections.sre.incident.plugins.module_utils._errors import InputError
from ansible_collections.sre.incident.plugins.module_utils._redact import redact_text, secret_values

CHECKS = ("health", "recommendations", "latency", "log_errors", "resources", "edge")
#: Checks that need the Docker engine (the others only HTTP).
DOCKER_CHECKS = ("log_errors", "resources")

#: The incident record's recovery checklist items (``_record.RECOVERY_CHECKLIST``) and the check ticking each.
CHECKLIST_MAP = dict(
    health_200="health",
    recommendations_returned="recommendations",
    several_users_ok="recommendations",
    latency_under_500ms="latency",
    users_answered_via_edge="edge",
    no_new_errors="log_errors",
    resources_normal="resources",
)


#: Error lines quoted in a check's detail (each cut to EXCERPT_CHARS).
MAX_EXCERPT_LINES = 5
EXCERPT_CHARS = 300
#: Log lines read per container at most (``tail``), so a long ``since`` stays bounded.
MAX_LOG_LINES = 50000


class VerifyError(InputError):
    """Bad input (since, checks, window); raised before anything is probed (bad thresholds: ``_stack.StackError``)."""


# --------------------------------------------------------------------------- input

def validate_checks(checks):
    """The checks to run, in order, without repeats; None means all, an empty list none (watch only)."""
    checks = list(dict.fromkeys(CHECKS if checks is None else checks))
    unknown = [c for c in checks if c not in CHECKS]
    if unknown:
        raise VerifyError("unknown check(s) %s: choose from %s" % (", ".join(repr(c) for c in unknown), ", ".join(CHECKS)))
    return checks


# --------------------------------------------------------------------------- docker stats maths

def _cpu_total(cpu):
    return ((cpu or {}).get("cpu_usage") or {}).get("total_usage")


def _online_cpus(cpu):
    cpu = cpu or {}
    return cpu.get("online_cpus") or len((cpu.get("cpu_usage") or {}).get("percpu_usage") or []) or None


def cpu_percent_between(before, after):
    """CPU % between two ``cpu_stats`` dicts as ``docker stats`` computes it (100 = one core); None when
    the samples do not allow it (missing counters, no system time elapsed)."""
    total_before, total_after = _cpu_total(before), _cpu_total(after)
    system_before = (before or {}).get("system_cpu_usage")
    system_after = (after or {}).get("system_cpu_usage")
    if None in (total_before, total_after, system_before, system_after):
        return None
    cpu_delta = float(total_after) - float(total_before)
    system_delta = float(system_after) - float(system_before)
    if system_delta <= 0 or cpu_delta < 0:
        return None
    online = _online_cpus(after) or _online_cpus(before) or 1
    return round(cpu_delta / system_delta * online * 100.0, 2)


def cpu_percent(stats):
    """CPU % of one stats sample (``precpu_stats`` -> ``cpu_stats``); None when precpu is empty."""
    stats = stats or {}
    return cpu_percent_between(stats.get("precpu_stats"), stats.get("cpu_stats"))


def memory_usage(stats):
    """dict(used_bytes, limit_bytes, percent) of one stats sample (None when unknown); used = usage minus
    the page cache (cgroup v2 ``inactive_file``, v1 ``total_inactive_file``, else ``cache``), as ``docker stats``."""
    mem = (stats or {}).get("memory_stats") or {}
    usage, limit = mem.get("usage"), mem.get("limit")
    if usage is None or not limit:
        return dict(used_bytes=None, limit_bytes=limit or None, percent=None)
    details = mem.get("stats") or {}
    cache = next((details[k] for k in ("inactive_file", "total_inactive_file", "cache") if details.get(k) is not None), None)
    used = usage - cache if cache is not None and cache < usage else usage
    return dict(used_bytes=int(used), limit_bytes=int(limit), percent=round(used * 100.0 / float(limit), 2))


# --------------------------------------------------------------------------- logs

def count_errors(log_text, since, until=None, secrets=()):
    """Error lines in ``log_text`` (read with timestamps) at or after ``since`` and before ``until``;
    dict(count, lines (in range), excerpt (first few, redacted, cut)). Lines without a timestamp are in range.
    """
    count = lines = 0
    excerpt = []
    for _when, _raw, text in _logs.timed_lines(log_text, since, until):
        lines += 1
        if _logs.is_error_line(text):
            count += 1
            if len(excerpt) < MAX_EXCERPT_LINES:
                excerpt.append(redact_text(text.strip(), secrets)[:EXCERPT_CHARS])
    return dict(count=count, lines=lines, excerpt=excerpt)


# --------------------------------------------------------------------------- readers (engine)

def _container_name(container):
    return getattr(container, "name", None) or str(container)


def _container_env_secrets(container):
    attrs = getattr(container, "attrs", None) or {}
    return secret_values((attrs.get("Config") or {}).get("Env") or [])


def read_errors(client, containers, since, until=None):
    """count_errors over each container's log since ``since``; dict(count, by_container, excerpt)."""
    by_container = {}
    excerpt = []
    total = 0
    for container in containers:
        text = client.logs(container, since=int(math.floor(since)), tail=MAX_LOG_LINES, timestamps=True)
        found = count_errors(text, since, until, secrets=_container_env_secrets(container))
        by_container[_container_name(container)] = dict(count=found["count"], lines=found["lines"])
        total += found["count"]
        excerpt.extend("%s: %s" % (_container_name(container), line) for line in found["excerpt"])
    return dict(count=total, by_container=by_container, excerpt=excerpt[:MAX_EXCERPT_LINES])


def read_resources(client, container):
    """CPU % (over half a second, see ``ComposeClient.stats``) and memory of one container."""
    sample = client.stats(container)
    mem = memory_usage(sample)
    return dict(container=_container_name(container), cpu_percent=cpu_percent(sample), memory_percent=mem["percent"],
                memory_used_bytes=mem["used_bytes"], memory_limit_bytes=mem["limit_bytes"],
                online_cpus=_online_cpus(sample.get("cpu_stats")))


# --------------------------------------------------------------------------- the checks

def _check(name, passed, value, threshold, detail, **extra):
    return dict(name=name, passed=bool(passed), value=value, threshold=threshold, detail=detail, **extra)


def _rec_count(probe_result):
    body = probe_result.get("body_json")
    recs = body.get("recommendations") if isinstance(body, dict) else None
    return len(recs) if isinstance(recs, list) else 0


def _probe_recs(urls_by_user, rounds, timeout, probe=_http.probe):
    results = []
    for round_no in range(rounds):
        for user, url in urls_by_user.items():
            result = probe(url, timeout)
            result.update(user=user, round=round_no + 1, count=_rec_count(result))
            results.append(result)
    return results


def _probe_health(url, rounds, timeout, probe=_http.probe):
    return [probe(url, timeout) for _round in range(rounds)]


def health_check(probes):
    bad = [p for p in probes if p.get("status") != 200]
    if not bad:
        return _check("health", bool(probes), 200, 200, "%s of %s probes answered 200" % (len(probes), len(probes)))
    first = bad[0]
    down = _http.down_in_health_body(first.get("body_json"))
    detail = "%s of %s probes failed: %s%s" % (len(bad), len(probes), first.get("error") or "status %s" % first.get("status"),
                                               "; down: %s" % ", ".join(map(str, down)) if down else "")
    return _check("health", False, first.get("status"), 200, detail)


def _by_user(probes, minimum):
    """``({user: (fewest items, why each of its probes failed)}, the failing users sorted)``: a probe fails
    without a 200 or enough items."""
    users = {}
    for p in probes:
        fewest, errors = users.get(p["user"], (p["count"], []))
        if p.get("status") != 200 or p["count"] < minimum:
            errors.append(p.get("error") or "%s recommendations" % p["count"])
        users[p["user"]] = (min(fewest, p["count"]), errors)
    return users, sorted(u for u, (_fewest, errors) in users.items() if errors)


def recommendations_check(probes, minimum):
    by_user, failed = _by_user(probes, minimum)
    value = min((p["count"] if p.get("status") == 200 else 0) for p in probes) if probes else 0
    good = len(by_user) - len(failed)
    detail = "%s of %s users got >= %s recommendations" % (good, len(by_user), minimum)
    if failed:
        detail += "; failing: %s" % ", ".join("%s (%s)" % (u, by_user[u][1][0]) for u in failed)
    return _check("recommendations", not failed and bool(probes), value, minimum, detail,
                  by_user={u: fewest for u, (fewest, _errors) in by_user.items()}, users_ok=good, users=len(by_user))


def latency_check(probes, limit_ms):
    # With several rounds the first warms the caches a restart emptied, so latency is judged on the
    # later rounds; every round must still answer.
    unanswered = [p for p in probes if p.get("latency_ms") is None]
    last_round = max([p.get("round") or 1 for p in probes] or [1])
    if last_round > 1:
        probes = [p for p in probes if (p.get("round") or 1) > 1]
    stats = _http.latency_stats(probes)
    value = stats["max"]
    passed = bool(probes) and not unanswered and value is not None and value < limit_ms
    if value is None:
        detail = "no recommendation probe got an answer"
    else:
        detail = "max %.1f ms, p50 %.1f ms, p95 %.1f ms over %s answers" % (value, stats["p50"], stats["p95"], stats["samples"])
        if unanswered:
            detail += "; %s probes got no answer (%s)" % (len(unanswered), unanswered[0].get("error"))
    return _check("latency", passed, value, limit_ms, detail, p50=stats["p50"], p95=stats["p95"])


def edge_check(health_probes, rec_probes, minimum, edge_url):
    """Users answered through the edge: /health 200 and enough items for every user, on every probe."""
    bad_health = [p for p in health_probes if p.get("status") != 200]
    users, failing = _by_user(rec_probes, minimum)
    answered = len(users) - len(failing)
    problems = []
    if bad_health:
        problems.append("/health through the edge: %s" % (bad_health[0].get("error") or "status %s" % bad_health[0].get("status")))
    problems += ["%s through the edge: %s" % (u, users[u][1][0]) for u in failing]
    detail = "%s of %s users answered through the edge" % (answered, len(users))
    if problems:
        detail += "; " + "; ".join(problems[:5])
    return _check("edge", not problems and bool(rec_probes), answered, len(users), detail, edge_url=edge_url,
                  failing_users=failing)


def log_errors_check(found, since):
    if isinstance(found, Exception):
        return _check("log_errors", False, None, 0, "could not read the logs: %s" % (getattr(found, "msg", None) or found,))
    if not found["by_container"]:
        return _check("log_errors", False, None, 0, "no container of the service to read logs from")
    detail = "%s error lines since %s" % (found["count"], _time.format_ts(since))
    if found["excerpt"]:
        detail += "; first: %s" % found["excerpt"][0]
    return _check("log_errors", found["count"] == 0, found["count"], 0, detail, since=_time.format_ts(since),
                  by_container=found["by_container"], excerpt=found["excerpt"])


def resources_check(per_container, states, thresholds):
    threshold = dict(cpu_percent=thresholds["cpu_percent"], memory_percent=thresholds["memory_percent"])
    if not states:
        return _check("resources", False, None, threshold, "no container of the service")
    problems = []
    readings = []
    for state, reading in zip(states, per_container):
        name = state["name"]
        if state.get("status") != "running":
            problems.append("%s is %s" % (name, state.get("status")))
            continue
        if isinstance(reading, Exception):
            problems.append("%s: %s" % (name, getattr(reading, "msg", None) or reading))
            continue
        readings.append(reading)
        if reading["cpu_percent"] is None or reading["memory_percent"] is None:
            problems.append("%s: stats incomplete" % name)
            continue
        if reading["cpu_percent"] >= threshold["cpu_percent"]:
            problems.append("%s CPU %.1f%% >= %g%%" % (name, reading["cpu_percent"], threshold["cpu_percent"]))
        if reading["memory_percent"] >= threshold["memory_percent"]:
            problems.append("%s memory %.1f%% >= %g%%" % (name, reading["memory_percent"], threshold["memory_percent"]))
    cpus = [r["cpu_percent"] for r in readings if r["cpu_percent"] is not None]
    mems = [r["memory_percent"] for r in readings if r["memory_percent"] is not None]
    value = dict(cpu_percent=max(cpus) if cpus else None, memory_percent=max(mems) if mems else None)
    detail = "; ".join(problems) if problems else ", ".join(
        "%s CPU %.1f%% memory %.1f%%" % (r["container"], r["cpu_percent"], r["memory_percent"]) for r in readings)
    return _check("resources", not problems, value, threshold, detail, containers=readings)


def checklist(checks):
    """{record checklist key: {passed, value, check}} for the checks that ran."""
    by_name = {c["name"]: c for c in checks}
    result = {}
    for key, name in CHECKLIST_MAP.items():
        check = by_name.get(name)
        if check is None:
            continue
        passed, value = check["passed"], check["value"]
        if key == "recommendations_returned":
            # at least one sample user gets more than 5 recommendations
            passed = any(v >= check["threshold"] for v in check.get("by_user", {}).values())
            value = max(check.get("by_user", {}).values() or [0])
        elif key == "several_users_ok":
            passed = check["passed"] and check.get("users", 0) >= 2
            value = "%s/%s users" % (check.get("users_ok", 0), check.get("users", 0))
        result[key] = dict(passed=bool(passed), value=value, check=name, text=_value_text(key, check, value))
    return result


def _value_text(key, check, value):
    """The measured value as a short line for the incident record."""
    threshold = check["threshold"]
    if value is None:
        return "not measured: %s" % check["detail"]
    if key == "health_200":
        return "HTTP %s" % value
    if key == "recommendations_returned":
        return "up to %s recommendations (more than %s needed)" % (value, threshold - 1)
    if key == "several_users_ok":
        return "%s with at least %s recommendations" % (value, threshold)
    if key == "latency_under_500ms":
        return "max %.1f ms (limit %g ms)" % (value, threshold)
    if key == "users_answered_via_edge":
        return "%s of %s users answered through the edge" % (value, threshold)
    if key == "no_new_errors":
        return "%s error log lines since %s" % (value, check.get("since"))
    if key == "resources_normal":
        cpu, mem = value.get("cpu_percent"), value.get("memory_percent")
        return "CPU %s%% (limit %g%%), memory %s%% (limit %g%%)" % (
            "?" if cpu is None else "%.1f" % cpu, threshold["cpu_percent"],
            "?" if mem is None else "%.1f" % mem, threshold["memory_percent"])
    return str(value)


def ticks(result, ran_checks, window_s=0, interval_s=0):
    """{record checklist item: its value as text} that ``result`` (the module's) lets one tick: the
    items of the checks it ran (``ran_checks``) that passed, and ``recovery_verified`` when every one
    of them passed (the runbook's "verify recovery" at t+20m: the checks, not the 15-minute watch
    after them); after a watch (``window_s`` every ``interval_s``) ``watch_every_minute`` and, without a
    rebound, ``error_rate_no_rebound``."""
    items = {key: item["text"] for key, item in result["checklist"].items() if ran_checks and item["passed"]}
    if ran_checks and result["checks"] and not result["failed_checks"]:
        items["recovery_verified"] = result["summary"]
    samples = result.get("samples") or []
    if samples:
        items["watch_every_minute"] = "%d sample%s every %g s over %g s" % (
            len(samples), "" if len(samples) == 1 else "s", interval_s, window_s)
    if result.get("watch_passed"):
        items["error_rate_no_rebound"] = "max error rate %s (limit %s)" % (
            max(s["error_rate"] for s in samples), result["rebound_error_rate"])
    return items


def rebound_text(result):
    """The rebound in one line (the sample's failing probes and what real traffic showed), or None."""
    if result.get("watch_passed") is not False:
        return None
    sample = result["samples"][-1]
    said = list(sample.get("failing") or []) + ([sample["traffic_rebound"]] if sample.get("traffic_rebound") else [])
    return "Error rate rebounded at %s: %s" % (result["rebound_at"], "; ".join(said))


def summarize(result):
    """One line: what passed, or every failed check with its value and threshold."""
    failed = [c for c in result["checks"] if not c["passed"]]
    if not failed and result.get("watch_passed") is not False:
        parts = ["%s %s" % (c["name"], _short(c["value"])) for c in result["checks"]]
        if result.get("samples"):
            parts.append("watch: %s samples, no rebound (max error rate %s)"
                         % (len(result["samples"]), max(s["error_rate"] for s in result["samples"])))
        text = "recovery verified: " + ("; ".join(parts) or "no check run")
        if result.get("not_checked"):
            text += "; not checked: " + "; ".join(result["not_checked"])
        return text
    parts = ["%s = %s (threshold %s): %s" % (c["name"], _short(c["value"]), _short(c["threshold"]), c["detail"])
             for c in failed]
    if result.get("watch_passed") is False:
        rebound = (result.get("samples") or [{}])[-1]
        if not rebound.get("traffic_rebound") or (rebound.get("error_rate") or 0) > (result.get("rebound_error_rate") or 0):
            parts.append("watch: error rate %s > %s at %s (%s)" % (
                rebound.get("error_rate"), result.get("rebound_error_rate"), result.get("rebound_at"),
                "; ".join(rebound.get("failing") or [])))
        if rebound.get("traffic_rebound"):
            parts.append("watch: %s at %s" % (rebound["traffic_rebound"], result.get("rebound_at")))
    return "recovery not verified: " + "; ".join(parts)


def _short(value):
    if isinstance(value, dict):
        return ", ".join("%s %s" % (k, _short(v)) for k, v in value.items())
    if isinstance(value, float):
        rounded = round(value, 2)
        return "%g" % (rounded if rounded or not value else value)
    return str(value)


def _result_or_error(future):
    try:
        return future.result()
    except Exception as exc:  # reported in the check's detail
        return exc


def _containers(client, stack):
    return client.find_containers(stack["name"], stack["service"], all=True)


def evaluate(stack, since, checks=None, thresholds=None, client=None, probe_rounds=2, probe_timeout=2.0,
             probe=_http.probe, container_state=None):
    """Run the checks concurrently; dict(passed, checks, failed_checks, checklist, since, thresholds).

    ``client``: a connected ``_compose.ComposeClient`` (for log_errors and resources);
    ``container_state``: container -> dict with name/status (``_compose.container_state``).
    """
    urls = _stack.urls(stack)
    checks = validate_checks(checks)
    not_checked = []
    if "edge" in checks and not stack.get("edge_url"):
        checks.remove("edge")
        not_checked.append("edge: incident_stack.edge_url is not set, so what users reach was not probed")
    edge_urls = _stack.urls(stack, base=stack["edge_url"]) if "edge" in checks else None
    thresholds = _stack.thresholds(stack, thresholds)
    if since is None:
        raise VerifyError("since is required")
    if client is None and any(c in DOCKER_CHECKS for c in checks):
        raise VerifyError("checks %s need the Docker engine" % ", ".join(c for c in checks if c in DOCKER_CHECKS))
    started = time.monotonic()
    rounds = max(1, int(probe_rounds))
    containers = _containers(client, stack) if client is not None else []
    states = [container_state(c) for c in containers] if container_state else [
        dict(name=_container_name(c), status=getattr(c, "status", "running")) for c in containers]
    running = [c for c, st in zip(containers, states) if st.get("status") == "running"]

    with concurrent.futures.ThreadPoolExecutor(max_workers=4 + len(containers)) as pool:
        futures = {}
        if "health" in checks:
            futures["health"] = pool.submit(_probe_health, urls["health"], rounds, probe_timeout, probe)
        if "recommendations" in checks or "latency" in checks:
            futures["recs"] = pool.submit(_probe_recs, urls["recommendations"], rounds, probe_timeout, probe)
        if edge_urls is not None:
            futures["edge_health"] = pool.submit(_probe_health, edge_urls["health"], rounds, probe_timeout, probe)
            futures["edge_recs"] = pool.submit(_probe_recs, edge_urls["recommendations"], rounds, probe_timeout, probe)
        if "log_errors" in checks and containers:
            futures["logs"] = pool.submit(read_errors, client, containers, since)
        stats_futures = []
        if "resources" in checks:
            stats_futures = [pool.submit(read_resources, client, c) if c in running else None for c in containers]
        # a probe never raises for a sick target; an engine reader failing is a failed check, with its reason
        done = {key: _result_or_error(future) if key == "logs" else future.result() for key, future in futures.items()}
        readings = [_result_or_error(future) if future is not None else None for future in stats_futures]

    judge = dict(
        health=lambda: health_check(done["health"]),
        recommendations=lambda: recommendations_check(done["recs"], thresholds["min_recommendations"]),
        latency=lambda: latency_check(done["recs"], thresholds["latency_ms"]),
        log_errors=lambda: log_errors_check(done.get("logs", dict(count=0, by_container={}, excerpt=[])), since),
        resources=lambda: resources_check(readings, states, thresholds),
        edge=lambda: edge_check(done["edge_health"], done["edge_recs"], thresholds["min_recommendations"], edge_urls["base"]),
    )
    results = [judge[name]() for name in checks]
    failed = [c["name"] for c in results if not c["passed"]]
    return dict(passed=not failed, checks=results, failed_checks=failed, checklist=checklist(results),
                not_checked=not_checked, since=_time.format_ts(since), thresholds=thresholds,
                elapsed=round(time.monotonic() - started, 3))


# --------------------------------------------------------------------------- the watch

def take_sample(stack, since, min_recommendations=6, client=None, probe_timeout=2.0, probe=_http.probe,
                now=time.time):
    """One watch sample: probe /health and every sample user once (concurrently), count new error lines.

    dict(ts, error_rate, errors, probes, latency_ms (max of the recommendation probes), latency_p50_ms,
    log_errors (error lines since ``since``, None without an engine), failing).
    """
    # what users reach: through the edge when the stack has one
    urls = _stack.urls(stack, base=stack.get("edge_url") or None)
    ts = now()
    targets = [("health", urls["health"])] + list(urls["recommendations"].items())
    with concurrent.futures.ThreadPoolExecutor(max_workers=len(targets) + 1) as pool:
        futures = [pool.submit(probe, url, probe_timeout) for _name, url in targets]
        log_future = (pool.submit(lambda: read_errors(client, _containers(client, stack), since, until=ts))
                      if client is not None and since is not None else None)
        results = [f.result() for f in futures]
        # the engine is not what is being watched (the probes are): a failed log read counts nothing
        found = _result_or_error(log_future) if log_future is not None else None
    log_errors = None if found is None or isinstance(found, Exception) else found["count"]
    failing = ["%s: %s" % (name, result.get("error") or "%s recommendations" % _rec_count(result))
               for (name, _url), result in zip(targets, results)
               if result.get("status") != 200 or (name != "health" and _rec_count(result) < min_recommendations)]
    stats = _http.latency_stats([r for (name, _url), r in zip(targets, results) if name != "health"])
    return dict(ts=_time.format_ts(ts), epoch=round(ts, 3), error_rate=round(len(failing) / float(len(targets)), 4),
                errors=len(failing), probes=len(targets), latency_ms=stats["max"], latency_p50_ms=stats["p50"],
                log_errors=log_errors, failing=failing)


def sample_times(window_s, interval_s):
    """Offsets (seconds from the start) of the samples: 0, interval, ... and a closing one at the window's
    end, so the last interval of the window is looked at too (900 s every 60 s: 0, 60, ... 840, 900)."""
    if window_s <= 0:
        return []
    count = max(1, int(math.ceil(window_s / float(interval_s) - 1e-9)))
    return [round(i * float(interval_s), 6) for i in range(count)] + [round(float(window_s), 6)]


def validate_watch(window_s, interval_s, rebound_error_rate):
    if window_s is None or float(window_s) < 0:
        raise VerifyError("watch window must be >= 0 seconds, got %r" % (window_s,))
    if interval_s is None or float(interval_s) <= 0:
        raise VerifyError("watch interval must be > 0 seconds, got %r" % (interval_s,))
    if float(window_s) and float(interval_s) > float(window_s):
        raise VerifyError("watch interval %r is longer than the window %r" % (interval_s, window_s))
    if rebound_error_rate is None or not 0.0 <= float(rebound_error_rate) < 1.0:
        raise VerifyError("rebound_error_rate must be between 0 (any error) and below 1, got %r" % (rebound_error_rate,))


def watch(stack, window_s, interval_s, since, rebound_error_rate=0.0, sampler=None, client=None,
          min_recommendations=6, probe_timeout=2.0, clock=time.monotonic, sleep=time.sleep, poll_s=0.5,
          traffic=None, traffic_latency_ms=None, wall=time.time):
    """Sample once per interval from the start to the end of ``window_s`` (:func:`sample_times`); stop at the
    first rebound: a sample whose ``error_rate`` is above ``rebound_error_rate`` (0: any failing probe).

    ``sampler(since)`` returns one sample (default :func:`take_sample`); ``since`` is the fix time,
    then the previous sample's, so ``log_errors`` counts the lines new in each interval.
    ``traffic(since, until)`` (SPEC MON-2; ``_traffic.watch_reader``) reads the real traffic of each
    interval into the sample's ``traffic``; it is also a rebound when its error rate is above
    ``rebound_error_rate`` or its p95 latency reaches ``traffic_latency_ms`` (``traffic_rebound`` says which).
    """
    validate_watch(window_s, interval_s, rebound_error_rate)
    if sampler is None:
        def sampler(log_since):
            return take_sample(stack, log_since, min_recommendations=min_recommendations, client=client,
                               probe_timeout=probe_timeout)
    samples = []
    rebound = None
    start = clock()
    log_since = since
    traffic_since = since
    for offset in sample_times(float(window_s), float(interval_s)):
        due = start + offset
        # paced sampling (the watch itself, not a wait for a condition): sleep to the due time in bounded steps
        while True:
            remaining = due - clock()
            if remaining <= 0:
                break
            sleep(min(remaining, poll_s))
        began = clock()
        sample = sampler(log_since)
        sample["offset_s"] = round(began - start, 3)
        sample["duration_s"] = round(clock() - began, 3)
        samples.append(sample)
        log_since = sample.get("epoch", log_since)
        if traffic is not None:
            traffic_until = sample.get("epoch") or wall()
            sample.update(_traffic.watch_sample(traffic, traffic_since, traffic_until, rebound_error_rate,
                                                traffic_latency_ms))
            traffic_since = traffic_until
        if sample["error_rate"] > float(rebound_error_rate) or sample.get("traffic_rebound"):
            rebound = sample
            break
    return dict(passed=rebound is None, samples=samples, rebound_at=rebound["ts"] if rebound else None,
                rebound_sample=rebound, window_s=float(window_s), interval_s=float(interval_s),
                rebound_error_rate=float(rebound_error_rate), elapsed=round(clock() - start, 3))
