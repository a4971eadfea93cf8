# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""p0_recover.yml and the incident record: timeline, one responder at a time, resume, notifications."""
from __future__ import annotations

import base64
import hashlib
import hmac
import http.server
import json
import os
import subprocess
import threading
import time
import urllib.parse

import pytest

from conftest import INVENTORY, ROOT, SERVICE, STATE_DIR, VENV_BIN, read_record, run_playbook, wait_for

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
    stages = {(e["stage"], e["text"].split()[-1]) for e in events if e["type"] == "stage"}
    for stage in ("detect", "recover", "verify"):
        assert (stage, "started") in stages and (stage, "ended") in stages, stage
    ticked = {e["data"]["key"] for e in events if e["type"] == "tick"}
    assert {"detect_confirmed", "response_started", "first_fix", "recovery_verified", "health_200"} <= ticked
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
        [str(VENV_BIN / "ansible"), "localhost", "-m", "sre.incident.incident", "-a",
         json.dumps({"state": "opened", "incident_dir": str(tmp_path), "service": SERVICE, "severity": "P0"})],
        cwd=ROOT, capture_output=True, text=True, check=True,
        env=dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_LOAD_CALLBACK_PLUGINS="0"))
    incident_id = next(d.name for d in tmp_path.iterdir())
    assert incident_id in opened.stdout
    for result in ("started", "not_fixed"):
        subprocess.run(
            [str(VENV_BIN / "ansible"), "localhost", "-m", "sre.incident.incident", "-a",
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
