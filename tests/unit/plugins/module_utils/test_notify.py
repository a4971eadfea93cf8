# -*- coding: utf-8 -*-
# Copyright (c) sre.incident contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""_notify against real HTTP receivers on 127.0.0.1 (no mocks of urllib)."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import http.server
import json
import socket
import threading
import time
import urllib.parse

import pytest

from ansible_collections.sre.incident.plugins.module_utils import _http, _notify
from ansible_collections.sre.incident.plugins.module_utils._oncall import DEFAULT_ROTATION, who_is_on_call

NOW = dt.datetime(2026, 11, 27, 2, 2, 50, tzinfo=dt.timezone.utc)  # 10:02:50 in Shanghai
INCIDENT = {
    "id": "INC-20261127-001",
    "severity": "P0",
    "service": "recommendation-service",
    "commander": "@alice",
    "war_room": "https://meet.example.com/inc-001",
    "response_deadline": "2026-11-27T10:05:00+08:00",
    "resolve_deadline": "2026-11-27T10:30:00+08:00",
    "started_at": "2026-11-27T10:00:00+08:00",
}
SECRET = "SECabc123notarealsecret456"
TOKEN = "tok-9f8e7d6c5b4a"


class Receiver:
    """A real HTTP server in a thread; answers with scripted statuses, records every request."""

    def __init__(self, statuses=(200,), body=b"ok", headers=None):
        self.statuses = list(statuses)
        self.body = body
        self.extra_headers = headers or {}
        self.requests = []
        self.received_at = []
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server API
                receiver.received_at.append(time.monotonic())
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                receiver.requests.append({
                    "path": self.path,
                    "headers": dict(self.headers.items()),
                    "body": raw,
                })
                index = len(receiver.requests) - 1
                status = receiver.statuses[min(index, len(receiver.statuses) - 1)]
                self.send_response(status)
                for key, value in receiver.extra_headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(receiver.body)))
                self.end_headers()
                self.wfile.write(receiver.body)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def url(self, path="/hook"):
        return "http://127.0.0.1:%d%s" % (self.port, path)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()

    def json(self, index=0):
        return json.loads(self.requests[index]["body"].decode("utf-8"))


@pytest.fixture(autouse=True)
def no_proxy(monkeypatch):
    for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def sleeps():
    return []


def _send(channels, sleeps, **kwargs):
    kwargs.setdefault("notice", "started")
    kwargs.setdefault("incident", INCIDENT)
    kwargs.setdefault("oncall", who_is_on_call(DEFAULT_ROTATION, at="2026-11-27T10:02:50+08:00"))
    kwargs.setdefault("now", NOW)
    kwargs.setdefault("read_timeout", 2.0)
    return _notify.notify(channels, sleep=sleeps.append, **kwargs)


def dead_port():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


def assert_no_secrets(outcome, *secrets):
    dumped = json.dumps(outcome["results"]) + json.dumps({k: v for k, v in outcome.items() if k != "results"})
    for secret in secrets:
        assert secret not in dumped, secret


# --- payloads -----------------------------------------------------------------------------------

def test_slack_payload(sleeps):
    with Receiver() as rx:
        out = _send([{"name": "slack", "type": "slack", "url": rx.url("/services/T0/B0/" + TOKEN)}], sleeps)
    assert out["sent"] == 1 and out["failed_count"] == 0
    finished_at = out["results"][0].pop("finished_at")
    assert dt.datetime.fromisoformat(finished_at.replace("Z", "+00:00")) <= dt.datetime.now(dt.timezone.utc)
    assert out["results"] == [{"name": "slack", "type": "slack", "enabled": True, "ok": True,
                               "status": 200, "attempts": 1, "error": None, "budget_spent": False}]
    assert len(rx.requests) == 1
    req = rx.requests[0]
    assert req["path"] == "/services/T0/B0/" + TOKEN
    assert req["headers"]["Content-Type"].startswith("application/json")
    body = rx.json()
    text = body["text"]
    for needle in ("P0", "recommendation-service", "INC-20261127-001", "@alice", "@oncall-day",
                   "https://meet.example.com/inc-001", "response deadline in 2m 10s",
                   "resolve deadline in 27m 10s"):
        assert needle in text, needle
    assert body["blocks"][0]["text"]["type"] == "mrkdwn"
    assert body["blocks"][0]["text"]["text"] == text
    assert_no_secrets(out, rx.url("/services/T0/B0/" + TOKEN), TOKEN)


