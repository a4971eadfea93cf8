# -*- coding: utf-8 -*-
# Copyright (c) sre.incident contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""sre.incident.notify main() with real HTTP receivers; exit_json/fail_json patched."""

from __future__ import annotations

import http.server
import json
import socket
import threading
import time

import pytest

from ansible_collections.sre.incident.plugins.module_utils import _notify
from ansible_collections.sre.incident.plugins.modules import notify as notify_module

from .harness import AnsibleExitJson, patch_exits, run_main  # noqa: F401  pylint: disable=unused-import

SECRET = "SECmodule-secret-7c1f2e9a"
TOKEN = "hook-token-0d9a8b7c6e5f"
BEARER = "Bearer tkn-41b2c3d4e5"
INCIDENT = {
    "id": "INC-20261127-007",
    "severity": "P0",
    "service": "recommendation-service",
    "commander": "@incident-commander",
    "war_room": "https://meet.example.com/inc-007",
    "response_deadline": "2026-11-27T10:05:00+08:00",
    "resolve_deadline": "2026-11-27T10:30:00+08:00",
}
ONCALL = {"shift": "weekday_day", "handle": "@oncall-day", "contacts": {"tech_lead": "@tech-lead"}}


class _NoSleep:
    """_notify's view of the time module: real clocks, no backoff sleeps (keeps retries fast)."""
    monotonic = staticmethod(time.monotonic)
    time = staticmethod(time.time)

    @staticmethod
    def sleep(seconds):
        pass


@pytest.fixture(autouse=True)
def fast_retries_no_proxy(monkeypatch):
    monkeypatch.setattr(_notify, "time", _NoSleep)
    for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)


class Receiver:
    def __init__(self, status=200, body=b'{"errcode":0,"errmsg":"ok"}'):
        self.requests = []
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server API
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                receiver.requests.append({"path": self.path, "headers": dict(self.headers.items()), "body": raw})
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def url(self, path):
        return "http://127.0.0.1:%d%s" % (self.server.server_address[1], path)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


def run(args, check_mode=False):
    """(True if the module exited, False if it failed; its result)."""
    raised = run_main(notify_module, args, check_mode=check_mode)
    return isinstance(raised, AnsibleExitJson), raised.args[0]


def channels_for(rx):
    return [
        {"name": "slack-incidents", "type": "slack", "url": rx.url("/services/" + TOKEN)},
        {"name": "dingtalk-oncall", "type": "dingtalk", "url": rx.url("/robot/send?access_token=" + TOKEN),
         "secret": SECRET},
        {"name": "pager", "type": "webhook", "url": rx.url("/pager/" + TOKEN), "headers": {"Authorization": BEARER}},
    ]


def assert_clean(result, *urls):
    dumped = json.dumps(result)
    for secret in (SECRET, TOKEN, BEARER, "tkn-41b2c3d4e5") + urls:
        assert secret not in dumped, secret


def test_sends_to_every_channel_and_reports_changed():
    with Receiver() as rx:
        ok, result = run({"channels": channels_for(rx), "notice": "started", "incident": INCIDENT,
                          "oncall": ONCALL, "text": "all instances return 503"})
    assert ok, result
    assert result["changed"] is True
    assert result["sent"] == 3 and result["failed_count"] == 0
    assert [r["name"] for r in result["results"]] == ["slack-incidents", "dingtalk-oncall", "pager"]
    assert all(r["ok"] and r["attempts"] == 1 and r["status"] == 200 for r in result["results"])
    assert len(rx.requests) == 3
    by_path = {r["path"].split("/")[1]: r for r in rx.requests}   # the channels are sent to at once
    assert by_path["pager"]["headers"]["Authorization"] == BEARER
    assert "sign=" in by_path["robot"]["path"]
    for needle in ("[P0] Incident started", "INC-20261127-007", "@incident-commander", "@oncall-day",
                   "https://meet.example.com/inc-007", "all instances return 503"):
        assert needle in result["message"]
    assert_clean(result, *[c["url"] for c in channels_for(rx)])


def test_stage_is_still_read_as_the_notice():
    with Receiver() as rx:
        ok, result = run({"channels": channels_for(rx), "stage": "resolved", "incident": INCIDENT}, check_mode=True)
    assert ok, result
    assert result["message"].startswith("[P0] Incident resolved: recommendation-service")


