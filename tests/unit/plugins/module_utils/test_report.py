# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""_report: the P2 template, log selection, redaction, evidence filling, backlog file, tracker."""

from __future__ import annotations

import datetime
import json

import pytest

from ansible_collections.sre.incident.plugins.module_utils import _report
from ansible_collections.sre.incident.plugins.plugin_utils._render import render

NOW = datetime.datetime(2026, 11, 27, 1, 30, tzinfo=datetime.timezone.utc)
STACK = {"name": "recsys", "project_dir": "/srv", "service": "recommendation-service", "base_url": "http://127.0.0.1:3000",
         "health_path": "/health", "recommendations_path": "/api/recommendations/{user}", "sample_users": ["u1"]}
WARN = '{"ts":"2026-11-27T01:29:00.000Z","level":"WARNING","msg":"unreadable cache entry ignored","key":"recs:u1:7"}'
INFO = '{"ts":"2026-11-27T01:29:01.000Z","level":"INFO","msg":"request","status":200}'
ERR = '{"ts":"2026-11-27T01:29:02.000Z","level":"ERROR","msg":"database error","error":"password=hunter2 rejected"}'


def test_slug_and_file_name():
    assert _report.file_name("Unreadable cache entry (user-173)!", "2026-11-27") == "2026-11-27-unreadable-cache-entry-user-173.md"
    assert _report.file_name("推薦為空", "2026-11-27") == "2026-11-27-problem.md"
    assert _report.file_name("Empty results", datetime.date(2026, 11, 27)) == "2026-11-27-empty-results.md"
    with pytest.raises(ValueError):
        _report.file_name("x", "27/11/2026")


def test_render_has_every_part_of_the_template():
    text = _report.markdown({"title": "Empty results", "steps": ["open the page", "look"], "logs": [WARN],
                             "environment": {"version": "1.0.0"}, "tracker_url": "http://t/1"}, render)
    for heading in ("## Description (問題描述)", "## Reproduction steps (重現步驟)", "## Expected result (期望結果)",
                    "## Actual result (實際結果)", "## Environment (環境信息)", "## Log excerpt (日誌片段)",
                    "## Suspected root cause (可能的根本原因)", "## Suggested fix (建議的修復方案)"):
        assert heading in text
    assert "1. open the page\n2. look" in text
    assert "- Version (版本): 1.0.0" in text and "- User (用戶): %s" % _report.PLACEHOLDER in text
    assert "```log\n%s\n```" % WARN in text
    assert _report.tracker_link(text) == "http://t/1"
    with pytest.raises(ValueError, match="title"):
        _report.report_view({})


def test_select_log_lines():
    lines = [INFO, WARN, "plain ERROR: disk full", "Traceback (most recent call last):", INFO, ERR, "WARN low memory"]
    out = _report.select_log_lines(lines, limit=3)
    assert out["total"] == 5 and out["counts"] == {"WARNING": 2, "ERROR": 3}
    assert out["lines"][-1] == "WARN low memory" and len(out["lines"]) == 3
    assert "hunter2" not in "".join(out["lines"])
    assert _report.select_log_lines(lines, levels=["ERROR"], match="database")["total"] == 1


def test_log_lines_are_redacted_by_the_one_redactor():
    lines = ['ERROR login failed: token=abc123 and s3cr3t', "ERROR config {'password': 'pw-in-quotes'}"]
    assert _report.select_log_lines(lines, secrets=["s3cr3t"])["lines"] == [
        "ERROR login failed: token=******** and ********", "ERROR config {'password': '********'}"]


