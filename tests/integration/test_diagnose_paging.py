# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The scheduled diagnostics page once per finding (SPEC MON-4), with a real webhook receiver.

The service is killed for real; diagnose.yml (the AWX schedule) runs three times against the
real stack with one generic webhook channel pointing at a receiver in this test. The receiver
counts what really arrived: the P0 verdict pages once, naming p0_recover.yml and the incident;
the second run finds the same finding and pages nobody; with a paging window of 0 the third
run pages again. All three runs share one incident directory, as AWX's lasting storage does: the
condition lasts, so there is one incident record, continued by every run. The memory is a file on
the managed host, read here too.
"""
from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from conftest import run_playbook

pytestmark = pytest.mark.integration


class Receiver(BaseHTTPRequestHandler):
    received = []

    def log_message(self, *args):
        pass

    def do_POST(self):  # noqa: N802
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        Receiver.received.append({"path": self.path, "auth": self.headers.get("Authorization"),
                                  "body": json.loads(body or b"{}")})
        data = b'{"ok": true}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


# error lines logged before the test (other tests' faults) are not this test's findings
SINCE = [""]


@pytest.fixture
def receiver():
    SINCE[0] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 1))
    Receiver.received = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield "http://127.0.0.1:%d" % server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def diagnose(tmp_path, url, **more):
    extra = {"diagnose_errors_since": SINCE[0], "incident_dir": str(tmp_path / "incidents"),
             "diagnose_bundle_dir": str(tmp_path / "bundles"),
             "diagnose_snapshot_dir": str(tmp_path / "snapshots"), "diagnose_page_state_file": str(tmp_path / "pages.json"),
             "incident_channels": [{"name": "pager", "type": "webhook", "url": url + "/hook/secret-part",
                                    "headers": {"Authorization": "Bearer page-token"}}]}
    extra.update(more)
    return run_playbook("diagnose.yml", extra_vars=extra)


def test_a_p0_verdict_pages_once_not_on_every_run(stack, tmp_path, receiver):
    stack.container().kill()
    assert stack.state()["Status"] == "exited"

    first = diagnose(tmp_path, receiver)
    assert first.returncode == 0, first.output
    assert len(Receiver.received) == 1, first.output
    page = Receiver.received[0]
    assert page["path"] == "/hook/secret-part" and page["auth"] == "Bearer page-token"
    assert page["body"]["event"] == "started"
    text = page["body"]["text"]
    assert "Scheduled diagnostics: P0 on localhost" in text and "playbooks/p0_recover.yml" in text
    assert "the service is exited" in text
    opened = [d for d in (tmp_path / "incidents").iterdir() if d.is_dir()]
    assert len(opened) == 1 and f"incident_id={opened[0].name}" in text
    assert page["body"]["incident"]["id"] == opened[0].name and page["body"]["incident"]["severity"] == "P0"
    memory = json.loads((tmp_path / "pages.json").read_text())
    # the two critical findings of a dead service: no request answered, the container exited
    assert sorted(e["check"] for e in memory["pages"].values()) == ["http", "service_running"]
    assert all(e["incident_id"] == opened[0].name and e["count"] == 1 for e in memory["pages"].values())
    assert {e["incident_id"] for e in memory["incidents"].values()} == {opened[0].name}
    # the secret parts of the channel are in neither the output nor the memory
    for secret in ("secret-part", "page-token"):
        assert secret not in first.output and secret not in (tmp_path / "pages.json").read_text()

    second = diagnose(tmp_path, receiver)
    assert second.returncode == 0, second.output
    assert len(Receiver.received) == 1, "the same finding was paged again"
    assert "already paged within 3600" in second.output
    assert json.loads((tmp_path / "pages.json").read_text()) == memory

    third = diagnose(tmp_path, receiver, diagnose_page_window_s=0)
    assert third.returncode == 0, third.output
    assert len(Receiver.received) == 2, "a window of 0 pages on every run"
    assert all(e["count"] == 2 for e in json.loads((tmp_path / "pages.json").read_text())["pages"].values())
    # the condition lasted: every run continued the one incident, and the second page names it too
    assert [d.name for d in (tmp_path / "incidents").iterdir() if d.is_dir()] == [opened[0].name]
    assert Receiver.received[1]["body"]["incident"]["id"] == opened[0].name
    events = [json.loads(line) for line in (opened[0] / "events.jsonl").read_text().splitlines()]
    assert [e["type"] for e in events].count("opened") == 1


def test_a_healthy_stack_pages_nobody(stack, tmp_path, receiver):
    # a loaded test machine can make a healthy stack slow (a P1 by latency): that is not this test
    result = diagnose(tmp_path, receiver, diagnose_thresholds={"latency_ms": 10000})
    assert result.returncode == 0, result.output
    # a warning's incident may be kept in the memory; nothing is paged
    memory = tmp_path / "pages.json"
    assert Receiver.received == [] and (not memory.exists() or json.loads(memory.read_text())["pages"] == {}), \
        [page["body"].get("text") for page in Receiver.received]
