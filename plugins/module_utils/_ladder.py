# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The recovery ladder of the runbook (P0-4): its rungs, their windows, and the clock.

1. restart_service        restart the service                          (30 s)
2. restart_dependencies   restart postgres and redis, then the service (60 s + 30 s)
3. rebuild                compose down, then up -d (volumes kept)      (90 s)

When only the edge fails (the service itself answers: detect's ``edge_down`` or ``edge_failing``),
the ladder starts one step lower, with ``repair_edge`` (start, reload or restart the edge, 30 s),
and climbs the runbook's rungs only if that did not help. Every rung ends by making the edge serve
again when the service answers (a recreated service has a new address).

A rung is climbed only if the one before did not bring the checks back, and only if what is
left of the resolve deadline covers the rung's window plus the verification; otherwise the
ladder stops and the playbook degrades and escalates to a human.
"""
from __future__ import annotations

from ansible_collections.sre.incident.plugins.module_utils._severity import parse_ts, utc_now

RUNGS = ("restart_service", "restart_dependencies", "rebuild")
EDGE_RUNG = "repair_edge"
EDGE_KINDS = ("edge_down", "edge_failing")

#: What each rung does, in words (``{service}``, ``{dependencies}``, ``{edge}`` from incident_stack).
RUNG_TEXT = {
    "repair_edge": "reload or restart the edge {edge}",
    "restart_service": "restart {service}",
    "restart_dependencies": "restart {dependencies}, then {service}",
    "rebuild": "rebuild the stack (compose down, then up -d; volumes kept)",
}

DEFAULT_WINDOWS = {
    "repair_edge": 30,
    "restart_service": 30,
    "restart_dependencies": 60,
    "restart_service_after_dependencies": 30,
    "rebuild": 90,
}


def windows_with_defaults(windows=None):
    merged = dict(DEFAULT_WINDOWS)
    for key, value in (windows or {}).items():
        if key not in DEFAULT_WINDOWS:
            raise ValueError("unknown ladder window %r: expected one of %s" % (key, ", ".join(DEFAULT_WINDOWS)))
        try:
            seconds = float(value)
        except (TypeError, ValueError):
            raise ValueError("ladder window %s must be a number of seconds, got %r" % (key, value)) from None
        if seconds <= 0:
            raise ValueError("ladder window %s must be > 0 seconds, got %r" % (key, value))
        merged[key] = seconds
    return merged


def rung_budget(rung, windows=None):
    """Seconds a rung may take, from its windows."""
    w = windows_with_defaults(windows)
    if rung == EDGE_RUNG:
        return w["repair_edge"]
    if rung == "restart_service":
        return w["restart_service"]
    if rung == "restart_dependencies":
        return w["restart_dependencies"] + w["restart_service_after_dependencies"]
    if rung == "rebuild":
        return w["rebuild"]
    raise ValueError("unknown rung %r: expected one of %s" % (rung, ", ".join((EDGE_RUNG,) + RUNGS)))


def remaining_rungs(after=None, kind=None):
    """The rungs still to try after ``after`` (the last rung tried), in order; ``kind`` is detect's
    kind of failure (an edge-only failure starts with ``repair_edge``)."""
    ladder = ((EDGE_RUNG,) if kind in EDGE_KINDS else ()) + RUNGS
    if not after:
        return list(ladder)
    if after == EDGE_RUNG:
        return list(RUNGS)
    if after not in RUNGS:
        raise ValueError("unknown rung %r: expected one of %s" % (after, ", ".join((EDGE_RUNG,) + RUNGS)))
    return list(RUNGS[RUNGS.index(after) + 1:])


def rung_text(rung, stack=None):
    """What ``rung`` does, in words, with the names of ``stack`` (incident_stack) when given."""
    stack = stack or {}
    return RUNG_TEXT[rung].format(service=stack.get("service") or "the service",
                                  dependencies=", ".join(stack.get("dependencies") or []) or "the dependencies",
                                  edge=stack.get("edge") or "")


def plan(resolve_deadline=None, windows=None, verify_budget=0, after=None, now=None, kind=None, stack=None):
    """What to do next: the remaining rungs and whether the clock allows the next one.

    Returns a dict: ``rungs`` (remaining, in order), ``next`` (the next rung or None),
    ``climb`` (bool), ``time_left_s`` (None without a deadline), ``budget_s`` (the next rung's
    window), ``needed_s`` (that plus ``verify_budget``), ``next_text`` (what the next rung does, in
    words, with the names of ``stack``) and ``reason`` (one line for the record).
    """
    rungs = remaining_rungs(after, kind=kind)
    if float(verify_budget) < 0:
        raise ValueError("verify_budget must be >= 0 seconds, got %r" % (verify_budget,))
    result = {"rungs": rungs, "next": rungs[0] if rungs else None, "climb": False,
              "time_left_s": None, "budget_s": None, "needed_s": None, "reason": "",
              "next_text": rung_text(rungs[0], stack) if rungs else None}
    if resolve_deadline:
        current = parse_ts(now or utc_now(), "now")
        left = (parse_ts(resolve_deadline, "resolve_deadline") - current).total_seconds()
        result["time_left_s"] = round(left, 1)
    if not rungs:
        result["reason"] = "the ladder is exhausted (last rung tried: %s)" % (after,)
        return result
    budget = rung_budget(rungs[0], windows)
    needed = budget + float(verify_budget)
    result.update(budget_s=round(budget, 1), needed_s=round(needed, 1))
    left = result["time_left_s"]
    if left is None:
        result.update(climb=True, reason="no resolve deadline; trying %s" % rungs[0])
    elif left >= needed:
        result.update(climb=True, reason="%.0f s left on the resolve deadline, %s needs %.0f s" % (left, rungs[0], needed))
    else:
        result["reason"] = ("only %.0f s left on the resolve deadline, %s needs %.0f s with verification: "
                            "skip to degrading and escalate to a human" % (left, rungs[0], needed))
    return result
