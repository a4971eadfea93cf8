# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

import hashlib
import json
import os
import stat
import tarfile
from types import SimpleNamespace

import pytest

from ansible_collections.sre.incident.plugins.module_utils import _diagnose as d
from ansible_collections.sre.incident.plugins.module_utils import _time
from ansible_collections.sre.incident.plugins.module_utils._compose import DockerError

SECRET = "recsys-demo-S3cret"

REDIS_INFO = """# Server\r
redis_version:7.0.15\r
uptime_in_seconds:420\r
\r
# Clients\r
connected_clients:3\r
blocked_clients:0\r
\r
# Memory\r
used_memory:1066272\r
used_memory_human:1.02M\r
maxmemory:134217728\r
maxmemory_policy:allkeys-lru\r
mem_fragmentation_ratio:7.25\r
\r
# Persistence\r
rdb_changes_since_last_save:4\r
rdb_bgsave_in_progress:0\r
rdb_last_save_time:1795744210\r
rdb_last_bgsave_status:ok\r
\r
# Stats\r
evicted_keys:12\r
expired_keys:3\r
keyspace_hits:90\r
keyspace_misses:10\r
\r
# Keyspace\r
db0:keys=25,expires=20,avg_ttl=290000\r
"""

DF = """Filesystem     1024-blocks    Used Available Capacity Mounted on
/dev/sda1         41152736 9468548  29570612      25% /data
tmpfs                65536   65536         0     100% /var/log/recsys
"""

MOUNTS = r"""overlay / overlay rw,relatime 0 0
proc /proc proc rw 0 0
tmpfs /dev/shm tmpfs rw 0 0
/dev/sda1 /etc/hosts ext4 rw 0 0
/dev/sda1 /srv/with\040space ext4 rw 0 0
overlay /var/lib/docker/overlay2/abc/merged overlay rw 0 0
cgroup2 /sys/fs/cgroup cgroup2 rw 0 0
"""

STATS_V2 = {
    "cpu_stats": {"cpu_usage": {"total_usage": 2_000_000_000}, "system_cpu_usage": 110_000_000_000, "online_cpus": 2},
    "precpu_stats": {"cpu_usage": {"total_usage": 1_500_000_000}, "system_cpu_usage": 108_000_000_000},
    "memory_stats": {"usage": 60 * 2**20, "limit": 100 * 2**20, "stats": {"inactive_file": 10 * 2**20}},
    "networks": {"eth0": {"rx_bytes": 10, "tx_bytes": 20}},
    "blkio_stats": {"io_service_bytes_recursive": [{"op": "read", "value": 5}, {"op": "write", "value": 7}]},
    "pids_stats": {"current": 4},
}


# --------------------------------------------------------------------------- pure functions

def test_scan_errors_since_until():
    log = "\n".join([
        '1970-01-01T00:00:10.000000000Z {"level":"ERROR","msg":"old"}',
        '1970-01-01T00:00:20.500000000Z {"level":"ERROR","msg":"a"}',
        '1970-01-01T00:00:21.000000000Z {"level":"WARNING","msg":"health check failed","error":"down"}',
        '1970-01-01T00:00:22.000000000Z ERROR:  relation does not exist',
        '1970-01-01T00:00:30.000000000Z {"level":"ERROR","msg":"after"}',
        "",
    ])
    scan = d.scan_errors(log, since=20.5, until=30)
    assert scan["count"] == 2
    assert scan["by_level"] == {"ERROR": 2}
    assert scan["grep_count"] == 3  # the runbook's grep -i also matches the WARNING line's "error" key
    assert scan["first_ts"] == "1970-01-01T00:00:20.500Z"
    assert scan["scanned"] == 3
    assert d.scan_errors(log)["count"] == 4
    assert len(d.scan_errors(log, keep=1)["lines"]) == 1


def test_redis_info_and_summary():
    info = d.parse_redis_info(REDIS_INFO)
    assert info["server"]["redis_version"] == "7.0.15"
    assert info["memory"]["mem_fragmentation_ratio"] == 7.25
    assert info["keyspace"]["db0"] == {"keys": 25, "expires": 20, "avg_ttl": 290000}
    s = d.redis_summary(info)
    assert s["used_memory_pct"] == pytest.approx(0.79, abs=0.01)
    assert s["evicted_keys"] == 12
    assert s["hit_ratio"] == 0.9
    assert s["connected_clients"] == 3
    assert s["keys"] == 25
    assert d.redis_summary(d.parse_redis_info("maxmemory:0\r\nused_memory:5\r\n"))["used_memory_pct"] is None


