# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

import functools

import pytest

from ansible_collections.sre.incident.plugins.module_utils import _compose
from ansible_collections.sre.incident.plugins.modules import verify

from .harness import JSONHandler, patch_exits, run_module, serving  # noqa: F401  pylint: disable=unused-import


class Handler(JSONHandler):
    """/health 200; user 'few' gets 3 recommendations, everyone else 10."""

    def do_GET(self):
        path = self.path.split("?")[0]
        if path == "/health":
            status, body = 200, {"status": "ok"}
        elif path.startswith("/api/recommendations/"):
            user = path.rsplit("/", 1)[1]
            status, body = 200, {"recommendations": list(range(3 if user == "few" else 10))}
        else:
            status, body = 404, {}
        self.send_json(status, body)


@pytest.fixture(scope="module")
def server():
    with serving(Handler) as url:
        yield url


def stack(base, users=("user-1", "user-2")):
    return dict(name="recsys", project_dir="/srv/recsys", service="recommendation-service", base_url=base,
                health_path="/health", recommendations_path="/api/recommendations/{user}",
                sample_users=list(users), thresholds=dict(latency_ms=500))


HTTP_CHECKS = ["health", "recommendations", "latency"]


run = functools.partial(run_module, verify)


def test_http_checks_pass_in_check_mode_and_change_nothing(server):
    r = run(dict(stack=stack(server), checks=HTTP_CHECKS), check_mode=True)
    assert "failed" not in r, r
    assert r["changed"] is False
    assert r["passed"] is True
    assert [c["name"] for c in r["checks"]] == HTTP_CHECKS
    assert r["samples"] == [] and r["watch_passed"] is None
    assert r["thresholds"]["latency_ms"] == 500
    assert r["summary"].startswith("recovery verified")
    assert set(r["checklist"]) == {"health_200", "recommendations_returned", "several_users_ok", "latency_under_500ms"}


def test_failed_check_is_reported_not_failed_by_default(server):
    r = run(dict(stack=stack(server, users=("user-1", "few")), checks=HTTP_CHECKS))
    assert "failed" not in r
    assert r["passed"] is False
    assert r["failed_checks"] == ["recommendations"]


def test_fail_on_failure_lists_the_failed_checks_with_values(server):
    r = run(dict(stack=stack(server, users=("user-1", "few")), checks=HTTP_CHECKS, fail_on_failure=True,
                 thresholds=dict(latency_ms=0.001)))
    assert r["failed"] is True
    assert r["changed"] is False
    assert "recommendations = 3 (threshold 6)" in r["msg"]
    assert "latency = " in r["msg"] and "threshold 0.001" in r["msg"]
    assert r["failed_checks"] == ["recommendations", "latency"]


def test_watch_only(server):
    r = run(dict(stack=stack(server), checks=[], watch_window=0.3, watch_interval=0.1))
    assert r["passed"] is True
    assert r["watch_passed"] is True
    assert len(r["samples"]) == 4    # 0, 0.1, 0.2 and the closing one at 0.3 s
    assert {"latency_ms", "error_rate", "ts", "offset_s"} <= set(r["samples"][0])
    # no check ran: nothing verified, only the watch's items
    assert r["ticks"] == {"watch_every_minute": "4 samples every 0.1 s over 0.3 s",
                          "error_rate_no_rebound": "max error rate 0.0 (limit 0.0)"}


def test_checks_tick_recovery_verified_and_the_watch_its_own_items(server):
    checked = run(dict(stack=stack(server), checks=HTTP_CHECKS))
    # the checks' items at once, with their values, and recovery_verified (the runbook's t+20m item: the checks)
    assert set(checked["ticks"]) == {"health_200", "recommendations_returned", "several_users_ok", "latency_under_500ms",
                                     "recovery_verified"}
    assert checked["ticks"]["health_200"] == "HTTP 200" and checked["ticks"]["recovery_verified"] == checked["summary"]
    r = run(dict(stack=stack(server), checked=checked, checks=[], watch_window=0.2, watch_interval=0.1))
    assert r["passed"] is True and r["watch_passed"] is True and r["rebound"] is None
    assert r["checks"] == checked["checks"] and r["since"] == checked["since"]
    assert set(r["ticks"]) == {"watch_every_minute", "error_rate_no_rebound"}
    assert r["summary"].startswith("recovery verified: health 200; ") and "watch: 3 samples, no rebound" in r["summary"]


