# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Event-driven: an Alertmanager webhook POSTed twice to ansible-rulebook starts one real run.

ansible-rulebook runs extensions/eda/rulebooks/alertmanager.yml with the collection's own event
source (sre.incident.alertmanager). The service is killed for real, the same firing alert is
POSTed twice, and the test reads the real outcome: the service answers again, and exactly one
incident record was written.
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from conftest import INVENTORY, ROOT, VENV_BIN, local_stack, wait_for

pytestmark = pytest.mark.integration

RULEBOOK = ROOT / "extensions/eda/rulebooks/alertmanager.yml"


def playbook_fqcn():
    """triage once it exists, p0_recover until then (SRE_EDA_TEST_PLAYBOOK overrides)."""
    if os.environ.get("SRE_EDA_TEST_PLAYBOOK"):
        return os.environ["SRE_EDA_TEST_PLAYBOOK"]
    return "sre.incident.triage" if (ROOT / "playbooks/triage.yml").exists() else "sre.incident.p0_recover"


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def alert_payload(fingerprint):
    alert = {
        "status": "firing",
        "labels": {"alertname": "RecommendationServiceDown", "severity": "critical", "service": "recommendation-service",
                   "job": "recommendation-service", "instance": "127.0.0.1"},
        "annotations": {"summary": "recommendation-service is not answering /health"},
        # a fresh alert: the incident's SLA counts from startsAt (MON-1), and a P0 whose resolve
        # deadline has passed before the run starts degrades instead of climbing the ladder
        "startsAt": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(time.time() - 5)), "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus:9090/graph?g0.expr=up%3D%3D0", "fingerprint": fingerprint,
    }
    return {"version": "4", "groupKey": '{}:{alertname="RecommendationServiceDown"}', "truncatedAlerts": 0,
            "status": "firing", "receiver": "sre-incident", "groupLabels": {"alertname": "RecommendationServiceDown"},
            "commonLabels": alert["labels"], "commonAnnotations": alert["annotations"],
            "externalURL": "http://alertmanager:9093", "alerts": [alert]}


def post(port, payload):
    req = urllib.request.Request(f"http://127.0.0.1:{port}/alerts", data=json.dumps(payload).encode(),
                                 headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(req, timeout=5) as resp:
        return json.loads(resp.read())


def listening(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def inventory_copy(dest: Path):
    """The test inventory with its stack path made absolute: ansible-rulebook copies the inventory
    into a throwaway directory, where a path relative to inventory_dir would point nowhere."""
    shutil.copytree(ROOT / INVENTORY, dest)
    (dest / "group_vars/recsys/stack.yml").write_text(yaml.safe_dump({"incident_stack": local_stack()}))
    return dest


def closed_incidents(incident_dir: Path):
    dirs = [d for d in incident_dir.iterdir() if d.is_dir()] if incident_dir.is_dir() else []
    done = [d for d in dirs if '"type": "closed"' in (d / "events.jsonl").read_text(errors="replace")]
    return dirs, done


def test_one_firing_alert_posted_twice_starts_one_run(stack, tmp_path):
    port = free_port()
    incident_dir = tmp_path / "incidents"
    log = tmp_path / "rulebook.log"
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_NOCOLOR="1",
               PATH=f"{VENV_BIN}:{os.environ.get('PATH', '')}", SRE_EDA_PORT=str(port),
               SRE_EDA_PLAYBOOK=playbook_fqcn(), SRE_INCIDENT_DIR=str(incident_dir))
    stack.container().kill()
    assert not stack.service_answers()

    with log.open("w") as out:
        proc = subprocess.Popen([str(VENV_BIN / "ansible-rulebook"), "--rulebook", str(RULEBOOK),
                                 "-i", str(inventory_copy(tmp_path / "inventory")),
                                 "--env-vars", "SRE_EDA_PORT,SRE_EDA_PLAYBOOK,SRE_INCIDENT_DIR", "-v"],
                                cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        assert wait_for(lambda: listening(port) or proc.poll() is not None, timeout=120) and proc.poll() is None, \
            log.read_text()[-3000:]
        payload = alert_payload("4c1e0d8f2a3b5c6d")
        assert post(port, payload) == {"accepted": 1}
        assert post(port, payload) == {"accepted": 0}, "the repeat was not deduplicated"

        assert wait_for(lambda: closed_incidents(incident_dir)[1], timeout=540), log.read_text()[-4000:]
        assert wait_for(stack.service_answers, timeout=30)
        # the run is over; no second run was started by the repeat
        dirs, done = closed_incidents(incident_dir)
        assert len(dirs) == 1 and len(done) == 1, (dirs, log.read_text()[-4000:])
        events = [json.loads(line) for line in (done[0] / "events.jsonl").read_text().splitlines()]
        assert [e["data"]["outcome"] for e in events if e["type"] == "closed"] == ["resolved"]
        # the incident counts from the alert's start (SPEC MON-1)
        opened = [e for e in events if e["type"] == "opened"][0]["data"]
        assert opened["started_at"] == payload["alerts"][0]["startsAt"]
        assert opened["clock"]["started_from"] == "alert" and opened["clock"]["alert"]["fingerprint"] == "4c1e0d8f2a3b5c6d"
        assert stack.state()["Status"] == "running"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
