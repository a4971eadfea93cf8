# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""sre.incident.fault on the real stack (GEN-5): every fault from outside the application.

For each fault, the way a state change is tested here (STYLE 10): check mode first (nothing may
change), inject, inject again (no change), then what users and the stack really show, read by the
test itself and not by the module (latency measured here, 503s, ``df`` in the container, Redis
``DBSIZE``, ``pg_stat_activity``, the qdisc and MTU read with ``nsenter``, the process list), then
roll back, roll back again (no change), and read the state again. Whatever happens, the fault is
taken back in a finalizer (and the service restarted if even that fails: a restart gives the
container a new network namespace).
"""
from __future__ import annotations

import concurrent.futures
import statistics
import subprocess
import time
import urllib.error
import urllib.request

import pytest

from conftest import BASE_URL, EDGE_URL, SAMPLE_USERS, SERVICE, http_get, wait_for
from faults import fault, fault_call

pytestmark = pytest.mark.integration

HOLDER = "sre-incident-drill-hold"
BURNER = "sre-incident-drill-cpu"
FILL = "/var/log/recsys/sre-incident-drill-fill"


def timed_get(url, timeout=5):
    started = time.monotonic()
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            resp.read()
            status = resp.status
    except urllib.error.HTTPError as exc:
        status = exc.code
    except OSError:
        status = 0
    return status, (time.monotonic() - started) * 1000


def users_round(base, timeout=5, rounds=3):
    """Every sample user's recommendations at once, as users (and the drill's watch) ask, ``rounds`` times:
    (every status, the lowest median of a round). The lowest: a loaded machine only ever adds time."""
    urls = [f"{base}/api/recommendations/{u}?limit=10" for u in SAMPLE_USERS]
    statuses, medians = [], []
    with concurrent.futures.ThreadPoolExecutor(len(urls)) as pool:
        for _round in range(rounds):
            answers = list(pool.map(lambda u: timed_get(u, timeout), urls))
            statuses += [s for s, _ms in answers]
            medians.append(statistics.median(ms for _s, ms in answers))
    return statuses, min(medians)


def netns(stack, *argv):
    """A command in the network namespace of the service's container, run by the test itself."""
    pid = stack.state()["Pid"]
    proc = subprocess.run(["nsenter", "-t", str(pid), "-n", *argv], capture_output=True, text=True, timeout=30, check=False)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def eth0(stack):
    line = netns(stack, "ip", "-o", "-d", "link", "show", "eth0")
    fields = line.split()
    return int(fields[fields.index("mtu") + 1]), int(fields[fields.index("gso_max_segs") + 1])


def pg_count(stack, where):
    return int(stack.sql(f"SELECT count(*) FROM pg_stat_activity WHERE {where}"))


def df_pct(stack):
    code, out = stack.exec(SERVICE, ["df", "-P", "/var/log/recsys"])
    assert code == 0, out
    return int(out.splitlines()[-1].split()[4].rstrip("%"))


@pytest.fixture
def undo(stack, tmp_path):
    """Roll back whatever fault a test names, whatever happened; restart the service if that fails too."""
    names = []
    yield names.append
    for name in names:
        try:
            fault(tmp_path, name=name, state="rolled_back")
        except AssertionError:
            if name == "latency" and stack.container().status == "running":
                stack.container().restart(timeout=10)   # a new network namespace: no qdisc, the MTU of the network


def test_latency_slows_users_from_the_host_and_rolls_back(stack, tmp_path, undo):
    undo("latency")
    statuses, before_ms = users_round(EDGE_URL)
    assert set(statuses) == {200} and before_ms < 300, before_ms

    check = fault(tmp_path, check=True, name="latency", state="injected", delay_ms=800)
    assert check["changed"] is True
    assert "d7d7" not in netns(stack, "tc", "qdisc", "show") and eth0(stack) == (1500, 65535)

    fault(tmp_path, name="latency", state="injected", delay_ms=800)
    # users see it, measured here: through the edge and straight, every sample user at once and one alone
    for base in (EDGE_URL, BASE_URL):
        statuses, median_ms = users_round(base)
        assert set(statuses) == {200} and 500 < median_ms < 2500, (base, median_ms)
    alone = [timed_get(f"{BASE_URL}/api/recommendations/{SAMPLE_USERS[0]}?limit=10") for _i in range(3)]
    assert {s for s, _ms in alone} == {200} and min(ms for _s, ms in alone) > 500, alone
    # /health still answers, and truthfully: the traffic to PostgreSQL and Redis is not slowed
    status, body = http_get("/health", base=EDGE_URL, timeout=3)
    assert status == 200 and body["postgres"] == "up" and body["redis"] == "up", body
    assert "qdisc htb d7d7:" in netns(stack, "tc", "qdisc", "show")
    assert fault(tmp_path, name="latency", state="injected")["changed"] is False

    back = fault(tmp_path, name="latency", state="rolled_back")
    assert back["changed"] is True
    assert "d7d7" not in netns(stack, "tc", "qdisc", "show") and eth0(stack) == (1500, 65535)
    statuses, after_ms = users_round(EDGE_URL)
    assert set(statuses) == {200} and after_ms < 300, after_ms
    assert fault(tmp_path, name="latency", state="rolled_back")["changed"] is False


