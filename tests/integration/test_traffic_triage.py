# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Triage on real traffic (SPEC MON-2): the share of real users failing decides P1 or P2.

The test plays the users itself: 200 distinct users ask for their recommendations through the
edge of the real stack, first all healthy (the baseline window), then again after a real fault
that hurts only some of them. The fault needs no hook in the application: the cache entries of
those users are corrupted in Redis (a number where a list of recommendations belongs, written
with redis-cli), and the service, finding them, answers those users - and only them - with 500,
as a corrupted cache would make it do in production. The other users' entries are intact and
they are answered 200. The sample users (user-1..user-5) are never among the hurt, so the
synthetic probes alone see a healthy service: only real traffic can size the impact.

The test counts the answers it got itself, then runs the real triage playbook, and reads the
record triage wrote: 2 % of distinct users failing is P1 (more than 1 %), 0.5 % is P2. After
the P1, p1_mitigate's first quick fix (clear the cache) really answers the hurt users again.
"""
from __future__ import annotations

import concurrent.futures
import time
import urllib.error
import urllib.request

import pytest

from conftest import EDGE_URL, SAMPLE_USERS, read_record, run_playbook, wait_for

pytestmark = pytest.mark.integration

USERS = [f"user-{i}" for i in range(1, 201)]


def ask(user, headers=None):
    """One user's request through the edge: the status it got (0 when nothing answered)."""
    request = urllib.request.Request(f"{EDGE_URL}/api/recommendations/{user}?limit=10", headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            response.read()
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except (urllib.error.URLError, OSError):
        return 0


def play(users, rounds):
    """Every user asks ``rounds`` times, eight at a time; {user: [statuses]}."""
    got = {user: [] for user in users}
    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        for _round in range(rounds):
            for user, status in zip(users, pool.map(ask, users)):
                got[user].append(status)
    return got


def poison(stack, users):
    for user in users:
        assert stack.redis("SET", f"recs:{user}:10", "42") == "OK"


def triage_on_real_traffic(stack, tmp_path, hurt):
    """Baseline traffic, the fault for ``hurt``, failing-phase traffic, then triage; (events, answers)."""
    assert not set(hurt) & set(SAMPLE_USERS)
    stack.redis("EVAL", "for _, k in ipairs(redis.call('KEYS', 'recs:*')) do redis.call('DEL', k) end return 0", "0")
    t0 = time.time()
    baseline = play(USERS, 1)
    assert all(statuses == [200] for statuses in baseline.values()), "the stack was not healthy before the fault"
    poison(stack, hurt)
    t1 = time.time()
    answers = play(USERS, 2)
    # what the users got, counted by the test itself
    failing = sorted(u for u, statuses in answers.items() if any(s >= 500 for s in statuses))
    assert failing == sorted(hurt), failing
    assert all(statuses == [200, 200] for u, statuses in answers.items() if u not in hurt)
    # the synthetic probes alone see nothing wrong
    assert all(ask(u, {"X-User-Id": "synthetic-test"}) == 200 for u in SAMPLE_USERS)

    t2 = time.time()
    result = run_playbook("triage.yml", extra_vars={
        "incident_dir": str(tmp_path / "incidents"), "report_backlog_dir": str(tmp_path / "backlog"),
        # the window: the failing phase; the baseline: the healthy phase before it
        "triage_traffic_until": str(t2 + 0.5), "triage_traffic_window_s": round(t2 + 0.5 - t1, 3),
        "triage_traffic_baseline_s": round(t1 - t0 + 1.0, 3)})
    assert (tmp_path / "incidents").is_dir(), result.output
    _incident, events = read_record(tmp_path / "incidents")
    return result, events, answers


def triage_of(events):
    return [e for e in events if isinstance(e.get("data"), dict) and "triage" in e["data"]][0]["data"]["triage"]


def test_two_percent_of_real_users_failing_is_p1_and_the_cache_fix_answers_them(stack, tmp_path):
    hurt = ["user-101", "user-102", "user-103", "user-104"]          # 4 of 200 users: 2 %
    try:
        result, events, _answers = triage_on_real_traffic(stack, tmp_path, hurt)
        triage = triage_of(events)
        assert triage["severity"] == "P1", result.output
        assert triage["facts"]["users_affected_pct"] == 2.0
        assert triage["sources"]["users_affected_pct"] == "access_log"
        assert triage["sources"]["error_rate"] == "access_log"
        window = triage["traffic"]["window"]
        assert (window["users"], window["users_failing"]) == (200, 4)
        assert sorted(window["failing_users"]) == hurt
        assert window["errors"] == 8 and window["requests"] >= 400
        assert any("users affected 2.0 % of real users, more than 1 %" in r for r in triage["reasons"]), triage["reasons"]
        opened = [e for e in events if e["type"] == "opened"][0]["data"]
        assert opened["severity"] == "P1" and opened["impact"]["users_failing"] == 4 and opened["impact"]["rps"] > 0
        # p1_mitigate ran on it: the cache was cleared and the hurt users are answered again, for real
        assert [e for e in events if e["type"] == "closed"][0]["data"]["outcome"] == "resolved", result.output
        assert all(ask(user) == 200 for user in hurt)
        assert result.returncode == 0, result.output
    finally:
        for user in hurt:
            stack.redis("DEL", f"recs:{user}:10")


def test_half_a_percent_of_real_users_failing_is_p2(stack, tmp_path):
    hurt = ["user-150"]                                                # 1 of 200 users: 0.5 %
    try:
        result, events, _answers = triage_on_real_traffic(stack, tmp_path, hurt)
        triage = triage_of(events)
        assert triage["severity"] == "P2", result.output
        assert triage["facts"]["users_affected_pct"] == 0.5
        assert triage["sources"]["users_affected_pct"] == "access_log"
        window = triage["traffic"]["window"]
        assert (window["users"], window["users_failing"], window["failing_users"]) == (200, 1, hurt)
        assert any("users affected 0.5 % of real users, not more than 1 %" in r for r in triage["reasons"])
        # a P2 goes to the backlog, nothing is changed: the user still fails
        assert list((tmp_path / "backlog").glob("*.md")), result.output
        assert ask("user-150") == 500
        assert result.returncode == 0, result.output
    finally:
        stack.redis("DEL", "recs:user-150:10")
        assert wait_for(lambda: ask("user-150") == 200, timeout=10)
