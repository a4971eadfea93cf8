# -*- coding: utf-8 -*-
# Copyright (c) sre.incident contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The runbook's four common P1 cases ("P1 常見案例和解決", SPEC P1-3): the catalogue of their symptom,
quick fix, root-cause hint and postmortem action item, their pure detectors (:func:`detect`),
whose rules are written for operators in ``plugins/filter/p1_cases.yml``, and the quick fixes to run
in order and what they did (:func:`quick_fixes`, ``plugins/filter/p1_fixes.yml``). The quick fix for
a full disk is in ``_log_cleanup.py``.
"""

from __future__ import annotations

import datetime
import math
import statistics

from ansible_collections.sre.incident.plugins.module_utils._time import format_ts, parse_ts, utc_now

CASES = ("cache_failure", "db_connections_exhausted", "empty_results", "disk_low")

DEFAULT_THRESHOLDS = dict(latency_factor=5.0, db_connections_pct=80.0, disk_pct=85.0)

#: The runbook's table; ``deadline_days`` turns into the action item's deadline.
CATALOGUE = {
    "cache_failure": dict(
        title="Cache failure (快取失效)",
        symptom="latency far above the baseline (50 ms -> 2 s), or cached answers that do not fit the request",
        quick_fix="clear the cache (POST /api/recommendations/clear-cache)",
        root_cause_hint="a bug in the cache algorithm: cache key generation (快取算法有 bug)",
        action_item=dict(item="Fix the cache key generation logic",
                         description="Make the cache key describe everything the value depends on (user, limit, "
                                     "model version) and test that a key never serves another request's answer "
                                     "(修復 key 生成邏輯)",
                         priority="P1", owner="@tech-lead", deadline_days=7),
    ),
    "db_connections_exhausted": dict(
        title="Database connections exhausted (數據庫連接耗盡)",
        symptom="sporadic timeouts; connections near max_connections",
        quick_fix="restart the application (it holds the leaked connections)",
        root_cause_hint="a connection leak in the application (連接泄漏)",
        action_item=dict(item="Connection-pool monitoring",
                         description="Use a connection pool with a bounded size and alert on connections used "
                                     "against max_connections (使用連接池監控)",
                         priority="P1", owner="@dba", deadline_days=7),
    ),
    "empty_results": dict(
        title="New content not recommended / empty results (新內容推薦不出)",
        symptom="recommendations come back empty while the service is up",
        quick_fix="refresh the score computation (the stack's endpoint incident_stack.refresh_path, when it has one)",
        root_cause_hint="a problem with the algorithm's weights or the score computation (算法權重有問題)",
        action_item=dict(item="Adjust the score weights and add debug logging",
                         description="Review the weights of the score computation so new items get a score, and "
                                     "log why an item is left out (調整權重，添加 debug 日誌)",
                         priority="P2", owner="@tech-lead", deadline_days=14),
    ),
    "disk_low": dict(
        title="Disk space low, the database cannot write (磁盤空間不足)",
        symptom="a log volume or a data mount nearly full",
        quick_fix="clean logs: stray and rotated log files of the service, old evidence bundles (never data)",
        root_cause_hint="no disk cleanup policy (沒有磁盤清理策略)",
        action_item=dict(item="Set up log rotation",
                         description="Rotate and cap the service's logs and the evidence bundles, and alert on disk "
                                     "usage before it is critical (設置日誌輪轉)",
                         priority="P1", owner="@devops", deadline_days=7),
    ),
}


def _number(name, value, minimum=0.0, allow_none=True):
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError("%s %r is not a number" % (name, value))
    try:
        number = float(value)
    except ValueError:
        raise ValueError("%s %r is not a number" % (name, value)) from None
    if not math.isfinite(number):
        raise ValueError("%s %r is not a finite number" % (name, value))
    if number < minimum:
        raise ValueError("%s %r is impossible: it must be at least %s" % (name, value, minimum))
    return number


def thresholds_from(overrides=None):
    """The detectors' thresholds with ``overrides``; unknown keys and impossible values raise ValueError."""
    th = dict(DEFAULT_THRESHOLDS)
    if overrides is None:
        return th
    if not isinstance(overrides, dict):
        raise ValueError("thresholds must be a mapping such as {'latency_factor': 5}, got %r" % (overrides,))
    for key, value in overrides.items():
        if key not in DEFAULT_THRESHOLDS:
            raise ValueError("unknown threshold %r: expected some of %s" % (key, ", ".join(DEFAULT_THRESHOLDS)))
        if value is None:
            continue
        th[key] = _number("threshold %s" % key, value, minimum=1.0 if key == "latency_factor" else 0.0)
        if key != "latency_factor" and th[key] > 100:
            raise ValueError("threshold %s %r is impossible: a percentage lies between 0 and 100" % (key, value))
    return th