def test_connections_exhausted_by_sessions_in_the_database_container(stack, tmp_path, undo):
    undo("db_connections_exhausted")
    # every slot of the application held (spare 0): /health and the uncached answers fail with 503
    stack.redis("FLUSHDB")
    check = fault(tmp_path, check=True, name="db_connections_exhausted", state="injected", spare_connections=0)
    assert check["changed"] is True and pg_count(stack, f"application_name = '{HOLDER}'") == 0

    fault(tmp_path, name="db_connections_exhausted", state="injected", spare_connections=0, hold_seconds=300)
    limit = int(stack.sql("SHOW max_connections")) - int(stack.sql("SHOW superuser_reserved_connections"))
    held = pg_count(stack, f"application_name = '{HOLDER}'")
    assert held > 0 and pg_count(stack, "backend_type = 'client backend'") >= limit, held
    # nothing of the collection's runs in the application's container: the sessions are psql processes of the database's
    assert not [p for p in stack.container().top(ps_args="-eo pid,args")["Processes"] if "psql" in p[-1]]
    assert len([p for p in stack.container("postgres").top(ps_args="-eo pid,args")["Processes"] if p[-1].startswith("psql")]) == held
    assert http_get("/health", base=EDGE_URL, timeout=5)[0] == 503
    assert http_get(f"/api/recommendations/{SAMPLE_USERS[0]}?limit=10", base=EDGE_URL, timeout=5)[0] == 503
    assert fault(tmp_path, name="db_connections_exhausted", state="injected", spare_connections=0)["changed"] is False

    assert fault(tmp_path, name="db_connections_exhausted", state="rolled_back")["changed"] is True
    assert pg_count(stack, f"application_name = '{HOLDER}'") == 0
    assert wait_for(stack.service_answers, timeout=30)
    assert fault(tmp_path, name="db_connections_exhausted", state="rolled_back")["changed"] is False


def test_cache_wipe_flushes_redis_and_the_service_refills_it(stack, tmp_path, undo):
    undo("cache_wipe")
    assert stack.service_answers() and int(stack.redis("DBSIZE")) > 0
    stack.redis("SET", "sre-test-marker", "1")
    assert fault(tmp_path, check=True, name="cache_wipe", state="injected")["changed"] is True
    assert stack.redis("EXISTS", "sre-test-marker") == "1"

    assert fault(tmp_path, name="cache_wipe", state="injected")["changed"] is True
    assert stack.redis("DBSIZE") == "0"
    assert fault(tmp_path, name="cache_wipe", state="injected")["changed"] is False

    back = fault(tmp_path, name="cache_wipe", state="rolled_back")
    assert back["changed"] is True and "cannot be restored" in back["actions"][0]
    assert int(stack.redis("DBSIZE")) >= len(SAMPLE_USERS) and stack.redis("EXISTS", "sre-test-marker") == "0"
    assert stack.service_answers()
    assert fault(tmp_path, name="cache_wipe", state="rolled_back")["changed"] is False


def test_disk_fill_fills_the_services_volume_and_frees_it(stack, tmp_path, undo):
    undo("disk_fill")
    assert df_pct(stack) < 50
    assert fault(tmp_path, check=True, name="disk_fill", state="injected")["changed"] is True
    assert df_pct(stack) < 50

    assert fault(tmp_path, name="disk_fill", state="injected")["changed"] is True
    assert df_pct(stack) >= 99 and stack.exec(SERVICE, ["test", "-e", FILL])[0] == 0
    assert fault(tmp_path, name="disk_fill", state="injected")["changed"] is False

    assert fault(tmp_path, name="disk_fill", state="rolled_back")["changed"] is True
    assert df_pct(stack) < 50 and stack.exec(SERVICE, ["test", "-e", FILL])[0] != 0
    assert fault(tmp_path, name="disk_fill", state="rolled_back")["changed"] is False
    result = fault_call(tmp_path, name="disk_fill", state="injected", max_fill_mb=16)
    assert result["failed"] and "max_fill_mb=16" in result["msg"] and df_pct(stack) < 50


def burners(stack):
    return [p for p in stack.container().top(ps_args="-eo pid,args")["Processes"] if BURNER in p[-1]]


def test_cpu_pressure_burns_in_the_service_container_and_is_killed(stack, tmp_path, undo):
    undo("cpu_pressure")
    assert fault(tmp_path, check=True, name="cpu_pressure", state="injected")["changed"] is True
    assert not burners(stack)

    assert fault(tmp_path, name="cpu_pressure", state="injected", cpu_workers=1, hold_seconds=120)["changed"] is True
    assert burners(stack)
    assert fault(tmp_path, name="cpu_pressure", state="injected")["changed"] is False

    assert fault(tmp_path, name="cpu_pressure", state="rolled_back")["changed"] is True
    assert wait_for(lambda: not burners(stack), timeout=10)
    assert fault(tmp_path, name="cpu_pressure", state="rolled_back")["changed"] is False


def test_postgres_down_users_get_503_until_the_rollback(stack, tmp_path, undo):
    undo("postgres_down")
    stack.redis("FLUSHDB")
    assert fault(tmp_path, name="postgres_down", state="injected")["changed"] is True
    assert stack.state("postgres")["Status"] == "exited"
    assert http_get("/health", base=EDGE_URL, timeout=5)[0] == 503
    assert http_get(f"/api/recommendations/{SAMPLE_USERS[1]}?limit=10", base=EDGE_URL, timeout=5)[0] == 503
    assert fault(tmp_path, name="postgres_down", state="rolled_back")["changed"] is True
    assert stack.state("postgres")["Health"]["Status"] == "healthy"
    assert wait_for(stack.service_answers, timeout=30)


def test_production_is_refused_and_nothing_changes(stack, tmp_path):
    result = fault_call(tmp_path, name="app_crash", state="injected", environment="production")
    assert result["failed"] and result["refused"] and stack.state()["Status"] == "running"