def test_pg_queries_quote_and_parse():
    main, slow = d.pg_queries("it's_db", 30)
    assert "'it''s_db'" in main and "'it''s_db'" in slow
    assert "interval '30 seconds'" in main
    out = '{"database": {"datname": "recommendation_db", "numbackends": 3, "xact_commit": 10, "xact_rollback": 1},' \
          ' "connections_used": 4, "max_connections": 50, "long_running": [{"pid": 1}]}\n[{"calls": 1}]\nSET\n'
    docs = d.parse_pg_output(out)
    assert len(docs) == 2
    s = d.db_summary(docs[0], docs[1])
    assert s == dict(database="recommendation_db", numbackends=3, xact_commit=10, xact_rollback=1, deadlocks=None,
                     connections_used=4, max_connections=50, connections_pct=8.0, long_running=1, slow_queries=1,
                     server_version=None)
    assert d.db_summary({}, None)["slow_queries"] is None


def test_pg_output_whose_json_agg_spans_lines():
    """json_agg puts a newline between the rows it aggregates: two long-running queries (a drill's held sessions)
    made the main document three lines long, and the database part was lost."""
    out = ('SET\n{"database" : {"datname":"recommendation_db","numbackends":43}, "connections_used" : 43, "max_connections" : 50, '
           '"long_running" : [{"pid":2532,"query":"SELECT pg_sleep(1800)"}, \n {"pid":2533,"query":"SELECT pg_sleep(1800)"}, \n '
           '{"pid":2534,"query":"SELECT {x}"}]}\nnot json {\n[{"calls": 1}, \n {"calls": 2}]\n')
    docs = d.parse_pg_output(out)
    assert len(docs) == 2 and len(docs[0]["long_running"]) == 3 and docs[1] == [{"calls": 1}, {"calls": 2}]
    assert d.db_summary(docs[0], docs[1])["connections_pct"] == 86.0
    assert d.parse_pg_output("{broken\n[1]\n") == [[1]] and d.parse_pg_output("") == []


def _cpu_mem(stats):
    s = d.stats_summary("c1", stats)
    return s["cpu_pct"], s["mem_used"], s["mem_limit"], s["mem_pct"]


def test_cpu_and_memory():
    # 0.5e9 / 2e9 * 2 cpus * 100
    assert _cpu_mem(STATS_V2) == (50.0, 50 * 2**20, 100 * 2**20, 50.0)
    v1 = {"memory_stats": {"usage": 200, "limit": 1000, "stats": {"total_inactive_file": 100}}}
    assert _cpu_mem(v1)[1:] == (100, 1000, 10.0)
    assert _cpu_mem({"cpu_stats": {"cpu_usage": {"total_usage": 5}, "system_cpu_usage": 10},
                     "precpu_stats": {"cpu_usage": {}}})[0] is None   # one-shot: no previous sample
    assert _cpu_mem({}) == (None, None, None, None)
    s = d.stats_summary("c1", STATS_V2)
    assert (s["net_rx"], s["net_tx"], s["block_read"], s["block_write"], s["pids"]) == (10, 20, 5, 7, 4)


def test_df_and_mounts():
    rows = d.parse_df(DF)
    assert rows[0] == dict(filesystem="/dev/sda1", size_kb=41152736, used_kb=9468548, avail_kb=29570612, used_pct=25.0, mount="/data")
    assert rows[1]["used_pct"] == 100.0
    mounts = d.parse_proc_mounts(MOUNTS)
    assert mounts[4]["mount"] == "/srv/with space"

    def fake_statvfs(path):
        return SimpleNamespace(f_frsize=1024, f_bsize=1024, f_blocks=1000, f_bfree=400, f_bavail=300, f_files=10, f_ffree=5)

    host = d.host_filesystems(MOUNTS, statvfs=fake_statvfs)
    # proc, cgroup2 and the engine's overlay are left out; /etc/hosts and /srv/with space are the same filesystem
    assert [h["mount"] for h in host] == ["/", "/dev/shm", "/etc/hosts"]
    assert host[0]["used_pct"] == 67.0  # 600 / (600 + 300), rounded up like df
    assert host[0]["inodes_used_pct"] == 50.0