def test_dingtalk_signed_payload(sleeps, monkeypatch):
    fixed_ms = 1795744970123
    monkeypatch.setattr(_notify.time, "time", lambda: fixed_ms / 1000.0)
    with Receiver(body=b'{"errcode":0,"errmsg":"ok"}') as rx:
        url = rx.url("/robot/send?access_token=" + TOKEN)
        out = _send([{"name": "ding", "type": "dingtalk", "url": url, "secret": SECRET,
                      "at_mobiles": ["13800000000"]}], sleeps, text="ladder rung 1 failed")
    assert out["results"][0]["ok"] is True, out["results"]
    path = rx.requests[0]["path"]
    parsed = urllib.parse.urlsplit(path)
    assert parsed.path == "/robot/send"
    query = urllib.parse.parse_qs(parsed.query)
    assert query["access_token"] == [TOKEN]
    timestamp = query["timestamp"][0]
    assert timestamp == str(fixed_ms)
    # The signature, computed independently of the code under test.
    string_to_sign = "{}\n{}".format(timestamp, SECRET).encode("utf-8")
    expected = base64.b64encode(hmac.new(SECRET.encode("utf-8"), string_to_sign, hashlib.sha256).digest()).decode()
    assert query["sign"] == [expected]
    # and it is URL-quoted on the wire (base64 has + / =)
    raw_sign = parsed.query.split("sign=", 1)[1].split("&", 1)[0]
    assert raw_sign == urllib.parse.quote_plus(expected)
    body = rx.json()
    assert body["msgtype"] == "markdown"
    assert body["markdown"]["title"].startswith("[P0] Incident started")
    md = body["markdown"]["text"]
    for needle in ("recommendation-service", "INC-20261127-001", "@alice", "@oncall-day",
                   "resolve deadline in 27m 10s", "ladder rung 1 failed", "@13800000000"):
        assert needle in md, needle
    assert body["at"] == {"atMobiles": ["13800000000"], "atUserIds": [], "isAtAll": False}
    assert_no_secrets(out, SECRET, TOKEN, url)


def test_dingtalk_unsigned_has_no_sign(sleeps):
    with Receiver(body=b'{"errcode":0}') as rx:
        out = _send([{"name": "ding", "type": "dingtalk", "url": rx.url("/robot/send?access_token=x")}], sleeps)
    assert out["sent"] == 1
    assert "sign=" not in rx.requests[0]["path"]
    assert "at" not in rx.json()


def test_dingtalk_errcode_in_200_is_a_failure_without_retry(sleeps):
    with Receiver(body=b'{"errcode":310000,"errmsg":"sign not match"}') as rx:
        out = _send([{"name": "ding", "type": "dingtalk", "url": rx.url("/robot/send?access_token=" + TOKEN),
                      "secret": SECRET}], sleeps)
    res = out["results"][0]
    assert res["ok"] is False and res["status"] == 200 and res["attempts"] == 1
    assert "310000" in res["error"] and "sign not match" in res["error"]
    assert len(rx.requests) == 1
    assert out["failed_count"] == 1
    assert_no_secrets(out, SECRET, TOKEN)


def test_webhook_payload_and_secret_headers(sleeps):
    with Receiver(statuses=(204,), body=b"") as rx:
        out = _send([{"name": "pager", "type": "webhook", "url": rx.url("/hooks/" + TOKEN),
                      "headers": {"Authorization": "Bearer " + SECRET}}], sleeps, notice="mitigated",
                    text="restart worked")
    assert out["results"][0]["ok"] is True and out["results"][0]["status"] == 204
    req = rx.requests[0]
    assert req["headers"]["Authorization"] == "Bearer " + SECRET
    body = rx.json()
    assert body["event"] == "mitigated"
    assert body["incident"]["id"] == "INC-20261127-001"
    assert body["incident"]["severity"] == "P0"
    assert body["incident"]["resolve_deadline"] == "2026-11-27T10:30:00+08:00"
    assert body["oncall"]["handle"] == "@oncall-day"
    assert body["oncall"]["contacts"]["dba"] == "@dba"
    assert "restart worked" in body["text"]
    assert body["title"] == "[P0] Incident mitigated: recommendation-service (INC-20261127-001)"
    assert_no_secrets(out, SECRET, TOKEN)


# --- retries --------------------------------------------------------------------------------------

