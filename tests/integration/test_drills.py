# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Drills (DR-1..DR-4, issue 8) on two staging hosts reached over SSH (scripts/staging.sh).

The module brings the two staging hosts up itself and takes them down at the end. A drill against
production is refused with nothing touched. Then the whole catalogue runs once on both hosts at
once (one fault after another on each), and every assertion reads that one run. What the drill
says is checked against what the test reads itself: the Docker engine's events (each fault really
happened and was undone), the containers' state, the databases (checksums taken by the test
before and after, with its own SQL), Redis, the faults' traces (the qdisc and the MSS clamp in the service's
network namespace, held sessions, busy loops, the fill file), and HTTP answers.

Detection is the drill's outside watch's (OUT-7), never the record the response opened; the
severity of every fault that reaches triage is the one triage measured itself (the drill names
none), checked per fault against what the runbook's decision tree says for what users see (STACKS).
What the test knows of a stack (service names, psql and redis-cli argv, tables, the expected
severities) is in STACKS, one entry per example stack (its StackSpec from conftest.py and what only the drills
need); HOSTS says which staging host runs which: the first the reference stack, the second the shop stack
(GEN-6), each a copy of its own (scripts/staging.sh, STAGING_HOSTS name:app:edge:ssh[:stack]).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import subprocess
import threading
import time
from pathlib import Path

import docker
import pytest

from conftest import REFERENCE, ROOT, SHOP, http_get, run_playbook

# stacks and hosts of its own: with pytest-xdist it runs beside the tests of the reference stack (conftest.py)
pytestmark = pytest.mark.integration

INVENTORY = os.environ.get("STAGING_INVENTORY", "inventories/staging-local")
FAULTS = ["app_crash", "app_hang", "redis_down", "postgres_down", "db_connections_exhausted", "cache_wipe", "latency",
          "disk_fill"]
P0_FAULTS = {"app_crash", "app_hang", "redis_down", "postgres_down"}
P0_SLA_DETECT_S, P0_SLA_RESOLVE_S = 300, 1800
MARKER = "/etc/sre-incident/production"

# The severities triage may measure itself for each fault that reaches it as an alert: the runbook's decision tree for
# what users see (measured on both stacks, docs/drills.md). Latency of about 800 ms is over 10x the 50 ms baseline: P0.
# Connections near the limit and a full log volume: problems users do not see, P2. A flushed cache is refilled from the
# database, users get their answers: nothing wrong (None: no incident), or, when the database answers more than 2x the
# baseline while the cache is cold (a loaded machine), P2 by latency.
MEASURED = {"latency": ("P0",), "cache_wipe": (None, "P2"), "db_connections_exhausted": ("P2",), "disk_fill": ("P2",)}

# What the test knows of each example stack, in one place (the drill itself reads incident_stack): its StackSpec
# (names, ports, psql and redis-cli argv, tables, sample users, the edge's file and its source) and what only the
# drills need: the service's writable volume that disk_fill fills, and the severities triage may measure.
STACKS = {
    "recsys": dict(spec=REFERENCE, volume="/var/log/recsys", measured=MEASURED),
    "shop": dict(spec=SHOP, volume="/var/log/recs-api", measured=MEASURED),
}


def _hosts():
    """staging host -> its stack and ports, from STAGING_HOSTS (scripts/staging.sh's format): the first host runs
    the reference stack, the second the shop stack, unless an entry names its stack (name:app:edge:ssh:stack)."""
    hosts = {}
    for i, entry in enumerate(os.environ.get("STAGING_HOSTS", "stg1:3501:8581:2201 stg2:3502:8582:2202").split()):
        name, app, edge, ssh, *stack = entry.split(":")
        hosts[name] = dict(stack=stack[0] if stack else ("recsys", "shop")[i % 2], app=int(app), edge=int(edge), ssh=int(ssh))
    return hosts


HOSTS = _hosts()
FIRST, SECOND = list(HOSTS)[:2]


def kind(project):
    return STACKS[HOSTS[project]["stack"]]