def _summary(**over):
    s = dict(http_success_ratio=1.0, http_healthy=True, latency_p95_ms=20, service_status="running", service_health="healthy",
             dependencies_down=[], services={}, cpu_pct={"a": 10}, mem_pct={"a": 10}, disk_used_pct_by_mount={"/": 40},
             db_connections_pct=10, redis_evicted_keys=0, redis_used_memory_pct=1, error_lines=0, degraded_mode_on=False,
             fallbacks_not_ready=[])
    s.update(over)
    return s


def test_evaluate_ok_and_thresholds():
    assert d.evaluate(_summary(), {}) == []
    assert d.verdict([]) == "ok"
    f = d.evaluate(_summary(cpu_pct={"a": 55.0}, mem_pct={"a": 61}, redis_evicted_keys=3, error_lines=2,
                            disk_used_pct_by_mount={"/": 90, "volume:x": 96}, db_connections_pct=85), {})
    checks = {(x["check"], x["level"]) for x in f}
    assert checks == {("cpu_percent", "warning"), ("memory_percent", "warning"), ("redis_evictions", "warning"),
                      ("error_lines", "warning"), ("disk_percent", "warning"), ("disk_percent", "critical"),
                      ("db_connections", "warning")}
    assert d.verdict(f) == "critical"
    assert d.evaluate(_summary(cpu_pct={"a": 55.0}), {}, {"cpu_percent": 60}) == []


def test_evaluate_down_and_degraded():
    f = d.evaluate(_summary(service_status="exited", exit_code=137, http_success_ratio=0.0, http_healthy=False,
                            health_status=None), {"status": True, "logs": True})
    assert {x["kind"] for x in f} == {"down"}
    assert any("exit code 137" in x["reason"] for x in f)
    f = d.evaluate(_summary(dependencies_down=["redis"], services={"redis": "exited"}, latency_p95_ms=900,
                            http_success_ratio=0.5, http_healthy=False), {"status": True, "redis": False})
    assert {x["check"] for x in f} == {"dependency_running", "latency_ms", "http"}  # redis part failure is explained
    assert all(x["kind"] == "degraded" for x in f)
    f = d.evaluate(_summary(), {"disk": False, "degraded": True})
    assert [x["check"] for x in f] == ["part_disk"]


def _parts(**over):
    parts = {
        "http": dict(ok=True, healthy=True, success_ratio=1.0, health_status=200, latency_ms={"p95": 12.0, "max": 14.0}),
        "status": dict(ok=True, containers=[
            dict(service="recommendation-service", status="exited", health="none", exit_code=137, oom_killed=True,
                 restart_count=2, started_at="t"),
            dict(service="postgres", status="running"), dict(service="redis", status="exited")]),
        "logs": dict(ok=True, error_count=7, lines=["a", "b"]),
        "errors": dict(ok=True, total=9),
        "database": dict(ok=False, error="x"),
        "redis": dict(ok=True, summary=dict(used_memory=1, maxmemory=2, used_memory_pct=50.0, evicted_keys=0, hit_ratio=0.5)),
        "resources": dict(ok=True, containers=[dict(name="c1", cpu_pct=1.5, mem_pct=2.5), dict(name="c2", cpu_pct=None, mem_pct=None)]),
        "disk": dict(ok=True, host=[dict(mount="/", used_pct=40.0)], volumes=[dict(volume="v", used_pct=99.0)]),
        "changes": dict(ok=True, recent=[{}, {}]),
        "degraded": dict(ok=True, edge_mode="offline", degraded=True, reasons=["edge in mode offline"], edge_status="running"),
        "fallbacks": dict(ok=True, snapshot=dict(ready=False, reason="none"), static_top=dict(ready=True, present=True),
                          standby=dict(ready=True, defined=True, image_present=True)),
    }
    parts.update(over)
    return parts


def test_build_summary():
    stack = dict(service="recommendation-service", dependencies=["postgres", "redis"])
    s = d.build_summary(_parts(), stack)
    assert s["service_status"] == "exited" and s["exit_code"] == 137 and s["oom_killed"] and s["restart_count"] == 2
    assert s["dependencies_down"] == ["redis"]
    assert s["error_lines"] == 7 and s["error_lines_all"] == 9 and s["log_lines"] == 2
    assert s["db_connections_used"] is None
    assert s["redis_used_memory_pct"] == 50.0
    assert s["cpu_pct"] == {"c1": 1.5, "c2": None} and s["cpu_pct_max"] == 1.5
    assert s["disk_used_pct"] == 99.0
    assert s["recent_changes"] == 2
    assert s["degraded_mode_on"] is True and s["edge_mode"] == "offline"
    assert s["fallbacks_not_ready"] == ["snapshot"]
    assert s["parts_failed"] == ["database"]
    assert s["latency_p95_ms"] == 12.0
    missing = d.build_summary(_parts(status=dict(ok=True, containers=[])), stack)
    assert missing["service_status"] == "missing"
    assert missing["dependencies_down"] == ["postgres", "redis"]