def test_retries_on_500_then_ok(sleeps):
    with Receiver(statuses=(500, 500, 200)) as rx:
        out = _send([{"name": "slack", "type": "slack", "url": rx.url()}], sleeps)
    res = out["results"][0]
    assert res["ok"] is True and res["attempts"] == 3 and res["status"] == 200 and res["error"] is None
    assert len(rx.requests) == 3
    assert sleeps == [0.5, 1.0]


def test_retry_sleeps_are_real_and_short():
    with Receiver(statuses=(503, 200)) as rx:
        out = _notify.notify([{"name": "s", "type": "slack", "url": rx.url()}], "update",
                             incident=INCIDENT, now=NOW, backoff_base=0.01)
    assert out["results"][0]["attempts"] == 2 and out["sent"] == 1


def test_retry_on_429_honours_short_retry_after(sleeps):
    with Receiver(statuses=(429, 200), headers={"Retry-After": "1"}) as rx:
        out = _send([{"name": "s", "type": "slack", "url": rx.url()}], sleeps)
    assert out["results"][0]["attempts"] == 2 and out["results"][0]["ok"] is True
    assert sleeps == [1.0]


def test_no_retry_on_400(sleeps):
    with Receiver(statuses=(400,), body=b"invalid_payload") as rx:
        out = _send([{"name": "slack", "type": "slack", "url": rx.url("/services/" + TOKEN)}], sleeps)
    res = out["results"][0]
    assert res["ok"] is False and res["attempts"] == 1 and res["status"] == 400
    assert "400" in res["error"] and "invalid_payload" in res["error"]
    assert len(rx.requests) == 1 and sleeps == []
    assert out["failed_count"] == 1 and out["sent"] == 0


def test_all_attempts_500_gives_up(sleeps):
    with Receiver(statuses=(500,)) as rx:
        out = _send([{"name": "s", "type": "slack", "url": rx.url()}], sleeps, attempts=2)
    res = out["results"][0]
    assert res["ok"] is False and res["attempts"] == 2 and res["status"] == 500
    assert len(rx.requests) == 2 and sleeps == [0.5]


def test_redirect_is_not_followed(sleeps):
    with Receiver(statuses=(302,), headers={"Location": "http://127.0.0.1:1/elsewhere"}) as rx:
        out = _send([{"name": "s", "type": "slack", "url": rx.url()}], sleeps)
    res = out["results"][0]
    assert res["ok"] is False and res["status"] == 302 and res["attempts"] == 1
    assert "redirect" in res["error"]


def test_dead_port_fails_without_exception(sleeps):
    url = "http://127.0.0.1:%d/hooks/%s" % (dead_port(), TOKEN)
    out = _send([{"name": "pager", "type": "webhook", "url": url, "headers": {"X-Token": SECRET}}], sleeps)
    res = out["results"][0]
    assert res["ok"] is False and res["status"] is None and res["attempts"] == 3
    assert res["error"].startswith("connection failed")
    assert sleeps == [0.5, 1.0]
    assert_no_secrets(out, url, TOKEN, SECRET, "127.0.0.1:%s" % url.split(":")[2].split("/")[0])


def test_timeout_is_retried(sleeps):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(5)  # accepts connections, never answers
    try:
        url = "http://127.0.0.1:%d/x" % listener.getsockname()[1]
        out = _send([{"name": "slow", "type": "slack", "url": url}], sleeps, read_timeout=0.2, attempts=2)
    finally:
        listener.close()
    res = out["results"][0]
    assert res["ok"] is False and res["attempts"] == 2
    assert res["error"] == "connected, but no answer within the read timeout (0.2 s)"


def test_one_failing_channel_does_not_stop_the_others(sleeps):
    with Receiver() as good:
        out = _send([
            {"name": "dead", "type": "slack", "url": "http://127.0.0.1:%d/x" % dead_port()},
            {"name": "good", "type": "webhook", "url": good.url()},
            {"name": "off", "type": "slack", "url": good.url("/off"), "enabled": False},
        ], sleeps)
    assert [r["ok"] for r in out["results"]] == [False, True, None]
    assert out["sent"] == 1 and out["failed_count"] == 1
    assert out["channels"] == ["dead", "good"]
    assert [r["path"] for r in good.requests] == ["/hook"]


def test_check_mode_sends_nothing(sleeps):
    with Receiver() as rx:
        out = _send([{"name": "s", "type": "slack", "url": rx.url()}], sleeps, check_mode=True)
    assert rx.requests == []
    assert out["sent"] == 0 and out["failed_count"] == 0
    assert out["results"][0]["ok"] is None and out["results"][0]["attempts"] == 0
    assert "INC-20261127-001" in out["message"]


