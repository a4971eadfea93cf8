# -*- coding: utf-8 -*-
# Copyright (c) sre.incident contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Severity levels of the runbook: their SLA (SPEC SEV-2, SEV-3) and the decision tree ("判斷標準")
that classifies an incident (SPEC SEV-1, SEV-2, SEV-4).

Pure except :func:`measure` (HTTP probes), the baseline file helpers and :func:`run`; the current
time is always a parameter (``now``/``at``) so that tests can put events exactly on a boundary.
"""

from __future__ import annotations

import datetime
import decimal
import json
import math
import os

from ansible_collections.sre.incident.plugins.module_utils import _files
from ansible_collections.sre.incident.plugins.module_utils._time import format_ts, parse_ts, utc_now

# ---- SLA -------------------------------------------------------------------------------------

SEVERITIES = ("P0", "P1", "P2", "P3")  # worst first

MINUTE = 60
HOUR = 60 * MINUTE
DAY = 24 * HOUR

#: Seconds to respond and to resolve, per severity (SPEC SEV-3). ``None``: no SLA (P3, SEV-2).
DEFAULT_SLA = {
    "P0": {"respond": 5 * MINUTE, "resolve": 30 * MINUTE},
    "P1": {"respond": 15 * MINUTE, "resolve": 2 * HOUR},
    "P2": {"respond": 24 * HOUR, "resolve": 7 * DAY},
    "P3": {"respond": None, "resolve": None},
}

SLA_KINDS = ("respond", "resolve")

#: Values of :func:`deadline_status`.
MET, MISSED, OPEN, NONE = "met", "missed", "open", "none"


def normalize_severity(severity):
    """``'p0'``/``'P0'`` -> ``'P0'``; anything else raises ``ValueError`` naming the value."""
    if isinstance(severity, str) and severity.strip().upper() in SEVERITIES:
        return severity.strip().upper()
    raise ValueError("unknown severity %r: expected one of %s" % (severity, ", ".join(SEVERITIES)))


def _check_seconds(value, where):
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError("SLA %s must be a number of seconds or null, got %r" % (where, value))
    if value < 0:
        raise ValueError("SLA %s must not be negative, got %r" % (where, value))
    return int(value) if float(value).is_integer() else float(value)


def validate_overrides(overrides):
    """A copy of ``{"P0": {"respond": 300, "resolve": 1800}}`` with upper-cased severities; ValueError
    names an unknown severity or kind, or a negative or non-numeric value."""
    if overrides is None:
        return {}
    if not isinstance(overrides, dict):
        raise ValueError("SLA overrides must be a mapping like {'P0': {'respond': 300}}, got %r" % (overrides,))
    clean = {}
    for sev, kinds in overrides.items():
        key = normalize_severity(sev)
        if not isinstance(kinds, dict):
            raise ValueError("SLA override for %s must be a mapping of respond/resolve seconds, got %r" % (key, kinds))
        clean[key] = {}
        for kind, seconds in kinds.items():
            if kind not in SLA_KINDS:
                raise ValueError("unknown SLA kind %r for %s: expected respond or resolve" % (kind, key))
            clean[key][kind] = _check_seconds(seconds, "%s.%s" % (key, kind))
    return clean


def sla_for(severity, overrides=None):
    """``{"respond": seconds|None, "resolve": seconds|None}``; ``overrides`` replace the defaults kind by kind."""
    sev = normalize_severity(severity)
    sla = dict(DEFAULT_SLA[sev])
    sla.update(validate_overrides(overrides).get(sev, {}))
    return sla


def deadlines(severity, started_at, overrides=None):
    """``{"respond": iso|None, "resolve": iso|None}`` (``None`` where there is no SLA)."""
    start = parse_ts(started_at, "started_at")
    sla = sla_for(severity, overrides)
    return {kind: None if sla[kind] is None else format_ts(start + datetime.timedelta(seconds=sla[kind])) for kind in SLA_KINDS}


def deadline_status(deadline, at, now=None):
    """``none`` (no deadline), ``met`` (``at`` on or before it: the boundary counts as met), ``missed``
    (``at`` after it, or not happened and ``now`` past it) or ``open``."""
    if deadline is None:
        return NONE
    limit = parse_ts(deadline, "deadline")
    if at is not None:
        return MET if parse_ts(at, "at") <= limit else MISSED
    if now is not None and parse_ts(now, "now") > limit:
        return MISSED
    return OPEN


def time_left(deadline, now):
    """Seconds from ``now`` to ``deadline`` (negative when overdue); ``None`` without deadline."""
    if deadline is None:
        return None
    delta = parse_ts(deadline, "deadline") - parse_ts(now, "now")
    return round(delta.total_seconds(), 3)


# ---- Classification (SPEC SEV-1, SEV-2, SEV-4) -----------------------------------------------
#
# The runbook's tree, both branches always evaluated, the worse result wins:
#
#   impact:  all users affected                        -> P0
#            else core feature (recommendations) hit   -> P1
#            else more than 1 % of users affected      -> P1
#            else                                      -> P2
#   latency: ratio = latency_ms / baseline_ms
#            ratio > 10                                -> P0   (exactly 10x is P1)
#            5 <= ratio <= 10                          -> P1   (exactly 5x is P1)
#            ratio < 5                                 -> P2
#            baseline missing or 0, latency missing    -> not evaluated (reason says why)
#
# The facts each decision derives are documented in plugins/modules/severity.py.

KINDS = ("incident", "improvement", "docs")

#: Every fact the classifier understands, and its type.
FACT_KEYS = {
    "users_affected_pct": "percent",
    "all_users_affected": "bool",
    "core_feature_affected": "bool",
    "recommendations_empty": "bool",
    "users_counted": "bool",
    "error_rate": "fraction",
    "latency_ms": "ms",
    "baseline_ms": "ms",
    "samples": "count",
    "kind": "kind",
}

P0_LATENCY_RATIO = 10
P1_LATENCY_RATIO = 5
USERS_PCT_THRESHOLD = 1

#: With no impact fact and a latency ratio at or below this, ``problem_detected`` is false.
DEFAULT_LATENCY_TOLERANCE = 2.0

_TRUE = ("true", "yes", "on", "1")
_FALSE = ("false", "no", "off", "0")


def rank(severity):
    """0 for P0 (worst) .. 3 for P3 (mildest); unknown severities raise ValueError naming them."""
    return SEVERITIES.index(normalize_severity(severity))


def worse(a, b):
    """The worse of two severities (``worse('P2', 'P1') == 'P1'``)."""
    return SEVERITIES[min(rank(a), rank(b))]


def worst(severities):
    """The worst of several severities; ValueError when there is none."""
    items = list(severities)
    if not items:
        raise ValueError("no severity given: cannot pick the worst of nothing")
    return SEVERITIES[min(rank(s) for s in items)]


def worst_known(severities):
    """The worst of ``severities`` leaving out the empty ones (None, '', 'none', as a diagnosis without
    findings says); ``'none'`` when none is left. An unknown severity raises ValueError naming it."""
    if isinstance(severities, (str, bytes)) or not hasattr(severities, "__iter__"):
        raise ValueError("severities must be a list, got %r" % (severities,))
    known = [s for s in severities if s not in (None, "", "none")]
    return worst(known) if known else "none"


def of_findings(findings):
    """The severity that a diagnosis's findings call for (each with ``kind`` and ``level``):
    V(P0) when the service is down, V(P1) for a critical finding, V(P2) for any other, else None."""
    kinds = {f.get("kind") for f in findings or ()}
    levels = {f.get("level") for f in findings or ()}
    if "down" in kinds:
        return "P0"
    if "critical" in levels:
        return "P1"
    return "P2" if findings else None


def _dec(value):
    """The number as written (str(float)): 0.7 ms against a 0.07 ms baseline is exactly 10x, not 10.000000000000002x."""
    return decimal.Decimal(str(value))


def _number(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError("%s %r is not a number" % (name, value))
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            raise ValueError("%s %r is not a number" % (name, value)) from None
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError("%s %r is not a finite number" % (name, value))
    return int(value) if isinstance(value, float) and value.is_integer() and abs(value) < 2 ** 53 else value


def _flag(name, value):
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE + _FALSE:
        return value.strip().lower() in _TRUE
    raise ValueError("%s %r is not a boolean (true or false)" % (name, value))


def _check_fact(name, value):
    kind = FACT_KEYS[name]
    if kind == "bool":
        return _flag(name, value)
    if kind == "kind":
        if isinstance(value, str) and value.strip().lower() in KINDS:
            return value.strip().lower()
        raise ValueError("kind %r is unknown: expected one of %s" % (value, ", ".join(KINDS)))
    number = _number(name, value)
    if kind == "percent" and not 0 <= number <= 100:
        raise ValueError("%s %r is impossible: a percentage lies between 0 and 100" % (name, value))
    if kind == "fraction" and not 0 <= number <= 1:
        raise ValueError("%s %r is impossible: it is a fraction between 0 and 1 (0.05 = 5 %% of requests failed)"
                         % (name, value))
    if kind == "ms" and number < 0:
        raise ValueError("%s %r is impossible: a duration cannot be negative" % (name, value))
    if kind == "count" and (isinstance(number, float) or number < 0):
        raise ValueError("%s %r is impossible: expected a whole number of requests >= 0" % (name, value))
    return number


def validate_facts(facts, baseline_ms=None):
    """The facts checked and normalised, without ``None`` values; ValueError names an unknown key or an
    impossible value. ``baseline_ms``, when not ``None``, replaces ``facts['baseline_ms']``."""
    if facts is None:
        facts = {}
    if not isinstance(facts, dict):
        raise ValueError("facts must be a mapping such as {'users_affected_pct': 3}, got %r" % (facts,))
    unknown = sorted(str(k) for k in facts if k not in FACT_KEYS)
    if unknown:
        raise ValueError("unknown fact%s %s: expected some of %s"
                         % ("s" if len(unknown) > 1 else "", ", ".join(unknown), ", ".join(FACT_KEYS)))
    clean = {name: _check_fact(name, value) for name, value in facts.items() if value is not None}
    if baseline_ms is not None:
        clean["baseline_ms"] = _check_fact("baseline_ms", baseline_ms)
    if clean.get("samples") == 0:
        given = [k for k in ("error_rate", "latency_ms") if k in clean]
        if given:
            raise ValueError("samples is 0 (no traffic) but %s given: a rate or latency over no requests is impossible"
                             % " and ".join(given))
    return clean


def _pct_text(value):
    return "%.1f %%" % float(value)


def _ms_text(value):
    return ("%.3f" % float(value)).rstrip("0").rstrip(".") + " ms"


def _impact_branch(facts):
    """(severity, reasons) of the impact branch."""
    pct = facts.get("users_affected_pct")
    rate = facts.get("error_rate")
    if facts.get("all_users_affected"):
        return "P0", ["all users affected (all_users_affected) -> P0"]
    if pct is not None and _dec(pct) == 100:
        return "P0", ["users affected %s (all) -> P0" % _pct_text(pct)]
    if rate is not None and _dec(rate) == 1:
        return "P0", ["error rate %s (every request failed: all users) -> P0" % _pct_text(100)]
    reasons = ["not all users affected"]
    if facts.get("core_feature_affected"):
        return "P1", reasons + ["core feature (recommendations) affected -> P1"]
    if facts.get("recommendations_empty"):
        return "P1", reasons + ["recommendations empty: core feature (recommendations) affected -> P1"]
    reasons.append("core feature (recommendations) not affected")
    share, source = None, None
    if pct is not None:
        share, source = _dec(pct), "users affected %s" % _pct_text(pct)
    counted = bool(facts.get("users_counted")) and pct is not None
    if counted:
        source = "%s of real users" % source
    if rate is not None and not counted and (share is None or _dec(rate) * 100 > share):
        share, source = _dec(rate) * 100, "error rate %s of requests (at least as many users)" % _pct_text(_dec(rate) * 100)
    if share is None:
        return "P2", reasons + ["no share of affected users known -> P2"]
    if share > USERS_PCT_THRESHOLD:
        return "P1", reasons + ["%s, more than %d %% -> P1" % (source, USERS_PCT_THRESHOLD)]
    return "P2", reasons + ["%s, not more than %d %% -> P2" % (source, USERS_PCT_THRESHOLD)]


def _latency_branch(facts):
    """dict(evaluated, severity, ratio, reason) of the latency branch."""
    latency = facts.get("latency_ms")
    baseline = facts.get("baseline_ms")
    out = dict(evaluated=False, severity=None, ratio=None, latency_ms=latency, baseline_ms=baseline)
    missing = ("no traffic (0 samples)" if facts.get("samples") == 0
               else "no latency measured or given" if latency is None
               else "no baseline (give baseline_ms or a recorded baseline)" if baseline is None
               else "the baseline is 0 ms, a ratio against it is undefined" if _dec(baseline) == 0 else None)
    if missing:
        return dict(out, reason="latency not evaluated: " + missing)
    lat, base = _dec(latency), _dec(baseline)
    ratio = lat / base
    if lat > base * P0_LATENCY_RATIO:
        sev, rule = "P0", "more than %dx" % P0_LATENCY_RATIO
    elif lat >= base * P1_LATENCY_RATIO:
        sev, rule = "P1", "%dx to %dx" % (P1_LATENCY_RATIO, P0_LATENCY_RATIO)
    else:
        sev, rule = "P2", "under %dx" % P1_LATENCY_RATIO
    shown = round(float(ratio), 1)
    if sev == "P0" and shown <= P0_LATENCY_RATIO or sev == "P1" and shown < P1_LATENCY_RATIO or \
            sev != "P0" and shown > P0_LATENCY_RATIO or sev == "P2" and shown >= P1_LATENCY_RATIO:
        shown = float(ratio)  # rounding would put it on the other side of a boundary: show it all
    out.update(evaluated=True, severity=sev, ratio=round(float(ratio), 4),
               reason="latency %sx baseline (%s vs %s), %s -> %s" % (shown, _ms_text(latency), _ms_text(baseline), rule, sev))
    return out


def _problem_detected(facts, latency, tolerance):
    if facts.get("all_users_affected") or facts.get("core_feature_affected") or facts.get("recommendations_empty"):
        return True
    if facts.get("users_affected_pct", 0) > 0 or facts.get("error_rate", 0) > 0:
        return True
    return bool(latency["evaluated"] and _dec(latency["ratio"]) > _dec(tolerance))


def classify(facts, baseline_ms=None, sla_overrides=None, latency_tolerance=DEFAULT_LATENCY_TOLERANCE):
    """The runbook's decision tree over ``facts`` (see :data:`FACT_KEYS`; ``baseline_ms`` replaces theirs).

    Returns ``{severity, sla, reasons, branches: {impact, latency}, decided_by, facts, kind,
    problem_detected}``. The tree sizes a problem, it does not find one: ``problem_detected`` is
    false (a healthy service is P2) when no impact fact shows users affected and the latency is not
    more than ``latency_tolerance`` times the baseline. ValueError for impossible input or no traffic.
    """
    clean = validate_facts(facts, baseline_ms=baseline_ms)
    tolerance = _number("latency_tolerance", latency_tolerance)
    if tolerance < 1:
        raise ValueError("latency_tolerance %r is impossible: it is a ratio >= 1" % (latency_tolerance,))
    kind = clean.pop("kind", "incident")
    impact_keys = ("users_affected_pct", "all_users_affected", "core_feature_affected", "recommendations_empty")
    if kind != "incident":
        latency = _latency_branch(clean)
        if _problem_detected(clean, dict(latency, evaluated=False), tolerance):
            raise ValueError("kind %s contradicts the facts: they say users are affected (%s); classify it as an incident"
                             % (kind, ", ".join("%s=%s" % (k, clean[k]) for k in impact_keys + ("error_rate",) if k in clean)))
        reasons = ["kind %s: improvements and docs are P3, no SLA (decision tree not evaluated)" % kind]
        return dict(severity="P3", sla=sla_for("P3", sla_overrides), reasons=reasons, decided_by="kind", kind=kind,
                    facts=dict(clean, kind=kind), problem_detected=False,
                    branches=dict(impact=dict(evaluated=False, severity=None, reasons=[]),
                                  latency=dict(evaluated=False, severity=None, ratio=None,
                                               latency_ms=clean.get("latency_ms"), baseline_ms=clean.get("baseline_ms"),
                                               reason="latency not evaluated: kind %s" % kind)))
    if clean.get("samples") == 0 and not any(k in clean for k in impact_keys):
        raise ValueError("no traffic: samples is 0 and no impact fact (%s) is given, so there is nothing to classify; "
                         "probe the service (measure) or give the impact facts" % ", ".join(impact_keys))
    if not clean or set(clean) <= {"baseline_ms", "samples", "users_counted"}:
        raise ValueError("no facts to classify: give some of %s, or measure the service"
                         % ", ".join(k for k in FACT_KEYS if k != "kind"))
    impact_sev, impact_reasons = _impact_branch(clean)
    latency = _latency_branch(clean)
    severity = impact_sev if not latency["evaluated"] else worse(impact_sev, latency["severity"])
    if not latency["evaluated"] or impact_sev == latency["severity"]:
        decided_by = "impact" if not latency["evaluated"] else "both"
    else:
        decided_by = "impact" if severity == impact_sev else "latency"
    reasons = [impact_reasons[-1], latency["reason"], "worse of impact %s and latency %s -> %s"
               % (impact_sev, latency["severity"] or "(not evaluated)", severity)]
    return dict(
        severity=severity,
        sla=sla_for(severity, sla_overrides),
        reasons=reasons,
        decided_by=decided_by,
        kind=kind,
        facts=dict(clean, kind=kind),
        problem_detected=_problem_detected(clean, latency, tolerance),
        branches=dict(impact=dict(evaluated=True, severity=impact_sev, reasons=impact_reasons), latency=latency),
    )


# ---- live measurement (SEV-4) ----------------------------------------------------------------

#: Where a triage takes its latency baseline from when none is given: real traffic's baseline window,
#: then the recorded one, then the runbook's normal latency.
RUNBOOK_BASELINE_MS = 50.0
#: The detect kinds that mean the service's container is down (every user affected).
DOWN_KINDS = ("service_down", "stack_down", "engine_unreachable")
#: Where the baseline of a measurement (``sre.incident.severity``'s ``baseline.source``) counts for triage:
#: real traffic's baseline window, or the recorded ``baseline_file``.
MEASURED_BASELINE_SOURCES = ("access_log", "prometheus", "traffic", "file")
#: The diagnostics checks (``_diagnose.evaluate``) triage reads when users look fine: disk usage and
#: database connections, problems users do not see yet.
RESOURCE_CHECKS = ("disk_percent", "db_connections")


def triage(measured=None, given=None, kind="incident", alert=None, detect=None, baseline_ms=None, traffic=None,
           resources=None, resource_checks=None):
    """The triage of one host (``playbooks/triage.yml``): the tree over the measured facts overlaid by
    the ``given`` ones, the worse of its severity and the ``alert``'s, and whether there is a problem.

    ``measured``: a result of ``sre.incident.severity`` with ``measure=true`` (None: not measured);
    ``detect``: the detect role's verdict; ``traffic``: a result of ``sre.incident.traffic``. The
    baseline: ``baseline_ms``, else the one ``measured`` used (real traffic's baseline window, else
    the recorded ``baseline_file``), else the runbook's 50 ms. ``resources``: the findings of
    ``sre.incident.diagnose`` (disk, database) read when users looked fine; one whose ``check`` is in
    ``resource_checks`` (default :data:`RESOURCE_CHECKS`) is a problem users do not see, its severity
    the tree's. Returns dict(severity ('' when nothing is known), tree_severity, alert_severity,
    problem, reasons, facts, sources, traffic, baseline_ms, sla, outage, resources (their reasons)).
    """
    given = dict(given or {})
    alert = (alert or "").upper() or None
    if alert is not None:
        normalize_severity(alert)
    if kind not in KINDS:
        raise ValueError("kind %r is not one of %s" % (kind, ", ".join(KINDS)))
    measuring = measured is not None
    measured_baseline = None
    if measuring and (measured.get("baseline") or {}).get("source") in MEASURED_BASELINE_SOURCES:
        measured_baseline = measured["baseline"].get("baseline_ms")
    baseline = next(float(candidate) for candidate in (baseline_ms, measured_baseline, RUNBOOK_BASELINE_MS)
                    if candidate not in (None, ""))
    if resources is not None and (not isinstance(resources, list) or not all(isinstance(f, dict) for f in resources)):
        raise ValueError("resources must be a list of findings (mappings with check and reason), got %r" % (resources,))
    checks = RESOURCE_CHECKS if resource_checks is None else resource_checks
    if not isinstance(checks, (list, tuple)) or not all(isinstance(c, str) for c in checks):
        raise ValueError("resource_checks must be a list of check names, got %r" % (checks,))
    detect = detect or {}
    service_down = measuring and detect.get("kind") in DOWN_KINDS and not detect.get("recommendations_ok")
    facts = dict(measured.get("facts") or {}) if measuring else {}
    facts.update(given)
    if service_down:
        facts["all_users_affected"] = True
    facts["kind"] = kind
    has_facts = any(k not in ("kind", "samples") for k in facts)
    tree = classify(facts, baseline_ms=baseline) if has_facts or kind != "incident" else {}
    known = [s for s in (tree.get("severity"), alert) if s]
    if kind != "incident":
        problem = True
    elif measuring:
        problem = bool(tree.get("problem_detected") or detect.get("outage"))
    else:
        problem = has_facts or alert is not None
    # users are fine, but a resource over its threshold is a problem they do not see yet
    unseen = [str(f.get("reason")) for f in resources or () if f.get("check") in checks] \
        if measuring and kind == "incident" and not problem else []
    sources = dict(measured.get("sources") or {}) if measuring else {}
    sources.update((k, "given") for k in given)
    if service_down:
        sources["all_users_affected"] = "detect"
    shown = None
    if traffic and (traffic.get("source") or "none") != "none":
        shown = dict(source=traffic.get("source"), window=traffic.get("window"), baseline=traffic.get("baseline"),
                     sources=traffic.get("sources"), access_log=traffic.get("access_log"),
                     prometheus_notes=(traffic.get("prometheus") or {}).get("notes"))
    return dict(
        severity=worst(known) if known else "",
        tree_severity=tree.get("severity"),
        alert_severity=alert,
        problem=problem or bool(unseen),
        reasons=list(tree.get("reasons") or []) + (["service container down: all users affected"] if service_down else [])
        + (["alert severity %s given" % alert] if alert else [])
        + (["users not affected, but %s: a problem users do not see" % "; ".join(unseen)] if unseen else []),
        facts=facts,
        sources=sources,
        traffic=shown,
        baseline_ms=baseline,
        sla=tree.get("sla"),
        outage=detect.get("outage") if measuring else None,
        resources=unseen,
    )


def measure(stack, count=3, interval=0.5, timeout=5.0, probe_many=None):
    """Probe the recommendations of every sample user of ``stack`` ``count`` times and derive the facts.

    A probe fails without an answer or with a status other than 200; a 200 without recommendations
    is "empty". A user is affected when at least half of its probes failed or were empty (one blip
    does not count). Returns ``{facts, users, samples, latency_ms, urls}``; ``facts``: ``samples``
    (probes sent), ``error_rate``, ``users_affected_pct``, ``core_feature_affected`` (some user
    affected), ``recommendations_empty`` and ``latency_ms`` (p50 of the answers; absent without one).
    """
    # Imported here so that the pure part of this file needs no network code.
    from ansible_collections.sre.incident.plugins.module_utils import _http, _stack

    probe_many = probe_many or _http.probe_many
    try:
        recs = _stack.urls(stack)["recommendations"]
    except _stack.StackError as exc:
        raise ValueError(str(exc)) from None
    by_url = {url: user for user, url in recs.items()}
    result = probe_many(list(recs.values()), count=count, interval=interval, timeout=timeout)
    users = {user: dict(probes=0, failed=0, empty=0, affected=False) for user in recs}
    samples = []
    for probe in result["probes"]:
        user = by_url.get(probe["url"])
        body = probe.get("body_json") if isinstance(probe.get("body_json"), dict) else {}
        items = body.get("recommendations")
        failed = probe.get("status") != 200
        empty = not failed and (not isinstance(items, list) or not items)
        entry = users[user]
        entry["probes"] += 1
        entry["failed"] += int(failed)
        entry["empty"] += int(empty)
        samples.append(dict(user=user, round=probe.get("round"), status=probe.get("status"),
                            latency_ms=probe.get("latency_ms"), count=len(items) if isinstance(items, list) else None,
                            source=body.get("source"), error=probe.get("error") if failed else None))
    for entry in users.values():
        entry["affected"] = entry["probes"] > 0 and 2 * (entry["failed"] + entry["empty"]) >= entry["probes"]
    sent = len(samples)
    failed_total = sum(u["failed"] for u in users.values())
    affected = sum(1 for u in users.values() if u["affected"])
    facts = dict(
        samples=sent,
        error_rate=round(failed_total / float(sent), 4) if sent else None,
        users_affected_pct=round(100.0 * affected / len(users), 2) if users else None,
        core_feature_affected=affected > 0,
        recommendations_empty=any(u["empty"] for u in users.values()),
        latency_ms=result["latency_ms"]["p50"],
    )
    facts = {k: v for k, v in facts.items() if v is not None}
    return dict(facts=facts, users=users, samples=samples, latency_ms=result["latency_ms"], urls=recs)


# ---- recorded baseline and the classify module ------------------------------------------------

def read_baseline(path):
    """The JSON ``{"baseline_ms": ..., "recorded_at": ...}`` in ``path``; ``None`` when there is no file,
    ValueError naming the file when it holds no possible baseline."""
    if not os.path.exists(path):
        return None
    try:
        with open(path, "r", encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, ValueError) as exc:
        raise ValueError("baseline file %s is not readable JSON: %s" % (path, exc)) from None
    if not isinstance(data, dict) or "baseline_ms" not in data:
        raise ValueError("baseline file %s holds no baseline_ms: %r" % (path, data))
    try:
        data["baseline_ms"] = _check_fact("baseline_ms", data["baseline_ms"])
    except ValueError as exc:
        raise ValueError("baseline file %s: %s" % (path, exc)) from None
    return data


def write_baseline(path, record):
    """Write ``record`` as JSON to ``path`` atomically (``_files.write_json``)."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    _files.write_json(path, record)