def test_build_summary_says_whether_the_service_is_down_as_the_findings_do():
    stack = dict(service="recommendation-service", dependencies=["postgres", "redis"])
    running = _parts()["status"]["containers"][1:] + [dict(service="recommendation-service", status="running")]
    cases = [
        (_parts(), True),                                                                   # its container exited
        (_parts(status=dict(ok=True, containers=running)), False),
        (_parts(status=dict(ok=True, containers=running), http=dict(ok=True, healthy=False, success_ratio=0.0)), True),
        (_parts(status=dict(ok=False), http=dict(ok=False)), False),                         # nothing known: not down
    ]
    for parts, down in cases:
        summary = d.build_summary(parts, stack)
        findings = d.evaluate(summary, {k: v.get("ok") for k, v in parts.items()})
        assert summary["service_down"] is down
        assert ("down" in {f["kind"] for f in findings}) is down


def test_build_summary_names_each_fallback_ready_not_ready_or_not_checked():
    stack = dict(service="recommendation-service")
    fallbacks = dict(ok=True, snapshot=dict(ready=False), static_top=dict(ready=None), standby=dict(ready=True))
    assert d.build_summary(_parts(fallbacks=fallbacks), stack)["fallbacks"] == dict(
        snapshot="not ready", static_top="not checked", standby="ready")
    # the part did not run, or failed: nothing was looked at
    for parts in (_parts(fallbacks=dict(ok=False, error="x")), {k: v for k, v in _parts().items() if k != "fallbacks"}):
        assert set(d.build_summary(parts, stack)["fallbacks"].values()) == {"not checked"}


# --------------------------------------------------------------------------- fakes for collection

class FakeContainer:
    def __init__(self, service, status="running", env=None, mounts=None, number=1):
        self.name = "recsys_%s_%d" % (service, number)
        self.attrs = {
            "Name": "/" + self.name, "Id": "f" * 64, "Image": "sha256:" + service, "Created": "2026-11-27T00:00:00Z",
            "RestartCount": 0, "Mounts": mounts or [],
            "State": {"Status": status, "Running": status == "running", "ExitCode": 0 if status == "running" else 1,
                      "OOMKilled": False, "StartedAt": "2026-11-27T00:00:01Z", "FinishedAt": "0001-01-01T00:00:00Z",
                      "Health": {"Status": "healthy" if status == "running" else "unhealthy"}},
            "Config": {"Image": "recsys/%s:latest" % service, "Env": env or [],
                       "Labels": {"com.docker.compose.project": "recsys", "com.docker.compose.service": service,
                                  "com.docker.compose.container-number": str(number)}},
            "HostConfig": {"RestartPolicy": {"Name": "no"}},
        }


