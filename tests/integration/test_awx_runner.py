# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Every playbook under ansible-runner, the way AWX runs a job template, reading its artifacts.

AWX hands a job's ``set_stats`` data to the next job of a workflow from the
``playbook_on_stats`` event's ``artifact_data``; these tests read exactly that, plus the
run's status, and check the real state behind it (the service answers, the record on disk).
One run per playbook; the postmortem reuses the incident the P0 run recovered.
"""
from __future__ import annotations

import hashlib
import json
import os
import tarfile
from pathlib import Path

import ansible_runner
import pytest

from conftest import INVENTORY, ROOT, VENV_BIN

pytestmark = pytest.mark.integration


def run_job(tmp: Path, playbook: str, extravars: dict):
    """One job: a fresh private data dir, the checkout's collection found via .collections."""
    private = tmp / f"job-{playbook}"
    private.mkdir()
    envvars = {"ANSIBLE_COLLECTIONS_PATH": str(ROOT / ".collections"), "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
               "PATH": f"{VENV_BIN}:{os.environ.get('PATH', '')}", "ANSIBLE_NOCOLOR": "1"}
    result = ansible_runner.run(private_data_dir=str(private), playbook=str(ROOT / "playbooks" / playbook),
                                inventory=str(ROOT / INVENTORY), extravars=extravars, envvars=envvars,
                                quiet=True, timeout=600)
    stats = [e for e in result.events if e.get("event") == "playbook_on_stats"]
    assert stats, f"{playbook}: no playbook_on_stats event"
    artifact = stats[-1]["event_data"].get("artifact_data") or {}
    output = result.stdout.read()
    return result, artifact, output


def record_events(incident_dir: Path, incident_id: str):
    return [json.loads(line) for line in (incident_dir / incident_id / "events.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    return tmp_path_factory.mktemp("runner")


@pytest.fixture(scope="module")
def recovered(work, stack_session):
    """p0_recover.yml under ansible-runner against a killed service (shared by the postmortem test)."""
    stack_session.reset_responder_state()
    stack_session.container().kill()
    assert not stack_session.service_answers()
    incident_dir = work / "incidents"
    result, artifact, output = run_job(work, "p0_recover.yml", {"incident_dir": str(incident_dir)})
    return result, artifact, output, incident_dir


def test_p0_recover_job_sets_the_incident_id(recovered, stack):
    result, artifact, output, incident_dir = recovered
    assert result.status == "successful" and result.rc == 0, output[-4000:]
    assert stack.service_answers()
    incident_id = artifact["sre_incident_id"]
    assert artifact["sre_incident_dir"] == str(incident_dir)
    events = record_events(incident_dir, incident_id)
    assert [e["data"]["outcome"] for e in events if e["type"] == "closed"] == ["resolved"]


def test_postmortem_job_reports_on_that_incident(recovered, work):
    incident_id, incident_dir = recovered[1]["sre_incident_id"], recovered[3]
    result, artifact, output = run_job(work, "postmortem.yml", {"incident_id": incident_id,
                                                                "incident_dir": str(incident_dir)})
    assert result.status == "successful", output[-4000:]
    assert artifact["sre_postmortem"]["id"] == incident_id
    report = incident_dir / incident_id / "postmortem.md"
    assert report.is_file() and incident_id in report.read_text()


def test_diagnose_job_hands_on_its_summary(work, stack):
    """What the job hands on (set_stats) is what its bundle found, and the incident follows from it."""
    incident_dir = work / "diag-incidents"
    result, artifact, output = run_job(work, "diagnose.yml", {"incident_dir": str(incident_dir),
                                                              "diagnose_label": "awx"})
    assert result.status == "successful", output[-4000:]
    summary = artifact["diagnose"]
    assert len(summary) == 1, summary
    host = next(iter(summary.values()))
    archive = Path(host["bundle"])
    assert hashlib.sha256(archive.read_bytes()).hexdigest() == host["bundle_sha256"]
    with tarfile.open(archive) as tar:
        index_member = [m for m in tar.getmembers() if m.name.endswith("/index.json")][0]
        findings = json.loads(tar.extractfile(index_member).read())["findings"]
    levels = [f["level"] for f in findings]
    kinds = [f["kind"] for f in findings]
    verdict = "critical" if "critical" in levels else ("warning" if levels else "ok")
    severity = "P0" if "down" in kinds else {"critical": "P1", "warning": "P2", "ok": "none"}[verdict]
    assert (host["verdict"], host["severity"]) == (verdict, severity), (host, findings)
    assert host["reasons"] == [f["reason"] for f in findings]
    # the stack is healthy and answers: nothing may call it down
    assert stack.service_answers()
    assert "down" not in kinds and host["severity"] != "P0", findings
    # an incident is opened exactly when a severity is named, and with that severity
    opened = [json.loads(p.read_text().splitlines()[0]) for p in incident_dir.glob("*/events.jsonl")]
    if severity == "none":
        assert opened == []
    else:
        assert [e["data"]["severity"] for e in opened] == [severity]


def test_restore_normal_job_on_a_healthy_stack(work, stack):
    before = stack.started_at()
    result, artifact, output = run_job(work, "restore_normal.yml", {"incident_dir": str(work / "restore-incidents")})
    assert result.status == "successful", output[-4000:]
    assert stack.service_answers()
    assert stack.started_at() == before


def test_p2_report_job_writes_the_report(work, stack):
    backlog = work / "backlog"
    result, artifact, output = run_job(work, "p2_report.yml", {
        "report_title": "Runner job smoke", "report_expected": "ten recommendations", "report_backlog_dir": str(backlog),
        "incident_dir": str(work / "p2-incidents")})
    assert result.status == "successful", output[-4000:]
    reports = list(backlog.glob("*.md"))
    assert len(reports) == 1 and "Runner job smoke" in reports[0].read_text()