def test_fill_from_evidence():
    evidence = dict(collected_at="2026-11-27T01:30:00Z", app_version="1.0.0", service="recommendation-service",
                    project="recsys", image={"image_id": "sha256:" + "a" * 64, "image_name": "recsys/app:latest",
                                             "created": "2026-11-26T00:00:00Z"},
                    logs=[WARN], log_counts={"WARNING": 1}, log_total=1, log_since="2026-11-27T01:15:00Z",
                    reproduce=[{"url": "http://x/api?limit=abc", "text": "GET http://x/api?limit=abc answered 400"}],
                    health={"status": 200}, notes=[])
    out = _report.fill({"title": "t", "environment": {"user": "u1"}}, evidence)
    assert out["environment"]["version"].startswith("app 1.0.0 (from /health); image recsys/app:latest sha256:aaaa")
    assert out["environment"]["user"] == "u1" and out["environment"]["time"] == "2026-11-27T01:30:00Z"
    assert out["environment"]["frequency"] == "1 matching log line(s) since 2026-11-27T01:15:00Z (WARNING 1)"
    assert out["steps"] == ["`curl -s http://x/api?limit=abc`"]
    assert "answered 400" in out["actual"] and out["logs"] == [WARN]
    kept = _report.fill({"title": "t", "actual": "mine", "steps": ["a"], "logs": ["given"]}, evidence)
    assert kept["actual"] == "mine" and kept["steps"] == ["a"] and kept["logs"] == ["given"]


class FakeCompose:
    class DockerError(Exception):
        def __init__(self, msg):
            super().__init__(msg)
            self.msg = msg

    def __init__(self, lines):
        self.lines = lines
        self.since = None

    def service_image(self, client, project, service):
        return dict(container="c1", image_id="sha256:abc", image_name="recsys/app", created="2026-11-26T00:00:00Z")

    def service_logs(self, client, project, service, since=None, tail=None):
        self.since = since
        return [dict(container="c1", lines=self.lines)]


def fake_probe(url, timeout, method="GET"):
    if url.endswith("/health"):
        return dict(url=url, status=200, body_json={"status": "ok", "version": "1.0.0"}, error=None, latency_ms=1.0)
    return dict(url=url, status=400, body_json={"error": "limit must be an integer"}, error="status 400", latency_ms=2.0)


def test_collect_reads_logs_version_and_reproduces():
    compose = FakeCompose([INFO, WARN])
    ev = _report.collect(STACK, client=object(), since="10m", reproduce_urls=["http://127.0.0.1:3000/api/x?limit=abc"],
                         now=NOW, probe=fake_probe, compose=compose)
    assert ev["app_version"] == "1.0.0" and ev["image"]["image_id"] == "sha256:abc"
    assert ev["logs"] == [WARN] and ev["log_total"] == 1
    assert compose.since == int((NOW - datetime.timedelta(minutes=10)).timestamp())
    assert ev["reproduce"][0]["status"] == 400 and "answered 400" in ev["reproduce"][0]["text"]


def test_collect_without_engine_says_so():
    ev = _report.collect(STACK, client=None, now=NOW, probe=fake_probe)
    assert ev["logs"] == [] and "no Docker engine" in ev["notes"][0]


def test_collect_bad_reproduce_url():
    with pytest.raises(ValueError, match="nope"):
        _report.collect(STACK, reproduce_urls=["nope"], probe=fake_probe)


def test_write_report_check_mode_and_idempotence(tmp_path):
    path = str(tmp_path / "b" / "r.md")
    r = _report.write_report(path, "x\n", check_mode=True)
    assert r["changed"] is True and not (tmp_path / "b").exists()
    assert _report.write_report(path, "x\n")["changed"] is True
    assert _report.write_report(path, "x\n")["changed"] is False
    r = _report.write_report(path, "y\n")
    assert r["changed"] is True and r["diff"]["before"] == "x\n"


def test_tracker_requests():
    gh = _report.tracker_request({"kind": "github", "url": "https://api.github.com/repos/o/r", "token": "T0K"}, "t", "b", ["P2"])
    assert gh["url"] == "https://api.github.com/repos/o/r/issues"
    assert gh["headers"]["Authorization"] == "Bearer T0K" and gh["payload"] == {"title": "t", "body": "b", "labels": ["P2"]}
    gl = _report.tracker_request({"kind": "gitlab", "url": "https://gl/api/v4/projects/42/issues", "token": "T0K"}, "t", "b",
                                 ["P2", "bug"])
    assert gl["url"] == "https://gl/api/v4/projects/42/issues"
    assert gl["headers"]["PRIVATE-TOKEN"] == "T0K" and gl["payload"] == {"title": "t", "description": "b", "labels": "P2,bug"}


