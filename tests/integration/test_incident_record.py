# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""p0_recover.yml and the incident record: timeline, one responder at a time, resume, notifications."""
from __future__ import annotations

import base64
import datetime
import hashlib
import hmac
import http.server
import json
import os
import socket
import subprocess
import threading
import time
import urllib.parse

import pytest

from conftest import (EDGE_URL, INVENTORY, ROOT, SAMPLE_USERS, SERVICE, STATE_DIR, VENV_BIN, http_get, read_record,
                      run_playbook, wait_for)

pytestmark = pytest.mark.integration


def test_recovered_crash_leaves_a_complete_timeline(stack, tmp_path):
    stack.container().kill()

    result = run_playbook("p0_recover.yml", extra_vars={"incident_dir": str(tmp_path)})

    assert result.returncode == 0, result.output[-4000:]
    assert stack.service_answers()
    incident_id, events = read_record(tmp_path)
    assert incident_id in result.output
    types = [e["type"] for e in events]
    assert types[0] == "opened" and types.count("closed") == 1
    opened = events[0]["data"]
    assert opened["severity"] == "P0" and opened["service"] == SERVICE
    assert set(opened["deadlines"]) >= {"respond", "resolve"}
    # every stage role recorded its start, in the runbook's order; the detection with its real start
    stages = [e["stage"] for e in events if e["type"] == "stage"]
    assert stages == ["detect", "notify", "diagnose", "recover", "verify", "notify", "diagnose"], stages
    assert next(e for e in events if e["type"] == "stage")["data"]["done_at"] == opened["detected_at"]
    ticked = {e["data"]["key"] for e in events if e["type"] == "tick"}
    assert {"detect_confirmed", "first_fix", "recovery_verified", "health_200"} <= ticked
    # the local inventory has no chat channel: nobody was notified, and the record says so
    assert "response_started" not in ticked
    assert any(e["stage"] == "notify" and "told nobody" in e["text"] for e in events)
    rungs = [(e["data"]["rung"], e["data"]["result"]) for e in events if "rung" in (e.get("data") or {})]
    assert rungs == [("restart_service", "started"), ("restart_service", "fixed")]
    closed = next(e for e in events if e["type"] == "closed")["data"]
    assert closed["outcome"] == "resolved"
    # the lease is released and this run counted for the circuit breaker
    assert not (STATE_DIR / "lease.json").exists()
    runs = [json.loads(line) for line in (STATE_DIR / "ladder_runs.jsonl").read_text().splitlines()]
    assert runs[-1]["incident_id"] == incident_id


