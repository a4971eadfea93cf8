# -*- coding: utf-8 -*-
# Copyright (c) sre.incident contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""sre.incident.notify main() with real HTTP receivers; exit_json/fail_json patched."""

from __future__ import annotations

import http.server
import json
import socket
import threading

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


@pytest.fixture(autouse=True)
def fast_retries_no_proxy(monkeypatch):
    monkeypatch.setattr(_notify.time, "sleep", lambda seconds: None)  # keep retries fast
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
        ok, result = run({"channels": channels_for(rx), "stage": "started", "incident": INCIDENT,
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


def test_check_mode_sends_nothing():
    with Receiver() as rx:
        ok, result = run({"channels": channels_for(rx), "stage": "update", "incident": INCIDENT,
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
                      "stage": "escalate", "incident": INCIDENT})
    assert ok
    # a "failed" key in the result would make Ansible fail the task despite fail_on_error=false
    assert "failed" not in result
    assert result["changed"] is False
    assert result["failed_count"] == 1 and result["sent"] == 0
    assert result["results"][0]["attempts"] == 3 and result["results"][0]["ok"] is False
    assert_clean(result, url)


def test_fail_on_error_fails_with_results_and_no_secret():
    url = _dead_url()
    ok, result = run({"channels": [{"name": "dead", "type": "slack", "url": url}], "stage": "started",
                      "incident": INCIDENT, "fail_on_error": True, "retries": 1})
    assert not ok
    assert "could not notify dead" in result["msg"]
    assert result["results"][0]["attempts"] == 1
    assert_clean(result, url)


def test_partial_failure_is_changed():
    with Receiver() as rx:
        ok, result = run({"channels": [{"name": "good", "type": "slack", "url": rx.url("/ok")},
                                       {"name": "dead", "type": "slack", "url": _dead_url()}],
                          "stage": "resolved", "incident": INCIDENT})
    assert ok and result["changed"] is True and result["sent"] == 1 and result["failed_count"] == 1


@pytest.mark.parametrize("channels, needle", [
    ([{"name": "teams", "type": "teams", "url": "https://hooks.example.com/" + TOKEN}], "channel teams has unknown type"),
    ([{"name": "ok", "type": "slack", "url": "https://hooks.example.com/" + TOKEN}, {"type": "slack"}],
     "channel channels[1] has no url"),
    ([{"name": "nourl", "type": "dingtalk", "secret": SECRET}], "channel nourl has no url"),
])
def test_bad_channel_fails_naming_it_never_the_url(channels, needle):
    ok, result = run({"channels": channels, "stage": "started", "incident": INCIDENT})
    assert not ok
    assert needle in result["msg"]
    assert_clean(result, "https://hooks.example.com/" + TOKEN)


def test_bad_stage_and_severity_fail():
    ok, result = run({"channels": [], "stage": "panic"})
    assert not ok and "panic" in result["msg"]
    ok, result = run({"channels": [], "stage": "started", "incident": {"severity": "SEV9"}})
    assert not ok and "SEV9" in result["msg"]


def test_bad_deadline_fails_before_sending():
    with Receiver() as rx:
        ok, result = run({"channels": channels_for(rx), "stage": "started",
                          "incident": dict(INCIDENT, resolve_deadline="half past ten")})
    assert not ok and "incident.resolve_deadline" in result["msg"]
    assert rx.requests == []


def test_no_channels_warns_and_changes_nothing():
    ok, result = run({"stage": "update", "incident": INCIDENT})
    assert ok and result["changed"] is False and result["results"] == []


def test_disabled_channel_is_not_sent():
    with Receiver() as rx:
        ok, result = run({"channels": [{"name": "quiet", "type": "slack", "url": rx.url("/q"), "enabled": False}],
                          "stage": "update", "incident": INCIDENT})
    assert ok and rx.requests == [] and result["results"][0]["enabled"] is False
    assert result["changed"] is False
