# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""_degrade: input, the RDB reader, and enable/disable against a simulated stack."""
from __future__ import annotations

import json
import os
import struct
from urllib.parse import urlsplit

import pytest

from ansible_collections.sre.incident.plugins.module_utils import _degrade, _edge

STACK = {
    "name": "recsys", "project_dir": "/srv/recsys", "service": "recommendation-service",
    "standby": "recommendation-service-standby", "edge": "edge", "base_url": "http://127.0.0.1:3000",
    "edge_url": "http://127.0.0.1:8080", "health_path": "/health", "recommendations_path": "/api/recommendations/{user}",
    "sample_users": ["user-1", "user-2"], "min_recommendations": 6, "recommendations_limit": 10,
    "redis": {"service": "redis"}, "service_port": 3000, "edge_config": "/etc/nginx/nginx.conf",
}


# --------------------------------------------------------------------------- input

@pytest.mark.parametrize("value, letter", [("A", "A"), ("b", "B"), ("static", "B"), ("cache_snapshot", "C"),
                                           ("OFFLINE", "D"), ("auto", "auto"), ("standby", "A")])
def test_normalize_mode(value, letter):
    assert _degrade.normalize_mode(value) == letter


def test_normalize_mode_names_bad_value():
    with pytest.raises(ValueError, match="'maintenance'"):
        _degrade.normalize_mode("maintenance")


def test_normalize_order():
    assert _degrade.normalize_order(None) == ["A", "B", "C", "D"]
    assert _degrade.normalize_order(["offline", "B"]) == ["D", "B"]
    assert _degrade.normalize_order("static, D") == ["B", "D"]
    with pytest.raises(ValueError, match="twice"):
        _degrade.normalize_order(["B", "static"])
    with pytest.raises(ValueError, match="auto"):
        _degrade.normalize_order(["auto"])
    with pytest.raises(ValueError, match="empty"):
        _degrade.normalize_order([])
    with pytest.raises(ValueError, match="'E'"):
        _degrade.normalize_order(["A", "E"])


def test_validate_stack():
    assert _degrade.validate_stack(dict(STACK)) is not None
    with pytest.raises(ValueError, match="edge_url"):
        _degrade.validate_stack(dict(STACK, edge_url=""))
    with pytest.raises(ValueError, match="incident_stack.edge"):
        _degrade.validate_stack({k: v for k, v in STACK.items() if k != "edge"})
    with pytest.raises(ValueError, match="state_dir"):
        _degrade.validate_stack(dict(STACK), needs_c=True)
    assert _degrade.validate_stack(dict(STACK), needs_c=True, snapshot_dir="/tmp/x")
    with pytest.raises(ValueError, match="sample_users"):
        _degrade.validate_stack({k: v for k, v in STACK.items() if k != "sample_users"})


# --------------------------------------------------------------------------- RDB

def lzf_literal(data):
    out = b""
    for start in range(0, len(data), 32):
        chunk = data[start:start + 32]
        out += bytes([len(chunk) - 1]) + chunk
    return out


def rlen(n):
    if n < 64:
        return bytes([n])
    if n < 16384:
        return bytes([0x40 | (n >> 8), n & 0xFF])
    return b"\x80" + struct.pack(">I", n)


def rstr(data):
    return rlen(len(data)) + data


def rstr_lzf(data):
    comp = lzf_literal(data)
    return b"\xc3" + rlen(len(comp)) + rlen(len(data)) + comp


