#!/usr/bin/env python
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Time to recover, per fault, side by side: the floor, p0_recover.yml, and the runbook's commands.

For each fault (crash, hang, redis down, postgres down, container removed) and each repetition,
the three contenders run one after another on the same stack, each after the same real fault:

- floor:   the least a machine could do: the one direct engine call that fixes this fault
           (start, unpause, start the dependency, compose up), then poll until the checklist
           passes (/health 200 and every sample user gets more than 5 recommendations);
- ours:    ansible-playbook playbooks/p0_recover.yml, from its start until the record says the
           service is verified (the watch window excluded); detection, the lease, the record,
           notifications and the evidence bundle are all included;
- runbook: the runbook's own commands for the rungs as written (restart; sleep 10; curl; then
           restart postgres redis; sleep 60; restart the service; sleep 10; curl; then down/up;
           sleep 90; curl), stopping at the first rung whose curl succeeds.

Prints min / median / max per contender and the ratios ours/floor and ours/runbook (medians),
then a per-stage breakdown of one p0_recover run from the record's timeline.

The crash also runs a fourth time per repetition, "chat channel hangs": p0_recover.yml with one chat
channel whose webhook accepts the connection and never answers (a socket of this process that
never reads), as a chat outage looks. Printed: its times, to verified and to the first rung's
restart (the engine's StartedAt of the service), and the ratio to the plain crash run (target
<= 1.1: notifications go out beside the response, never in its way).

    .venv/bin/python bench/bench_recover.py              # 3 repetitions of every fault
    .venv/bin/python bench/bench_recover.py --quick      # 1 repetition of the crash only
    .venv/bin/python bench/bench_recover.py --faults crash,redis_down -n 5

Against a copy of the stack (scripts/stack-copy.sh prints them): SRE_TEST_PROJECT,
SRE_TEST_INVENTORY, SRE_TEST_STACK_DIR, SRE_TEST_BASE_URL, SRE_TEST_STATE_DIR.

Not a test: it measures and prints; exit status 0 unless a contender fails to recover.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import docker

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = ROOT / ".venv" / "bin"
STACK_DIR = Path(os.environ.get("SRE_TEST_STACK_DIR", str(ROOT / "examples" / "recommendation-stack")))
PROJECT = os.environ.get("SRE_TEST_PROJECT", "recsys")
INVENTORY = os.environ.get("SRE_TEST_INVENTORY", "inventories/local")
STATE_DIR = Path(os.environ.get("SRE_TEST_STATE_DIR", "/var/lib/sre-incident/recsys"))
SERVICE = "recommendation-service"
BASE = os.environ.get("SRE_TEST_BASE_URL", "http://127.0.0.1:3000")
USERS = [f"user-{i}" for i in range(1, 6)]
FAULTS = ("crash", "hang", "redis_down", "postgres_down", "removed")


def compose(*args):
    found = subprocess.run(["sh", "-c", "command -v docker-compose"], capture_output=True, check=False)
    binary = ["docker-compose"] if found.returncode == 0 else ["docker", "compose"]
    return binary + ["-p", PROJECT, "--project-directory", str(STACK_DIR), "-f", str(STACK_DIR / "docker-compose.yml"),
                     *args]


def get(path, timeout=2.0):
    try:
        with urllib.request.urlopen(BASE + path, timeout=timeout) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, None
    except (urllib.error.URLError, OSError, ValueError):
        return 0, None


def checklist_passes():
    if get("/health")[0] != 200:
        return False
    for user in USERS:
        status, body = get(f"/api/recommendations/{user}?limit=10")
        if status != 200 or not body or len(body.get("recommendations", [])) <= 5:
            return False
    return True