def test_second_concurrent_p0_recover_is_refused(stack, tmp_path):
    stack.container("redis").stop(timeout=5)   # a fault that keeps the first run busy for a while
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_NOCOLOR="1")
    first = subprocess.Popen(
        [str(VENV_BIN / "ansible-playbook"), "playbooks/p0_recover.yml", "-i", INVENTORY,
         "-e", json.dumps({"incident_dir": str(tmp_path / "first")})],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        lease = STATE_DIR / "lease.json"
        assert wait_for(lease.exists, timeout=60), "the first run never took the lease"
        holder = json.loads(lease.read_text())["incident_id"]
        started = time.monotonic()

        second = run_playbook("p0_recover.yml", extra_vars={"incident_dir": str(tmp_path / "second")})

        assert second.returncode != 0
        assert holder in second.output, second.output[-3000:]
        assert time.monotonic() - started < 60
        # refused before opening a record of its own
        assert not (tmp_path / "second").exists() or not list((tmp_path / "second").iterdir())
    finally:
        out, _err = first.communicate(timeout=300)
    assert first.returncode == 0, out[-4000:]
    assert stack.service_answers()


def test_resumed_incident_continues_at_the_next_rung(stack, tmp_path):
    # An earlier run opened the incident and tried rung 1, then died.
    opened = subprocess.run(
        [str(VENV_BIN / "ansible"), "localhost", "-m", "sre.incident.record", "-a",
         json.dumps({"state": "opened", "incident_dir": str(tmp_path), "service": SERVICE, "severity": "P0"})],
        cwd=ROOT, capture_output=True, text=True, check=True,
        env=dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_LOAD_CALLBACK_PLUGINS="0"))
    incident_id = next(d.name for d in tmp_path.iterdir())
    assert incident_id in opened.stdout
    for result in ("started", "not_fixed"):
        subprocess.run(
            [str(VENV_BIN / "ansible"), "localhost", "-m", "sre.incident.record", "-a",
             json.dumps({"state": "event", "incident_dir": str(tmp_path), "id": incident_id, "stage": "recover",
                         "text": f"restart_service {result}", "data": {"rung": "restart_service", "result": result}})],
            cwd=ROOT, capture_output=True, text=True, check=True,
            env=dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg")))
    stack.container("redis").stop(timeout=5)
    service_started = stack.state()["StartedAt"]
    redis_started = stack.state("redis")["StartedAt"]

    result = run_playbook("p0_recover.yml", extra_vars={"incident_dir": str(tmp_path), "incident_id": incident_id})

    assert result.returncode == 0, result.output[-4000:]
    assert stack.service_answers()
    assert stack.state("redis")["StartedAt"] != redis_started
    assert stack.state()["StartedAt"] != service_started   # rung 2 restarts the service after the dependencies
    _same_id, events = read_record(tmp_path)
    started = [e["data"]["rung"] for e in events if (e.get("data") or {}).get("result") == "started"]
    assert started == ["restart_service", "restart_dependencies"]   # rung 1 was not tried again
    assert [e["data"]["outcome"] for e in events if e["type"] == "closed"] == ["resolved"]


class _Receiver(http.server.BaseHTTPRequestHandler):
    received = []

    def do_POST(self):  # noqa: N802 - the http.server API
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.received.append({"path": self.path, "headers": dict(self.headers), "body": json.loads(body or b"{}")})
        answer = b'{"errcode": 0, "errmsg": "ok"}' if "dingtalk" in self.path else b"ok"
        self.send_response(200)
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args):
        pass


@pytest.fixture
def receiver():
    _Receiver.received = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server, _Receiver.received
    server.shutdown()


def test_notifications_reach_every_channel_without_leaking_secrets(stack, tmp_path, receiver):
    server, received = receiver
    base = f"http://127.0.0.1:{server.server_address[1]}"
    slack_token = "T0SLACK-" + os.urandom(6).hex()
    ding_token = "DINGTOKEN" + os.urandom(6).hex()
    ding_secret = "SECding" + os.urandom(8).hex()
    bearer = "Bearer-" + os.urandom(8).hex()
    channels = [
        {"name": "slack", "type": "slack", "url": f"{base}/slack/services/{slack_token}"},
        {"name": "dingtalk", "type": "dingtalk", "url": f"{base}/dingtalk/robot/send?access_token={ding_token}",
         "secret": ding_secret},
        {"name": "hook", "type": "webhook", "url": f"{base}/hook", "headers": {"Authorization": bearer}},
    ]
    stack.container().kill()

    result = run_playbook("p0_recover.yml", "-vvv",
                          extra_vars={"incident_dir": str(tmp_path), "incident_channels": channels,
                                      "incident_war_room": "https://meet.example.com/war-room"})

    assert result.returncode == 0, result.output[-4000:]
    for secret in (slack_token, ding_token, ding_secret, bearer):
        assert secret not in result.output
        for path in tmp_path.rglob("*"):
            if path.is_file():
                assert secret not in path.read_text(errors="replace")
    by_channel = {}
    for req in received:
        by_channel.setdefault(req["path"].split("/")[1].split("?")[0], []).append(req)
    assert set(by_channel) == {"slack", "dingtalk", "hook"}
    for name, reqs in by_channel.items():
        assert len(reqs) == 2, (name, reqs)   # started, resolved
    incident_id, _events = read_record(tmp_path)
    slack_texts = [r["body"]["text"] for r in by_channel["slack"]]
    assert all(incident_id in t and "P0" in t and SERVICE in t for t in slack_texts)
    assert "@incident-commander" in slack_texts[0] and "https://meet.example.com/war-room" in slack_texts[0]
    assert any(h in slack_texts[0] for h in ("@oncall-day", "@oncall-night", "@oncall-weekend"))
    assert [r["body"]["event"] for r in by_channel["hook"]] == ["started", "resolved"]
    assert all(r["headers"]["Authorization"] == bearer for r in by_channel["hook"])
    # the DingTalk signature, computed here independently
    for req in by_channel["dingtalk"]:
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(req["path"]).query)
        assert query["access_token"] == [ding_token]
        timestamp = query["timestamp"][0]
        digest = hmac.new(ding_secret.encode(), f"{timestamp}\n{ding_secret}".encode(), hashlib.sha256).digest()
        assert query["sign"][0] == base64.b64encode(digest).decode()
        assert abs(int(timestamp) / 1000 - time.time()) < 600
        assert req["body"]["msgtype"] == "markdown"


