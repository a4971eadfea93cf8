# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""_fault: refusal, validation, the pure parts (tc plans, parsers, argv), and inject/rollback decisions
against a fake target that models the engine, the containers and the managed host."""
from __future__ import annotations

import json
import os
import re
import subprocess
import time

import pytest

from ansible_collections.sre.incident.plugins.module_utils import _fault

STACK = {"name": "stg1", "service": "recommendation-service", "base_url": "http://127.0.0.1:3501", "health_path": "/health",
         "recommendations_path": "/api/recommendations/{user}", "sample_users": ["user-1", "user-2"], "project_dir": "/x",
         "database": {"service": "postgres", "name": "recommendation_db", "user": "postgres"}, "redis": {"service": "redis"}}
SHOP = dict(STACK, name="shop", service="recs-api", service_port=8000,
            database={"service": "pg", "name": "shop", "user": "postgres", "port": 5433}, redis={"service": "kv", "port": 6380})
CID = "39e1091e7cafe969424e79eef9b87a2f7d73b2f8412e362da06e1a501c2fb7df"
LINKS = ("1: lo: <LOOPBACK,UP,LOWER_UP> mtu 65536 qdisc noqueue state UNKNOWN mode DEFAULT group default qlen 1000\\    link/loopback "
         "00:00:00:00:00:00 brd 00:00:00:00:00:00 promiscuity 0 gso_max_size 65536 gso_max_segs 65535\n"
         "99: eth0@if100: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu %d qdisc %s state UP mode DEFAULT group default\\    link/ether "
         "02:42:ac:14:00:05 brd ff:ff:ff:ff:ff:ff link-netnsid 0 promiscuity 0 minmtu 68 maxmtu 65535 veth gso_max_size 65536 "
         "gso_max_segs %d tso_max_size 524280")


class FakeTarget:
    """The engine (container states, inspect data, exec) and the managed host (nsenter/tc/ip, probes)."""

    def __init__(self, netem=False, visible=True, tools=True, mounts=None, latency_after=800.0):
        self.status_of = {"recommendation-service": "running", "redis": "running", "postgres": "running",
                          "recs-api": "running", "pg": "running", "kv": "running"}
        self.calls = []
        self.keys = 5
        self.netem, self.visible, self.tools = netem, visible, tools
        self.mtu, self.segs, self.qdisc, self.classes, self.clamps = 1500, 65535, None, [], []
        self.latency_after = latency_after
        self.mounts = mounts if mounts is not None else [
            dict(Type="volume", Name="stg1_app-logs", Destination="/var/log/recsys", RW=True),
            dict(Type="bind", Source="/etc/hosts", Destination="/etc/hosts", RW=True)]
        self.files = {}
        self.fill = False
        self.burners = 0
        self.held = 0
        self.detached = []

    # --- the engine
    def status(self, service):
        return {"status": self.status_of[service]}

    def act(self, service, action):
        self.calls.append((action, service))
        self.status_of[service] = {"kill": "exited", "stop": "exited", "pause": "paused", "unpause": "running",
                                   "start": "running"}[action]

    def wait_ready(self, service, timeout):
        return True, {"status": "running"}, 0.1

    def attrs(self, service):
        return {"Id": CID, "State": {"Pid": 4242 if self.status_of[service] == "running" else 0},
                "NetworkSettings": {"Ports": {"3000/tcp": [{"HostIp": "127.0.0.1", "HostPort": "3501"}]}},
                "Config": {"ExposedPorts": {"3000/tcp": {}}}, "Mounts": self.mounts, "HostConfig": {}}

    def exec(self, service, argv, expect_output=False):
        self.calls.append(("exec", service, argv[0]))

        def ok(out=""):
            return dict(rc=0, stdout=out, stderr="", cmd=argv)

        if argv[0] == "redis-cli":
            cmd = argv[argv.index("--no-raw") + 1]
            if cmd == "DBSIZE":
                return ok("(integer) %d" % self.keys)
            if cmd == "FLUSHDB":
                self.keys = 0
                return ok("OK")
        if argv[0] == "psql":
            query = argv[-1]
            if "current_setting('max_connections')" in query:
                return ok("50 3 4")
            if "pg_terminate_backend" in query:
                n, self.held = self.held, 0
                return ok(str(n))
            if "application_name" in query:
                return ok(str(self.held))
            if "pg_tables" in query:
                return ok("tables:items users")
            if "json_build_object" in query:
                return ok(json.dumps({t: [3, "m" + t] for t in re.findall(r"FROM (\w+) x", query)}))
        if argv[0] == "df":
            used = 65536 if self.fill else 100
            return ok("Filesystem 1024-blocks Used Available Capacity Mounted on\ntmpfs 65536 %d %d %d%% %s"
                      % (used, 65536 - used, used * 100 // 65536, argv[-1]))
        if argv[0] == "test":
            return dict(rc=0 if self.fill else 1, stdout="", stderr="", cmd=argv)
        if argv[0] == "dd":
            self.fill = True
            return dict(rc=1, stdout="", stderr="dd: error writing: No space left on device", cmd=argv)
        if argv[0] == "rm":
            self.fill = False
            return ok()
        if argv[0] == "sh" and argv[3] == "find":
            pids = " ".join(str(100 + i) for i in range(self.burners))
            if argv[4] == "kill":
                self.burners = 0
            return ok(pids)
        return ok()

    def exec_detached(self, service, argv):
        self.detached.append((service, argv))
        if argv[-1] == _fault.BURNER_NAME:
            self.burners += 1
        else:
            self.held = int(re.search(r"-lt (\d+)", argv[2]).group(1))

    # --- the managed host
    def which(self, name):
        return "/usr/sbin/" + name if self.tools else None

    def host(self, argv, data=None):
        self.calls.append(("host",) + tuple(argv[4:6] if argv[0] == "nsenter" else argv[:2]))
        out = dict(cmd=argv, rc=0, stdout="", stderr="")
        if argv[0] == "cat":
            out["stdout"] = "12:cpu:/docker/%s\n" % CID if self.visible else "12:cpu:/\n"
            return out
        cmd = argv[4:]
        if cmd[:2] == ["ip", "-o"]:
            out["stdout"] = LINKS % (self.mtu, "htb" if self.qdisc else "noqueue", self.segs)
        elif cmd[:3] == ["tc", "qdisc", "show"]:
            out["stdout"] = "qdisc noqueue 0: dev lo root refcnt 2\n" + (
                "qdisc htb d7d7: dev eth0 root refcnt 3 r2q 10 default 0x1\n" if self.qdisc else "qdisc noqueue 0: dev eth0 root refcnt 2\n")
        elif cmd[:2] == ["tc", "-batch"]:
            if "netem" in data and not self.netem:
                self.qdisc = "htb"
                return dict(out, rc=1, stderr="Error: Specified qdisc kind is unknown.\nCommand failed -:4")
            self.qdisc = "htb"
            self.classes.append(data)
        elif cmd[:3] == ["tc", "qdisc", "del"]:
            self.qdisc = None
        elif cmd[:3] == ["ip", "link", "set"]:
            if "mtu" in cmd:
                self.mtu = int(cmd[cmd.index("mtu") + 1])
            if "gso_max_segs" in cmd:
                self.segs = int(cmd[cmd.index("gso_max_segs") + 1])
        elif cmd[:1] == ["iptables"]:
            rule = cmd[cmd.index("-t") + 3:]
            if "-S" in cmd:
                out["stdout"] = "-P PREROUTING ACCEPT\n" + "".join("-A %s\n" % " ".join(r) for r in self.clamps)
            elif "-A" in cmd:
                self.clamps.append(rule)
            elif "-D" in cmd:
                self.clamps.remove(rule)
        return out

    def probe(self, urls, timeout):
        slow = self.qdisc is not None
        return dict(probes=[dict(url=u, status=200, latency_ms=self.latency_after if slow else 5.0,
                                 body_json={"recommendations": [{"item_id": i, "title": "Item %d" % i} for i in range(10)]})
                            for u in urls])


class Files:
    def __init__(self):
        self.data = {}

    def as_dict(self):
        return dict(write=self.data.__setitem__, read=self.data.get, remove=lambda p: self.data.pop(p, None))


def run(target, files=None, check_mode=False, **params):
    params.setdefault("stack", STACK)
    return _fault.run(params, target, check_mode=check_mode, files=(files or Files()).as_dict())


# --------------------------------------------------------------------------- refusal and input

@pytest.mark.parametrize("env", ["production", "Production "])
def test_refuses_production_environment(env):
    with pytest.raises(_fault.Refused, match="production"):
        _fault.refuse_production(env, exists=lambda path: False)


def test_refuses_marker_file():
    with pytest.raises(_fault.Refused, match="/etc/sre-incident/production"):
        _fault.refuse_production("staging", exists=lambda path: True)
    _fault.refuse_production("staging", exists=lambda path: False)


@pytest.mark.parametrize("params, message", [
    (dict(name="nope", stack=STACK), "unknown fault"),
    (dict(name="latency", stack={}), "stack"),
    (dict(name="latency", stack=STACK, delay_ms=10), "delay_ms"),
    (dict(name="cpu_pressure", stack=STACK, cpu_workers=0), "cpu_workers"),
    (dict(name="disk_fill", stack=STACK, fill_path="relative"), "fill_path"),
    (dict(name="disk_fill", stack=STACK, fill_path="/"), "fill_path"),
    (dict(name="cache_wipe", stack=STACK, checksum_tables=["items; drop"]), "identifier"),
    (dict(name="cache_wipe", stack=dict(STACK, redis={"service": "kv", "port": "63x"})), "redis.port"),
    (dict(name="latency", stack=dict(STACK, service_port=70000)), "service_port"),
    (dict(name="db_connections_exhausted", stack=STACK, spare_connections=-1), "spare_connections"),
])
def test_bad_input_names_the_value(params, message):
    with pytest.raises(ValueError, match=message):
        _fault.validate(params)


# --------------------------------------------------------------------------- engine actions

@pytest.mark.parametrize("name, service, injected_status", [
    ("app_crash", "recommendation-service", "exited"), ("app_hang", "recommendation-service", "paused"),
    ("redis_down", "redis", "exited"), ("postgres_down", "postgres", "exited")])
def test_container_faults_inject_and_roll_back_idempotently(name, service, injected_status):
    target = FakeTarget()
    check = run(target, name=name, state="injected", check_mode=True)
    assert check["changed"] and check["injected"] and target.calls == [] and check["entry"] == "page"
    first = run(target, name=name, state="injected")
    assert first["changed"] and target.status_of[service] == injected_status
    assert not run(target, name=name, state="injected")["changed"]
    back = run(target, name=name, state="rolled_back")
    assert back["changed"] and not back["injected"] and target.status_of[service] == "running"
    assert not run(target, name=name, state="rolled_back")["changed"]


def test_rollback_when_nothing_is_injected_touches_nothing():
    target = FakeTarget()
    result = run(target, name="app_crash", state="rolled_back")
    assert not result["changed"] and result["actions"] == [] and target.calls == []


def test_second_stack_names_ports_and_services():
    s = _fault.validate(dict(name="cache_wipe", stack=SHOP))
    assert _fault.redis_argv(s, "DBSIZE") == ["redis-cli", "-p", "6380", "--no-raw", "DBSIZE"]
    argv = _fault.psql_argv(s, "SELECT 1")
    assert argv[:8] == ["psql", "-X", "-q", "-U", "postgres", "-d", "shop", "-p"] and argv[8] == "5433" and argv[-1] == "SELECT 1"
    target = FakeTarget()
    run(target, name="redis_down", state="injected", stack=SHOP)
    assert target.status_of["kv"] == "exited" and target.status_of["redis"] == "running"


# --------------------------------------------------------------------------- latency: pure parts

def test_parse_links_and_qdiscs():
    links = _fault.parse_links(LINKS % (1500, "noqueue", 65535))
    assert links == [dict(name="eth0", peer=100, mtu=1500, gso_max_segs=65535)]
    qdiscs = _fault.parse_qdiscs("qdisc noqueue 0: dev lo root refcnt 2\nqdisc htb d7d7: dev eth0 root refcnt 3\n"
                                 "qdisc netem d7d8: dev eth0 parent d7d7:2 limit 1000 delay 400ms\n")
    assert [(q["kind"], q["handle"], q["dev"], q["root"]) for q in qdiscs] == [
        ("noqueue", "0", "lo", True), ("htb", "d7d7", "eth0", True), ("netem", "d7d8", "eth0", False)]


def test_service_port_from_the_stack_the_published_port_or_the_only_exposed_one():
    attrs = FakeTarget().attrs("recommendation-service")
    assert _fault.service_port(_fault.validate(dict(name="latency", stack=SHOP)), attrs) == 8000
    assert _fault.service_port(_fault.validate(dict(name="latency", stack=STACK)), attrs) == 3000
    other = dict(STACK, base_url="http://127.0.0.1:9999")
    assert _fault.service_port(_fault.validate(dict(name="latency", stack=other)), attrs) == 3000   # the only exposed port
    attrs["Config"]["ExposedPorts"] = {"3000/tcp": {}, "9229/tcp": {}}
    with pytest.raises(_fault.FaultError, match="service_port"):
        _fault.service_port(_fault.validate(dict(name="latency", stack=other)), attrs)


def test_tc_plans_slow_only_the_answers_of_the_service_port():
    netem = _fault.tc_batch(3000, "netem", "eth0", delay_ms=400)
    assert netem[0] == "qdisc add dev eth0 root handle d7d7: htb default 1"
    assert any("netem delay 400ms" in line for line in netem)
    assert netem[-1].endswith("match ip sport 3000 0xffff flowid d7d7:2")
    rate = _fault.tc_batch(8000, "rate", "eth0", rate=1600)
    classes = [line for line in rate if line.startswith("class add") and "rate 1600bps ceil 1600bps" in line]
    assert len(classes) == _fault.LATENCY_BUCKETS == 256
    assert {re.search(r"classid (\S+)", line).group(1) for line in classes} == {"d7d7:%x" % (0x100 + i) for i in range(256)}
    # every client port lands in one bucket: the low byte of the destination port of the service's answers
    assert rate[-1] == ("filter add dev eth0 parent d7d7: prio 1 protocol ip u32 ht 800:: match ip sport 8000 0xffff "
                        "hashkey mask 0x000000ff at 20 link 2:")
    assert "burst 340 cburst 340" in classes[0]
    with pytest.raises(ValueError, match="interface"):
        _fault.tc_batch(3000, "rate", "eth0; reboot", rate=1)


def test_rate_makes_bigger_answers_and_shorter_delays_faster():
    assert _fault.wire_bytes(860) > 860 + 250
    slow, fast = _fault.rate_for(800, 860), _fault.rate_for(400, 860)
    assert abs(fast - 2 * slow) <= 2
    assert _fault.rate_for(800, 3000) > _fault.rate_for(800, 860)
    # all but the first packet (the bucket holds one) wait for the rate: about 800 ms for the reference app's answer
    assert 1400 <= slow <= 2000


def test_the_clamp_makes_only_the_services_own_connections_small():
    rule = _fault.clamp_rule(8000)
    assert rule[:4] == ["PREROUTING", "-p", "tcp", "--dport"] and rule[4] == "8000" and rule[-2:] == ["--set-mss", "200"]
    assert "SYN" in rule and _fault.CLAMP_COMMENT in rule
    listed = ("-P PREROUTING ACCEPT\n-A PREROUTING -p tcp -m tcp --dport 8000 --tcp-flags SYN,RST SYN -m comment --comment "
              "sre-incident-drill-latency -j TCPMSS --set-mss 200\n-A PREROUTING -p tcp --dport 22 -j ACCEPT\n")
    assert _fault.parse_clamps(listed) == [8000] and _fault.parse_clamps("") == []


# --------------------------------------------------------------------------- latency: inject / rollback

def test_latency_without_netem_caps_each_connection_calibrates_and_rolls_back_to_what_was_read():
    target, files = FakeTarget(netem=False, latency_after=400.0), Files()
    stack = dict(STACK, state_dir="/var/lib/sre-incident/stg1")
    check = run(target, files, check_mode=True, name="latency", state="injected", stack=stack)
    assert check["changed"] and target.qdisc is None and files.data == {}
    result = run(target, files, name="latency", state="injected", stack=stack, delay_ms=800)
    assert result["changed"] and result["injected"] and result["effect"]["mode"] == "rate"
    # the MTU is not touched (the service's own connections keep working); new connections to it are clamped
    assert target.mtu == 1500 and target.segs == 1 and target.clamps == [_fault.clamp_rule(3000)]
    saved = json.loads(files.data["/var/lib/sre-incident/stg1/fault-latency-recommendation-service.json"])
    assert saved == {"links": {"eth0": {"gso_max_segs": 65535}}}
    # measured 400 ms for 800 wanted: one correction, about twice as slow a rate
    assert len(target.classes) == 2 and "class change" in target.classes[1]
    first = int(re.search(r"rate (\d+)bps", target.classes[0]).group(1))
    second = int(re.search(r"rate (\d+)bps", target.classes[1]).group(1))
    assert abs(second - first * (400 - 5) / 800.0) < 2
    assert "Specified qdisc kind is unknown" in result["actions"][0] and "now take 400 ms" in result["actions"][-1]
    assert not run(target, files, name="latency", state="injected", stack=stack)["changed"]
    back = run(target, files, name="latency", state="rolled_back", stack=stack)
    assert back["changed"] and not back["injected"] and target.qdisc is None and target.clamps == []
    assert (target.mtu, target.segs) == (1500, 65535) and files.data == {}
    assert not run(target, files, name="latency", state="rolled_back", stack=stack)["changed"]


def test_latency_uses_netem_where_the_kernel_has_it():
    target = FakeTarget(netem=True)
    result = run(target, name="latency", state="injected", delay_ms=600)
    assert result["effect"]["mode"] == "netem" and "netem delay 300ms" in target.classes[0]
    assert target.mtu == 1500 and target.segs == 65535 and target.clamps == []


def test_latency_needs_the_tools_and_the_engine_hosts_processes():
    with pytest.raises(_fault.FaultError, match="nsenter, tc, ip and iptables"):
        run(FakeTarget(tools=False), name="latency", state="injected")
    with pytest.raises(_fault.FaultError, match="--pid host"):
        run(FakeTarget(visible=False), name="latency", state="present")


def test_latency_never_replaces_a_qdisc_it_did_not_put_there():
    target = FakeTarget()
    original = target.host

    def theirs(argv, data=None):   # the team's own root qdisc on eth0
        out = original(argv, data)
        return dict(out, stdout="qdisc fq_codel 8001: dev eth0 root refcnt 2\n") if argv[4:7] == ["tc", "qdisc", "show"] else out

    target.host = theirs
    with pytest.raises(_fault.FaultError, match="refusing to replace the root qdisc fq_codel"):
        run(target, name="latency", state="injected")
    assert target.segs == 65535 and target.clamps == []


def test_latency_rollback_without_saved_values_uses_the_defaults():
    target, files = FakeTarget(), Files()
    run(target, files, name="latency", state="injected")     # no state_dir: nothing saved
    assert files.data == {} and target.segs == 1
    back = run(target, files, name="latency", state="rolled_back")
    assert target.segs == 65535 and target.clamps == [] and back["changed"]


def test_a_clamp_left_alone_counts_as_injected_and_is_rolled_back():
    target = FakeTarget()
    target.clamps.append(_fault.clamp_rule(3000))
    seen = run(target, name="latency", state="present")
    assert seen["injected"] and seen["before"]["clamped_ports"] == [3000] and "MSS clamp on port 3000" in seen["before"]["detail"]
    back = run(target, name="latency", state="rolled_back")
    assert back["changed"] and target.clamps == [] and "deleted the MSS clamp on port 3000" in back["actions"]


# --------------------------------------------------------------------------- cpu, connections, cache, disk

def test_cpu_pressure_starts_named_loops_and_kills_them():
    target = FakeTarget()
    result = run(target, name="cpu_pressure", state="injected", cpu_workers=2)
    assert result["changed"] and target.burners == 2 and len(target.detached) == 2
    assert all(argv[-1] == _fault.BURNER_NAME and argv[0] == "sh" for _service, argv in target.detached)
    back = run(target, name="cpu_pressure", state="rolled_back")
    assert back["changed"] and target.burners == 0 and "killed 2" in back["actions"][0]


def test_burner_and_finder_really_work_in_sh(monkeypatch):
    """The two shell scripts, run for real here: the burner is found by its marker and killed; the finder never lists itself."""
    # a marker of this run's own: the finder in "kill" mode would otherwise also end the burners of a drill (or of
    # another test run) on this machine, whose containers' processes are seen in /proc here
    monkeypatch.setattr(_fault, "BURNER_NAME", "sre-incident-unit-test-cpu-%d" % os.getpid())
    s = _fault.validate(dict(name="cpu_pressure", stack=STACK, hold_seconds=20))
    burner = subprocess.Popen(_fault.burner_argv(s))   # pylint: disable=consider-using-with
    try:
        def find(mode):
            out = subprocess.run(["sh", "-c", _fault._FIND_SCRIPT, "find", mode] + _fault.BURNER_NAME.rsplit("-", 1),
                                 capture_output=True, text=True, check=True, timeout=30).stdout
            return {int(p) for p in out.split()}
        deadline = time.monotonic() + 10
        while burner.pid not in find("list") and time.monotonic() < deadline:
            time.sleep(0.05)
        assert burner.pid in find("list")
        assert burner.pid in find("kill")
        assert burner.wait(timeout=10) != 0
    finally:
        if burner.poll() is None:
            burner.kill()


def test_connection_sessions_are_held_in_the_database_container_and_leave_spare_slots():
    target = FakeTarget()
    result = run(target, name="db_connections_exhausted", state="injected", spare_connections=5)
    # 50 slots - 3 for superusers - 5 spare - 4 in use = 38 sessions, in the database container (not the application's)
    service, argv = target.detached[0]
    assert service == "postgres" and target.held == 38 and argv[0] == "sh"
    assert "PGAPPNAME=%s" % _fault.HOLDER_NAME in argv[2] and "pg_sleep(1800)" in argv[-1]
    assert result["changed"] and result["injected"] and result["entry"] == "alert"
    assert "42 of max_connections=50 in use, 5 left" in result["actions"][0]
    back = run(target, name="db_connections_exhausted", state="rolled_back")
    assert back["changed"] and not back["injected"] and target.held == 0


def test_holder_script_uses_the_stacks_database_and_port():
    s = _fault.validate(dict(name="db_connections_exhausted", stack=SHOP, hold_seconds=60))
    argv = _fault.holder_argv(s, 7)
    assert "-lt 7" in argv[2] and "-d shop -p 5433" in argv[2] and argv[-1] == "SELECT pg_sleep(60)"


def test_cache_wipe_flushes_and_the_rollback_lets_the_service_refill_it():
    target = FakeTarget()
    result = run(target, name="cache_wipe", state="injected")
    assert result["changed"] and target.keys == 0 and "FLUSHDB on redis: 5 key(s) deleted" in result["actions"][0]
    assert not run(target, name="cache_wipe", state="injected")["changed"]
    original = target.probe

    def the_service_refills(urls, timeout):   # one key per user asked
        target.keys = len(urls)
        return original(urls, timeout)

    target.probe = the_service_refills
    back = run(target, name="cache_wipe", state="rolled_back")
    assert back["changed"] and not back["injected"] and "cannot be restored" in back["actions"][0]
    assert "refilled 2 key(s)" in back["actions"][0]


def test_cache_wipe_rollback_says_when_the_service_did_not_refill():
    target = FakeTarget()
    run(target, name="cache_wipe", state="injected")
    with pytest.raises(_fault.FaultError, match="cannot be restored"):
        run(target, name="cache_wipe", state="rolled_back")


def test_writable_mounts_are_named_volumes_and_tmpfs_never_binds():
    attrs = {"Mounts": [dict(Type="bind", Destination="/etc/hosts", RW=True), dict(Type="volume", Destination="/data", RW=False),
                        dict(Type="volume", Destination="/var/log/x", RW=True, Name="v")], "HostConfig": {"Tmpfs": {"/tmp/t": ""}}}
    assert [m["path"] for m in _fault.writable_mounts(attrs)] == ["/var/log/x", "/tmp/t"]


def test_disk_fill_fills_the_volume_and_deletes_the_file():
    target = FakeTarget()
    result = run(target, name="disk_fill", state="injected")
    assert result["changed"] and target.fill and "/var/log/recsys/sre-incident-drill-fill" in result["actions"][0]
    assert result["after"]["used_percent"] == 100
    back = run(target, name="disk_fill", state="rolled_back")
    assert back["changed"] and not target.fill


def test_disk_fill_refuses_a_big_file_system_and_is_not_applicable_without_a_volume():
    with pytest.raises(_fault.FaultError, match="max_fill_mb=32"):
        run(FakeTarget(), name="disk_fill", state="injected", max_fill_mb=32)
    bare = FakeTarget(mounts=[dict(Type="bind", Destination="/srv", RW=True)])
    seen = run(bare, name="disk_fill", state="present")
    assert seen["applicable"] is False and "no writable volume" in seen["before"]["detail"]
    assert not run(bare, name="disk_fill", state="rolled_back")["changed"]
    with pytest.raises(_fault.NotApplicable, match="not applicable"):
        run(bare, name="disk_fill", state="injected")
    named = run(FakeTarget(), name="disk_fill", state="present", fill_path="/srv")
    assert named["applicable"] is False and "/srv is not a writable volume" in named["before"]["detail"]


def test_checksum_of_every_public_table_by_default():
    target = FakeTarget()
    result = run(target, name="cache_wipe", state="present", checksum=True)
    assert set(result["checksum"]["tables"]) == {"items", "users"} and len(result["checksum"]["md5"]) == 32
    chosen = run(target, name="cache_wipe", state="present", checksum=True, checksum_tables=["orders"])
    assert set(chosen["checksum"]["tables"]) == {"orders"}
    sql = _fault.checksum_sql(["items", "users"])
    assert "FROM items x" in sql and "FROM users x" in sql and "ORDER BY x::text" in sql


def test_redis_value_parsing():
    assert _fault._redis_value("(nil)") is None
    assert _fault._redis_value('"800"') == "800"
    assert _fault._redis_value("(integer) 3") == 3


def test_every_fault_says_how_users_learn_of_it_and_how_to_roll_it_back():
    for name, spec in _fault.FAULTS.items():
        assert spec["entry"] in ("page", "alert") and spec["text"] and spec["users"]
        assert _fault.how_to_roll_back(_fault.validate(dict(name=name, stack=STACK)))["text"]
    assert {n for n, spec in _fault.FAULTS.items() if spec["entry"] == "page"} == {"app_crash", "app_hang", "redis_down", "postgres_down"}
    assert os.path.basename(_fault.PRODUCTION_MARKER) == "production"


def test_latency_is_not_sped_up_when_a_loaded_machine_measures_it_slower():
    target = FakeTarget(latency_after=2400.0)
    result = run(target, name="latency", state="injected", delay_ms=800)
    assert len(target.classes) == 1 and "now take 2400 ms" in result["actions"][-1]


@pytest.mark.parametrize("name, down", [("disk_fill", "recommendation-service"), ("cpu_pressure", "recommendation-service"),
                                        ("cache_wipe", "redis"), ("db_connections_exhausted", "postgres")])
def test_a_fault_looked_at_inside_a_container_that_does_not_run_says_so(name, down):
    """A stack already broken (drill.yml --check on it): observing reads no container that does not run."""
    target = FakeTarget()
    target.status_of[down] = "exited"
    seen = run(target, name=name, state="present")
    assert seen["applicable"] is True and seen["injected"] is False
    assert seen["before"]["detail"] == "%s is exited: not looked into until it runs" % down
    assert not [c for c in target.calls if c[0] == "exec"]


def test_disk_fill_on_a_stopped_service_still_says_when_it_has_no_volume():
    bare = FakeTarget(mounts=[dict(Type="bind", Destination="/srv", RW=True)])
    bare.status_of["recommendation-service"] = "exited"
    seen = run(bare, name="disk_fill", state="present")
    assert seen["applicable"] is False and "no writable volume" in seen["before"]["detail"]