def _fmt(value):
    return ("%.1f" % float(value)).rstrip("0").rstrip(".")


def action_item(name, now=None, owners=None):
    """The action item of case ``name`` with an ISO deadline (``now`` + the case's days)."""
    spec = CATALOGUE[name]["action_item"]
    start = parse_ts(now) if isinstance(now, datetime.datetime) else utc_now()
    deadline = (start + datetime.timedelta(days=spec["deadline_days"])).strftime("%Y-%m-%d")
    owner = (owners or {}).get(name) or spec["owner"]
    return dict(item=spec["item"], description=spec["description"], priority=spec["priority"], owner=owner, deadline=deadline)


def _check_inputs(summary, probes):
    summary = {} if summary is None else summary
    if not isinstance(summary, dict):
        raise ValueError("the diagnostics summary must be a mapping (diagnose_result.summary), got %r" % (summary,))
    probes = [] if probes is None else probes
    if not isinstance(probes, list) or not all(isinstance(p, dict) for p in probes):
        raise ValueError("probes must be a list of mappings (the samples of sre.incident.severity), got %r" % (probes,))
    return summary, probes


def _cache_case(summary, answered, latency, baseline, th, limit, minimum, latency_source=None):
    evidence = []
    if latency is not None and baseline:
        ratio = latency / baseline
        if ratio >= th["latency_factor"]:
            real = latency_source in ("access_log", "prometheus")
            evidence.append("%slatency %s ms is %sx the baseline %s ms (at least %sx)%s" % (
                "real p50 " if real else "", _fmt(latency), _fmt(ratio), _fmt(baseline), _fmt(th["latency_factor"]),
                (" (%s)" % latency_source) if real else ""))
    bad = [p for p in answered if p.get("source") == "cache" and isinstance(p.get("count"), int)
           and (p["count"] > limit or p["count"] < minimum)]
    if bad:
        users = sorted({str(p.get("user")) for p in bad})
        evidence.append("%d cached answer(s) do not fit the request (limit %d, at least %d items): %s" % (
            len(bad), limit, minimum, ", ".join("%s=%s items" % (u, next(p["count"] for p in bad if str(p.get("user")) == u))
                                                for u in users)))
    hit = summary.get("redis_hit_ratio")
    if evidence and hit is not None:
        evidence.append("redis hit ratio %s" % hit)
    return evidence


def _real_traffic(traffic):
    """``(window, sources, baseline_p50, baseline_source)`` of a ``sre.incident.traffic`` result, or Nones."""
    if traffic is None:
        return None, {}, None, None
    if not isinstance(traffic, dict) or not isinstance(traffic.get("window"), dict):
        raise ValueError("traffic must be the result of sre.incident.traffic (with window and sources), got %r" % (traffic,))
    sources = traffic.get("sources") if isinstance(traffic.get("sources"), dict) else {}
    return traffic["window"], sources, traffic.get("baseline_ms"), traffic.get("baseline_ms_source")


def _db_case(summary, probes, th, window=None, sources=None):
    pct = summary.get("db_connections_pct")
    if pct is None:
        return []
    pct = _number("db_connections_pct", pct)
    if pct < th["db_connections_pct"]:
        return []
    evidence = ["database connections %s/%s (%s %%, at least %s %%)" % (
        summary.get("db_connections_used"), summary.get("db_max_connections"), _fmt(pct), _fmt(th["db_connections_pct"]))]
    failed = [p for p in probes if p.get("status") != 200]
    if failed:
        evidence.append("%d of %d recommendation probes failed (sporadic timeouts)" % (len(failed), len(probes)))
    if window and (sources or {}).get("error_rate") and window.get("error_rate"):
        evidence.append("real traffic: error rate %s%% (%s of %s requests, %s users failing; %s)" % (
            _fmt(100.0 * window["error_rate"]), window.get("errors", "?"), window.get("requests", "?"),
            window.get("users_failing", "?"), sources["error_rate"]))
    return evidence


def _empty_case(answered):
    empty = [p for p in answered if p.get("source") != "cache" and p.get("count") == 0]
    if not empty:
        return []
    users = sorted({str(p.get("user")) for p in empty})
    return ["the service answers but %d answer(s) computed from the database are empty: %s" % (len(empty), ", ".join(users))]


