# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""sre.incident.fault on both example stacks (GEN-5, GEN-6): every fault from outside the application.

For each fault, the way a state change is tested here (STYLE 10): check mode first (nothing may
change), inject, inject again (no change), then what users and the stack really show, read by the
test itself and not by the module (latency measured here, 503s, ``df`` in the container, Redis
``DBSIZE``, ``pg_stat_activity``, the qdisc, the MSS clamp and ``gso_max_segs`` read with
``nsenter``, the process list), then roll back, roll back again (no change), and read the state
again. Whatever happens, the fault is taken back in a finalizer (and the service restarted if even
that fails: a restart gives the container a new network namespace).
"""
from __future__ import annotations

import concurrent.futures
import statistics
import subprocess
import time
import urllib.error
import urllib.request

import pytest

from conftest import http_get, wait_for
from faults import fault, fault_call

pytestmark = pytest.mark.integration

HOLDER = "sre-incident-drill-hold"
BURNER = "sre-incident-drill-cpu"
FILL = "sre-incident-drill-fill"
# What the test knows of each stack beyond conftest's StackSpec: the service's writable volume, and whether users
# get 503 when every free connection slot is held (the reference app opens one connection per request; the shop's
# recs-api keeps a pool, whose open connections go on serving)
VOLUME = {"recsys": "/var/log/recsys", "shop": "/var/log/recs-api"}
FAILS_WITHOUT_SLOTS = {"recsys": True, "shop": False}


def timed_get(url, timeout=5):
    started = time.monotonic()
    request = urllib.request.Request(url, headers={"X-User-Id": "synthetic-test"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            resp.read()
            status = resp.status
    except urllib.error.HTTPError as exc:
        status = exc.code
    except OSError:
        status = 0
    return status, (time.monotonic() - started) * 1000


def users_round(stack, base, timeout=5, rounds=3):
    """Every sample user's recommendations at once, as users (and the drill's watch) ask, ``rounds`` times:
    (every status, the lowest median of a round). The lowest: a loaded machine only ever adds time."""
    urls = [f"{base}/api/recommendations/{u}?limit=10" for u in stack.spec.users]
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


def traces(stack):
    """(our qdisc there, our MSS clamp there, eth0's MTU, eth0's gso_max_segs), read in the service's namespace."""
    fields = netns(stack, "ip", "-o", "-d", "link", "show", "eth0").split()
    return ("d7d7" in netns(stack, "tc", "qdisc", "show"),
            "sre-incident-drill-latency" in netns(stack, "iptables", "-t", "mangle", "-S", "PREROUTING"),
            int(fields[fields.index("mtu") + 1]), int(fields[fields.index("gso_max_segs") + 1]))


def pg_count(stack, where):
    return int(stack.sql(f"SELECT count(*) FROM pg_stat_activity WHERE {where}"))


def df_pct(stack):
    code, out = stack.exec(stack.spec.service, ["df", "-P", VOLUME[stack.spec.id]])
    assert code == 0, out
    return int(out.splitlines()[-1].split()[4].rstrip("%"))


def processes(stack, service=None):
    return [p[-1] for p in stack.container(service).top(ps_args="-eo pid,args")["Processes"]]


@pytest.fixture
def undo(any_stack, tmp_path):
    """Roll back whatever fault a test names, whatever happened; restart the service if that fails too."""
    names = []
    yield names.append
    for name in names:
        try:
            fault(tmp_path, inventory=any_stack.inventory, name=name, state="rolled_back")
        except AssertionError:
            if name == "latency" and any_stack.container().status == "running":
                any_stack.container().restart(timeout=10)   # a new network namespace: no qdisc, no clamp