class FakeClient:
    def __init__(self, containers, logs=None, failing=()):
        self.containers = containers
        self._logs = logs or {}
        self.failing = set(failing)
        self.rdb = b"REDIS0011fake"
        self.lastsave = 1000
        self.calls = []

    def find_containers(self, project):
        return list(self.containers)

    def logs(self, c, tail=None, since=None, until=None, timestamps=True):
        if "logs" in self.failing:
            raise DockerError("log driver does not support reading")
        lines = self._logs.get(c.name, "").splitlines()
        return "\n".join(lines[-tail:] if tail else lines)

    def exec_in(self, c, argv, user=None, environment=None, expect_output=False):
        self.calls.append((c.name, list(argv)))
        if c.attrs["State"]["Status"] != "running":
            raise DockerError("container %s is not running" % c.name)
        cmd = argv[0]
        if cmd == "redis-cli" and argv[1:2] == ["-p"]:
            argv = [cmd] + argv[3:]
        if cmd == "psql":
            return dict(rc=0, stderr="", stdout=json.dumps({
                "database": {"datname": "recommendation_db", "numbackends": 2, "xact_commit": 5, "xact_rollback": 0},
                "connections_used": 2, "max_connections": 50, "long_running": [],
                "note": "ALTER ROLE x PASSWORD '%s'" % SECRET}) + "\n[]\n")
        if cmd == "redis-cli":
            if argv[1:] == ["LASTSAVE"]:
                return dict(rc=0, stderr="", stdout="%d\n" % self.lastsave)
            if argv[1:] == ["BGSAVE"]:
                self.lastsave += 5
                return dict(rc=0, stderr="", stdout="Background saving started\n")
            if argv[1:3] == ["CONFIG", "GET"]:
                return dict(rc=0, stderr="", stdout="%s\n%s\n" % (argv[3], "/data" if argv[3] == "dir" else "dump.rdb"))
            return dict(rc=0, stderr="", stdout=REDIS_INFO)
        if cmd == "df":
            return dict(rc=0, stderr="", stdout=DF)
        return dict(rc=127, stderr="not found", stdout="")

    def stats(self, c, one_shot=False):
        self.one_shot = one_shot
        return STATS_V2

    def image_info(self, image):
        return dict(id=image, tags=[image], created="2026-11-26T00:00:00Z", size=1)

    def read_file(self, c, path, max_bytes=None):
        if path.endswith("static_top.json"):
            return json.dumps({"items": [{"item_id": 1}, {"item_id": 2}]}).encode()
        if path == "/data/dump.rdb":
            return self.rdb
        raise DockerError("no such file %s" % path)


STACK = dict(name="recsys", project_dir="/nonexistent/recsys", service="recommendation-service", dependencies=["postgres", "redis"], edge="edge",
             standby="recommendation-service-standby", base_url="http://127.0.0.1:1", health_path="/health",
             recommendations_path="/api/recommendations/{user}", sample_users=["user-1"],
             database=dict(service="postgres", name="recommendation_db", user="postgres"), redis=dict(service="redis"),
             static_top_file="/srv/recsys/static_top.json")


def _client(postgres="running", failing=()):
    env = ["POSTGRES_PASSWORD=" + SECRET, "DOWNGRADE_MODE=false", "STATIC_TOP_FILE=/srv/recsys/static_top.json"]
    app = FakeContainer("recommendation-service", env=env)
    logs = {app.name: "\n".join([
        '2026-11-27T00:00:01.000000000Z {"level":"INFO","msg":"start","password_hint":"%s"}' % SECRET,
        '2026-11-27T00:00:02.000000000Z {"level":"ERROR","msg":"database error postgres://recsys:%s@postgres/db"}' % SECRET,
    ])}
    return FakeClient([app, FakeContainer("postgres", status=postgres, env=["POSTGRES_PASSWORD=" + SECRET]),
                       FakeContainer("redis", mounts=[{"Type": "volume", "Name": "recsys_redis-data", "Destination": "/data"}]),
                       FakeContainer("edge")], logs=logs, failing=failing)


def test_collect_all_parts_independent(tmp_path):
    ctx = d.Context(_client(postgres="exited"), STACK, log_lines=10, snapshot_dir=str(tmp_path), now=_time.epoch("2026-11-27T01:00:00Z"))
    facts, raw, snap = d.collect(ctx, [p for p in d.PARTS if p != "http"])
    assert snap is None
    assert facts["database"]["ok"] is False and "postgres is not running" in facts["database"]["error"]
    for name in ("status", "logs", "redis", "resources", "disk", "errors", "changes", "degraded", "fallbacks"):
        assert facts[name]["ok"], (name, facts[name])
    assert facts["logs"]["error_count"] == 1
    assert facts["redis"]["summary"]["evicted_keys"] == 12
    assert facts["resources"]["containers"][0]["cpu_pct"] == 50.0
    assert facts["disk"]["volumes"][0]["volume"] == "recsys_redis-data"
    static = dict(ready=True, present=True, path="/srv/recsys/static_top.json", items=2, bytes=43, reason=None)
    assert facts["fallbacks"]["static_top"] == static
    assert facts["fallbacks"]["snapshot"]["ready"] is False
    # the edge's configuration file is not named in this STACK: its mode is not read (None), not "normal"
    assert facts["degraded"]["degraded"] is False and facts["degraded"]["edge_mode"] is None
    everything = json.dumps(facts) + "".join(raw.values())
    assert SECRET not in everything
    assert "POSTGRES_PASSWORD=********" in raw["status"]