#: The facts real traffic gives (``sre.incident.traffic``'s ``facts``) and the figure each comes from.
TRAFFIC_FACTS = {"samples": "rps", "error_rate": "error_rate", "users_affected_pct": "users_failing_pct",
                 "latency_ms": "latency_p50_ms"}


def traffic_facts(traffic):
    """``(facts, sources, baseline_ms, baseline_source)`` from a result of ``sre.incident.traffic``
    (empty facts when it had no source: the probes then decide)."""
    if traffic is None:
        return {}, {}, None, None
    if not isinstance(traffic, dict) or not isinstance(traffic.get("facts"), dict) \
            or not isinstance(traffic.get("sources"), dict):
        raise ValueError("traffic must be the result of sre.incident.traffic (with facts and sources), got %r"
                         % (traffic if not isinstance(traffic, dict) else sorted(traffic),))
    facts = {k: v for k, v in traffic["facts"].items() if k in TRAFFIC_FACTS and v is not None}
    sources = {}
    for key in facts:
        figure = TRAFFIC_FACTS[key]
        origin = traffic["sources"].get(figure)
        if key == "samples":
            origin = traffic["sources"].get("error_rate") or traffic["sources"].get("rps") or "access_log"
        sources[key] = origin or "traffic"
    baseline = traffic.get("baseline_ms")
    return facts, sources, baseline, (traffic.get("baseline_ms_source") if baseline is not None else None)