def spec(project):
    """The StackSpec of the copy on this staging host (its own project name and ports)."""
    ports = HOSTS[project]
    return dataclasses.replace(kind(project)["spec"], project=project, base_url=f"http://127.0.0.1:{ports['app']}",
                               edge_url=f"http://127.0.0.1:{ports['edge']}", state_dir=Path(f"/var/lib/sre-incident/{project}"))


def staging_script(action):
    hosts = " ".join(f"{name}:{h['app']}:{h['edge']}:{h['ssh']}:{h['stack']}" for name, h in HOSTS.items())
    return subprocess.run(["bash", str(ROOT / "scripts/staging.sh"), action], cwd=ROOT, capture_output=True, text=True,
                          timeout=900, check=False, env=dict(os.environ, STAGING_HOSTS=hosts))


@pytest.fixture(scope="module")
def staging():
    """The two staging hosts and their stacks, up for this module only (down also after a failed up)."""
    try:
        up = staging_script("up")
        assert up.returncode == 0, up.stdout + up.stderr
        yield docker.from_env(timeout=60)
    finally:
        down = staging_script("down")
        assert down.returncode == 0, down.stdout + down.stderr


def containers(client, project, service=None):
    labels = [f"com.docker.compose.project={project}"]
    if service:
        labels.append(f"com.docker.compose.service={service}")
    return client.containers.list(all=True, filters={"label": labels})


def run_in(client, project, service, argv):
    found = [c for c in containers(client, project, service) if c.status == "running"]
    assert found, f"{project}/{service} has no running container"
    code, out = found[0].exec_run(argv)
    return code, out.decode("utf-8", "replace").strip()


def sql(client, project, query):
    code, out = run_in(client, project, spec(project).database["service"], spec(project).psql(query))
    assert code == 0, out
    return out


def redis(client, project, *args):
    code, out = run_in(client, project, spec(project).redis["service"], spec(project).redis_cli(*args))
    assert code == 0, out
    return out


def checksums(client, project):
    """Row count and md5 of every row of each table, read by the test itself."""
    return {t: sql(client, project, f"SELECT count(*) || ':' || md5(coalesce(string_agg(x::text, '|' ORDER BY x::text), '')) "
                                    f"FROM {t} x") for t in spec(project).tables}


def started_at(client):
    return {c.name: (c.attrs["State"]["StartedAt"], c.attrs["State"]["Status"]) for p in HOSTS for c in containers(client, p)}


def in_netns(client, project, *argv):
    """A command in the network namespace of the service's container, run by the test on the engine host."""
    (service,) = [c for c in containers(client, project, spec(project).service) if c.status == "running"]
    proc = subprocess.run(["nsenter", "-t", str(service.attrs["State"]["Pid"]), "-n", *argv], capture_output=True, text=True,
                          timeout=30, check=True)
    return proc.stdout


def served(project, port):
    """(health status, {user: item count}) straight from a published port."""
    status = http_get("/health", base=f"http://127.0.0.1:{port}", timeout=5)[0]
    counts = {}
    for user in spec(project).users:
        code, body = http_get(f"/api/recommendations/{user}?limit=10", base=f"http://127.0.0.1:{port}", timeout=5)
        counts[user] = len(body.get("recommendations", [])) if code == 200 and body else 0
    return status, counts


# --------------------------------------------------------------------------- DR-4: refused, nothing touched