def build_rdb(tail=b"\xff" + b"\x00" * 8):
    value = json.dumps([{"item_id": i, "title": "Item %d" % i} for i in range(8)]).encode()
    body = b"REDIS0010"
    body += b"\xfa" + rstr(b"redis-ver") + rstr(b"7.0.15")
    body += b"\xfa" + rstr(b"ctime") + b"\xc2" + struct.pack("<i", 1700000000)
    body += b"\xfe\x00\xfb\x05\x03"
    body += b"\xfc" + struct.pack("<q", 1700000300000) + b"\x00" + rstr(b"recs:user-1:10") + rstr_lzf(value)
    body += b"\x00" + rstr(b"recs:user-2:10") + rstr(b'[{"item_id":1}]')
    body += b"\x00" + rstr(b"recsys:delay_ms") + b"\xc0\x05"
    body += b"\x10" + rstr(b"some-hash") + rstr(b"\x00" * 12)  # hash listpack: one blob
    body += b"\x12" + rstr(b"some-list") + b"\x01\x02" + rstr(b"\x01" * 7)  # quicklist 2
    body += b"\x05" + rstr(b"some-zset") + b"\x01" + rstr(b"m") + struct.pack("<d", 1.5)
    body += b"\x02" + rstr(b"some-set") + b"\x02" + rstr(b"a") + b"\xc1" + struct.pack("<h", 300)
    body += b"\xf8\x05\xf9\x01"
    body += b"\x00" + rstr(b"recs:user-3:10") + b"\xc1" + struct.pack("<h", -2)
    body += b"\xfe\x01\x00" + rstr(b"recs:other-db:10") + rstr(b"x")
    return body + tail, value


def test_parse_rdb_reads_cache_entries_and_skips_the_rest():
    data, value = build_rdb()
    parsed = _degrade.parse_rdb(data)
    assert parsed["version"] == 10 and parsed["ctime"] == 1700000000
    assert parsed["complete"] is True and parsed["error"] is None
    assert sorted(parsed["entries"]) == ["recs:user-1:10", "recs:user-2:10", "recs:user-3:10"]
    assert parsed["entries"]["recs:user-1:10"] == dict(value=value, expire_ms=1700000300000)
    assert parsed["entries"]["recs:user-2:10"]["expire_ms"] is None
    assert parsed["entries"]["recs:user-3:10"]["value"] == b"-2"
    assert parsed["keys_total"] == 8


def test_parse_rdb_stops_at_an_unsupported_type_keeping_what_it_read():
    data, value_unused = build_rdb(tail=b"\x15" + rstr(b"stream") + b"\x00")
    parsed = _degrade.parse_rdb(data)
    assert parsed["complete"] is False and "not supported" in parsed["error"]
    assert "recs:user-1:10" in parsed["entries"]


def test_parse_rdb_truncated_and_not_rdb():
    data, value_unused = build_rdb()
    parsed = _degrade.parse_rdb(data[:60])
    assert parsed["complete"] is False and "truncated" in parsed["error"]
    with pytest.raises(_degrade.RdbError):
        _degrade.parse_rdb(b"hello world")


def test_lzf_back_reference():
    # "abcabcabc": literal "abc", then a back reference of 6 bytes at distance 3
    comp = b"\x02abc" + bytes([(4 << 5) | 0, 2])
    assert _degrade.lzf_decompress(comp, 9) == b"abcabcabc"
    long_ref = b"\x00a" + bytes([(7 << 5), 3, 0])  # run 7 + 3 + 2 = 12 copies of "a"
    assert _degrade.lzf_decompress(long_ref, 13) == b"a" * 13
    with pytest.raises(_degrade.RdbError):
        _degrade.lzf_decompress(b"\x02abc", 4)
    with pytest.raises(_degrade.RdbError):
        _degrade.lzf_decompress(bytes([(1 << 5), 9]), 3)


def test_newest_snapshot_and_age(tmp_path):
    assert _degrade.newest_snapshot(str(tmp_path)) is None
    for stamp in ("20261127T010000Z", "20261127T020000Z", "20261126T230000Z"):
        (tmp_path / ("dump-%s.rdb" % stamp)).write_bytes(b"REDIS0010\xff")
    newest = _degrade.newest_snapshot(str(tmp_path))
    assert newest.endswith("dump-20261127T020000Z.rdb")
    assert _degrade.snapshot_taken_at(newest) == 1795744800.0
    assert _degrade.snapshot_taken_at(newest, ctime=1700000000) == 1700000000.0


