# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

import pytest

from ansible_collections.sre.incident.plugins.module_utils._wait import poll_until


class FakeClock:
    """A clock that only moves when the fake sleep is called."""

    def __init__(self):
        self.now = 100.0
        self.sleeps = []

    def clock(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds


def test_returns_at_once_when_check_is_truthy():
    fake = FakeClock()
    ok, value, elapsed = poll_until(lambda: "yes", 5, clock=fake.clock, sleep=fake.sleep)
    assert (ok, value, elapsed) == (True, "yes", 0.0)
    assert fake.sleeps == []


def test_polls_until_truthy():
    fake = FakeClock()
    answers = iter([None, 0, [], {"ready": True}])
    ok, value, elapsed = poll_until(lambda: next(answers), 10, interval=0.5, clock=fake.clock, sleep=fake.sleep)
    assert ok is True
    assert value == {"ready": True}
    assert elapsed == pytest.approx(1.5)
    assert fake.sleeps == [0.5, 0.5, 0.5]


def test_times_out_with_last_value():
    fake = FakeClock()
    calls = []

    def check():
        calls.append(1)
        return False

    ok, value, elapsed = poll_until(check, 1.0, interval=0.3, clock=fake.clock, sleep=fake.sleep)
    assert ok is False
    assert value is False
    assert elapsed == pytest.approx(1.0)
    # the last pause is shortened to the deadline, never past it
    assert sum(fake.sleeps) == pytest.approx(1.0)
    assert max(fake.sleeps) <= 0.3
    assert len(calls) == len(fake.sleeps) + 1


def test_zero_timeout_checks_once():
    fake = FakeClock()
    calls = []
    ok, value, _elapsed = poll_until(lambda: calls.append(1), 0, clock=fake.clock, sleep=fake.sleep)
    assert ok is False and value is None
    assert calls == [1]
    assert fake.sleeps == []


def test_real_clock_is_bounded():
    ok, value, elapsed = poll_until(lambda: None, 0.2, interval=0.05)
    assert ok is False
    assert 0.2 <= elapsed < 1.0


def test_check_exception_propagates():
    def boom():
        raise RuntimeError("engine gone")

    with pytest.raises(RuntimeError, match="engine gone"):
        poll_until(boom, 1)


@pytest.mark.parametrize("interval", [0, -1, None])
def test_bad_interval(interval):
    with pytest.raises(ValueError):
        poll_until(lambda: True, 1, interval=interval)


def test_none_timeout():
    with pytest.raises(ValueError):
        poll_until(lambda: True, None)