# --- redaction ------------------------------------------------------------------------------------

def test_scrub_replaces_urls_and_secrets():
    channel = {"name": "ding", "url": "https://oapi.example.com/robot/send?access_token=" + TOKEN,
               "secret": SECRET, "headers": {"Authorization": "Bearer xyz-123"}}
    text = ("failed https://oapi.example.com/robot/send?access_token=%s&timestamp=1&sign=abc "
            "secret %s token %s auth Bearer xyz-123 other http://x.example/y" % (TOKEN, SECRET, TOKEN))
    cleaned = _notify.scrub(text, channel)
    for secret in (TOKEN, SECRET, "xyz-123", "https://", "http://"):
        assert secret not in cleaned
    assert "<ding>" in cleaned


def test_exception_text_with_url_is_scrubbed(monkeypatch, sleeps):
    url = "https://hooks.example.com/services/" + TOKEN

    def boom(request, timeout):
        raise RuntimeError("cannot reach %s" % request.full_url)

    class Opener:
        open = staticmethod(boom)

    monkeypatch.setattr(_http, "_opener", lambda read_timeout, redirects: Opener)
    out = _send([{"name": "slack", "type": "slack", "url": url}], sleeps)
    res = out["results"][0]
    assert res["ok"] is False and res["attempts"] == 1  # unknown errors are not retried
    assert TOKEN not in res["error"] and "https://" not in res["error"] and "<slack>" in res["error"]


# --- validation -----------------------------------------------------------------------------------

@pytest.mark.parametrize("channels, needle", [
    ([{"name": "teams", "type": "teams", "url": "https://x.example/" + TOKEN}], "channel teams has unknown type 'teams'"),
    ([{"type": "slack"}], "channel channels[0] has no url"),
    ([{"name": "a", "type": "slack", "url": "https://a.example/1"}, {"type": "slack", "url": ""}], "channels[1] has no url"),
    ([{"name": "bad", "type": "slack", "url": "ftp:/" + TOKEN}], "channel bad has a malformed url"),
    ([{"name": "s", "type": "slack", "url": "https://a.example/1", "secret": SECRET}], "secret is only used by dingtalk"),
    ([{"name": "d", "type": "slack", "url": "https://a.example/1"}, {"name": "d", "type": "slack", "url": "https://b.example/1"}], "used twice"),
    ("nope", "must be a list"),
])
def test_bad_channels_fail_naming_the_channel_not_the_url(channels, needle):
    with pytest.raises(_notify.NotifyError) as info:
        _notify.notify(channels, "started", incident=INCIDENT, now=NOW)
    assert needle in str(info.value)
    assert TOKEN not in str(info.value) and SECRET not in str(info.value)


def test_disabled_channel_may_have_no_url():
    out = _notify.notify([{"name": "later", "type": "slack", "enabled": False}], "update", incident=INCIDENT, now=NOW)
    assert out["results"][0]["enabled"] is False and out["channels"] == []


@pytest.mark.parametrize("kwargs, needle", [
    ({"notice": "exploded"}, "notice 'exploded'"),
    ({"incident": dict(INCIDENT, resolve_deadline="tomorrow")}, "incident.resolve_deadline"),
    ({"attempts": 0}, "retries must be"),
    ({"attempts": 11}, "retries must be"),
    ({"connect_timeout": 0}, "connect_timeout must be"),
    ({"read_timeout": 301}, "read_timeout must be"),
    ({"budget": -1}, "budget must be"),
    ({"oncall": {"shifts": {"weekday_day": {"handle": "@d", "start": "25:00"}, "weekday_night": "@n",
                            "weekend": "@w"}}}, "25:00"),
])
def test_bad_inputs(kwargs, needle):
    notice = kwargs.pop("notice", "started")
    args = dict(incident=INCIDENT, now=NOW)
    args.update(kwargs)
    with pytest.raises(_notify.NotifyError) as info:
        _notify.notify([], notice, **args)
    assert needle in str(info.value)


# --- rendering ------------------------------------------------------------------------------------

@pytest.mark.parametrize("seconds, expected", [
    (1630, "27m 10s"), (180, "3m"), (45, "45s"), (0, "0s"), (7500, "2h 05m"), (3600, "1h"),
    (93600, "1d 2h"), (86400, "1d"),
])
def test_format_duration(seconds, expected):
    assert _notify.format_duration(seconds) == expected