# --------------------------------------------------------------------------- simulated stack

class FakeContainer:
    def __init__(self, sim, service):
        self.sim = sim
        self.service = service
        self.name = "recsys_%s_1" % service

    @property
    def attrs(self):
        running = self.sim.running(self.service)
        env = ["DOWNGRADE_MODE=%s" % ("true" if self.sim.downgrade else "false")] if self.service == STACK["service"] else []
        return {"Name": "/" + self.name, "Id": "abc123456789000",
                "State": {"Status": "running" if running else "exited", "ExitCode": 0 if running else 1,
                          "Health": {"Status": "healthy" if running else "unhealthy"}},
                "Config": {"Env": env, "Labels": {"com.docker.compose.project": "recsys",
                                                  "com.docker.compose.service": self.service}}}


class FakeClient:
    def __init__(self, sim):
        self.sim = sim

    def stop(self, container):
        self.sim.calls.append(("stop", container.service))
        if container.service == STACK["standby"]:
            self.sim.standby = False


class Sim:
    """A tiny model of the reference stack: the edge mode, the service, the standby, Redis, the database."""

    def __init__(self):
        self.edge = "normal"
        self.downgrade = False
        self.standby = False
        self.standby_created = False
        self.image_ok = True
        self.service_up = True
        self.db_ok = True
        self.redis = {}
        self.calls = []
        self.delay_ms = None   # an injected delay, read from Redis by every instance but the static one

    def running(self, service):
        if service == STACK["service"]:
            return self.service_up
        if service == STACK["standby"]:
            return self.standby
        return True

    def app(self, instance, path):
        if path == "/health":
            return (200 if self.db_ok else 503), {"status": "ok" if self.db_ok else "unhealthy"}
        user = path.split("/")[-1].split("?")[0]
        if instance == "primary" and self.downgrade:
            return 200, {"recommendations": [{}] * 10, "source": "static", "instance": instance}
        key = "recs:%s:10" % user
        if key in self.redis:
            return 200, {"recommendations": json.loads(self.redis[key]), "source": "cache", "instance": instance}
        if not self.db_ok:
            return 503, {"error": "recommendations unavailable: database error"}
        return 200, {"recommendations": [{}] * 10, "source": "database", "instance": instance}

    def probe(self, url):
        parts = urlsplit(url)
        path = parts.path
        if parts.port == 3000:
            if not self.service_up:
                return None, {}
            return self.app("primary", path)
        if self.edge == "offline" and path.startswith("/api/recommendations/"):
            return 503, {"error": "recommendations temporarily unavailable"}
        if self.edge == "standby":
            return self.app("standby", path) if self.standby else (503, {"error": "upstream unavailable"})
        return self.app("primary", path) if self.service_up else (503, {"error": "upstream unavailable"})


class FakeEdge:
    """The edge as _degrade drives it (_edge.Edge): which configuration it serves, in the simulation."""

    def __init__(self, sim):
        self.sim = sim
        self.service = "edge"
        self.saved_dir = "/state/edge"

    def containers(self):
        return [FakeContainer(self.sim, "edge")]

    def mode(self):
        return dict(mode=self.sim.edge)

    def apply(self, mode, verify, timeout):
        self.sim.calls.append(("edge", mode))
        previous, self.sim.edge = self.sim.edge, mode
        measured = verify()
        if not measured["ok"]:
            self.sim.edge = previous
            raise _edge.EdgeError("option not verified: %s; the previous edge configuration is back"
                                  % "; ".join(measured["problems"]), verify=measured)
        return dict(changed=previous != mode, mode=mode, verify=measured, verified=True)

    def restore(self):
        self.sim.calls.append(("edge", "normal"))
        changed, self.sim.edge = self.sim.edge != "normal", "normal"
        return dict(changed=changed, restored=True)

    def ensure_serving(self, timeout=30.0, check_mode=False):
        return dict(serving=True, changed=False, actions=[])