def test_check_mode_sends_nothing():
    with Receiver() as rx:
        ok, result = run({"channels": channels_for(rx), "notice": "update", "incident": INCIDENT,
                          "oncall": ONCALL}, check_mode=True)
    assert ok
    assert rx.requests == []
    assert result["changed"] is False
    assert result["sent"] == 0 and result["failed_count"] == 0
    assert result["channels"] == ["slack-incidents", "dingtalk-oncall", "pager"]
    assert all(r["ok"] is None and r["attempts"] == 0 for r in result["results"])
    assert result["message"].startswith("[P0] Incident update: recommendation-service (INC-20261127-007)")
    assert_clean(result, *[c["url"] for c in channels_for(rx)])


def _dead_url():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return "http://127.0.0.1:%d/hooks/%s" % (port, TOKEN)


def test_failed_channel_does_not_fail_the_task_by_default():
    url = _dead_url()
    ok, result = run({"channels": [{"name": "dead", "type": "webhook", "url": url, "headers": {"Authorization": BEARER}}],
                      "notice": "escalate", "incident": INCIDENT})
    assert ok
    # a "failed" key in the result would make Ansible fail the task despite fail_on_error=false
    assert "failed" not in result
    assert result["changed"] is False
    assert result["failed_count"] == 1 and result["sent"] == 0
    assert result["results"][0]["attempts"] == 3 and result["results"][0]["ok"] is False
    assert_clean(result, url)


def test_fail_on_error_fails_with_results_and_no_secret():
    url = _dead_url()
    ok, result = run({"channels": [{"name": "dead", "type": "slack", "url": url}], "notice": "started",
                      "incident": INCIDENT, "fail_on_error": True, "retries": 1})
    assert not ok
    assert "could not notify dead" in result["msg"]
    assert result["results"][0]["attempts"] == 1
    assert_clean(result, url)


def test_partial_failure_is_changed():
    with Receiver() as rx:
        ok, result = run({"channels": [{"name": "good", "type": "slack", "url": rx.url("/ok")},
                                       {"name": "dead", "type": "slack", "url": _dead_url()}],
                          "notice": "resolved", "incident": INCIDENT})
    assert ok and result["changed"] is True and result["sent"] == 1 and result["failed_count"] == 1


@pytest.mark.parametrize("channels, needle", [
    ([{"name": "teams", "type": "teams", "url": "https://hooks.example.com/" + TOKEN}], "channel teams has unknown type"),
    ([{"name": "ok", "type": "slack", "url": "https://hooks.example.com/" + TOKEN}, {"type": "slack"}],
     "channel channels[1] has no url"),
    ([{"name": "nourl", "type": "dingtalk", "secret": SECRET}], "channel nourl has no url"),
])
def test_bad_channel_fails_naming_it_never_the_url(channels, needle):
    ok, result = run({"channels": channels, "notice": "started", "incident": INCIDENT})
    assert not ok
    assert needle in result["msg"]
    assert_clean(result, "https://hooks.example.com/" + TOKEN)


def test_bad_notice_and_severity_fail():
    ok, result = run({"channels": [], "notice": "panic"})
    assert not ok and "panic" in result["msg"]
    ok, result = run({"channels": [], "notice": "started", "incident": {"severity": "SEV9"}})
    assert not ok and "SEV9" in result["msg"]


def test_bad_deadline_fails_before_sending():
    with Receiver() as rx:
        ok, result = run({"channels": channels_for(rx), "notice": "started",
                          "incident": dict(INCIDENT, resolve_deadline="half past ten")})
    assert not ok and "incident.resolve_deadline" in result["msg"]
    assert rx.requests == []


def test_no_channels_warns_and_changes_nothing():
    ok, result = run({"notice": "update", "incident": INCIDENT})
    assert ok and result["changed"] is False and result["results"] == []


def test_disabled_channel_is_not_sent():
    with Receiver() as rx:
        ok, result = run({"channels": [{"name": "quiet", "type": "slack", "url": rx.url("/q"), "enabled": False}],
                          "notice": "update", "incident": INCIDENT})
    assert ok and rx.requests == [] and result["results"][0]["enabled"] is False
    assert result["changed"] is False