def test_collect_reports_a_failing_part():
    ctx = d.Context(_client(failing=("logs",)), STACK)
    facts, raw, snap_unused = d.collect(ctx, ["logs", "errors", "redis"])
    assert facts["logs"]["ok"] is False and "log driver" in facts["logs"]["error"]
    assert facts["errors"]["ok"] is True and facts["errors"]["containers"]["recsys_postgres_1"]["ok"] is False
    assert facts["redis"]["ok"] is True
    assert raw["logs"].startswith("ERROR:")


def test_redis_snapshot_and_rotation(tmp_path):
    client = _client()
    ctx = d.Context(client, STACK)
    for name in ("dump-20260101T000000Z.rdb", "dump-20260102T000000Z.rdb"):
        (tmp_path / name).write_bytes(b"REDIS-old")
    snap = d.take_redis_snapshot(ctx, timeout=2, interval=0.01)
    assert snap["ok"] and snap["data"] == client.rdb and snap["keys"] == 25, snap
    assert os.listdir(tmp_path) == sorted(os.listdir(tmp_path)) and len(os.listdir(tmp_path)) == 2   # nothing written yet
    res = d.keep_redis_snapshot(snap, [], str(tmp_path), keep=2)
    assert res["kept"] and "data" not in res
    assert os.path.basename(res["path"]) == "dump-19700101T001645Z.rdb"  # named after LASTSAVE (1005)
    # names sort by time: the fake LASTSAVE is in 1970, so the "newest" by name are the 2026 ones
    assert res["removed"] == [str(tmp_path / "dump-19700101T001645Z.rdb")]
    assert stat.S_IMODE(os.stat(tmp_path).st_mode) == 0o700
    newest = d.newest_snapshot(str(tmp_path), now=_time.epoch("2026-01-02T00:00:10Z"))
    assert newest["path"].endswith("dump-20260102T000000Z.rdb") and newest["readable"]
    assert d.newest_snapshot(str(tmp_path / "missing")) is None


def test_database_and_redis_on_their_own_ports(tmp_path):
    stack = dict(STACK, database=dict(STACK["database"], port=5433), redis=dict(service="redis", port=6380))
    client = _client()
    ctx = d.Context(client, stack, now=_time.epoch("2026-11-27T01:00:00Z"))
    facts, _raw, _snap = d.collect(ctx, ["database", "redis"])
    assert facts["database"]["ok"] and facts["redis"]["ok"], facts
    assert d.take_redis_snapshot(ctx, timeout=2, interval=0.01)["ok"]
    psql = [argv for _name, argv in client.calls if argv[0] == "psql"]
    cli = [argv for _name, argv in client.calls if argv[0] == "redis-cli"]
    assert psql and all(argv[argv.index("-p") + 1] == "5433" for argv in psql)
    assert len(cli) >= 3 and all(argv[1:3] == ["-p", "6380"] for argv in cli)


def test_redis_snapshot_never_raises():
    ctx = d.Context(_client(), dict(STACK, redis=dict(service="nope")))
    res = d.take_redis_snapshot(ctx, timeout=0.1)
    assert res["ok"] is False and "not running" in res["error"]
    kept = d.keep_redis_snapshot(res, [], "/nonexistent", keep=1)
    assert kept["kept"] is False and kept["reason"].startswith("no snapshot: service nope is not running")


@pytest.mark.parametrize("findings, why", [
    ([dict(check="service_running", level="critical", reason="the service is exited")], "the verdict is critical"),
    ([dict(check="redis_memory", level="warning", reason="redis memory at 97 % of maxmemory")], "the cache is unwell"),
    ([dict(check="part_redis", level="warning", reason="part redis could not be collected")], "the cache is unwell"),
])
def test_the_cache_of_an_incident_is_never_kept_as_the_newest_snapshot(tmp_path, findings, why):
    good = tmp_path / "dump-20260101T000000Z.rdb"
    good.write_bytes(b"REDIS-good")
    snap = dict(ok=True, error=None, data=b"REDIS-bad", size=9, sha256="x", lastsave="2026-01-02T00:00:00.000Z", keys=25)
    res = d.keep_redis_snapshot(snap, findings, str(tmp_path), keep=1)
    assert res["kept"] is False and why in res["reason"] and res["path"] is None
    # the last good one stays the newest, whatever keep says
    assert os.listdir(tmp_path) == [good.name]
    warning = [dict(check="disk_percent", level="warning", reason="disk / 87 % full")]
    assert d.keep_redis_snapshot(dict(snap, keys=3), warning, str(tmp_path), keep=1)["kept"] is True
    assert os.listdir(tmp_path) == ["dump-20260102T000000Z.rdb"]