def test_a_rebound_after_passed_checks_fails_the_verification(server):
    checked = run(dict(stack=stack(server), checks=HTTP_CHECKS))
    assert checked["passed"] is True and "recovery_verified" in checked["ticks"]
    # the users answered at the checks; in the watch one gets too few recommendations
    r = run(dict(stack=stack(server, users=("user-1", "few")), checked=checked, checks=[], watch_window=5,
                 watch_interval=1, fail_on_failure=True))
    assert r["failed"] is True and r["passed"] is False and r["watch_passed"] is False
    assert r["msg"] == r["summary"] and r["summary"].startswith("recovery not verified: watch: error rate 0.3333 > 0.0")
    assert r["rebound"] == "Error rate rebounded at %s: few: 3 recommendations" % r["rebound_at"]
    assert r["ticks"] == {"watch_every_minute": "1 sample every 1 s over 5 s"}


def test_failed_checks_are_not_watched_nor_verified(server):
    checked = run(dict(stack=stack(server, users=("few",)), checks=HTTP_CHECKS))
    r = run(dict(stack=stack(server), checked=checked, checks=[], watch_window=5, watch_interval=1))
    assert r["passed"] is False and r["samples"] == [] and r["watch_skipped"] == "checks failed: recommendations"
    assert r["ticks"] == {} and r["summary"] == checked["summary"]


def test_a_dry_run_checks_but_does_not_watch(server):
    checked = run(dict(stack=stack(server), checks=HTTP_CHECKS), check_mode=True)
    r = run(dict(stack=stack(server), checked=checked, checks=[], watch_window=900, watch_interval=60), check_mode=True)
    assert r["changed"] is False and r["samples"] == [] and r["elapsed"] < 1
    assert r["watch_skipped"] == "check mode: a dry run would watch 900 s, and does not"
    assert r["passed"] is True and r["watch_passed"] is None


def test_no_watch_after_the_checks_verifies_them(server):
    checked = run(dict(stack=stack(server), checks=HTTP_CHECKS))
    r = run(dict(stack=stack(server), checked=checked, checks=[]))
    assert r["passed"] is True and r["ticks"] == {} and "recovery_verified" in checked["ticks"]


def test_watch_rebound(server):
    r = run(dict(stack=stack(server, users=("few",)), checks=[], watch_window=5, watch_interval=1))
    assert r["watch_passed"] is False
    assert len(r["samples"]) == 1
    assert r["rebound_at"] == r["samples"][0]["ts"]
    assert r["elapsed"] < 2


def test_watch_skipped_when_checks_fail(server):
    r = run(dict(stack=stack(server, users=("few",)), checks=HTTP_CHECKS, watch_window=5, watch_interval=1))
    assert r["samples"] == []
    assert r["watch_skipped"] == "checks failed: recommendations"


@pytest.mark.parametrize("args, word", [
    (dict(thresholds=dict(cpu=1)), "unknown threshold 'cpu'"),
    (dict(since="yesterday"), "since 'yesterday'"),
    (dict(watch_window=10, watch_interval=0), "interval must be > 0"),
    (dict(rebound_error_rate=1.5), "rebound_error_rate"),
    (dict(probe_rounds=0), "probe_rounds"),
    (dict(probe_timeout=0), "probe_timeout"),
    (dict(thresholds=dict(memory_percent=150)), "thresholds.memory_percent must be at most 100, got 150"),
    (dict(checked={"passed": True}), "checked must be the result of an earlier verify call, got one without checks"),
    (dict(checked={"passed": True, "checks": [], "failed_checks": [], "checklist": {}, "not_checked": [], "since": "60",
                   "thresholds": {}}), "checks must be [] with checked"),
])
def test_bad_input_fails_before_probing(server, args, word):
    r = run(dict(dict(stack=stack(server), checks=HTTP_CHECKS), **args))
    assert r["failed"] is True
    assert word in r["msg"]


def test_bad_stack(server):
    bad = stack(server)
    del bad["sample_users"]
    r = run(dict(stack=bad, checks=HTTP_CHECKS))
    assert r["failed"] is True and "sample_users" in r["msg"]
    r = run(dict(stack=dict(stack(server), thresholds=dict(latency_ms=0)), checks=HTTP_CHECKS))
    assert r["failed"] is True and "incident_stack.thresholds.latency_ms must be a number > 0, got 0" in r["msg"]


def test_missing_docker_sdk(server, monkeypatch):
    monkeypatch.setattr(_compose, "HAS_DOCKER", False)
    r = run(dict(stack=stack(server)))
    assert r["failed"] is True
    assert "docker" in r["msg"]
    # HTTP-only checks do not need it
    assert run(dict(stack=stack(server), checks=HTTP_CHECKS))["passed"] is True


def test_engine_unreachable(server, tmp_path):
    r = run(dict(stack=stack(server), checks=["log_errors"], docker_host="unix://%s/nothing.sock" % tmp_path))
    assert r["failed"] is True
    assert r["engine_unreachable"] is True