# --- mode start / collect -----------------------------------------------------------------------------

def _hanging_listener():
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    return listener


def test_start_returns_at_once_and_collect_brings_the_outcome(tmp_path):
    listener = _hanging_listener()
    try:
        with Receiver() as rx:
            channels = [
                {"name": "pager", "type": "webhook", "url": rx.url("/pager/" + TOKEN), "headers": {"Authorization": BEARER}},
                {"name": "hangs", "type": "slack", "url": "http://127.0.0.1:%d/%s" % (listener.getsockname()[1], TOKEN)},
            ]
            common = {"incident": INCIDENT, "outbox_dir": str(tmp_path), "read_timeout": 0.5, "budget": 1.5}
            began = time.monotonic()
            ok, started = run(dict(common, mode="start", channels=channels, notice="started", oncall=ONCALL))
            returned = time.monotonic() - began
            ok2, collected = run(dict(common, mode="collect"))
    finally:
        listener.close()
    assert ok and ok2
    assert returned < 1.0, returned
    assert started["changed"] is True and started["seq"] == 1
    assert started["outbox"] == str(tmp_path / INCIDENT["id"])
    assert all(r["ok"] is None for r in started["results"]) and started["sent"] == 0
    assert "in the background" in started["msg"]
    assert collected["changed"] is True
    (message,) = collected["messages"]
    assert [(r["name"], r["ok"]) for r in message["results"]] == [("pager", True), ("hangs", False)]
    assert collected["response"]["acknowledged"] is False
    assert collected["undelivered"][0]["channel"] == "hangs"
    assert "hangs (connected, but no answer within the read timeout" in collected["msg"]
    assert_clean(started, *[c["url"] for c in channels])
    assert_clean(collected, *[c["url"] for c in channels])


def test_start_needs_an_incident_id(tmp_path):
    ok, result = run({"mode": "start", "notice": "started", "outbox_dir": str(tmp_path),
                      "channels": [{"name": "s", "type": "slack", "url": "https://hooks.example.com/" + TOKEN}]})
    assert not ok and "mode=start needs incident.id" in result["msg"]
    assert list(tmp_path.iterdir()) == []


def test_start_in_check_mode_starts_nothing_and_says_what_it_would_do(tmp_path):
    with Receiver() as rx:
        ok, result = run({"mode": "start", "notice": "started", "incident": INCIDENT, "outbox_dir": str(tmp_path),
                          "channels": channels_for(rx)}, check_mode=True)
        time.sleep(0.2)
    assert ok and result["changed"] is False
    assert result["msg"] == "check mode: would notify slack-incidents, dingtalk-oncall, pager (started); nothing sent"
    assert rx.requests == [] and list(tmp_path.iterdir()) == []


def test_collect_in_check_mode_waits_for_nothing_and_marks_nothing(tmp_path):
    ok, result = run({"mode": "collect", "incident": INCIDENT, "outbox_dir": str(tmp_path)}, check_mode=True)
    assert ok and result["changed"] is False and result["messages"] == [] and result["response"] is None
    assert result["msg"].startswith("check mode: nothing was sent by this run")


def test_collect_with_fail_on_error_fails_naming_the_channel(tmp_path):
    dead = _dead_url()
    common = {"incident": INCIDENT, "outbox_dir": str(tmp_path), "retries": 1}
    run(dict(common, mode="start", notice="resolved", channels=[{"name": "dead", "type": "slack", "url": dead}]))
    ok, result = run(dict(common, mode="collect", fail_on_error=True))
    assert not ok and "not delivered" in result["msg"] and "dead (connection failed" in result["msg"]
    assert_clean(result, dead)


def test_send_bounds_the_whole_message_by_the_budget():
    listener = _hanging_listener()
    try:
        began = time.monotonic()
        ok, result = run({"notice": "update", "incident": INCIDENT, "budget": 0.8, "read_timeout": 5,
                          "channels": [{"name": "hangs", "type": "slack",
                                        "url": "http://127.0.0.1:%d/x" % listener.getsockname()[1]}]})
        elapsed = time.monotonic() - began
    finally:
        listener.close()
    assert ok and result["results"][0]["budget_spent"] is True
    assert elapsed < 0.8 + _notify.JOIN_GRACE_S + 0.4