def test_drill_against_production_is_refused_with_nothing_touched(staging, tmp_path_factory):
    incidents = tmp_path_factory.mktemp("refused-incidents")
    # a neutral path: only the inventory variable says production here
    marked = tmp_path_factory.mktemp("inv") / "marked.yml"
    marked.write_text(f"recsys:\n  hosts:\n    {SECOND}:\n      incident_environment: production\n")
    before = started_at(staging)

    # 1. one host marked production in the inventory: the whole drill stops, the other host is not touched either
    proc = run_playbook("drill.yml", "-i", str(marked), inventory=INVENTORY,
                        extra_vars={"drill_fault": "app_crash", "incident_dir": str(incidents)})
    assert proc.returncode != 0, proc.output[-3000:]
    assert f"Drill refused on {SECOND}" in proc.output and "incident_environment is production" in proc.output
    assert "Inject the fault" not in proc.output

    # 2. the marker file on the host refuses even with the environment overridden on the command line
    host = staging.containers.get(f"sre-staging-{FIRST}")
    assert host.exec_run(["touch", MARKER]).exit_code == 0
    try:
        proc = run_playbook("drill.yml", inventory=INVENTORY,
                            extra_vars={"drill_fault": "all", "incident_environment": "staging", "incident_dir": str(incidents)})
        assert proc.returncode != 0, proc.output[-3000:]
        assert f"Drill refused on {FIRST}: it is production (marker file {MARKER} exists)" in " ".join(proc.output.split())
        assert "Inject the fault" not in proc.output
    finally:
        host.exec_run(["rm", "-f", MARKER])

    # 3. the production inventory, even with -e incident_environment=staging: refused before any host is contacted
    proc = run_playbook("drill.yml", inventory="inventories/production",
                        extra_vars={"drill_fault": "app_crash", "incident_environment": "staging", "incident_dir": str(incidents)})
    assert proc.returncode != 0
    assert "names production" in proc.output and "UNREACHABLE" not in proc.output, proc.output[-3000:]

    assert started_at(staging) == before
    assert not [c.name for p in HOSTS for c in containers(staging, p) if c.attrs["State"]["Paused"]]
    assert not list(Path(incidents).rglob("events.jsonl")) and not list(Path(incidents).glob("drill-*"))
    for project in HOSTS:   # nothing of any fault: no qdisc in the service's namespace, no held sessions
        assert "d7d7" not in in_netns(staging, project, "tc", "qdisc", "show")
        assert sql(staging, project, "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'sre-incident-drill-hold'") == "0"


# --------------------------------------------------------------------------- OUT-1: a dry run touches nothing

def test_drill_under_check_on_both_stacks_injects_nothing(staging, tmp_path_factory):
    """drill.yml --check on the staging hosts (one per stack): it says per host what it would do, and nothing changes
    (the engine's containers, the faults' traces, no record, no report). The latency fault, the one that acts from the
    managed host (nsenter, tc, iptables); test_check_mode.py dry-runs the whole catalogue on the local inventory."""
    incidents = tmp_path_factory.mktemp("check-incidents")
    for project in HOSTS:   # a key of the test's own, without expiry: a FLUSHDB (cache_wipe) would take it
        redis(staging, project, "SET", "sre-test-check-canary", "1")
    before = started_at(staging)
    proc = run_playbook("drill.yml", "--check", inventory=INVENTORY,
                        extra_vars={"drill_fault": "latency", "incident_dir": str(incidents)})
    assert proc.returncode == 0, proc.output[-4000:]
    text = " ".join(proc.stdout.split())
    for project in HOSTS:
        assert f"latency on {project}: would wait for the steady state" in text, project
    assert "would inject latency" in text and "would run triage.yml" in text and "roll the fault back" in text
    assert f"{len(HOSTS)} drill(s) would run" in text
    assert not re.search(r"\bresolved\b|\bverified\b|\bfixed\b|closed as", proc.stdout, re.IGNORECASE)
    assert started_at(staging) == before
    assert not [c.name for p in HOSTS for c in containers(staging, p) if c.attrs["State"]["Paused"]]
    assert not any(Path(incidents).iterdir())
    for project in HOSTS:
        assert "d7d7" not in in_netns(staging, project, "tc", "qdisc", "show")
        assert sql(staging, project, "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'sre-incident-drill-hold'") == "0"
        assert redis(staging, project, "GET", "sre-test-check-canary") == "1", project
        redis(staging, project, "DEL", "sre-test-check-canary")
        assert "sre-incident-drill" not in in_netns(staging, project, "iptables", "-t", "mangle", "-S")
        assert run_in(staging, project, spec(project).service,
                      ["test", "-e", kind(project)["volume"] + "/sre-incident-drill-fill"])[0] != 0