def poll(check, timeout=240.0, interval=0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(interval)
    return False


class Stack:
    def __init__(self):
        self.client = docker.from_env(timeout=120)

    def container(self, service):
        found = self.client.containers.list(all=True, filters={"label": [
            f"com.docker.compose.project={PROJECT}", f"com.docker.compose.service={service}"]})
        return found[0] if found else None

    def healthy(self):
        subprocess.run(compose("up", "-d", "--no-build"), capture_output=True, check=True, timeout=300)
        for service in (SERVICE, "postgres", "redis"):
            c = self.container(service)
            if c and c.status == "paused":
                c.unpause()
        for name in ("lease.json", "ladder_runs.jsonl"):   # each run is a new incident
            (STATE_DIR / name).unlink(missing_ok=True)
        if not poll(checklist_passes, 120):
            raise RuntimeError("the stack did not come back healthy")

    def inject(self, fault):
        if fault == "crash":
            self.container(SERVICE).kill()
        elif fault == "hang":
            self.container(SERVICE).pause()
        elif fault == "redis_down":
            self.container("redis").stop(timeout=5)
        elif fault == "postgres_down":
            self.container("postgres").stop(timeout=10)
        elif fault == "removed":
            self.container(SERVICE).remove(force=True)
        if not poll(lambda: not checklist_passes(), 10):
            raise RuntimeError(f"fault {fault} did not break the checklist")

    def floor_fix(self, fault):
        if fault == "crash":
            self.container(SERVICE).start()
        elif fault == "hang":
            self.container(SERVICE).unpause()
        elif fault == "redis_down":
            self.container("redis").start()
        elif fault == "postgres_down":
            self.container("postgres").start()
        elif fault == "removed":
            subprocess.run(compose("up", "-d", "--no-deps", "--no-build", SERVICE), capture_output=True, check=True)


def run_floor(stack, fault):
    start = time.monotonic()
    stack.floor_fix(fault)
    ok = poll(checklist_passes)
    return time.monotonic() - start, ok, "direct fix"


RUNBOOK_RUNGS = (
    ("restart the service", [["restart", SERVICE]], 10),
    ("restart the dependencies", [["restart", "postgres", "redis"], "sleep60", ["restart", SERVICE]], 10),
    ("full rebuild", [["down"], ["up", "-d", "--no-build"]], 90),
)


def run_runbook(stack, fault):
    """The runbook's commands as written, rung after rung, with its fixed sleeps."""
    start = time.monotonic()
    for name, steps, settle in RUNBOOK_RUNGS:
        for step in steps:
            if step == "sleep60":
                time.sleep(60)
            else:
                subprocess.run(compose(*step), capture_output=True, timeout=300, check=False)
        time.sleep(settle)
        if checklist_passes():
            return time.monotonic() - start, True, name
    return time.monotonic() - start, False, "not recovered"


class HangingChannel:
    """A chat webhook that accepts the connection and never answers: a listening socket nobody reads."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.held = []
        threading.Thread(target=self._hold, daemon=True).start()

    def _hold(self):
        while True:   # accept every connection and keep it open, never reading or answering
            conn, _addr = self.sock.accept()
            self.held.append(conn)

    def channels(self):
        return [{"name": "chat-hangs", "type": "slack", "url": f"http://127.0.0.1:{self.sock.getsockname()[1]}/hooks"}]


def engine_time(value):
    """The engine's RFC 3339 time with nanoseconds, as an aware datetime."""
    head, _dot, frac = value.rstrip("Z").partition(".")
    return (datetime.datetime.fromisoformat(head).replace(tzinfo=datetime.timezone.utc)
            + datetime.timedelta(seconds=float("0." + (frac or "0"))))


def run_ours(stack, fault, keep=None, channels=None, to_restart=None):
    incident_dir = tempfile.mkdtemp(prefix="bench-incidents-")
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), PATH=f"{VENV_BIN}:{os.environ['PATH']}")
    extra = {"incident_dir": incident_dir, "verify_watch_window_s": 0, "incident_channels": channels or []}
    started = datetime.datetime.now(datetime.timezone.utc)
    start = time.monotonic()
    proc = subprocess.run([str(VENV_BIN / "ansible-playbook"), "playbooks/p0_recover.yml", "-i", INVENTORY,
                           "-e", json.dumps(extra)],
                          cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    total = time.monotonic() - start
    events = []
    for path in Path(incident_dir).glob("*/events.jsonl"):
        events = [json.loads(line) for line in path.read_text().splitlines()]
    verified = [e for e in events if e["type"] == "tick" and (e.get("data") or {}).get("key") == "recovery_verified"]
    fixed = [e["data"]["rung"] for e in events if (e.get("data") or {}).get("result") == "fixed"]
    if verified:
        at = datetime.datetime.fromisoformat(verified[0]["ts"].replace("Z", "+00:00"))
        elapsed = (at - started).total_seconds()
    else:
        elapsed = total
    if keep is not None:
        keep.append(events)
    if to_restart is not None and fault == "crash":
        restarted = engine_time(stack.container(SERVICE).attrs["State"]["StartedAt"])
        to_restart.append((restarted - started).total_seconds())
    return elapsed, proc.returncode == 0 and bool(verified), fixed[-1] if fixed else "not recovered"


def stats(values):
    return min(values), statistics.median(values), max(values)


def breakdown(events):
    """Seconds per stage, from the record's stage start/end events."""
    spans, open_at = {}, {}
    for e in events:
        if e["type"] != "stage":
            continue
        ts = datetime.datetime.fromisoformat(e["ts"].replace("Z", "+00:00"))
        if e["text"].endswith("started"):
            open_at[e["stage"]] = ts
        elif e["text"].endswith("ended") and e["stage"] in open_at:
            spans[e["stage"]] = spans.get(e["stage"], 0.0) + (ts - open_at.pop(e["stage"])).total_seconds()
    return spans


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=3, help="repetitions per fault")
    parser.add_argument("--faults", default=",".join(FAULTS))
    parser.add_argument("--quick", action="store_true", help="one repetition of the crash, to check it runs")
    args = parser.parse_args()
    faults = ["crash"] if args.quick else [f for f in args.faults.split(",") if f]
    reps = 1 if args.quick else args.n
    stack = Stack()
    runs = []
    rows = []
    failures = 0
    hanging = HangingChannel()
    chat = {"ours": [], "ours, chat hangs": []}
    restart = {"ours": [], "ours, chat hangs": []}
    print(f"machine: {os.cpu_count()} cores, {os.uname().sysname} {os.uname().release}; {reps} repetition(s)")
    for fault in faults:
        times = {"floor": [], "ours": [], "runbook": []}
        how = {}
        for rep in range(reps):
            contenders = [("floor", run_floor),
                          ("ours", lambda s, f: run_ours(s, f, runs, to_restart=restart["ours"])),
                          ("runbook", run_runbook)]
            if fault == "crash":
                contenders.append(("ours, chat hangs", lambda s, f: run_ours(
                    s, f, channels=hanging.channels(), to_restart=restart["ours, chat hangs"])))
            for name, runner in contenders:
                stack.healthy()
                stack.inject(fault)
                elapsed, ok, detail = runner(stack, fault)
                how[name] = detail
                if not ok:
                    failures += 1
                    print(f"  {fault} {name} rep {rep + 1}: NOT RECOVERED after {elapsed:.1f} s", flush=True)
                    continue
                if name in chat and fault == "crash":
                    chat[name].append(elapsed)
                if name in times:
                    times[name].append(elapsed)
                print(f"  {fault:<14} {name:<8} rep {rep + 1}: {elapsed:6.1f} s  ({detail})", flush=True)
        rows.append((fault, times, how))
    stack.healthy()

    print("\nTime to recover (seconds: min / median / max)")
    print(f"{'fault':<14} {'floor':>20} {'ours':>20} {'runbook':>20} {'ours/floor':>11} {'ours/runbook':>13}")
    for fault, times, how in rows:
        cells = []
        for name in ("floor", "ours", "runbook"):
            cells.append("%5.1f/%5.1f/%5.1f" % stats(times[name]) if times[name] else "      n/a")
        med = {k: statistics.median(v) for k, v in times.items() if v}
        r_floor = "%.2f" % (med["ours"] / med["floor"]) if "ours" in med and "floor" in med else "n/a"
        r_book = "%.2f" % (med["ours"] / med["runbook"]) if "ours" in med and "runbook" in med else "n/a"
        print(f"{fault:<14} {cells[0]:>20} {cells[1]:>20} {cells[2]:>20} {r_floor:>11} {r_book:>13}"
              f"   ours: {how.get('ours')}; runbook: {how.get('runbook')}")
    if chat["ours"] and chat["ours, chat hangs"]:
        plain, hung = statistics.median(chat["ours"]), statistics.median(chat["ours, chat hangs"])
        print("\nCrash with a chat channel that hangs (accepts, never answers), p0_recover.yml, min / median / max:")
        print("  to verified:         plain %5.1f/%5.1f/%5.1f s   chat hangs %5.1f/%5.1f/%5.1f s"
              % (stats(chat["ours"]) + stats(chat["ours, chat hangs"])))
        if restart["ours"] and restart["ours, chat hangs"]:
            print("  to rung 1's restart: plain %5.1f/%5.1f/%5.1f s   chat hangs %5.1f/%5.1f/%5.1f s"
                  % (stats(restart["ours"]) + stats(restart["ours, chat hangs"])))
        print(f"  ratio chat hangs / plain crash (medians, to verified): {hung / plain:.2f} (target <= 1.1)")
    if runs and runs[0]:
        print("\nWhere the time goes in one p0_recover run (crash), per stage, from the record:")
        for stage, secs in sorted(breakdown(runs[0]).items(), key=lambda kv: -kv[1]):
            print(f"  {stage:<10} {secs:6.1f} s")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
