# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""p0_recover.yml on both example stacks: a crash is fixed, a false alarm changes nothing, a dry run claims nothing."""
from __future__ import annotations

import os
import re
import signal

import pytest

from conftest import local_stack, read_record, wait_for

pytestmark = pytest.mark.integration

CLAIMS = re.compile(r"resolved|verified|fixed|closed as", re.IGNORECASE)


def test_crashed_service_is_recovered(any_stack, tmp_path):
    stack = any_stack
    stack.container().kill()
    assert stack.state()["Status"] == "exited"
    assert not stack.service_answers()

    result = stack.run_playbook("p0_recover.yml", extra_vars={"incident_dir": str(tmp_path)})

    assert result.returncode == 0, result.output
    assert stack.state()["Status"] == "running"
    # the engine's own healthcheck says so too, at its next interval (it reads "starting" until then)
    assert wait_for(lambda: stack.state()["Health"]["Status"] == "healthy", timeout=60), stack.state()["Health"]
    assert stack.answers(stack.spec.edge_url) and stack.answers(stack.spec.base_url)
    _incident, events = read_record(tmp_path)
    assert [e["data"]["outcome"] for e in events if e["type"] == "closed"] == ["resolved"]


def test_healthy_stack_is_a_false_alarm_and_nothing_restarts(any_stack, tmp_path):
    stack = any_stack
    before = stack.started_at()

    result = stack.run_playbook("p0_recover.yml", extra_vars={"incident_dir": str(tmp_path)})

    assert result.returncode == 0, result.output
    assert stack.started_at() == before
    assert stack.service_answers()
    _incident, events = read_record(tmp_path)
    closed = [e for e in events if e["type"] == "closed"]
    assert [e["data"]["outcome"] for e in closed] == ["false_alarm"]
    assert closed[0]["text"].startswith("False alarm, nothing changed: the service itself: health ")


def test_unknown_service_fails_naming_it(stack):
    before = stack.started_at()
    bad = local_stack()
    bad["service"] = "no-such-service"

    result = stack.run_playbook("p0_recover.yml", extra_vars={"incident_stack": bad})

    assert result.returncode != 0
    assert "no-such-service" in result.output
    assert stack.started_at() == before


def test_check_mode_says_what_it_would_do_and_claims_nothing(any_stack, tmp_path):
    """OUT-1: the dry run on a killed service says "would restart", changes nothing, writes no record."""
    stack = any_stack
    stack.container().kill()
    before = stack.state()

    result = stack.run_playbook("p0_recover.yml", check=True, extra_vars={"incident_dir": str(tmp_path)})

    assert result.returncode == 0, result.output
    after = stack.state()
    assert after["Status"] == "exited"
    assert after["StartedAt"] == before["StartedAt"]
    assert after["FinishedAt"] == before["FinishedAt"]
    assert f"would restart {stack.spec.service}" in " ".join(result.output.split())
    assert "Dry run on localhost, nothing changed and no record written" in " ".join(result.output.split())
    assert not CLAIMS.search(result.stdout), CLAIMS.search(result.stdout).group(0)
    assert not tmp_path.exists() or not list(tmp_path.iterdir()), "check mode wrote an incident record"
    lease = stack.spec.state_dir / "lease.json"
    assert not lease.exists(), "check mode took the lease"


@pytest.mark.parametrize("any_stack", ["shop"], indirect=True)
def test_a_crash_the_restart_policy_recovered_is_recorded_as_such(any_stack, tmp_path):
    """The shop stack's service has restart: unless-stopped: a process that exits by itself is restarted by
    the engine. p0_recover notices it, records "recovered by the restart policy" and restarts nothing."""
    stack = any_stack
    container = stack.container()
    count = container.attrs["RestartCount"]
    # the process dies (SIGKILL from the host, not `docker kill`, which the engine counts as a manual stop)
    os.kill(container.attrs["State"]["Pid"], signal.SIGKILL)
    assert wait_for(lambda: (stack.container().attrs["RestartCount"] > count
                             and stack.state()["Status"] == "running"), timeout=30), "the engine did not restart it"
    assert wait_for(stack.service_answers, timeout=60)
    started = stack.state()["StartedAt"]

    result = stack.run_playbook("p0_recover.yml", extra_vars={"incident_dir": str(tmp_path)})

    assert result.returncode == 0, result.output
    assert stack.state()["StartedAt"] == started   # the automation did not restart it on top
    _incident, events = read_record(tmp_path)
    closed = [e for e in events if e["type"] == "closed"]
    assert [e["data"]["outcome"] for e in closed] == ["resolved"]
    assert "Recovered by the restart policy" in closed[0]["text"]