# --------------------------------------------------------------------------- the whole catalogue, once

class EngineEvents:
    """The engine's container events of the staging stacks, streamed live while the drill runs.

    Live, because the engine keeps only its last few hundred events for a later query, and the
    stacks' healthchecks alone produce more than that in a few minutes.
    """

    ACTIONS = ["kill", "die", "stop", "start", "restart", "pause", "unpause", "create", "destroy"]

    def __init__(self, client):
        self.seen = []
        self.stream = client.events(decode=True, filters={"type": "container", "event": self.ACTIONS})
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        try:
            for event in self.stream:
                self.seen.append(event)
        except Exception:  # pylint: disable=broad-exception-caught  # the stream ends when closed
            pass

    def stop(self):
        # the drill's last container events (the last rollbacks) are long delivered when its report is written
        self.stream.close()
        self.thread.join(timeout=10)
        by_project = {p: [] for p in HOSTS}
        for event in self.seen:
            attributes = event.get("Actor", {}).get("Attributes", {})
            if attributes.get("com.docker.compose.project") in by_project:
                by_project[attributes["com.docker.compose.project"]].append(
                    (attributes.get("com.docker.compose.service"), event["Action"], attributes.get("signal")))
        return by_project


@pytest.fixture(scope="module")
def catalogue(staging, tmp_path_factory):
    """One run of every fault on both hosts; what the test read before and after, and when."""
    incidents = tmp_path_factory.mktemp("drill-incidents")
    sums_before = {p: checksums(staging, p) for p in HOSTS}
    engine = EngineEvents(staging)
    started = time.monotonic()
    # at a lower CPU priority: beside it (pytest-xdist) the tests of the reference stack judge latencies
    proc = run_playbook("drill.yml", inventory=INVENTORY, extra_vars={"drill_fault": "all", "incident_dir": str(incidents)},
                        timeout=3600, prefix=("nice", "-n", "10"))
    wall = time.monotonic() - started
    events = engine.stop()
    print(f"\ndrill catalogue on {len(HOSTS)} hosts: {wall:.0f} s wall time")
    reports = list(incidents.glob("drill-*.json"))
    assert len(reports) == 1, proc.output[-5000:]
    return dict(proc=proc, wall=wall, incidents=incidents, results=json.loads(reports[0].read_text()),
                markdown=next(incidents.glob("drill-*.md")).read_text(), sums_before=sums_before, events=events)


def test_every_fault_is_answered_as_what_users_see_calls_for(catalogue):
    """Per fault: detected by the outside watch when users see it, the severity triage measured itself (never told),
    and the answer that severity calls for, within its SLA."""
    results = catalogue["results"]
    assert sorted((r["fault"], r["host"]) for r in results) == sorted((f, h) for f in FAULTS for h in HOSTS), \
        catalogue["proc"].output[-5000:]
    problems = []
    for r in results:
        allowed = ("P0",) if r["fault"] in P0_FAULTS else kind(r["host"])["measured"][r["fault"]]
        measured = r["measured_severity"] if r["measured_severity"] in allowed else allowed[0]
        if r["measured_severity"] not in allowed:
            problems.append(dict(label=r["label"], measured_severity=r["measured_severity"], expected=allowed))
        if measured in ("P0", "P1"):
            # users see it: the watch (not the response) detected it, and users were served again in time
            ok = (r["user_visible"] and r["detect_s"] is not None and 0 <= r["detect_s"] <= P0_SLA_DETECT_S
                  and r["respond_s"] is not None and r["respond_s"] <= P0_SLA_DETECT_S
                  and r["result"] in ("recovered", "degraded") and r["recover_s"] is not None and 0 < r["recover_s"] <= P0_SLA_RESOLVE_S
                  and r["sla"] == "met" and r["measured_severity"] == measured)
        elif measured == "P2":
            # users never saw it; triage found it itself (disk, connections) and answered with a P2 report
            ok = (not r["user_visible"] and r["detect_s"] is None and r["measured_severity"] == "P2" and r["result"] == "reported"
                  and r["path"] == "triage.yml -> p2_report" and r["sla"] == "met")
        else:
            # users never saw it and nothing was wrong to classify: no incident
            ok = (not r["user_visible"] and r["detect_s"] is None and r["result"] == "no incident" and r["incident_id"] is None
                  and r["sla"] == "n/a")
        if not ok:
            problems.append({k: r.get(k) for k in ("label", "detect_s", "respond_s", "recover_s", "result", "by", "path",
                                                   "measured_severity", "sla", "user_visible", "outage_why", "error", "record")})
    assert not problems, json.dumps(problems, indent=1)
    # the playbook succeeds when no drill missed its SLA, every fault was rolled back and the data kept
    assert catalogue["proc"].returncode == 0, catalogue["proc"].output[-3000:]


