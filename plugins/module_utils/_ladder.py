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
ladder stops and the playbook degrades and escalates to a human. :func:`step` makes that decision
from the previous step and the checks registered after its rung; the role only runs what it names.
"""
from __future__ import annotations

from ansible_collections.sre.incident.plugins.module_utils._time import parse_ts, utc_now

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


def rung_budget(rung, windows=None):
    """Seconds a rung may take, from its windows (``windows`` over DEFAULT_WINDOWS)."""
    if rung not in RUNG_TEXT:
        raise ValueError("unknown rung %r: expected one of %s" % (rung, ", ".join(RUNG_TEXT)))
    w = dict(DEFAULT_WINDOWS)
    for key, value in (windows or {}).items():
        if key not in DEFAULT_WINDOWS:
            raise ValueError("unknown ladder window %r: expected one of %s" % (key, ", ".join(DEFAULT_WINDOWS)))
        try:
            seconds = float(value)
        except (TypeError, ValueError):
            raise ValueError("ladder window %s must be a number of seconds, got %r" % (key, value)) from None
        if seconds <= 0:
            raise ValueError("ladder window %s must be > 0 seconds, got %r" % (key, value))
        w[key] = seconds
    return w[rung] + (w["restart_service_after_dependencies"] if rung == "restart_dependencies" else 0)


def remaining_rungs(after=None, kind=None):
    """The rungs still to try after ``after`` (the last rung tried), in order; ``kind`` is detect's
    kind of failure (an edge-only failure starts with ``repair_edge``)."""
    if not after:
        return list(((EDGE_RUNG,) if kind in EDGE_KINDS else ()) + RUNGS)
    if after not in RUNG_TEXT:
        raise ValueError("unknown rung %r: expected one of %s" % (after, ", ".join(RUNG_TEXT)))
    return list(RUNGS[RUNGS.index(after) + 1:] if after in RUNGS else RUNGS)


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


BREAKER_TEXT = ("circuit breaker open: the ladder already ran %s time(s) on this stack within %s s (limit %s); "
                "not restarting again, escalate to a human. Once a human fixed the cause, reset it: "
                "ansible-playbook playbooks/ops.yml --tags breaker_reset -e reason='what was fixed' (docs/ops.md)")


def _judge(previous, health, edge, dry_run, current):
    """What the rung ``previous`` climbed did, from the checks registered after it: (data, text) for the record."""
    rung, health = previous["next"], health or {}
    if not edge or edge.get("skipped"):
        # the edge's repair did not run: the wait's own look at the edge (check_edge) says, when it looked
        edge = health.get("edge") or {}
    result = "would_run" if dry_run else "fixed" if health.get("healthy") and edge.get("serving", True) else "not_fixed"
    elapsed = round(current.timestamp() - previous["started"], 1)
    said = {"would_run": "would run (dry run)", "fixed": "brought the service back"}.get(result, "did not bring the checks back")
    why = [("the wait stopped early: %s" % health["gave_up"]) if health.get("gave_up") else "",
           ("the edge: %s" % edge["reason"]) if edge.get("reason") else ""]
    return ({"rung": rung, "result": result, "elapsed_s": elapsed, "service_answers": health.get("healthy"),
             "gave_up": health.get("gave_up"), "edge_serves": edge.get("serving"), "edge_actions": edge.get("actions") or []},
            "%s %s after %s s%s" % (rung, said, elapsed, "".join("; " + w for w in why if w)))


def step(previous=None, health=None, edge=None, dry_run=False, lease=None, breaker_window=None, breaker_max_runs=None,
         resolve_deadline=None, windows=None, verify_budget=0, after=None, now=None, kind=None, stack=None,
         engine_restarting=False):
    """The ladder's next step: :func:`plan`'s keys for the next rung, and ``done``/``done_text`` (what the rung of
    ``previous`` did, from the ``health`` and ``edge`` results registered after it; None when no rung ran),
    ``decision`` (``climb``, ``degrade``, or None once the ladder ended: nothing to record), ``started`` (UNIX
    time the climbed rung starts), ``ends_at`` (UNIX time its window ends: what the waits and the edge's repair
    after its action have left), ``service_state`` (the compose_service state the climbed rung brings the
    service to: ``started`` while the engine's restart policy brings it back (``engine_restarting``) and no rung
    ran yet, since a restart on top would only start its clock again; else ``restarted``), ``ended`` and
    ``result`` (the role's ``recover_result``). Without ``previous``, the first step (after ``after`` when
    resuming); an open circuit breaker (``lease``) ends it before any rung."""
    current, done, done_text = parse_ts(now or utc_now(), "now"), None, None
    if previous:
        result, ended, after, stop = dict(previous["result"]), previous["ended"], previous["after"], previous["stop"]
        if previous["climb"]:
            done, done_text = _judge(previous, health, edge, dry_run, current)
            fixed = done["result"] == "fixed"
            result.update(fixed=fixed, rung=done["rung"] if fixed else None, fixed_at=current.isoformat(),
                          rungs_tried=result["rungs_tried"] + [done["rung"]],
                          would=result["would"] + ([previous["next_text"]] if dry_run else []))
            ended, after = fixed or dry_run, done["rung"]
    else:
        lease = lease or {}
        result = {"fixed": False, "rung": None, "fixed_at": None, "rungs_tried": [], "would": [],
                  "breaker_open": bool(lease.get("breaker_open"))}
        ended = result["breaker_open"]
        stop = BREAKER_TEXT % (lease.get("recent_runs"), breaker_window, breaker_max_runs) if ended else ""
    out = dict(plan(resolve_deadline, windows=windows, verify_budget=verify_budget, after=after, now=current,
                    kind=kind, stack=stack), decision=None, started=None, ends_at=None, service_state=None)
    if ended:
        out.update(climb=False, next=None, next_text=None)
    elif out["climb"]:
        out.update(decision="climb", started=current.timestamp(), ends_at=current.timestamp() + out["budget_s"],
                   service_state="started" if engine_restarting and not result["rungs_tried"] else "restarted")
    else:
        out["decision"], ended, stop = "degrade", True, out["reason"]
    if dry_run:
        said = stop or "would " + (" and, if that did not help, ".join(result["would"]) or "climb no rung")
    else:
        said = stop or ("fixed by %s" % result["rung"] if result["fixed"] else "the ladder is exhausted")
    result.update(escalate=not result["fixed"] and not dry_run, dry_run=bool(dry_run),
                  reason=("dry run: " if dry_run else "") + said)
    out.update(done=done, done_text=done_text, ended=ended, after=after, stop=stop, result=result)
    return out


def p0_outcome(ladder, verify=None, degrade=None):
    """How a P0 ends, from the ladder's result (``recover_result``), the verification after a fix and the
    degraded mode (the ``degrade`` role's result, once it ran).

    A fix counts only when it verified (users answered through the edge). Returns ``resolved`` (bool),
    ``outcome`` (``resolved``, ``degraded`` or ``escalated``: the record's word; ``escalated`` for any
    unresolved P0 until ``degrade`` says a degraded mode serves users), ``degraded_mode``, ``reason``,
    ``summary`` (the reason and, unless resolved, whether a degraded mode serves users: the escalation's
    and the record's text) and ``notice``, the one notice the channels get about the ending: ``resolved``,
    else ``escalate`` (a degraded mode keeps users served, the service still needs a human).
    """
    if not isinstance(ladder, dict) or "fixed" not in ladder:
        raise ValueError("p0_outcome needs the ladder's result (recover_result), got %r" % (ladder,))
    verify, degrade = verify or {}, degrade or {}
    fixed, verified = bool(ladder["fixed"]), bool(verify.get("passed"))
    reason = ladder.get("reason") or ""
    if fixed and not verified:
        reason += ", but the recovery did not verify: %s" % (verify.get("summary") or "it did not run")
    degraded = bool(degrade.get("degraded"))
    outcome = "resolved" if fixed and verified else "degraded" if degraded else "escalated"
    mode = degrade.get("active_mode") if degraded else None
    summary = reason
    if outcome != "resolved":
        summary += "; degraded mode %s serves users" % mode if mode else "; no degraded mode serves users"
    return {"resolved": outcome == "resolved", "outcome": outcome, "reason": reason, "degraded_mode": mode,
            "summary": summary, "notice": "resolved" if outcome == "resolved" else "escalate"}