def test_an_unexpected_failure_after_the_started_notice_escalates_and_closes_failed(stack, tmp_path, receiver):
    """A P0 run that breaks where nothing expects it tells the channels to escalate before it closes the record
    as failed: on-call never hears "started", then nothing. Here a responder resumes an incident (the stack is
    left healthy: nothing to restore after) with an errors_since that passes the early checks but that the
    evidence capture, after the started notice, cannot read."""
    server, received = receiver
    hook = {"name": "hook", "type": "webhook", "url": f"http://127.0.0.1:{server.server_address[1]}/hook"}
    subprocess.run(
        [str(VENV_BIN / "ansible"), "localhost", "-m", "sre.incident.record", "-a",
         json.dumps({"state": "opened", "incident_dir": str(tmp_path), "service": SERVICE, "severity": "P0"})],
        cwd=ROOT, capture_output=True, text=True, check=True,
        env=dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_LOAD_CALLBACK_PLUGINS="0"))
    incident_id = next(d.name for d in tmp_path.iterdir())

    result = run_playbook("p0_recover.yml", extra_vars={
        "incident_dir": str(tmp_path), "incident_id": incident_id, "incident_channels": [hook],
        "diagnose_errors_since": "yesterday-ish"})

    assert result.returncode != 0 and "yesterday-ish" in result.output
    assert [r["body"]["event"] for r in received] == ["started", "escalate"], received
    assert "yesterday-ish" in received[1]["body"]["text"]
    _same_id, events = read_record(tmp_path)
    assert [e["data"]["outcome"] for e in events if e["type"] == "closed"] == ["failed"]
    # one failure event, the rescue's (the timeline callback leaves a caught failure, and a closed record, alone)
    failures = [e for e in events if e["type"] == "failure"]
    assert len(failures) == 1 and "yesterday-ish" in failures[0]["data"]["msg"] and failures[0]["data"]["task"] != "?"
    assert failures[0]["seq"] < next(e["seq"] for e in events if e["type"] == "closed")
    assert not [e for e in events if "rung" in (e.get("data") or {})]   # it broke before the ladder
    assert not (STATE_DIR / "lease.json").exists()


