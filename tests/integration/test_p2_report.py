# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""p2_report.yml on the real stack: a real minor problem, its real log lines in the backlog file,
the issue posted to a loopback tracker, the token nowhere in the -vvv output.

The minor problem: a poisoned (unreadable) cache entry for one user. The service logs a WARNING
"unreadable cache entry ignored" naming the key, serves that user from the database and rewrites
the entry, so the stack heals by itself and other tests running on the same stack are not
disturbed. A second request with a malformed limit adds a 400 (WARNING) access-log line.
"""
from __future__ import annotations

import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from conftest import BASE_URL, SERVICE, http_get, run_playbook

pytestmark = pytest.mark.integration

TOKEN = "tok-%s" % uuid.uuid4().hex


class Tracker:
    """A GitHub-style issues API on loopback that records what it is sent."""

    def __init__(self):
        self.requests = []
        tracker = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                tracker.requests.append(dict(path=self.path, headers=dict(self.headers), body=body))
                number = len(tracker.requests)
                answer = json.dumps({"number": number, "html_url": "http://tracker.example/sre/recsys/issues/%d" % number})
                data = answer.encode()
                self.send_response(201)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = "http://127.0.0.1:%d/repos/sre/recsys" % self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def tracker():
    t = Tracker()
    yield t
    t.close()


def redis_exec(stack, *argv):
    result = stack.container("redis").exec_run(list(argv))
    assert result.exit_code == 0, result.output
    return result.output.decode()


def service_log_lines(stack, since):
    raw = stack.container(SERVICE).logs(stdout=True, stderr=True, since=since)
    return raw.decode("utf-8", "replace").splitlines()


def test_p2_report_holds_real_log_lines_and_posts_once(stack, tracker, tmp_path):
    user, limit = "user-%d" % (150 + uuid.uuid4().int % 50), 7
    key = "recs:%s:%d" % (user, limit)
    since = int(time.time()) - 1
    # the real minor problem: an unreadable cache entry, then a request that hits it
    redis_exec(stack, "redis-cli", "set", key, "{not json", "EX", "120")
    status, body = http_get("/api/recommendations/%s?limit=%d" % (user, limit))
    assert status == 200 and body["source"] == "database"
    status = http_get("/api/recommendations/%s?limit=abc" % user)[0]
    assert status == 400

    # what the service really logged, read independently of the playbook
    def logged():
        lines = service_log_lines(stack, since)
        return [ln for ln in lines if key in ln and "unreadable cache entry ignored" in ln]
    deadline = time.monotonic() + 10
    while not logged() and time.monotonic() < deadline:
        time.sleep(0.2)
    real = logged()
    assert real, "the service did not log the unreadable cache entry"

    backlog = tmp_path / "backlog"
    extra = {
        "report_title": "Unreadable cache entry for %s" % user,
        "report_description": "One cached recommendation list cannot be parsed.",
        "report_expected": "Cached recommendations are served from the cache.",
        "report_user": user,
        "report_cause": "A cache entry was written in another format.",
        "report_fix": "Clear the cache; version the cache key format.",
        "report_backlog_dir": str(backlog),
        "report_log_since": "5m",
        "report_log_lines": 50,
        "report_reproduce_urls": [BASE_URL + "/api/recommendations/%s?limit=abc" % user],
        "report_tracker": {"kind": "github", "url": tracker.url, "token": TOKEN},
    }
    result = run_playbook("p2_report.yml", "-vvv", extra_vars=extra, timeout=120)
    assert result.returncode == 0, result.output[-3000:]

    # the Markdown file holds the real log lines
    files = sorted(backlog.glob("*.md"))
    assert len(files) == 1 and files[0].name.endswith("-unreadable-cache-entry-for-%s.md" % user)
    text = files[0].read_text()
    headings = ("問題描述", "重現步驟", "期望結果", "實際結果", "環境信息", "日誌片段", "可能的根本原因", "建議的修復方案")
    for heading in headings:
        assert heading in text
    assert real[-1] in text
    log_block = text.split("```log\n", 1)[1].split("\n```", 1)[0].splitlines()
    independent = set(service_log_lines(stack, since - 300))
    assert log_block and all(line in independent for line in log_block)
    assert any("limit=abc" in ln or ('"status":400' in ln and user in ln) for ln in log_block)
    # the environment names the real version and image, read here from /health and the engine
    version = http_get("/health")[1]["version"]
    image_id = stack.container().attrs["Image"]
    assert "app %s (from /health)" % version in text
    assert image_id[:19] in text
    assert "answered 400" in text
    assert "Tracker issue: http://tracker.example/sre/recsys/issues/1" in text

    # the tracker got one issue, with the token in the header only
    assert len(tracker.requests) == 1
    req = tracker.requests[0]
    assert req["path"] == "/repos/sre/recsys/issues"
    assert req["headers"]["Authorization"] == "Bearer %s" % TOKEN
    assert req["body"]["title"] == extra["report_title"]
    assert real[-1] in req["body"]["body"] and req["body"]["labels"] == ["P2"]
    assert TOKEN not in result.output
    assert TOKEN not in text

    # a second run keeps the link and does not post again
    again = run_playbook("p2_report.yml", extra_vars=extra, timeout=120)
    assert again.returncode == 0, again.output[-3000:]
    assert len(tracker.requests) == 1
    assert "Tracker issue: http://tracker.example/sre/recsys/issues/1" in files[0].read_text()
    assert TOKEN not in again.output


def test_p2_report_check_mode_writes_nothing(stack, tmp_path, tracker):
    backlog = tmp_path / "backlog"
    result = run_playbook("p2_report.yml", check=True, extra_vars={
        "report_title": "Check mode report", "report_backlog_dir": str(backlog),
        "report_tracker": {"kind": "gitlab", "url": tracker.url, "token": TOKEN}})
    assert result.returncode == 0, result.output[-3000:]
    assert not backlog.exists()
    assert tracker.requests == []
    assert "would be written to" in result.output