def run(params, check_mode=False, now=None, probe_many=None):
    """The work of ``sre.incident.severity``: gather facts, pick the baseline, classify.

    Real traffic (SPEC MON-2) replaces the probes' error rate, share of users affected, latency and
    sample count, and the probes no longer say the core feature is affected (a few sample users do
    not size the impact when real users can be counted); a probe's empty answer, which the access
    log cannot see, still counts. Given facts overlay both. The baseline: ``baseline_ms``, else real
    traffic's when the latency is real, else ``baseline_file``'s. ``record_baseline`` records the
    measured p50 after classifying against the previous one (check mode: only reported).
    """
    facts = {}
    sources = {}
    measured = None
    real, real_sources, real_baseline, real_baseline_source = traffic_facts(params.get("traffic"))
    if params.get("measure"):
        if not params.get("stack"):
            raise ValueError("measure=true needs stack (incident_stack) to know which URLs to probe")
        measured = measure(params["stack"], count=params.get("probe_count", 3), interval=params.get("probe_interval", 0.5),
                           timeout=params.get("probe_timeout", 5.0), probe_many=probe_many)
        facts.update(measured["facts"])
        sources.update((k, "probes") for k in measured["facts"])
    if real:
        if not facts.get("recommendations_empty"):
            facts.pop("core_feature_affected", None)
            sources.pop("core_feature_affected", None)
        for key in ("samples", "error_rate", "users_affected_pct", "latency_ms"):
            if key in real:
                facts[key] = real[key]
                sources[key] = real_sources[key]
            elif sources.get(key) == "probes" and key != "latency_ms":
                # a rate of the probes next to real figures would mix two populations
                facts.pop(key, None)
                sources.pop(key, None)
        if sources.get("users_affected_pct") == "access_log":
            facts["users_counted"] = True
            sources["users_counted"] = "access_log"
    for key in FACT_KEYS:
        if params.get(key) is not None:
            facts[key] = params[key]
            sources[key] = "given"
    baseline_file = params.get("baseline_file")
    recorded = read_baseline(baseline_file) if baseline_file else None
    if params.get("baseline_ms") is not None:
        baseline, source = params["baseline_ms"], "option"
    elif real_baseline is not None and sources.get("latency_ms") in ("access_log", "prometheus"):
        baseline, source = real_baseline, real_baseline_source or "traffic"
    elif recorded is not None:
        baseline, source = recorded["baseline_ms"], "file"
    else:
        baseline, source = facts.get("baseline_ms"), ("facts" if facts.get("baseline_ms") is not None else "none")
    result = classify(facts, baseline_ms=baseline, sla_overrides=params.get("sla"),
                      latency_tolerance=params.get("latency_tolerance", DEFAULT_LATENCY_TOLERANCE))
    result.update(changed=False, baseline=dict(baseline_ms=baseline, source=source, file=baseline_file, recorded=recorded),
                  baseline_recorded=False, samples=[], users={}, latency=None,
                  sources={k: v for k, v in sources.items() if k in result["facts"]},
                  traffic_source=(params.get("traffic") or {}).get("facts_source") if real else None)
    if measured is not None:
        result.update(samples=measured["samples"], users=measured["users"], latency=measured["latency_ms"])
    diff = dict(before="", after="")
    if params.get("record_baseline"):
        if measured is None or not baseline_file:
            raise ValueError("record_baseline=true needs measure=true and baseline_file")
        bad = [name for name in ("error_rate", "users_affected_pct") if measured["facts"].get(name)]
        if bad or measured["facts"].get("recommendations_empty") or measured["facts"].get("latency_ms") is None:
            raise ValueError("not recording a baseline from an unhealthy measurement (%s): a baseline must describe "
                             "the service at its normal speed" % ", ".join(
                                 "%s=%s" % (k, measured["facts"].get(k)) for k in
                                 ("error_rate", "users_affected_pct", "recommendations_empty", "latency_ms")))
        new = dict(baseline_ms=measured["facts"]["latency_ms"], recorded_at=format_ts(now or utc_now()),
                   samples=measured["facts"]["samples"], statistic="p50",
                   what="p50 latency of the recommendations of the sample users")
        old_value = recorded["baseline_ms"] if recorded else None
        if old_value != new["baseline_ms"]:
            result["changed"] = True
            diff = dict(before="baseline_ms: %s\n" % old_value, after="baseline_ms: %s\n" % new["baseline_ms"])
            if not check_mode:
                write_baseline(baseline_file, new)
                result["baseline_recorded"] = True
        result["baseline"]["new"] = new
    result["diff"] = dict(diff, before_header=baseline_file or "", after_header=baseline_file or "")
    return result