@pytest.mark.parametrize("tracker, named", [
    ({"kind": "jira", "url": "https://x", "token": "SECRET-TOK"}, "'jira'"),
    ({"kind": "github", "url": "x.example", "token": "SECRET-TOK"}, "x.example"),
    ({"kind": "github", "url": "https://x"}, "token is missing"),
])
def test_bad_tracker_is_named_without_the_token(tracker, named):
    with pytest.raises(ValueError, match=named) as info:
        _report.validate_tracker(tracker)
    assert "SECRET-TOK" not in str(info.value)


def _answer(status, body=b"", failure=None, detail=None):
    return dict(status=status, reason=None, headers={}, body=body, latency_ms=1.0, failure=failure,
                error=detail, detail=detail)


def test_post_issue_failure_hides_the_token():
    def send(url, **kwargs):
        return _answer(401, b'{"message":"bad token SECRET-1"}')
    with pytest.raises(_report.ReportError) as info:
        _report.post_issue({"kind": "github", "url": "https://t/repos/o/r", "token": "SECRET-1"}, "t", "b", send=send)
    assert "401" in info.value.msg and "SECRET-1" not in info.value.msg and info.value.details["tracker_status"] == 401


def test_post_issue_without_an_answer_names_the_endpoint():
    def send(url, **kwargs):
        return _answer(None, failure="connection", detail="[Errno 111] Connection refused")
    with pytest.raises(_report.ReportError, match="did not answer: POST https://t/repos/o/r/issues: .*refused"):
        _report.post_issue({"kind": "github", "url": "https://t/repos/o/r", "token": "SECRET-1"}, "t", "b", send=send)


def test_post_issue_answer():
    seen = {}

    def send(url, method, data, headers, timeout, max_body):
        seen.update(url=url, method=method, headers=headers, body=json.loads(data), timeout=timeout)
        return _answer(201, json.dumps({"iid": 7, "web_url": "https://gl/p/-/issues/7"}).encode())
    issue = _report.post_issue({"kind": "gitlab", "url": "https://gl/api/v4/projects/1", "token": "K"}, "t", "b", ["P2"],
                               send=send)
    assert issue == dict(status=201, api_url="https://gl/api/v4/projects/1/issues", kind="gitlab",
                         url="https://gl/p/-/issues/7", number=7)
    assert seen["method"] == "POST" and seen["timeout"] == 10.0
    assert seen["headers"]["PRIVATE-TOKEN"] == "K" and seen["body"]["description"] == "b"


def test_run_posts_once_and_keeps_the_link(tmp_path):
    posts = []

    def post(tracker, title, body, labels=(), timeout=10):
        posts.append((title, body))
        return dict(url="http://t/issues/1", number=1, status=201, api_url="http://t/issues")
    params = dict(title="Empty results", dest_dir=str(tmp_path), date="2026-11-27", logs=[WARN],
                  tracker={"kind": "github", "url": "http://t", "token": "K"})
    r = _report.run(params, render, check_mode=True, now=NOW, post=post)
    assert r["changed"] is True and r["would_post"] is True and not posts and not list(tmp_path.iterdir())
    r = _report.run(params, render, now=NOW, post=post)
    assert r["changed"] is True and r["posted"] is True and len(posts) == 1
    assert r["path"] == str(tmp_path / "2026-11-27-empty-results.md")
    assert "Tracker issue: http://t/issues/1" in (tmp_path / "2026-11-27-empty-results.md").read_text()
    later = NOW + datetime.timedelta(minutes=5)
    r = _report.run(params, render, now=later, post=post)
    assert r["changed"] is False and r["posted"] is False and len(posts) == 1


def test_run_needs_a_title_to_write(tmp_path):
    with pytest.raises(ValueError, match="title"):
        _report.run(dict(dest_dir=str(tmp_path)), render)
    assert list(tmp_path.iterdir()) == []