class FakeCtx(_degrade.Context):
    def __init__(self, sim, tmp_path, **kwargs):
        stack = dict(STACK, state_dir=str(tmp_path / "state"))
        super().__init__(FakeClient(sim), None, stack, timeout=kwargs.pop("timeout", 0.3), interval=0.01, **kwargs)
        self.sim = sim
        self.edge = FakeEdge(sim)

    def declared_services(self):
        return [STACK["service"], STACK["standby"], "edge", "redis"]

    def up(self, services, env=None, profiles=None, timeout=None):
        sim = self.sim
        sim.calls.append(("up", tuple(services), tuple(sorted((env or {}).items())), tuple(profiles or [])))
        service = services[0]
        if service == STACK["standby"]:
            sim.standby_created = True
            sim.standby = sim.image_ok
        else:
            sim.downgrade = (env or {}).get("DOWNGRADE_MODE") == "true"
            sim.service_up = sim.image_ok
        ready = sim.running(service)
        return dict(ready=ready, changed=True, containers=[dict(service=service, status="running" if ready else "exited",
                                                                exit_code=None if ready else 1,
                                                                health="healthy" if ready else "none")])

    def containers(self, service):
        if service == STACK["standby"] and not self.sim.standby_created:
            return []
        return [FakeContainer(self.sim, service)] if service else []

    def redis_cli(self, *args):
        self.sim.calls.append(("redis", args[0]))
        if args[0] == "EVAL":
            count = int(args[2])
            keys, values = args[3:3 + count], args[3 + count:]
            set_count = 0
            for key, value in zip(keys, values):
                if key not in self.sim.redis:
                    self.sim.redis[key] = value
                    set_count += 1
            return str(set_count)
        if args[0] == "DEL":
            gone = [k for k in args[1:] if self.sim.redis.pop(k, None) is not None]
            return str(len(gone))
        raise AssertionError(args)

    def probe(self, url):
        status, body = self.sim.probe(url)
        slow = self.sim.delay_ms is not None and "/api/recommendations/" in url and body.get("source") != "static"
        return dict(url=url, status=status, ok=status == 200, error=None if status else "connection refused",
                    latency_ms=(self.sim.delay_ms if slow else 5.0) if status else None, body_json=body)


@pytest.fixture
def sim():
    return Sim()


def write_snapshot(tmp_path, entries):
    directory = tmp_path / "state" / "redis-snapshots"
    directory.mkdir(parents=True, exist_ok=True)
    body = b"REDIS0010\xfe\x00"
    for key, value in entries.items():
        body += b"\x00" + rstr(key.encode()) + rstr(value.encode())
    path = directory / "dump-20261127T010000Z.rdb"
    path.write_bytes(body + b"\xff" + b"\x00" * 8)
    return path


def test_observe(sim, tmp_path):
    ctx = FakeCtx(sim, tmp_path)
    assert ctx.sim is sim
    obs = _degrade.observe(ctx)
    assert obs["active"] == [] and obs["edge_mode"] == "normal" and obs["downgrade_mode"] is False
    sim.edge, sim.downgrade = "offline", True
    os.makedirs(ctx.stack["state_dir"])
    with open(ctx.marker_path(), "w") as handle:
        handle.write("{}")
    obs = _degrade.observe(ctx)
    assert obs["active"] == ["B", "C", "D"]
    assert _degrade.describe(obs) == "static (B), cache_snapshot (C), offline (D)"


def test_enable_auto_first_option_standby(sim, tmp_path):
    ctx = FakeCtx(sim, tmp_path)
    r = _degrade.enable(ctx)
    assert r["changed"] is True and r["active_mode"] == "standby" and r["active_option"] == "A"
    assert sim.edge == "standby" and sim.standby
    assert ("up", (STACK["standby"],), (), ("standby",)) in sim.calls
    assert r["tried"][0]["verified"] is True
    assert r["diff"] == dict(before="normal", after="standby (A)")
    # idempotent: the second run changes nothing and touches nothing
    sim.calls.clear()
    r = _degrade.enable(ctx)
    assert r["changed"] is False and r["active_mode"] == "standby" and r["tried"][0]["already_active"]
    assert sim.calls == []