def test_circuit_breaker_stops_a_fourth_ladder_within_the_hour(stack, tmp_path):
    now = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())
    STATE_DIR.mkdir(parents=True, exist_ok=True)
    (STATE_DIR / "ladder_runs.jsonl").write_text("".join(
        json.dumps({"ts": now, "incident_id": f"INC-earlier-{i}", "outcome": "fixed"}) + "\n" for i in range(3)))
    stack.container().kill()
    before = stack.state()

    result = run_playbook("p0_recover.yml", extra_vars={"incident_dir": str(tmp_path)})

    assert result.returncode != 0
    assert "circuit breaker" in result.output
    after = stack.state()
    assert after["Status"] == "exited" and after["StartedAt"] == before["StartedAt"]   # not restarted
    _incident, events = read_record(tmp_path)
    assert [e["data"]["outcome"] for e in events if e["type"] == "closed"] == ["escalated"]
    assert not [e for e in events if "rung" in (e.get("data") or {})]


def _runs(purpose, count):
    now = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())
    return "".join(json.dumps({"ts": now, "incident_id": f"{purpose}-{i}", "outcome": "fixed", "purpose": purpose}) + "\n"
                   for i in range(count))


def test_breaker_counts_real_incidents_only_and_its_reset_is_recorded(stack, tmp_path):
    """OUT-4: the demo's runs do not open a real incident's breaker; an open breaker says how to reset it;
    the reset needs a reason and is recorded with who and why; then the ladder runs again."""
    STATE_DIR.mkdir(parents=True, exist_ok=True)
    runs = STATE_DIR / "ladder_runs.jsonl"
    runs.write_text(_runs("demo", 5))
    stack.container().kill()
    ok = run_playbook("p0_recover.yml", extra_vars={"incident_dir": str(tmp_path / "first")})
    assert ok.returncode == 0, ok.output[-3000:]
    assert stack.service_answers()

    runs.write_text(_runs("incident", 3))
    stack.container().kill()
    stopped = run_playbook("p0_recover.yml", extra_vars={"incident_dir": str(tmp_path / "second")})
    assert stopped.returncode != 0
    flat = " ".join(stopped.output.split())
    assert "circuit breaker open" in flat and "ansible-playbook playbooks/ops.yml --tags breaker_reset -e reason=" in flat
    assert stack.state()["Status"] == "exited"

    refused = run_playbook("ops.yml", "--tags", "breaker_reset")
    assert refused.returncode != 0 and "needs -e reason" in refused.output
    assert len(runs.read_text().splitlines()) == 3

    reset = run_playbook("ops.yml", "--tags", "breaker_reset",
                         extra_vars={"reason": "redis disk cleaned by hand", "by": "alice"})
    assert reset.returncode == 0, reset.output[-3000:]
    last = json.loads(runs.read_text().splitlines()[-1])
    assert last["reset"] is True and last["by"] == "alice" and last["reason"] == "redis disk cleaned by hand"
    assert last["runs_forgiven"] == 3 and last["purpose"] == "incident"

    again = run_playbook("p0_recover.yml", extra_vars={"incident_dir": str(tmp_path / "third")})
    assert again.returncode == 0, again.output[-3000:]
    assert stack.service_answers()


# --- a chat outage must not slow a P0 (issue 20) -------------------------------------------------