def test_each_fault_went_the_way_of_its_severity_and_left_a_record(catalogue):
    for r in catalogue["results"]:
        if r["result"] == "no incident":
            assert r["record"] is None and not r["user_visible"], r
            continue
        events = [json.loads(line) for line in Path(r["record"]).read_text().splitlines()]
        opened = next(e for e in events if e["type"] == "opened")
        assert r["incident_id"] == opened["data"]["id"], r["label"]
        if r["fault"] in P0_FAULTS:
            # a P0 page: p0_recover.yml, no triage
            assert r["path"] == "p0_recover.yml" and opened["data"]["severity"] == "P0", r
            assert r["by"].startswith(("rung ", "degraded ")), r
            assert not any(e.get("stage") == "triage" for e in events), r["label"]
        else:
            # an alert: triage measured and classified it, with no severity given by the drill
            triage = next(e["data"]["triage"] for e in events if e.get("stage") == "triage" and (e.get("data") or {}).get("triage"))
            assert triage["alert_severity"] is None and triage["severity"] == r["measured_severity"], triage
            assert r["path"].startswith("triage.yml -> "), r
        closed = [e for e in events if e["type"] == "closed"]
        if r["result"] == "reported":
            report = next(e["data"]["report"] for e in events if e.get("stage") == "triage" and (e.get("data") or {}).get("report"))
            assert Path(report["path"]).is_file() and Path(report["path"]).parent == Path(r["record"]).parents[1], report
        else:
            assert closed and closed[-1]["data"]["outcome"] in ("resolved", "degraded"), (r["label"], closed)


def test_the_ladder_runs_are_the_drills_own(catalogue):
    """The severity playbook's lease and ladder runs say purpose drill (incident_purpose=drill): the circuit breaker
    of real incidents never counts them (OUT-4). Read from each host's state directory (ladder_runs.jsonl)."""
    for project in HOSTS:
        runs = [json.loads(line) for line in (spec(project).state_dir / "ladder_runs.jsonl").read_text().splitlines()]
        p0 = {r["incident_id"] for r in catalogue["results"] if r["host"] == project and r["fault"] in P0_FAULTS}
        assert {x.get("incident_id") for x in runs} & p0, (project, runs)
        assert {x.get("purpose") for x in runs} == {"drill"}, (project, runs)


def test_the_faults_really_happened_and_were_undone(catalogue):
    """The engine's own events: the crash, the pause, the stopped dependencies, each undone."""
    for project, seen in catalogue["events"].items():
        service = spec(project).service
        # app_crash: SIGKILL (a restart by the ladder would send SIGTERM first)
        assert (service, "kill", "9") in seen, (project, seen)
        # app_hang: paused, and not left paused
        assert (service, "pause", None) in seen and (service, "unpause", None) in seen, (project, seen)
        # redis_down, postgres_down: stopped, then started again
        for dependency in (spec(project).redis["service"], spec(project).database["service"]):
            actions = [action for service, action, _signal in seen if service == dependency]
            assert "stop" in actions and "start" in actions[actions.index("stop"):], (project, dependency, actions)
    # users saw the faults that reach them (the drill's watch, rounds kept next to each record): the engine faults and
    # the latency, which users see as slow answers (a loaded machine may add a /health time-out to a round)
    for r in catalogue["results"]:
        if r["fault"] in P0_FAULTS | {"latency"}:
            assert r["user_visible"], r
            watch = json.loads((Path(r["record"]).parents[1] / "watch.json").read_text())
            bad = [s for s in watch["samples"] if s["t"] >= watch["injected_at"] and not s["ok"]]
            assert bad, r["label"]
            if r["fault"] == "latency":
                assert all("median answer" in s["why"] for s in bad[:3]), bad[:3]
        else:
            assert not r["user_visible"], r