def test_deadline_wording():
    now = dt.datetime(2026, 1, 1, 12, 0, tzinfo=dt.timezone.utc)
    assert _notify.format_deadline("resolve", now + dt.timedelta(minutes=27, seconds=10), now) == "resolve deadline in 27m 10s"
    assert _notify.format_deadline("resolve", now - dt.timedelta(minutes=3), now) == "resolve deadline passed 3m ago"


@pytest.mark.parametrize("notice", _notify.NOTICES)
def test_every_notice_names_everything(notice):
    oncall = who_is_on_call(DEFAULT_ROTATION, at="2026-11-28T23:00:00+08:00")  # Saturday night
    text = _notify.render_plain(_notify.render_fields(notice, dict(INCIDENT, commander=None), oncall, "note here", NOW))
    for needle in ("P0", "recommendation-service", "INC-20261127-001", "@incident-commander",
                   "@oncall-weekend", "https://meet.example.com/inc-001", "resolve deadline", "note here"):
        assert needle in text, (notice, needle)
    assert _notify.NOTICE_HEADLINES[notice] in text.splitlines()[0]


def test_escalate_names_the_humans():
    oncall = who_is_on_call(DEFAULT_ROTATION, at="2026-11-27T10:00:00+08:00")
    text = _notify.render_plain(_notify.render_fields("escalate", INCIDENT, oncall, None, NOW))
    assert "Escalate to: @alice, @incident-commander, @tech-lead" in text


def test_missing_people_and_deadlines_render_as_unassigned():
    text = _notify.render_plain(_notify.render_fields("update", {"id": "INC-9", "severity": "P2", "service": "svc"}, {}, None, NOW))
    assert "Commander: unassigned" in text and "On-call: unassigned" in text
    assert "SLA" not in text and "War room" not in text


def test_naive_deadline_is_utc():
    text = _notify.render_plain(_notify.render_fields("update", {"resolve_deadline": "2026-11-27T02:05:00"}, {}, None, NOW))
    assert "resolve deadline in 2m 10s" in text


def test_rotation_as_oncall_is_evaluated():
    out = _notify.notify([], "started", incident=INCIDENT, oncall=DEFAULT_ROTATION, now=NOW)
    assert out["oncall"]["shift"] in ("weekday_day", "weekday_night", "weekend")
    assert out["oncall"]["handle"] in out["message"]


# --- the budget: timeouts and retries cut to one deadline ------------------------------------------

def test_connect_timeout_is_the_configured_one_cut_to_the_deadline():
    assert _http.connect_timeout_for(now=100.0, deadline=110.0, connect_timeout=2.0) == 2.0
    assert _http.connect_timeout_for(now=109.0, deadline=110.0, connect_timeout=2.0) == 1.0
    # too little left for an attempt to mean anything: not started
    assert _http.connect_timeout_for(now=109.8, deadline=110.0, connect_timeout=2.0) is None
    assert _http.connect_timeout_for(now=111.0, deadline=110.0, connect_timeout=2.0) is None


def test_read_timeout_is_cut_to_the_deadline_and_never_zero():
    assert _http.read_timeout_for(now=100.0, deadline=110.0, read_timeout=5.0) == 5.0
    assert _http.read_timeout_for(now=107.5, deadline=110.0, read_timeout=5.0) == 2.5
    # 0 would make the socket non-blocking: the smallest read timeout instead
    assert _http.read_timeout_for(now=110.5, deadline=110.0, read_timeout=5.0) == _http.MIN_READ_S


def test_retry_delay_backs_off_and_stops_when_the_next_attempt_would_not_fit():
    assert _http.retry_delay(1, None, now=0.0, deadline=10.0) == 0.5
    assert _http.retry_delay(2, None, now=0.0, deadline=10.0) == 1.0
    assert _http.retry_delay(5, None, now=0.0, deadline=10.0) == _http.BACKOFF_CAP
    assert _http.retry_delay(1, 1.2, now=0.0, deadline=10.0) == 1.2            # a short Retry-After
    assert _http.retry_delay(1, 60.0, now=0.0, deadline=10.0) == _http.BACKOFF_CAP  # never a long one
    # 0.5 s of sleep + the shortest attempt (0.25 s) must end by the deadline
    assert _http.retry_delay(1, None, now=9.25, deadline=10.0) == 0.5
    assert _http.retry_delay(1, None, now=9.3, deadline=10.0) is None