class _Endpoints:
    """Three kinds of chat endpoint on loopback: one that answers 200, one that refuses the connection
    (nothing listens on its port), one that accepts and never answers (a black-holed webhook), and a
    fourth that fails the started message (HTTP 503) and accepts the others."""

    def __init__(self):
        self.received = []
        endpoints = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - the http.server API
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
                endpoints.received.append({"path": self.path, "body": body, "at": time.time()})
                started = self.path.startswith("/flaky") and body.get("event") == "started"
                self.send_response(503 if started else 200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.hanging = socket.socket()
        self.hanging.bind(("127.0.0.1", 0))
        self.hanging.listen(64)
        self.held = []
        threading.Thread(target=self._hold, daemon=True).start()
        refused = socket.socket()
        refused.bind(("127.0.0.1", 0))
        self.refused_port = refused.getsockname()[1]
        refused.close()

    def _hold(self):
        while True:   # accept every connection and keep it open, never reading or answering
            try:
                conn, _addr = self.hanging.accept()
            except OSError:
                return
            self.held.append(conn)

    def channels(self):
        answering = f"http://127.0.0.1:{self.server.server_address[1]}"
        return [
            {"name": "chat-answers", "type": "slack", "url": f"{answering}/answers/T0-secret-path"},
            {"name": "chat-refuses", "type": "webhook", "url": f"http://127.0.0.1:{self.refused_port}/hook"},
            {"name": "chat-hangs", "type": "slack", "url": f"http://127.0.0.1:{self.hanging.getsockname()[1]}/hangs"},
            {"name": "chat-flaky", "type": "webhook", "url": f"{answering}/flaky"},
        ]

    def close(self):
        self.server.shutdown()
        self.server.server_close()
        self.hanging.close()
        for conn in self.held:
            conn.close()


@pytest.fixture
def endpoints():
    found = _Endpoints()
    yield found
    found.close()


def _engine_time(value):
    """The engine's RFC 3339 time with nanoseconds, as epoch seconds."""
    head, _dot, frac = value.rstrip("Z").partition(".")
    return datetime.datetime.fromisoformat(head).replace(tzinfo=datetime.timezone.utc).timestamp() + float("0." + (frac or "0"))


def _first_rung_after(stack, tmp_path, channels):
    """Kill the service, run p0_recover.yml; return (seconds from the playbook's start to the
    service's restart by rung 1, as the engine recorded it; the result; the record's events)."""
    stack.reset_responder_state()
    stack.container().kill()
    assert wait_for(lambda: stack.state()["Status"] == "exited", timeout=30)
    incident_dir = tmp_path / f"incidents-{len(channels)}-{time.monotonic_ns()}"
    started = time.time()
    # a little ahead of other work on a shared machine (both configurations alike): less noise
    extra_vars = {"incident_dir": str(incident_dir), "incident_channels": channels, "verify_watch_window": 0}
    result = run_playbook("p0_recover.yml", extra_vars=extra_vars, prefix=("nice", "-n", "-5"))
    assert result.returncode == 0, result.output[-4000:]
    restarted = _engine_time(stack.state()["StartedAt"])
    _incident_id, events = read_record(incident_dir)
    outcome = [e["data"]["outcome"] for e in events if e["type"] == "closed"]
    if outcome != ["resolved"]:
        stack.restore()   # a degraded mode would outlive the test
        pytest.fail(f"the crash was not resolved and verified ({outcome}); the machine too busy for the "
                    f"latency check? {[e['text'] for e in events if e['stage'] == 'verify'][-2:]}")
    rungs = [e["data"]["rung"] for e in events if (e.get("data") or {}).get("result") == "fixed"]
    assert rungs == ["restart_service"], rungs   # the first rung's restart is the one the engine timed
    return restarted - started, result, events


def _verified_through_the_edge():
    if http_get("/health", base=EDGE_URL)[0] != 200:
        return False
    for user in SAMPLE_USERS:
        status, body = http_get(f"/api/recommendations/{user}?limit=10", base=EDGE_URL)
        if status != 200 or not body or len(body.get("recommendations", [])) <= 5:
            return False
    return True


def test_a_hanging_chat_channel_does_not_slow_the_first_rung(stack, tmp_path, endpoints):
    # Runs of each, interleaved, the best of each compared: a busy machine slows a single run by
    # more than the 0.5 s at stake (each run is the same playbook on the same fault; on a loaded CI
    # machine the same run took 4.6 s and 8.2 s). More rounds, up to six, only while two or more do
    # not show it: the best of each comes closer to the run's own cost with every round. A
    # notification in the way (17 s in issue 20, 10 s with today's budget) fails every round.
    quiet, noisy = [], []
    for _round in range(6):
        seconds, _result, quiet_events = _first_rung_after(stack, tmp_path, [])
        quiet.append(seconds)
        seconds, result, events = _first_rung_after(stack, tmp_path, endpoints.channels())
        noisy.append(seconds)
        assert wait_for(_verified_through_the_edge, timeout=30)
        if len(quiet) >= 2 and min(noisy) - min(quiet) <= 0.5:
            break
    print(f"start -> rung 1 restart: no channel {quiet}, hanging/refusing/flaky channels {noisy}")
    assert min(noisy) - min(quiet) <= 0.5, (quiet, noisy)

    # the record of the last run with channels: each failed channel by name and why, no URL, no false tick
    notices = {e["data"]["notice"]: e for e in events if "notice" in (e.get("data") or {})}
    assert set(notices) == {"started", "resolved"}
    results = {r["name"]: r for r in notices["started"]["data"]["results"]}
    assert results["chat-answers"]["ok"] is True
    assert results["chat-refuses"]["ok"] is False and "refused" in results["chat-refuses"]["error"]
    assert results["chat-hangs"]["ok"] is False and "no answer within the read timeout" in results["chat-hangs"]["error"]
    assert results["chat-flaky"]["ok"] is False and results["chat-flaky"]["status"] == 503
    for name in ("chat-refuses", "chat-hangs", "chat-flaky"):
        assert name in notices["started"]["text"]
    dumped = json.dumps(events)
    assert "127.0.0.1" not in dumped and "T0-secret-path" not in dumped
    ticked = {e["data"]["key"] for e in events if e["type"] == "tick"}
    assert "response_started" not in ticked and "recovery_verified" in ticked
    still_open = [e for e in events if e["type"] == "event" and e["text"].startswith("response_started")]
    assert len(still_open) == 1 and "chat-hangs" in still_open[0]["text"]
    # the resolution reached the channels that can answer, in order after the start; where the start
    # was lost (chat-flaky) it says that earlier messages may be missing, where it was not it does not
    answers = [r for r in endpoints.received if r["path"].startswith("/answers")]
    flaky = [r for r in endpoints.received if r["path"].startswith("/flaky")]
    assert "Incident started" in answers[-2]["body"]["text"] and "Incident resolved" in answers[-1]["body"]["text"]
    assert "may be missing" not in answers[-1]["body"]["text"]
    assert [r["body"]["event"] for r in flaky[-4:]] == ["started", "started", "started", "resolved"]
    assert "earlier messages may be missing" in flaky[-1]["body"]["text"]
    resolved = {r["name"]: r for r in notices["resolved"]["data"]["results"]}
    assert resolved["chat-flaky"]["ok"] is True
    assert resolved["chat-flaky"]["warning"].startswith("earlier messages may be missing")
    assert "warning" not in resolved["chat-answers"]
    # and the runs without a channel say that nobody was told
    assert "response_started" not in {e["data"]["key"] for e in quiet_events if e["type"] == "tick"}
    assert any("told nobody" in e["text"] for e in quiet_events if e["stage"] == "notify")


def test_response_is_ticked_when_every_channel_acknowledged_at_their_time(stack, tmp_path, endpoints):
    stack.container().kill()
    channels = [c for c in endpoints.channels() if c["name"] == "chat-answers"]

    result = run_playbook("p0_recover.yml", extra_vars={"incident_dir": str(tmp_path), "incident_channels": channels})

    assert result.returncode == 0, result.output[-4000:]
    assert wait_for(_verified_through_the_edge, timeout=30)
    _incident_id, events = read_record(tmp_path)
    tick = next(e for e in events if e["type"] == "tick" and e["data"]["key"] == "response_started")
    started_post = next(r for r in endpoints.received if "Incident started" in r["body"]["text"])
    done_at = _engine_time(tick["data"]["done_at"])
    # ticked at the time the channel acknowledged (just after it received the message), written later
    assert started_post["at"] - 0.5 <= done_at <= _engine_time(tick["ts"])
    assert "chat-answers" in tick["data"]["value"]
