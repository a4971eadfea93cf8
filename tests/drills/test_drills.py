# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Drills (DR-1..DR-4) on two staging hosts reached over SSH (scripts/staging.sh).

The whole catalogue runs on both hosts at once (one fault after another); then the real state is
read: no delay key, item_scores rows, no paused container, no held connections, no fill file, the
data checksums; and a drill against a host marked production is refused with nothing touched.
"""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import docker
import pytest

import sys

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))
from conftest import ROOT, run_playbook  # noqa: E402  pylint: disable=wrong-import-position

HOSTS = {"stg1": 3501, "stg2": 3502}
INVENTORY = "inventories/staging-local"
FAULTS = ["app_crash", "app_hang", "redis_down", "postgres_down", "db_connections_exhausted",
          "cache_wipe", "latency", "disk_fill"]
P0_SLA_DETECT_S, P0_SLA_RESOLVE_S = 300, 1800


@pytest.fixture(scope="module")
def staging():
    subprocess.run(["bash", str(ROOT / "scripts/staging.sh"), "up"], check=True, capture_output=True, text=True, timeout=900)
    yield docker.from_env(timeout=60)


def containers(client, project, service=None):
    labels = [f"com.docker.compose.project={project}"]
    if service:
        labels.append(f"com.docker.compose.service={service}")
    return client.containers.list(all=True, filters={"label": labels})


def run_in(client, project, service, argv):
    code, out = containers(client, project, service)[0].exec_run(argv)
    return code, out.decode("utf-8", "replace").strip()


def test_full_catalogue_on_two_staging_hosts(staging, tmp_path):
    proc = run_playbook("drill.yml", inventory=INVENTORY, extra_vars={"drill_fault": "all", "incident_dir": str(tmp_path)},
                        timeout=1500)
    results = json.loads(next(tmp_path.glob("drill-*.json")).read_text())
    assert next(tmp_path.glob("drill-*.md")).read_text().count("\n- ") >= len(FAULTS) * len(HOSTS)
    seen = {(r["fault"], r["host"]) for r in results}
    assert seen == {(f, h) for f in FAULTS for h in HOSTS}, proc.output[-3000:]
    for r in results:
        assert r["detect_s"] not in (None, "None", ""), r
        assert float(r["detect_s"]) <= P0_SLA_DETECT_S, r
        assert r["result"] in ("recovered", "degraded"), r
        assert float(r["recover_s"]) <= P0_SLA_RESOLVE_S, r
        assert r["rolled_back"] in (True, "True"), r
        assert r["data_ok"] in (True, "True"), r
    # the real state afterwards, read through the engine
    for project in HOSTS:
        assert all(c.status == "running" for c in containers(staging, project)
                   if c.labels["com.docker.compose.service"] != "recommendation-service-standby")
        assert run_in(staging, project, "redis", ["redis-cli", "get", "recsys:delay_ms"])[1] == ""
        sql = ["psql", "-U", "postgres", "-d", "recommendation_db", "-tAc"]
        assert run_in(staging, project, "postgres", sql + ["SELECT count(*) FROM item_scores"])[1] == "60"
        assert run_in(staging, project, "postgres", sql + ["SELECT to_regclass('sre_drill.item_scores_saved') IS NULL"])[1] == "t"
        held = "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'sre-incident-drill-hold'"
        assert run_in(staging, project, "postgres", sql + [held])[1] == "0"
        assert run_in(staging, project, "recommendation-service", ["test", "-e", "/var/log/recsys/sre-incident-drill-fill"])[0] != 0


def test_drill_against_production_is_refused(staging, tmp_path):
    prod = tmp_path / "marked.yml"
    prod.write_text("recsys:\n  hosts:\n    stg2:\n      incident_environment: production\n")
    before = {p: {c.name: c.attrs["State"]["StartedAt"] for c in containers(staging, p)} for p in HOSTS}
    # even with the environment overridden on the command line, the host-side marker refuses
    staging.containers.get("sre-staging-stg1").exec_run(["touch", "/etc/sre-incident/production"])
    try:
        proc = run_playbook("drill.yml", "-i", str(prod), inventory=INVENTORY,
                            extra_vars={"drill_fault": "app_crash", "incident_dir": str(tmp_path)})
        assert proc.returncode != 0
        assert "Drill refused on stg2" in proc.output and "incident_environment is production" in proc.output
        proc = run_playbook("drill.yml", inventory=INVENTORY,
                            extra_vars={"drill_fault": "app_crash", "incident_environment": "staging", "incident_dir": str(tmp_path)})
        assert proc.returncode != 0 and "marker file /etc/sre-incident/production exists" in proc.output
    finally:
        staging.containers.get("sre-staging-stg1").exec_run(["rm", "-f", "/etc/sre-incident/production"])
    after = {p: {c.name: c.attrs["State"]["StartedAt"] for c in containers(staging, p)} for p in HOSTS}
    assert after == before
    assert not list(Path(tmp_path).glob("*/events.jsonl"))