def test_a_standby_as_slow_as_the_service_is_not_verified(sim, tmp_path):
    """Injected latency reaches the standby too (same Redis): A is reverted, static (B) serves in time."""
    sim.delay_ms = 850.0
    ctx = FakeCtx(sim, tmp_path)
    r = _degrade.enable(ctx)
    by_option = {e["option"]: e for e in r["tried"]}
    assert by_option["A"]["verified"] is False and by_option["A"]["reverted"] and "850 ms, over 500 ms" in str(by_option["A"])
    assert r["active_mode"] == "static" and sim.edge == "normal" and not sim.standby


def test_broken_image_falls_through_to_offline(sim, tmp_path):
    """Standby and static use the broken image, C needs the service: D is the truthful outcome."""
    sim.image_ok = False
    sim.service_up = False
    ctx = FakeCtx(sim, tmp_path)
    write_snapshot(tmp_path, {"recs:user-1:10": json.dumps([{}] * 10)})
    r = _degrade.enable(ctx)
    assert r["active_mode"] == "offline" and sim.edge == "offline"
    by_option = {e["option"]: e for e in r["tried"]}
    assert by_option["A"]["applied"] and by_option["A"]["verified"] is False and by_option["A"]["reverted"]
    assert "not ready" in by_option["A"]["error"]
    assert by_option["B"]["verified"] is False and by_option["B"]["reverted"]
    assert by_option["C"]["applied"] is False and "does not answer" in by_option["C"]["error"]
    assert not sim.downgrade and sim.redis == {}
    assert not os.path.exists(ctx.marker_path())
    assert any("not applied" in line for line in r["tried_summary"])
    assert r["degraded"] is True
    assert r["summary"] == "degraded mode offline (D) is on. Tried: " + "; ".join(r["tried_summary"])


def test_order_a_only_with_broken_image_fails_and_reverts(sim, tmp_path):
    sim.image_ok = False
    sim.service_up = False
    ctx = FakeCtx(sim, tmp_path)
    with pytest.raises(_degrade.DegradeError) as info:
        _degrade.enable(ctx, order=["A"])
    assert "standby (A)" in info.value.msg
    assert sim.edge == "normal"
    assert info.value.details["tried"][0]["reverted"] is True
    assert info.value.details["active_mode"] is None and info.value.details["degraded"] is False
    assert info.value.msg == info.value.details["summary"]
    assert info.value.msg.startswith("no degraded mode could be verified. Tried: standby (A): applied, not verified, reverted")


def test_static_mode(sim, tmp_path):
    ctx = FakeCtx(sim, tmp_path)
    r = _degrade.enable(ctx, mode="static")
    assert r["active_mode"] == "static" and sim.downgrade
    assert ("up", (STACK["service"],), (("DOWNGRADE_MODE", "true"),), ()) in sim.calls
    measured = r["tried"][0]["measured"]["verify"]
    assert measured["base"] == STACK["edge_url"] and measured["downgrade_mode"] is True
    assert {r["source"] for r in measured["recommendations"].values()} == {"static"}


def test_switching_modes_reverts_the_other(sim, tmp_path):
    ctx = FakeCtx(sim, tmp_path)
    _degrade.enable(ctx, mode="B")
    r = _degrade.enable(ctx, mode="D")
    assert r["active_modes"] == ["offline"] and not sim.downgrade and sim.edge == "offline"
    # an already active mode that verifies, with another one on: only the other is switched off
    sim.downgrade = True
    r = _degrade.enable(ctx, mode="D")
    assert r["changed"] is True and r["active_modes"] == ["offline"] and not sim.downgrade


