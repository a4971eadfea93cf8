# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""OUT-1: every playbook under --check says what it would do, changes nothing, writes no record, and never
claims a result. What changed is read from the engine (containers, the edge's file) and from the disk (the
incident directory, the stack's state directory, the onboarding output), never from the playbook's words."""
from __future__ import annotations

import os
import re
import subprocess

import pytest

from conftest import ROOT, local_stack

pytestmark = pytest.mark.integration

CLAIMS = re.compile(r"\bresolved\b|\bverified\b|\bfixed\b|closed as", re.IGNORECASE)


def files_under(path):
    """{relative path: (size, mtime)} of every file below ``path`` (empty when it does not exist)."""
    found = {}
    for base, _dirs, names in os.walk(path):
        for name in names:
            full = os.path.join(base, name)
            st = os.stat(full)
            found[os.path.relpath(full, path)] = (st.st_size, st.st_mtime_ns)
    return found


def snapshot(stack, tmp_path):
    containers = {c.name: (c.attrs["State"]["Status"], c.attrs["State"]["StartedAt"], c.id) for c in stack.containers()}
    return dict(containers=containers, state=files_under(stack.spec.state_dir), out=files_under(tmp_path),
                edge=stack.edge_config_sha256())


CASES = {
    "p0_recover": (["p0_recover.yml"], {}),
    "p1_mitigate": (["p1_mitigate.yml"], {}),
    "p2_report": (["p2_report.yml"], {"report_title": "check mode", "report_description": "a dry run"}),
    "diagnose": (["diagnose.yml"], {}),
    "triage": (["triage.yml"], {}),
    "restore_normal": (["restore_normal.yml"], {}),
    "ops": (["ops.yml"], {}),
    "ops-restart": (["ops.yml", "--tags", "restart,clear_cache,breaker_reset"], {"reason": "check"}),
    "onboard": (["onboard.yml"], {"compose_project": "{project}"}),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_every_playbook_under_check_changes_nothing_and_claims_nothing(stack, tmp_path, case):
    argv, extra = CASES[case]
    extra = {k: v.format(project=stack.spec.project) if isinstance(v, str) else v for k, v in extra.items()}
    extra.update(incident_dir=str(tmp_path / "incidents"), report_backlog_dir=str(tmp_path / "reports"),
                 diagnose_bundle_dir=str(tmp_path / "bundles"), onboard_output=str(tmp_path / "onboard.yml"))
    before = snapshot(stack, tmp_path)

    result = stack.run_playbook(argv[0], *argv[1:], check=True, extra_vars=extra)

    assert result.returncode == 0, result.output[-4000:]
    after = snapshot(stack, tmp_path)
    assert after["containers"] == before["containers"], "a container changed"
    assert after["edge"] == before["edge"], "the edge's file changed"
    assert after["state"] == before["state"], "the state directory on the host changed"
    assert after["out"] == before["out"] == {}, f"files were written: {sorted(after['out'])}"
    claim = CLAIMS.search(result.stdout)
    assert claim is None, f"a dry run said {claim.group(0)!r}: ...{result.stdout[max(0, claim.start() - 300):claim.end() + 100]}"


def traces(stack):
    """What each drill fault leaves behind, read from the stack itself: the latency fault's qdisc and MSS clamp in
    the service's network namespace, held database sessions, a canary key in the cache, the fill file, busy loops."""
    service = stack.container()
    netns = ["nsenter", "-t", str(service.attrs["State"]["Pid"]), "-n"]
    qdisc = subprocess.run(netns + ["tc", "qdisc", "show"], capture_output=True, text=True, timeout=30, check=True).stdout
    mangle = subprocess.run(netns + ["iptables", "-t", "mangle", "-S"], capture_output=True, text=True, timeout=30, check=True).stdout
    log_dir = local_stack(stack.spec).get("log_dir", "/var/log/recsys")
    return dict(
        qdisc="d7d7" in qdisc, clamp="sre-incident-drill" in mangle,
        held=stack.sql("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'sre-incident-drill-hold'"),
        canary=stack.redis("GET", "sre-test-check-canary"),
        fill=stack.exec(stack.spec.service, ["test", "-e", f"{log_dir}/sre-incident-drill-fill"])[0] == 0,
        burners=[p for p in service.top(ps_args="-eo pid,args")["Processes"] if "sre-incident-drill" in p[-1]])


def test_drill_under_check_injects_nothing_and_says_what_it_would_do(stack, tmp_path):
    """drill.yml --check on the local inventory: every fault of the catalogue observed, none injected (the
    stack's own state read before and after), no record, no report; the output says what it would do."""
    stack.redis("SET", "sre-test-check-canary", "1")   # a key of the test's own, without expiry: a FLUSHDB would take it
    before, traces_before = snapshot(stack, tmp_path), traces(stack)
    assert traces_before == dict(qdisc=False, clamp=False, held="0", canary="1", fill=False, burners=[])

    result = stack.run_playbook("drill.yml", check=True,
                                extra_vars={"drill_fault": "all", "incident_dir": str(tmp_path / "incidents")})

    assert result.returncode == 0, result.output[-4000:]
    after = snapshot(stack, tmp_path)
    assert after["containers"] == before["containers"] and after["edge"] == before["edge"]
    assert after["state"] == before["state"] and after["out"] == {}
    assert traces(stack) == traces_before
    stack.redis("DEL", "sre-test-check-canary")
    text = " ".join(result.stdout.split())
    for fault in ("app_crash", "app_hang", "redis_down", "postgres_down", "db_connections_exhausted", "cache_wipe", "latency",
                  "disk_fill"):
        assert f"would inject {fault}" in text, fault
    assert "would run p0_recover.yml" in text and "would run triage.yml" in text and "roll the fault back" in text
    assert "8 drill(s) would run" in text and CLAIMS.search(result.stdout) is None


def test_postmortem_under_check_writes_no_report(stack, tmp_path):
    incidents = tmp_path / "incidents"
    opened = stack.run_playbook("p0_recover.yml", extra_vars={"incident_dir": str(incidents)})  # a false alarm, for real
    assert opened.returncode == 0, opened.output[-3000:]
    record = next(incidents.iterdir())
    before = files_under(incidents)
    result = stack.run_playbook("postmortem.yml", check=True,
                                extra_vars={"incident_dir": str(incidents), "incident_id": record.name})
    assert result.returncode == 0, result.output[-3000:]
    assert files_under(incidents) == before
    assert "would" in result.stdout.lower()


def test_playbooks_directory_is_covered():
    """Every playbook is dry-run here (drill.yml in its own test, and on the staging hosts in test_drills), in
    test_p0_recover_basic (a killed service) or test_backup_restore (restore_backup.yml)."""
    covered = {argv[0] for argv, _extra in CASES.values()} | {"postmortem.yml", "restore_backup.yml", "drill.yml"}
    assert sorted(p.name for p in (ROOT / "playbooks").glob("*.yml")) == sorted(covered)
