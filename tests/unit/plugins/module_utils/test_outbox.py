# -*- coding: utf-8 -*-
# Copyright (c) sre.incident contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""_outbox: messages handed to a real detached sender process, collected later, against real
loopback endpoints (one that answers, one that refuses, one that accepts and never answers)."""

from __future__ import annotations

import http.server
import json
import os
import socket
import threading
import time

import pytest

from ansible_collections.sre.incident.plugins.module_utils import _notify, _outbox

TOKEN = "tok-outbox-5e4d3c2b1a"
SECRET = "SECoutbox-0a1b2c3d"
INCIDENT = {"id": "INC-20261127-042", "severity": "P0", "service": "recommendation-service"}
FAST = {"connect_timeout": 1.0, "read_timeout": 0.5, "attempts": 3, "budget": 1.5}


class Endpoints:
    """An answering HTTP server (503 to the started message on /flaky), a refused port, a hanging socket."""

    def __init__(self):
        self.received = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server API
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
                outer.received.append({"path": self.path, "body": body, "at": time.monotonic()})
                status = 503 if self.path.startswith("/flaky") and body.get("event") == "started" else 200
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()
        self.hanging = socket.socket()
        self.hanging.bind(("127.0.0.1", 0))
        self.hanging.listen(16)
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        self.refused = probe.getsockname()[1]
        probe.close()

    def url(self, path):
        return "http://127.0.0.1:%d%s" % (self.server.server_address[1], path)

    def channel(self, name):
        return {
            "answers": {"name": "answers", "type": "webhook", "url": self.url("/answers/" + TOKEN),
                        "headers": {"Authorization": "Bearer " + SECRET}},
            "flaky": {"name": "flaky", "type": "webhook", "url": self.url("/flaky")},
            "refuses": {"name": "refuses", "type": "slack", "url": "http://127.0.0.1:%d/x" % self.refused},
            "hangs": {"name": "hangs", "type": "slack", "url": "http://127.0.0.1:%d/%s" % (
                self.hanging.getsockname()[1], TOKEN)},
        }[name]

    def close(self):
        self.server.shutdown()
        self.server.server_close()
        self.hanging.close()


@pytest.fixture
def endpoints(monkeypatch):
    for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    found = Endpoints()
    yield found
    found.close()


@pytest.fixture
def outbox(tmp_path):
    return _outbox.Outbox(tmp_path / "outbox", INCIDENT["id"])


def start(outbox, notice, channels, **settings):
    settings = dict(FAST, **settings)
    prepared = _notify.prepare(channels, notice, incident=INCIDENT, **settings)
    return _outbox.start(outbox, prepared, settings)


def files_text(outbox):
    return "".join(open(os.path.join(outbox.dir, name), encoding="utf-8").read()
                   for name in os.listdir(outbox.dir) if not name.startswith(".lock"))


# --- start returns at once; collect waits at most its budget ----------------------------------------

def test_start_returns_at_once_while_the_sender_works_beside(endpoints, outbox):
    began = time.monotonic()
    message, pid = start(outbox, "started", [endpoints.channel(n) for n in ("answers", "refuses", "hangs")])
    returned = time.monotonic() - began
    assert returned < 0.5, returned          # not the 1.5 s budget of the hanging channel
    assert message["seq"] == 1 and pid != os.getpid()
    assert _outbox.settled(outbox.messages()[0]) is False   # still being sent

    collected = _outbox.collect(outbox, budget=10)

    assert collected["waited_s"] < FAST["budget"] + _outbox.GRACE_S + 0.5
    (outcome,) = collected["messages"]
    assert outcome["state"] == "partial"
    by_name = {r["name"]: r for r in outcome["results"]}
    assert by_name["answers"]["ok"] is True
    assert by_name["refuses"]["ok"] is False and "refused" in by_name["refuses"]["error"]
    assert by_name["hangs"]["ok"] is False and "no answer within the read timeout" in by_name["hangs"]["error"]
    assert [u["channel"] for u in collected["undelivered"]] == ["refuses", "hangs"]
    assert "refuses (" in outcome["summary"] and "hangs (" in outcome["summary"]
    assert collected["response"]["acknowledged"] is False and collected["response"]["at"] is None
    assert [f["name"] for f in collected["response"]["failed"]] == ["refuses", "hangs"]
    assert [r["path"].split("/")[1] for r in endpoints.received] == ["answers"]


def test_collect_gives_up_at_its_budget_and_says_the_message_is_still_pending(endpoints, outbox):
    start(outbox, "started", [endpoints.channel("hangs")], read_timeout=5, budget=5)
    began = time.monotonic()

    collected = _outbox.collect(outbox, budget=0.4)

    assert 0.35 <= time.monotonic() - began < 1.5
    (outcome,) = collected["messages"]
    assert outcome["state"] == "pending"
    assert outcome["results"][0]["ok"] is False
    assert "no outcome yet when the collect budget ran out" in outcome["results"][0]["error"]
    assert "still being sent" in outcome["summary"]


def test_every_channel_acknowledged_ticks_the_response_at_the_last_acknowledgement(endpoints, outbox):
    start(outbox, "started", [endpoints.channel("answers"), endpoints.channel("flaky")], budget=4)
    collected = _outbox.collect(outbox, budget=10)
    (outcome,) = collected["messages"]
    # flaky answers 503 to the started message on every attempt
    assert outcome["state"] == "partial" and collected["response"]["acknowledged"] is False

    outbox2 = _outbox.Outbox(outbox.root, "INC-other-1")
    start(outbox2, "started", [endpoints.channel("answers")])
    collected = _outbox.collect(outbox2, budget=10)
    response = collected["response"]
    assert response["acknowledged"] is True and response["channels"] == ["answers"]
    assert response["at"] == collected["messages"][0]["results"][0]["finished_at"]
    assert response["text"].startswith("every enabled channel acknowledged the started message")


def test_a_collected_message_is_collected_once_and_check_mode_marks_nothing(endpoints, outbox):
    start(outbox, "started", [endpoints.channel("answers")])
    assert len(_outbox.collect(outbox, budget=10, check_mode=True)["messages"]) == 1
    first = _outbox.collect(outbox, budget=10)
    assert len(first["messages"]) == 1 and first["changed"] is True
    again = _outbox.collect(outbox, budget=10)
    assert again["messages"] == [] and again["changed"] is False and again["response"] is None


# --- order per channel, and the warning when an earlier message was lost ---------------------------

def test_a_later_message_waits_for_the_earlier_one_on_each_channel_and_says_when_it_was_lost(endpoints, outbox):
    channels = [endpoints.channel("answers"), endpoints.channel("flaky"), endpoints.channel("hangs")]
    start(outbox, "started", channels, budget=3)     # room for flaky's three attempts
    start(outbox, "escalate", channels, budget=3)

    collected = _outbox.collect(outbox, budget=10)

    started, escalate = collected["messages"]
    assert (started["notice"], escalate["notice"]) == ("started", "escalate")
    # on each channel, the escalation was posted only after the start had its outcome there
    answers = [r for r in endpoints.received if r["path"].startswith("/answers")]
    assert [r["body"]["event"] for r in answers] == ["started", "escalate"]
    flaky = [r["body"]["event"] for r in endpoints.received if r["path"].startswith("/flaky")]
    assert flaky == ["started", "started", "started", "escalate"]
    hangs_started = next(r for r in started["results"] if r["name"] == "hangs")
    hangs_escalate = next(r for r in escalate["results"] if r["name"] == "hangs")
    # on the hanging channel both end at their deadlines, a few ms apart: the same millisecond under load
    assert hangs_escalate["finished_at"] >= hangs_started["finished_at"]
    # where the start was lost, the escalation says so; where it arrived, it does not
    by_name = {r["name"]: r for r in escalate["results"]}
    assert by_name["flaky"]["ok"] is True
    assert by_name["flaky"]["warning"].startswith("earlier messages may be missing on this channel: the started message")
    assert "may be missing" not in answers[-1]["body"]["text"]
    flaky_escalate = [r for r in endpoints.received if r["path"].startswith("/flaky")][-1]
    assert "Warning: earlier messages may be missing" in flaky_escalate["body"]["text"]
    assert "warning" not in by_name["answers"]
    assert "it said that earlier messages may be missing on flaky" in escalate["summary"]


def test_earlier_failures_wait_only_until_the_earlier_messages_deadline(outbox):
    """An earlier sender that died without writing: the next message waits for its deadline, no longer."""
    earlier = outbox.enqueue("started", "t", [{"name": "chat", "type": "slack"}], budget=0.3)
    later = outbox.enqueue("resolved", "t", [{"name": "chat", "type": "slack"}], budget=5)
    began = time.monotonic()
    failed = _outbox.earlier_failures(outbox, later, "chat")
    assert 0.2 <= time.monotonic() - began <= 0.3 + _outbox.GRACE_S + 0.5
    assert failed == [("started", "no outcome")]
    assert earlier["seq"] == 1 and later["seq"] == 2


# --- state of a sender that is gone -----------------------------------------------------------------

def test_a_message_whose_sender_is_gone_is_lost(outbox):
    message = outbox.enqueue("started", "t", [{"name": "chat", "type": "slack"}], budget=60)
    child = os.fork()
    if child == 0:  # pragma: no cover - a process that ends at once
        os._exit(0)
    os.waitpid(child, 0)
    message["pid"] = child
    outbox.write(message)

    collected = _outbox.collect(outbox, budget=5)

    assert collected["waited_s"] < 1.0     # no waiting for a sender that is gone
    (outcome,) = collected["messages"]
    assert outcome["state"] == "lost"
    assert outcome["results"][0]["error"] == "the sender process ended without an outcome"


def test_process_gone():
    assert _outbox.process_gone(os.getpid()) is False
    assert _outbox.process_gone(None) is False
    child = os.fork()
    if child == 0:  # pragma: no cover
        os._exit(0)
    time.sleep(0.2)
    assert _outbox.process_gone(child) is True     # a zombie not reaped yet is gone too
    os.waitpid(child, 0)
    assert _outbox.process_gone(child) is True


# --- files: numbering, permissions, no secret ---------------------------------------------------------

def test_outbox_files_hold_names_and_outcomes_never_a_url_or_secret(endpoints, outbox):
    start(outbox, "started", [endpoints.channel("answers"), endpoints.channel("hangs")])
    _outbox.collect(outbox, budget=10)
    text = files_text(outbox)
    for secret in (TOKEN, SECRET, "127.0.0.1", "http://"):
        assert secret not in text, secret
    assert os.stat(outbox.dir).st_mode & 0o777 == 0o700
    for name in os.listdir(outbox.dir):
        assert os.stat(os.path.join(outbox.dir, name)).st_mode & 0o077 == 0, name
    assert sorted(os.listdir(outbox.dir)) == [".lock", "0001-started.collected", "0001-started.json"]


def test_messages_are_numbered_in_order_and_an_unreadable_one_is_reported(outbox):
    for notice in ("started", "escalate", "resolved"):
        outbox.enqueue(notice, "t", [], budget=1)
    with open(os.path.join(outbox.dir, "0002-escalate.json"), "w", encoding="utf-8") as stream:
        stream.write("{torn")
    found = outbox.messages()
    assert [(m["seq"], m["notice"]) for m in found] == [(1, "started"), (2, "escalate"), (3, "resolved")]
    assert found[1]["state"] == "unreadable" and _outbox.settled(found[1])


def test_a_message_written_when_the_notice_was_called_stage_is_read(outbox):
    os.makedirs(outbox.dir)
    with open(os.path.join(outbox.dir, "0001-started.json"), "w", encoding="utf-8") as stream:
        json.dump({"seq": 1, "stage": "started", "channels": [], "results": {}, "state": "delivered"}, stream)
    (message,) = outbox.messages()
    assert message["notice"] == "started" and "stage" not in message
    assert outbox.path(message).endswith("0001-started.json")


@pytest.mark.parametrize("incident_id", ["", "../etc", "a/b", None])
def test_an_unsafe_incident_id_is_refused(tmp_path, incident_id):
    with pytest.raises(_notify.NotifyError, match="not a safe name"):
        _outbox.Outbox(tmp_path, incident_id)


def test_missing_warning_names_the_lost_notices():
    assert _outbox.missing_warning([]) is None
    assert _outbox.missing_warning([("started", "HTTP 503"), ("escalate", "timed out")]) == (
        "earlier messages may be missing on this channel: the started, escalate messages could not be "
        "delivered here (timed out)")