def test_check_mode_changes_nothing(sim, tmp_path):
    ctx = FakeCtx(sim, tmp_path)
    r = _degrade.enable(ctx, check_mode=True)
    assert r["changed"] is True and r["would_try"] == ["A", "B", "C", "D"] and r["active_mode"] == "standby"
    assert r["degraded"] is False and r["summary"].startswith("would try standby (A), static (B)")   # a dry run serves nobody
    assert sim.calls == [] and sim.edge == "normal"
    r = _degrade.disable(ctx, check_mode=True)
    assert r["changed"] is False


def test_cache_snapshot_restores_and_reverts(sim, tmp_path):
    sim.db_ok = True
    ctx = FakeCtx(sim, tmp_path, now=lambda: 1795741200.0 + 90)
    sim.redis["recs:user-2:10"] = json.dumps([{}] * 9)  # fresher live entry, kept
    write_snapshot(tmp_path, {"recs:user-1:10": json.dumps([{}] * 10), "recs:user-2:10": json.dumps([{}] * 3),
                              "other": "x"})
    r = _degrade.enable(ctx, mode="C")
    assert r["active_mode"] == "cache_snapshot" and r["snapshot_age_s"] == 90.0
    assert r["snapshot"].endswith("dump-20261127T010000Z.rdb")
    assert json.loads(sim.redis["recs:user-1:10"]) == [{}] * 10
    assert json.loads(sim.redis["recs:user-2:10"]) == [{}] * 9
    assert "other" not in sim.redis
    marker = json.loads(open(ctx.marker_path()).read())
    assert marker["keys"] == ["recs:user-1:10", "recs:user-2:10"] and marker["keys_restored"] == 1
    assert _degrade.observe(ctx)["active"] == ["C"]
    r = _degrade.disable(ctx)
    assert r["changed"] is True and sim.redis == {} and not os.path.exists(ctx.marker_path())


def test_cache_snapshot_without_snapshot_is_not_applied(sim, tmp_path):
    ctx = FakeCtx(sim, tmp_path)
    with pytest.raises(_degrade.DegradeError) as info:
        _degrade.enable(ctx, mode="C")
    assert "no Redis snapshot" in info.value.msg
    assert info.value.details["tried"][0]["applied"] is False


def test_cache_snapshot_does_not_verify_while_users_are_missing(sim, tmp_path):
    sim.db_ok = False  # database down: users without a cached entry get 503
    ctx = FakeCtx(sim, tmp_path)
    write_snapshot(tmp_path, {"recs:user-1:10": json.dumps([{}] * 10)})
    r = _degrade.enable(ctx, order=["C", "D"])
    assert r["active_mode"] == "offline"
    assert r["tried"][0]["applied"] is True and r["tried"][0]["reverted"] is True
    assert sim.redis == {} and not os.path.exists(ctx.marker_path())


def test_disable_refused_while_service_unhealthy(sim, tmp_path):
    ctx = FakeCtx(sim, tmp_path)
    _degrade.enable(ctx, mode="D")
    sim.db_ok = False
    with pytest.raises(_degrade.Refused) as info:
        _degrade.disable(ctx)
    assert "not verified healthy" in info.value.msg and "/health answered 503" in info.value.msg
    assert sim.edge == "offline"
    r = _degrade.disable(ctx, force=True)
    assert r["changed"] is True and sim.edge == "normal"


def test_disable_order_service_first_then_edge(sim, tmp_path):
    ctx = FakeCtx(sim, tmp_path)
    _degrade.enable(ctx, mode="A")
    sim.downgrade = True
    sim.calls.clear()
    r = _degrade.disable(ctx)
    assert r["changed"] is True and r["active_modes"] == [] and r["verified"] is True
    kinds = [c[0] for c in sim.calls]
    assert kinds.index("up") < kinds.index("edge") < kinds.index("stop")
    assert not sim.standby and sim.edge == "normal" and not sim.downgrade
    r = _degrade.disable(ctx)
    assert r["changed"] is False and r["msg"] == "no degraded mode is on"


