# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""p0_recover.yml on the real stack: a crash is fixed, a false alarm changes nothing."""
from __future__ import annotations

from conftest import SERVICE, local_stack, run_playbook

pytestmark = __import__("pytest").mark.integration


def test_crashed_service_is_recovered(stack):
    stack.container().kill()
    assert stack.state()["Status"] == "exited"
    assert not stack.service_answers()

    result = run_playbook("p0_recover.yml")

    assert result.returncode == 0, result.output
    state = stack.state()
    assert state["Status"] == "running"
    assert state["Health"]["Status"] == "healthy"
    assert stack.service_answers()


def test_healthy_stack_is_a_false_alarm_and_nothing_restarts(stack):
    before = stack.started_at()

    result = run_playbook("p0_recover.yml")

    assert result.returncode == 0, result.output
    assert stack.started_at() == before
    assert stack.service_answers()


def test_unknown_service_fails_naming_it(stack):
    before = stack.started_at()
    bad = local_stack()
    bad["service"] = "no-such-service"

    result = run_playbook("p0_recover.yml", extra_vars={"incident_stack": bad})

    assert result.returncode != 0
    assert "no-such-service" in result.output
    assert stack.started_at() == before


def test_check_mode_restarts_nothing(stack):
    stack.container().kill()
    before = stack.state()

    result = run_playbook("p0_recover.yml", check=True)

    assert result.returncode == 0, result.output
    after = stack.state()
    assert after["Status"] == "exited"
    assert after["StartedAt"] == before["StartedAt"]
    assert after["FinishedAt"] == before["FinishedAt"]
    assert SERVICE in result.output