def test_everything_rolled_back_and_the_data_unchanged(catalogue, staging):
    for r in catalogue["results"]:
        assert r["rolled_back"] is True and r["data_ok"] is True, r
    for project, ports in HOSTS.items():
        stack, volume = spec(project), kind(project)["volume"]
        # containers: running, not paused, no standby, no degraded mode left
        states = {c.labels["com.docker.compose.service"]: c.attrs["State"] for c in containers(staging, project)}
        assert {s: st["Status"] for s, st in states.items() if s != stack.standby} == \
            {s: "running" for s in (stack.service, *stack.dependencies, stack.edge)}, states
        assert states.get(stack.standby, {}).get("Status") in (None, "exited"), states
        app = containers(staging, project, stack.service)[0]
        assert "DOWNGRADE_MODE=true" not in app.attrs["Config"]["Env"]
        # the edge's nginx file byte for byte the stack's own (the degraded modes rewrite it, restore puts it back)
        edge_file = run_in(staging, project, stack.edge, ["sha256sum", stack.edge_config])[1].split()[0]
        assert edge_file == hashlib.sha256(stack.edge_source.read_bytes()).hexdigest(), project
        # the faults' own traces, read here: no qdisc, no MSS clamp and the kernel's gso_max_segs in the service's
        # namespace, no held sessions, no busy loop, no fill file and the volume nearly empty, the cache refilled
        assert "d7d7" not in in_netns(staging, project, "tc", "qdisc", "show")
        assert "sre-incident-drill" not in in_netns(staging, project, "iptables", "-t", "mangle", "-S")
        assert "gso_max_segs 65535 " in in_netns(staging, project, "ip", "-o", "-d", "link", "show", "eth0")
        assert sql(staging, project, "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'sre-incident-drill-hold'") == "0"
        assert not [p for p in app.top(ps_args="-eo pid,args")["Processes"] if "sre-incident-drill" in p[-1]]
        assert run_in(staging, project, stack.service, ["test", "-e", volume + "/sre-incident-drill-fill"])[0] != 0
        used = int(run_in(staging, project, stack.service, ["df", "-P", volume])[1].splitlines()[-1].split()[4].rstrip("%"))
        assert used < 50, used
        # the data: the test's own checksums before and after the whole catalogue
        assert checksums(staging, project) == catalogue["sums_before"][project]
        # users are served, straight and through the edge (which refills the cache as they ask)
        for port in (ports["app"], ports["edge"]):
            status, counts = served(project, port)
            assert status == 200 and all(n > 5 for n in counts.values()), (project, port, status, counts)
        assert int(redis(staging, project, "DBSIZE")) > 0


def test_the_report_has_a_table_and_a_line_per_fault_and_host(catalogue):
    md, output = catalogue["markdown"], catalogue["proc"].output
    rows = [line for line in md.splitlines() if line.startswith("| ") and not line.startswith("| fault")]
    assert len(rows) == len(FAULTS) * len(HOSTS)
    summary = md.split("## Summary", 1)[1]
    for fault in FAULTS:
        for host in HOSTS:
            assert f"- {fault} on {host}: " in summary
            # the printed table (the playbook's output; YAML quotes a line that holds ": ")
            assert re.search(rf"^ *- '?{fault} \| {host} \| ", output, re.MULTILINE), (fault, host)