def _disk_case(summary, th):
    full = []
    for mount, pct in sorted((summary.get("disk_used_pct_by_mount") or {}).items()):
        if pct is not None and _number("disk_used_pct_by_mount[%s]" % mount, pct) >= th["disk_pct"]:
            full.append("%s %s %% full" % (mount, _fmt(pct)))
    if not full:
        return []
    return ["%s (at least %s %%)" % ("; ".join(full), _fmt(th["disk_pct"]))]


def detect(summary, probes=None, baseline_ms=None, thresholds=None, limit=10, min_recommendations=6, now=None, owners=None,
           traffic=None):
    """Run the four detectors (rules in p1_cases.yml).

    ``summary``: the ``summary`` of ``sre.incident.diagnose``; ``probes``: the ``samples`` of
    ``sre.incident.severity`` (``user``, ``status``, ``latency_ms``, ``count``, ``source``);
    ``baseline_ms`` ``None`` or ``0``: the latency rule is not evaluated. With real ``traffic``
    (SPEC MON-2) that has a p50 latency, the latency rule judges it against the real baseline
    window's p50 (else ``baseline_ms``), and the connections case quotes the real error rate.
    Returns ``{detected: [names], cases: [every case, with evidence, quick_fix, root_cause_hint,
    action_item], latency_ms, latency_source, baseline_ms, baseline_source, thresholds}``.
    """
    summary, probes = _check_inputs(summary, probes)
    th = thresholds_from(thresholds)
    baseline = _number("baseline_ms", baseline_ms)
    baseline_source = "given" if baseline else None
    limit = int(_number("limit", limit, minimum=1.0, allow_none=False))
    minimum = int(_number("min_recommendations", min_recommendations, allow_none=False))
    window, sources, real_baseline, real_baseline_source = _real_traffic(traffic)
    answered = [p for p in probes if p.get("status") == 200]
    latencies = [_number("probe latency_ms", p.get("latency_ms")) for p in answered if p.get("latency_ms") is not None]
    latency, latency_source = (statistics.median(latencies), "probes") if latencies else (None, None)
    if window and sources.get("latency_p50_ms") and window.get("latency_p50_ms") is not None:
        latency, latency_source = _number("real latency_p50_ms", window["latency_p50_ms"]), sources["latency_p50_ms"]
        if real_baseline:
            baseline = _number("real baseline_ms", real_baseline)
            baseline_source = real_baseline_source or "traffic"
    if latency is None and summary.get("latency_p95_ms") is not None:
        latency, latency_source = _number("latency_p95_ms", summary["latency_p95_ms"]), "diagnostics"
    found = dict(
        cache_failure=_cache_case(summary, answered, latency, baseline, th, limit, minimum, latency_source),
        db_connections_exhausted=_db_case(summary, probes, th, window, sources),
        empty_results=_empty_case(answered),
        disk_low=_disk_case(summary, th),
    )
    cases = []
    for name in CASES:
        spec = CATALOGUE[name]
        cases.append(dict(name=name, title=spec["title"], detected=bool(found[name]), evidence=found[name], symptom=spec["symptom"],
                          quick_fix=spec["quick_fix"], root_cause_hint=spec["root_cause_hint"],
                          action_item=action_item(name, now=now, owners=owners)))
    return dict(detected=[c["name"] for c in cases if c["detected"]], cases=cases, latency_ms=latency,
                latency_source=latency_source, baseline_ms=baseline, baseline_source=baseline_source, thresholds=th)


# --------------------------------------------------------------------------- the quick fixes

#: The quick fixes in the order the role ``mitigate`` runs them (the runbook's: clear the cache,
#: restart, check PostgreSQL and Redis; the case-specific fixes where they belong).
STEPS = ("clear_cache", "clean_logs", "restart", "refresh_scores", "quick_check", "restart_after_check",
         "check_dependencies", "start_dependencies")
RESTART_RULES = ("auto", "always", "never")


def _ran(result):
    return isinstance(result, dict) and not result.get("skipped")


def _names(value, name):
    value = [] if value is None else value
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ValueError("%s must be a list of names, got %r" % (name, value))
    return value