def test_rotate(tmp_path):
    for i in range(4):
        (tmp_path / ("dump-2026010%dT000000Z.rdb" % i)).write_bytes(b"x")
    removed = d.rotate(str(tmp_path), 2)
    assert [os.path.basename(p) for p in removed] == ["dump-20260100T000000Z.rdb", "dump-20260101T000000Z.rdb"]
    assert sorted(os.listdir(tmp_path)) == ["dump-20260102T000000Z.rdb", "dump-20260103T000000Z.rdb"]


def test_write_bundle(tmp_path):
    facts = {"status": {"ok": True, "env": ["X_PASSWORD=" + SECRET]}, "logs": {"ok": False, "error": "boom"}}
    raw = {"status": "status text " + SECRET, "logs": "ERROR: boom\n"}
    b = d.write_bundle(str(tmp_path / "bundles"), "pre restart!", facts, raw, {"stack": "recsys"}, secrets={SECRET}, now=0)
    assert os.path.basename(b["dir"]) == "19700101T000000Z-pre-restart"
    assert b["archive"] == b["dir"] + ".tar.gz"
    assert stat.S_IMODE(os.stat(b["dir"]).st_mode) == 0o700
    for f in b["files"]:
        assert stat.S_IMODE(os.stat(os.path.join(b["dir"], f)).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(b["archive"]).st_mode) == 0o600
    with open(b["archive"], "rb") as handle:
        assert hashlib.sha256(handle.read()).hexdigest() == b["sha256"]
    sums = (open(os.path.join(b["dir"], "SHA256SUMS")).read().splitlines())
    for line in sums:
        digest, name = line.split("  ")
        with open(os.path.join(b["dir"], name), "rb") as handle:
            assert hashlib.sha256(handle.read()).hexdigest() == digest
    index = json.load(open(os.path.join(b["dir"], "index.json")))
    assert index["parts"]["logs"] == {"ok": False, "error": "boom", "file": "02-service.log"}
    assert index["runbook_items"]["1"]["ok"] is True
    with tarfile.open(b["archive"]) as tar:
        names = tar.getnames()
        assert "19700101T000000Z-pre-restart/facts.json" in names
        blob = b"".join(tar.extractfile(m).read() for m in tar.getmembers() if m.isfile())
    assert SECRET.encode() not in blob
    again = d.write_bundle(str(tmp_path / "bundles"), "pre restart!", facts, raw, {}, now=0)
    assert again["dir"].endswith("-pre-restart-2")
    # a file of a bundle is always new: one already there (another run's archive) is never overwritten
    with pytest.raises(FileExistsError):
        d._write_private(b["archive"], b"other")
    with open(b["archive"], "rb") as handle:
        assert hashlib.sha256(handle.read()).hexdigest() == b["sha256"]


def test_context_collects_secrets():
    ctx = d.Context(_client(), STACK)
    assert SECRET in ctx.secrets
    assert ctx.text("x %s y" % SECRET) == "x ******** y"


def test_resources_without_cpu_sample_asks_for_a_one_shot_reading():
    client = _client()
    ctx = d.Context(client, STACK, cpu_sample=False)
    facts, _raw, _snap = d.collect(ctx, ["resources"])
    assert facts["resources"]["ok"] is True and client.one_shot is True
    d.collect(d.Context(client, STACK), ["resources"])
    assert client.one_shot is False


def test_static_top_not_named_is_not_checked(tmp_path):
    stack = dict(STACK)
    del stack["static_top_file"]
    ctx = d.Context(_client(), stack, log_lines=10, snapshot_dir=str(tmp_path), now=_time.epoch("2026-11-27T01:00:00Z"))
    facts, _raw, _snap = d.collect(ctx, ["fallbacks"])
    assert facts["fallbacks"]["static_top"]["ready"] is None
    assert facts["fallbacks"]["static_top"]["reason"] == "not checked: incident_stack.static_top_file is not set"
    summary = d.build_summary(facts, stack)
    assert summary["fallbacks_not_checked"] == ["static_top"] and "static_top" not in summary["fallbacks_not_ready"]