def test_disable_rolls_static_back_when_full_service_fails(sim, tmp_path):
    ctx = FakeCtx(sim, tmp_path)
    _degrade.enable(ctx, mode="B")
    original_up = ctx.up

    def up_then_break(services, env=None, profiles=None, timeout=None):
        res = original_up(services, env=env, profiles=profiles, timeout=timeout)
        if (env or {}).get("DOWNGRADE_MODE") == "false":
            sim.db_ok = False  # the full service fails again once personalisation is back
        else:
            sim.db_ok = True
        return res
    ctx.up = up_then_break
    with pytest.raises(_degrade.DegradeError) as info:
        _degrade.disable(ctx)
    assert "static recommendations are back on" in info.value.msg
    assert sim.downgrade is True


def test_verify_off_takes_the_first_applied(sim, tmp_path):
    ctx = FakeCtx(sim, tmp_path)
    r = _degrade.enable(ctx, order=["D", "A"], verify=False)
    assert r["active_mode"] == "offline" and r["tried"][0]["verified"] is None
    assert r["tried_summary"] == ["offline (D): applied (not verified)"]


def test_no_standby_is_not_applicable_and_auto_moves_on(sim, tmp_path):
    ctx = FakeCtx(sim, tmp_path)
    ctx.stack["standby"] = ""
    ctx.standby = None
    r = _degrade.enable(ctx, order=["A", "B"])
    assert r["active_mode"] == "static"
    assert r["not_applicable"] == {"A": "no standby: incident_stack.standby is not set"}
    assert r["tried_summary"][0] == "standby (A): not applicable: no standby: incident_stack.standby is not set"
    assert ("up", (STACK["standby"],), (), ("standby",)) not in sim.calls
    with pytest.raises(_degrade.DegradeError) as info:
        _degrade.enable(ctx, order=["A"])
    assert "not applicable" in info.value.msg and info.value.details["tried"][0]["applied"] is False
    # check mode says up front what does not apply
    dry = _degrade.enable(FakeCtx(Sim(), tmp_path), check_mode=True)
    assert dry["would_try"] == ["A", "B", "C", "D"]


def test_edge_options_need_the_edge_file_named():
    ctx = type("Ctx", (), {})()
    ctx.standby = "recs-api-standby"
    ctx.stack = dict(STACK, edge_config=None, state_dir="/s")
    ctx.declared_services = lambda: ["recs-api-standby"]
    assert "edge_config is not set" in _degrade.not_applicable(ctx, "D")
    assert "edge_config is not set" in _degrade.not_applicable(ctx, "A")
    assert _degrade.not_applicable(ctx, "B") is None and _degrade.not_applicable(ctx, "C") is None


def test_cache_keys_and_value_query_pick_the_usable_answers(sim, tmp_path):
    good = json.dumps({"recommendations": [1, 2]})
    empty = json.dumps({"recommendations": []})
    data = b"REDIS0010\xfe\x00"
    for key, value in (("shop:recs:c-1:10", good), ("shop:recs:c-2:10", empty), ("shop:session:x", good), ("recs:u", good)):
        data += b"\x00" + rstr(key.encode()) + rstr(value.encode())
    data += b"\xff" + b"\x00" * 8
    parsed = _degrade.parse_rdb(data, ["shop:recs:*"])
    assert sorted(parsed["entries"]) == ["shop:recs:c-1:10", "shop:recs:c-2:10"] and parsed["keys_total"] == 4
    stack = {"redis": {"cache_value_query": "length(recommendations) > `0`"}}
    assert _degrade.usable_value(stack, good.encode()) == good
    assert _degrade.usable_value(stack, empty.encode()) is None
    assert _degrade.usable_value(stack, b"not json") is None
    assert _degrade.usable_value({}, b"plain text") == "plain text" and _degrade.usable_value({}, b" ") is None
    with pytest.raises(ValueError, match="not a JMESPath expression"):
        _degrade.validate_stack(dict(STACK, redis={"cache_value_query": "length(("}))
    with pytest.raises(ValueError, match="cache_keys must be a list"):
        _degrade.validate_stack(dict(STACK, redis={"cache_keys": [""]}))