def test_a_hanging_channel_costs_one_budget_with_the_attempts_that_fit():
    """Read timeout 0.4 s, budget 1.3 s: 0.4 + 0.5 sleep + 0.4 (cut to what is left) = 2 attempts, given up by
    the deadline (0.15 s to spare for the first attempt's connect on a loaded machine)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(5)  # accepts, never answers
    try:
        url = "http://127.0.0.1:%d/x" % listener.getsockname()[1]
        started = time.monotonic()
        out = _notify.notify([{"name": "hangs", "type": "slack", "url": url}], "started", incident=INCIDENT,
                             now=NOW, read_timeout=0.4, budget=1.3, attempts=5)
        elapsed = time.monotonic() - started
    finally:
        listener.close()
    res = out["results"][0]
    assert res["ok"] is False and res["attempts"] == 2 and res["budget_spent"] is True
    assert res["error"].startswith("connected, but no answer within the read timeout (0.")
    assert 1.1 <= elapsed <= 1.3 + _notify.JOIN_GRACE_S + 0.3


def test_connect_timeout_is_separate_from_the_read_timeout():
    """A listener whose backlog is full drops new handshakes: the connect times out after connect_timeout,
    not after the (long) read timeout."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    fillers = []
    try:
        port = listener.getsockname()[1]
        for _filler in range(8):   # fill the accept queue (nobody accepts)
            filler = socket.socket()
            filler.setblocking(False)
            filler.connect_ex(("127.0.0.1", port))
            fillers.append(filler)
        time.sleep(0.1)
        started = time.monotonic()
        out = _notify.notify([{"name": "full", "type": "webhook", "url": "http://127.0.0.1:%d/x" % port}], "started",
                             incident=INCIDENT, now=NOW, connect_timeout=0.3, read_timeout=30, attempts=1, budget=20)
        elapsed = time.monotonic() - started
    finally:
        for filler in fillers:
            filler.close()
        listener.close()
    res = out["results"][0]
    assert res["ok"] is False and res["error"] == "connect timed out after 0.3 s"
    assert elapsed < 2.0


def test_one_slow_channel_never_delays_another():
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(5)
    try:
        with Receiver() as good:
            started = time.monotonic()
            out = _notify.notify([
                {"name": "hangs", "type": "slack", "url": "http://127.0.0.1:%d/x" % listener.getsockname()[1]},
                {"name": "good", "type": "webhook", "url": good.url()},
            ], "started", incident=INCIDENT, now=NOW, read_timeout=1.0, budget=1.5, attempts=1)
            elapsed = time.monotonic() - started
            received_at = good.received_at[0]
    finally:
        listener.close()
    hangs, ok = out["results"]
    assert hangs["ok"] is False and ok["ok"] is True
    # the good channel got its message at once, not after the hanging one's timeout
    assert received_at - started < 0.8
    assert dt.datetime.fromisoformat(ok["finished_at"].replace("Z", "+00:00")) < \
        dt.datetime.fromisoformat(hangs["finished_at"].replace("Z", "+00:00"))
    assert elapsed < 1.5 + _notify.JOIN_GRACE_S + 0.3


def test_a_channel_stuck_outside_the_socket_timeouts_is_given_up_at_the_deadline():
    """A DNS lookup that hangs is not bounded by socket timeouts; the deadline still ends the message."""
    release = threading.Event()
    checked = _notify.validate_channels([{"name": "stuck", "type": "slack", "url": "https://chat.example/x"}])
    clock_start = time.monotonic()
    results = _notify.send_all(checked, lambda channel, warning: {}, deadline=clock_start + 0.3,
                               before_send=lambda channel: release.wait(5))
    release.set()
    assert time.monotonic() - clock_start < 0.3 + _notify.JOIN_GRACE_S + 0.3
    assert results[0]["ok"] is False and results[0]["budget_spent"] is True
    assert results[0]["error"] == "gave up: still no outcome at the deadline"


def test_not_tried_when_the_budget_is_spent_before_the_channels_turn():
    checked = _notify.validate_channels([{"name": "late", "type": "slack", "url": "http://127.0.0.1:9/x"}])
    result = _notify.send_channel(checked[0], {}, deadline=time.monotonic() - 1)
    assert result["ok"] is False and result["attempts"] == 0 and result["budget_spent"] is True
    assert result["error"] == "not tried: the budget was spent before this channel's turn"


def test_warning_is_the_first_line_of_every_format():
    rendered = _notify.with_warning(_notify.render_fields("resolved", INCIDENT, now=NOW), "earlier messages may be missing")
    assert _notify.render_plain(rendered).splitlines()[1] == "Warning: earlier messages may be missing"
    assert "*Warning:* earlier messages may be missing" in _notify.render_slack(rendered)
