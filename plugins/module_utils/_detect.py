# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Detect and confirm (runbook P0 stage 1, SPEC P0-1 and GEN-1): is the alarm real, and what fails?

The alarm is confirmed by probing ``/health`` and every sample user's recommendations at the service's
own port and at the edge (``incident_stack.edge_url``) when there is one, where users reach it. The
engine's view of the containers (the service, its dependencies, the edge) says where the failure is.
:func:`assess` makes the verdict the detect role records; nothing here talks to the outside.

Kinds of failure (``kind``):

========================  ===========================================================================
``none``                  every probe answered: a false alarm
``engine_unreachable``    the Docker engine did not answer
``stack_down``            the engine knows no container of the project
``dependency_down``       a dependency (PostgreSQL, Redis, ...) is not running or unhealthy
``service_down``          the service itself does not answer
``edge_down``             the service answers, the edge's container is not running or is gone
``edge_failing``          the service answers, the edge runs but does not answer users (for example a
                          stale upstream address after the service's container was recreated)
========================  ===========================================================================
"""
from __future__ import annotations

import time

from ansible_collections.sre.incident.plugins.module_utils import _stack, _time

#: Seconds back a restart by the engine's own restart policy counts as the recovery of this alarm.
RECENT_RESTART_S = 600
KINDS = ("none", "engine_unreachable", "stack_down", "dependency_down", "service_down", "edge_down", "edge_failing")
WHERE = ("service", "edge")
NOT_READY = ("exited", "dead", "created", "paused", "restarting", "removing")


def targets(stack, where=WHERE):
    """What to probe: ``[{url, json_query, where, what, user}]``, the service's own port first, then the edge
    (when ``incident_stack.edge_url`` is set); ``where`` limits it to ``service`` or ``edge``."""
    _stack.validate(stack)
    query = ["length(recommendations) >= `%d`" % int(stack.get("min_recommendations", 6))]
    bases = []
    if "service" in where:
        bases.append(("service", stack["base_url"]))
    if "edge" in where and stack.get("edge_url"):
        bases.append(("edge", stack["edge_url"]))
    out = []
    for name, base in bases:
        urls = _stack.urls(stack, base=base)
        out.append(dict(url=urls["health"], json_query=[], where=name, what="health", user=None))
        for user, url in urls["recommendations"].items():
            out.append(dict(url=url, json_query=query, where=name, what="recommendations", user=user))
    return out


def container_services(stack):
    """The compose services whose containers say where a failure is: the service, its dependencies, the edge."""
    names = [stack["service"]] + list(stack.get("dependencies") or [])
    if stack.get("edge") and stack.get("edge_url"):
        names.append(stack["edge"])
    return list(dict.fromkeys(names))


def _ratio(probes):
    return round(sum(1 for p in probes if p["ok"]) / float(len(probes)), 4) if probes else None


def group_results(tgts, probes):
    """Per place (``service``/``edge``): health and recommendations success ratios and failing users."""
    by_url = {}
    for p in probes:
        by_url.setdefault(p["url"], []).append(p)
    places = {}
    for where in WHERE:
        mine = [t for t in tgts if t["where"] == where]
        if not mine:
            continue
        health = [p for t in mine if t["what"] == "health" for p in by_url.get(t["url"], [])]
        recs = [p for t in mine if t["what"] == "recommendations" for p in by_url.get(t["url"], [])]
        users = {t["user"]: _ratio(by_url.get(t["url"], [])) for t in mine if t["what"] == "recommendations"}
        places[where] = dict(health_ratio=_ratio(health), recommendations_ratio=_ratio(recs), users=users,
                             errors=sorted({p["error"] for p in health + recs if p.get("error")})[:5])
    return places


def _ok(place, min_ratio):
    return (place["health_ratio"] or 0) >= min_ratio and (place["recommendations_ratio"] or 0) >= min_ratio


def decided(tgts, probes, rounds, count, min_ratio, containers=None, stack=None):
    """True when more rounds cannot change the verdict (``stop_early``): each place's ratios are reached
    or out of reach whatever the rest answer, or, after one round, the engine confirms the failure of
    the place that failed (its container exited, paused or gone).
    """
    places = group_results(tgts, probes)
    if all(_place_decided(place, rounds, count, min_ratio) for place in places.values()):
        return True
    if containers is None or stack is None or rounds < 1:
        return False
    down = set(down_services(stack, containers))
    confirmed = dict(service=bool(down & {stack["service"], *(stack.get("dependencies") or [])}),
                     edge=stack.get("edge") in down)
    return any(confirmed[where] for where, place in places.items() if not _ok(place, min_ratio))


def _place_decided(place, rounds, count, min_ratio):
    """Whether both ratios of a place are settled after ``rounds`` of ``count`` (every URL probed once a round)."""
    for key in ("health_ratio", "recommendations_ratio"):
        ratio = place[key]
        if ratio is None:
            continue
        # successes so far out of `rounds`, out of `count` in all: reached, or out of reach?
        best = (ratio * rounds + (count - rounds)) / float(count)
        worst = (ratio * rounds) / float(count)
        if not (worst >= min_ratio or best < min_ratio):
            return False
    return True


def answered(tgts, probes, min_ratio=0.5):
    """Whether every probed place answers (at least ``min_ratio`` of its health and of its recommendation probes)."""
    return all(_ok(place, min_ratio) for place in group_results(tgts, probes).values())


def service_running(stack, containers):
    """Whether the engine shows a running container of the service (a paused, exited or missing one answers nothing)."""
    return any(c.get("service") == stack["service"] and c.get("status") == "running" for c in containers or [])


def down_services(stack, containers):
    """Services (of the service, dependencies, edge) that have no running, healthy container."""
    wanted = container_services(stack)
    present = {c.get("service") for c in containers or []}
    down = [c["service"] for c in containers or []
            if c.get("service") in wanted and (c.get("status") in NOT_READY or c.get("health") == "unhealthy")]
    down += [s for s in wanted if s not in present]
    return list(dict.fromkeys(down))


def _epoch(text):
    """UNIX seconds of a Docker timestamp (``2026-12-06T10:00:00.123456789Z``), None when unreadable."""
    if not text or text.startswith("0001-"):
        return None
    try:
        return _time.epoch(str(text))
    except ValueError:
        return None


def engine_restarts(stack, containers, now=None, recent_s=RECENT_RESTART_S):
    """What the engine's own restart policy did to the service: dict(restarting, restarted) or None.

    ``restarting``: the engine is bringing a container back now (status ``restarting``, or restarted and
    its healthcheck still ``starting``): the ladder must not restart it on top. ``restarted``: containers
    the policy restarted within ``recent_s`` seconds, which recovered an alarm the probes no longer confirm.
    """
    now = time.time() if now is None else now
    mine = [c for c in containers or [] if c.get("service") == stack["service"]
            and (c.get("restart_policy") or "no") != "no"]
    if not mine:
        return None
    restarting = [c for c in mine if c.get("status") == "restarting"
                  or (c.get("status") == "running" and c.get("health") == "starting" and (c.get("restart_count") or 0) > 0)]
    recent = []
    for c in mine:
        started = _epoch(c.get("started_at"))
        if (c.get("restart_count") or 0) > 0 and started is not None and 0 <= now - started <= recent_s:
            recent.append(dict(name=c.get("name"), restart_count=c.get("restart_count"), started_at=c.get("started_at"),
                               restart_policy=c.get("restart_policy"), seconds_ago=round(now - started, 1)))
    if not restarting and not recent:
        return None
    return dict(restarting=bool(restarting), restarted=recent)


def assess(stack, tgts, probes, containers, containers_error=None, min_ratio=0.5, now=None):
    """The verdict of detection: outage, kind, what is down, where users fail, the impact.

    ``probes``: the results (``url``, ``ok``) of ``tgts``; ``containers``: the plain states of
    :func:`container_services`' containers; ``containers_error``: why they could not be read
    (``engine_unreachable``, ``error_kind``).
    """
    places = group_results(tgts, probes)
    service_ok = _ok(places["service"], min_ratio) if "service" in places else True
    edge = places.get("edge")
    edge_ok = _ok(edge, min_ratio) if edge else None
    outage = not service_ok or edge_ok is False
    error = containers_error or {}
    down = [] if error else down_services(stack, containers)
    deps = set(stack.get("dependencies") or [])
    if not outage:
        kind = "none"
    elif error.get("engine_unreachable"):
        kind = "engine_unreachable"
    elif error.get("error_kind") == "unknown_project":
        kind = "stack_down"
    elif service_ok:
        kind = "edge_down" if stack.get("edge") in down else "edge_failing"
    elif deps & set(down):
        kind = "dependency_down"
    else:
        kind = "service_down"
    users_place = edge if edge else places["service"]
    failing = sorted(u for u, r in users_place["users"].items() if (r or 0) < min_ratio)
    if not outage:
        scope = "none"
    elif failing and len(failing) == len(users_place["users"]):
        scope = "all sample users"
    elif failing:
        scope = "%d of %d sample users" % (len(failing), len(users_place["users"]))
    else:
        scope = "health endpoint only"
    ratios = [r for place in places.values() for r in (place["health_ratio"], place["recommendations_ratio"])
              if r is not None]
    policy = None if error else engine_restarts(stack, containers, now=now)
    if outage:
        ended = None   # the response decides
    else:
        ended = "resolved" if (policy or {}).get("restarted") else "false_alarm"
    return dict(
        outage=outage, kind=kind, down=down, outcome=ended,
        restart_policy=policy,
        service_ok=service_ok, edge_ok=edge_ok,
        health_ok=(users_place["health_ratio"] or 0) >= min_ratio,
        recommendations_ok=(users_place["recommendations_ratio"] or 0) >= min_ratio,
        success_ratio=min(ratios) if ratios else None,
        places=places,
        containers=list(containers or []),
        impact=dict(users_probed=len(users_place["users"]), users_failing=len(failing), failing_users=failing,
                    scope=scope, measured_at="edge" if edge else "service"),
    )


def summary(verdict, host=""):
    """One line for the output and the record (the closing text of a false alarm, or of an alarm the
    engine's restart policy recovered)."""
    if verdict["outage"]:
        head = "Alarm confirmed (%s)" % verdict["kind"]
    elif verdict.get("outcome") == "resolved":
        head = "Recovered by the restart policy, nothing changed"
    else:
        head = "False alarm, nothing changed"
    return "%s%s: %s" % (head, " on %s" % host if host else "", observed(verdict))


def observed(verdict):
    """What the probes and the engine saw, without a verdict on an alarm (for a look that answers none)."""
    parts = ["%s: health %s, recommendations %s" % ("through the edge" if where == "edge" else "the service itself",
                                                    _pct(place["health_ratio"]), _pct(place["recommendations_ratio"]))
             for where, place in verdict["places"].items()]
    text = "; ".join(parts)
    text += "; %s" % ("down: " + ", ".join(verdict["down"]) if verdict["down"] else "all containers running")
    policy = verdict.get("restart_policy") or {}
    if policy.get("restarting"):
        text += "; the engine's restart policy is bringing %s back" % (verdict["down"][0] if verdict["down"] else "the service")
    elif verdict.get("outcome") == "resolved":
        last = policy["restarted"][0]
        text += "; the engine restarted %s %s s ago (restart %s, policy %s)" % (
            last["name"], last["seconds_ago"], last["restart_count"], last["restart_policy"])
    return text


def _pct(ratio):
    return "n/a" if ratio is None else "%.0f %% ok" % (ratio * 100)