def fix_steps(detected, restart="auto", refresh_path="", dependencies=None, done=None):
    """The quick fixes to run, in order, as far as ``done`` tells: ``(steps, dependencies to start)``.

    ``detected``: the names of the detected cases; ``restart``: ``auto`` (at once when the
    connections are exhausted, else when the quick check after the first fixes fails), ``always``
    or ``never``; ``refresh_path``: the stack's score refresh endpoint (empty: none);
    ``dependencies``: ``incident_stack.dependencies``; ``done``: the registered results of the steps
    run so far by step name (the second restart follows a failed ``quick_check``, starting the
    dependencies a ``check_dependencies`` that found one not ready).
    """
    detected = _names(detected, "detected")
    unknown = sorted(set(detected) - set(CASES))
    if unknown:
        raise ValueError("unknown P1 case(s) %s: expected some of %s" % (", ".join(unknown), ", ".join(CASES)))
    if restart not in RESTART_RULES:
        raise ValueError("restart %r: choose one of %s" % (restart, ", ".join(RESTART_RULES)))
    dependencies = _names(dependencies, "dependencies")
    done = done or {}
    at_once = restart == "always" or (restart == "auto" and "db_connections_exhausted" in detected)
    wanted = dict(clear_cache=True, clean_logs="disk_low" in detected, restart=at_once,
                  refresh_scores="empty_results" in detected and bool(refresh_path),
                  quick_check=restart == "auto" and not at_once,
                  restart_after_check=_ran(done.get("quick_check")) and not done["quick_check"].get("passed"),
                  check_dependencies=bool(dependencies))
    checked = done.get("check_dependencies")
    start = [name for name, status in (checked.get("services") or {}).items()
             if not (status or {}).get("ready")] if _ran(checked) else []
    wanted["start_dependencies"] = bool(start)
    return [step for step in STEPS if wanted[step]], start


def _refresh_text(detected, refresh_path, refreshed, dry_run):
    if "empty_results" not in detected:
        return None
    if not refresh_path:
        return ("score refresh not available on this stack (no incident_stack.refresh_path): %s by hand"
                % CATALOGUE["empty_results"]["quick_fix"])
    if dry_run:
        return "would refresh the scores (POST %s)" % refresh_path
    if not _ran(refreshed):
        return None
    return "scores refreshed (POST %s: %s)" % (refresh_path, refreshed.get("status"))


def _fix_texts(detected, refresh_path, dependencies, done):
    cache = done.get("clear_cache")
    cleanup, deps, started = done.get("clean_logs"), done.get("check_dependencies"), done.get("start_dependencies")
    restarted = [step for step in ("restart", "restart_after_check") if _ran(done.get(step))]
    if _ran(cache):
        # the task does not fail (failed_when: false): a failure shows as a result without ``cleared``
        yield ("cache cleared (%s keys)" % cache["cleared"] if isinstance(cache.get("cleared"), int)
               else "clear-cache failed: %s" % cache.get("msg", "no answer"))
    yield _refresh_text(detected, refresh_path, done.get("refresh_scores"), False)
    if _ran(cleanup):
        yield ("logs cleaned: %d file(s) removed, %d truncated, %d old bundle(s), %s bytes freed" % (
            len(cleanup.get("removed") or []), len(cleanup.get("truncated") or []),
            len(cleanup.get("bundles_removed") or []), cleanup.get("freed_bytes", 0)))
    if restarted:
        yield ("service restarted (connections exhausted)" if restarted[0] == "restart" and "db_connections_exhausted" in detected
               else "service restarted")
    if _ran(started):
        yield "started %s" % ", ".join(started.get("services") or {})
    elif _ran(deps):
        yield "%s checked: %s" % (" and ".join(dependencies), ", ".join(
            "%s %s" % (name, (status or {}).get("status")) for name, status in (deps.get("services") or {}).items()))


def _would_texts(detected, steps, refresh_path, dependencies, restart):
    yield "would clear the cache"
    yield _refresh_text(detected, refresh_path, None, True)
    if "clean_logs" in steps:
        yield "would clean the logs"
    if "restart" in steps:
        yield "would restart the service"
    elif restart == "auto":
        yield "would restart the service if the first fixes are not enough"
    if dependencies:
        yield "would check %s" % " and ".join(dependencies)


def quick_fixes(detected, restart="auto", refresh_path="", dependencies=None, done=None, dry_run=False, now=None):
    """The quick fixes of the detected P1 cases (see :func:`fix_steps`) and what they did.

    Returns dict(steps (to run, in order), start (the dependencies to start), fixes (what the steps in
    ``done`` did; with ``dry_run`` what a real run would do: a dry run acted on nothing), fixed_at
    (``now``, default the clock, as ISO 8601: the verify stage counts new error lines from it)).
    """
    steps, start = fix_steps(detected, restart=restart, refresh_path=refresh_path, dependencies=dependencies, done=done)
    dependencies = dependencies or []
    texts = (_would_texts(detected, steps, refresh_path, dependencies, restart) if dry_run
             else _fix_texts(detected, refresh_path, dependencies, done or {}))
    return dict(steps=steps, start=start, fixes=[text for text in texts if text],
                fixed_at=format_ts(utc_now() if now is None else now))