def test_latency_slows_users_from_the_host_and_rolls_back(any_stack, tmp_path, undo):
    stack, inv = any_stack, any_stack.inventory
    undo("latency")
    statuses, before_ms = users_round(stack, stack.spec.edge_url)
    assert set(statuses) == {200} and before_ms < 300, before_ms
    clean = traces(stack)
    assert clean[:2] == (False, False)

    check = fault(tmp_path, check=True, inventory=inv, name="latency", state="injected", delay_ms=800)
    assert check["changed"] is True and traces(stack) == clean

    fault(tmp_path, inventory=inv, name="latency", state="injected", delay_ms=800)
    # users see it, measured here: through the edge and straight, every sample user at once and one alone
    for base in (stack.spec.edge_url, stack.spec.base_url):
        statuses, median_ms = users_round(stack, base)
        assert set(statuses) == {200} and 500 < median_ms < 2500, (base, median_ms)
    alone = [timed_get(f"{stack.spec.base_url}/api/recommendations/{stack.spec.users[0]}?limit=10") for _i in range(3)]
    assert {s for s, _ms in alone} == {200} and min(ms for _s, ms in alone) > 500, alone
    # /health still answers, and truthfully: the service's own connections to its database and cache are untouched
    assert http_get("/health", base=stack.spec.edge_url, timeout=3)[0] == 200
    qdisc, clamp, mtu, segs = traces(stack)
    assert qdisc and mtu == clean[2] and (clamp, segs) in ((True, 1), (False, clean[3]))   # the clamp without netem
    assert fault(tmp_path, inventory=inv, name="latency", state="injected")["changed"] is False

    assert fault(tmp_path, inventory=inv, name="latency", state="rolled_back")["changed"] is True
    assert traces(stack) == clean
    statuses, after_ms = users_round(stack, stack.spec.edge_url)
    assert set(statuses) == {200} and after_ms < 300, after_ms
    assert fault(tmp_path, inventory=inv, name="latency", state="rolled_back")["changed"] is False


def test_connections_exhausted_by_sessions_in_the_database_container(any_stack, tmp_path, undo):
    stack, inv = any_stack, any_stack.inventory
    undo("db_connections_exhausted")
    stack.redis("FLUSHDB")    # answers computed from the database: they need a connection
    check = fault(tmp_path, check=True, inventory=inv, name="db_connections_exhausted", state="injected", spare_connections=0)
    assert check["changed"] is True and pg_count(stack, f"application_name = '{HOLDER}'") == 0

    fault(tmp_path, inventory=inv, name="db_connections_exhausted", state="injected", spare_connections=0, hold_seconds=300)
    limit = int(stack.sql("SHOW max_connections")) - int(stack.sql("SHOW superuser_reserved_connections"))
    held = pg_count(stack, f"application_name = '{HOLDER}'")
    assert held > 0 and pg_count(stack, "backend_type = 'client backend'") >= limit, held
    # the sessions are psql processes of the database container; nothing of the collection's runs in the service's
    assert len([p for p in processes(stack, stack.spec.database["service"]) if p.startswith("psql")]) == held
    assert not [p for p in processes(stack) if "psql" in p]
    if FAILS_WITHOUT_SLOTS[stack.spec.id]:
        assert http_get("/health", base=stack.spec.edge_url, timeout=5)[0] == 503
        assert http_get(f"/api/recommendations/{stack.spec.users[0]}?limit=10", base=stack.spec.edge_url, timeout=5)[0] == 503
    assert fault(tmp_path, inventory=inv, name="db_connections_exhausted", state="injected", spare_connections=0)["changed"] is False

    assert fault(tmp_path, inventory=inv, name="db_connections_exhausted", state="rolled_back")["changed"] is True
    assert pg_count(stack, f"application_name = '{HOLDER}'") == 0
    assert not [p for p in processes(stack, stack.spec.database["service"]) if p.startswith("psql")]
    assert wait_for(stack.service_answers, timeout=30)
    assert fault(tmp_path, inventory=inv, name="db_connections_exhausted", state="rolled_back")["changed"] is False


