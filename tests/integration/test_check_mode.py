# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""OUT-1: every playbook under --check says what it would do, changes nothing, writes no record, and never
claims a result. What changed is read from the engine (containers, the edge's file) and from the disk (the
incident directory, the stack's state directory, the onboarding output), never from the playbook's words."""
from __future__ import annotations

import os
import re

import pytest

from conftest import ROOT

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
    """Every playbook is dry-run here, in test_p0_recover_basic (a killed service), test_backup_restore
    (restore_backup.yml) or test_drills (drill.yml)."""
    covered = {argv[0] for argv, _extra in CASES.values()} | {"postmortem.yml", "restore_backup.yml", "drill.yml"}
    assert sorted(p.name for p in (ROOT / "playbooks").glob("*.yml")) == sorted(covered)