def test_cache_wipe_flushes_redis_and_the_service_refills_it(any_stack, tmp_path, undo):
    stack, inv = any_stack, any_stack.inventory
    undo("cache_wipe")
    assert stack.service_answers() and int(stack.redis("DBSIZE")) > 0
    stack.redis("SET", "sre-test-marker", "1")
    assert fault(tmp_path, check=True, inventory=inv, name="cache_wipe", state="injected")["changed"] is True
    assert stack.redis("EXISTS", "sre-test-marker") == "1"

    assert fault(tmp_path, inventory=inv, name="cache_wipe", state="injected")["changed"] is True
    assert stack.redis("DBSIZE") == "0"
    assert fault(tmp_path, inventory=inv, name="cache_wipe", state="injected")["changed"] is False

    back = fault(tmp_path, inventory=inv, name="cache_wipe", state="rolled_back")
    assert back["changed"] is True and "cannot be restored" in back["actions"][0]
    assert int(stack.redis("DBSIZE")) >= len(stack.spec.users) and stack.redis("EXISTS", "sre-test-marker") == "0"
    assert stack.service_answers()
    assert fault(tmp_path, inventory=inv, name="cache_wipe", state="rolled_back")["changed"] is False


def test_disk_fill_fills_the_services_volume_and_frees_it(any_stack, tmp_path, undo):
    stack, inv = any_stack, any_stack.inventory
    undo("disk_fill")
    fill = f"{VOLUME[stack.spec.id]}/{FILL}"
    assert df_pct(stack) < 50
    assert fault(tmp_path, check=True, inventory=inv, name="disk_fill", state="injected")["changed"] is True
    assert df_pct(stack) < 50

    assert fault(tmp_path, inventory=inv, name="disk_fill", state="injected")["changed"] is True
    assert df_pct(stack) >= 99 and stack.exec(stack.spec.service, ["test", "-e", fill])[0] == 0
    assert fault(tmp_path, inventory=inv, name="disk_fill", state="injected")["changed"] is False

    assert fault(tmp_path, inventory=inv, name="disk_fill", state="rolled_back")["changed"] is True
    assert df_pct(stack) < 50 and stack.exec(stack.spec.service, ["test", "-e", fill])[0] != 0
    assert fault(tmp_path, inventory=inv, name="disk_fill", state="rolled_back")["changed"] is False
    result = fault_call(tmp_path, inventory=inv, name="disk_fill", state="injected", max_fill_mb=16)
    assert result["failed"] and "max_fill_mb=16" in result["msg"] and df_pct(stack) < 50


def test_cpu_pressure_burns_in_the_service_container_and_is_killed(any_stack, tmp_path, undo):
    stack, inv = any_stack, any_stack.inventory
    undo("cpu_pressure")
    assert fault(tmp_path, check=True, inventory=inv, name="cpu_pressure", state="injected")["changed"] is True
    assert not [p for p in processes(stack) if BURNER in p]

    assert fault(tmp_path, inventory=inv, name="cpu_pressure", state="injected", cpu_workers=1, hold_seconds=120)["changed"] is True
    assert [p for p in processes(stack) if BURNER in p]
    assert fault(tmp_path, inventory=inv, name="cpu_pressure", state="injected")["changed"] is False

    assert fault(tmp_path, inventory=inv, name="cpu_pressure", state="rolled_back")["changed"] is True
    assert wait_for(lambda: not [p for p in processes(stack) if BURNER in p], timeout=10)
    assert fault(tmp_path, inventory=inv, name="cpu_pressure", state="rolled_back")["changed"] is False


def test_postgres_down_users_get_503_until_the_rollback(any_stack, tmp_path, undo):
    stack, inv = any_stack, any_stack.inventory
    undo("postgres_down")
    stack.redis("FLUSHDB")
    assert fault(tmp_path, inventory=inv, name="postgres_down", state="injected")["changed"] is True
    assert stack.state(stack.spec.database["service"])["Status"] == "exited"
    assert http_get(f"/api/recommendations/{stack.spec.users[1]}?limit=10", base=stack.spec.edge_url, timeout=5)[0] == 503
    assert fault(tmp_path, inventory=inv, name="postgres_down", state="rolled_back")["changed"] is True
    assert stack.state(stack.spec.database["service"])["Health"]["Status"] == "healthy"
    assert wait_for(stack.service_answers, timeout=30)


def test_production_is_refused_and_nothing_changes(any_stack, tmp_path):
    result = fault_call(tmp_path, inventory=any_stack.inventory, name="app_crash", state="injected", environment="production")
    assert result["failed"] and result["refused"] and any_stack.state()["Status"] == "running"
