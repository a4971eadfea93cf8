#!/usr/bin/env python
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Time to recover, per fault, side by side in one run: p0_recover.yml and what a team could use instead.

For each fault and each repetition, every contender runs on the same stack after the same real
fault, injected by this script once the stack is in its steady state (users answered through
the edge). Two times are taken from the fault:

- users answered: the first good answer THROUGH THE EDGE (/health 200 and every sample user of
  the inventory gets more than 5 recommendations at the edge URL), polled by this script from
  outside every 50 ms (as synthetic traffic, X-User-Id: synthetic-bench);
- verified: when the contender itself has checked that users are answered. p0_recover.yml: the
  record's ``recovery_verified`` tick (its run goes on with the root-cause bundle, closing the
  record, releasing the lease: "run ends"); the runbook: its test after its fixed sleep passed;
  the floor: the same poll (it checks nothing of its own). The restart policy and the restarter
  verify nothing.

Contenders:
- floor: the one direct engine call that fixes this fault (start, unpause, start the dependency,
  compose up plus an edge reload);
- restart policy: Docker's own, ``restart: unless-stopped`` set on the service for the run
  (``docker update``) and put back afterwards; the engine restarts a container that exits by
  itself, nothing else;
- restarter: bench/restarter.py, a few lines on the engine's event stream that restart the
  service on ``health_status: unhealthy`` and start it when it dies by itself;
- runbook: the runbook's commands for the rungs as written (restart; sleep 10; test; then restart
  postgres redis; sleep 60; restart the service; sleep 10; test; then down/up; sleep 90; test);
- ours: ``ansible-playbook playbooks/p0_recover.yml -e incident_purpose=bench`` (its runs never
  count against real incidents' circuit breaker; the bench's own breaker is lifted with
  ``recover_breaker_max_runs``), no watch window after the recovery.

The crash is the service's main process killed from the host (``kill -9`` of its PID): the engine
counts that as a crash and a restart policy applies (``docker kill`` counts as a manual stop, which
``unless-stopped`` never restarts). Every contender gets that same crash; all but the restart
policy run with the service's restart policy set to "no" for the run (the shop stack has
``unless-stopped`` in its compose file), so each is measured on its own. The restart policy and
the restarter run every repetition of the crash; on the other faults they run once, bounded
(``--cannot-bound``), and the output says what they did.

Also printed: the crash once more per repetition with a chat channel that hangs (accepts the
connection, never answers), its ratio to the plain crash run (target <= 1.1); a crash answered by
the real monitoring chain (Prometheus, Alertmanager, ansible-rulebook: bench/alert_chain.py), time
from the fault to users answered; where the time of one p0_recover crash run goes (the record's
timeline; ``--profile``: every task's wall time too); the targets of issue 19; a Markdown table to
paste into the README.

    .venv/bin/python bench/bench_recover.py                  # the reference stack, 3 repetitions
    .venv/bin/python bench/bench_recover.py --quick          # the crash once per contender (make bench-quick)
    .venv/bin/python bench/bench_recover.py --stack shop     # the second example stack (inventories/local-shop)
    .venv/bin/python bench/bench_recover.py --faults crash,redis_down -n 5 --alert off --profile

Against a copy of a stack (scripts/stack-copy.sh): SRE_TEST_INVENTORY (reference stack) or
SRE_TEST_SHOP_INVENTORY (--stack shop), or --inventory; everything else is read from the inventory.
The alert chain's daemons listen on SRE_BENCH_PROMETHEUS_PORT / _ALERTMANAGER_PORT / _BLACKBOX_PORT
(19190 / 19193 / 19195), the rulebook on SRE_BENCH_EDA_PORT (5011).

Not a test: it measures and prints; exit status 0 unless a contender fails on a fault it handles.
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import docker

from benchlib import (ROOT, VENV_BIN, EdgeWatch, Target, ansible_env, epoch, fmt, fmt_stats, median, ratio,
                      wait_until)

FAULTS = ("crash", "hang", "redis_down", "postgres_down", "removed")
CONTENDERS = ("floor", "restart_policy", "restarter", "runbook", "ours")
LABELS = {"floor": "floor (direct fix)", "restart_policy": "restart policy", "restarter": "healthcheck restarter",
          "runbook": "runbook commands", "ours": "p0_recover.yml", "ours_chat": "p0_recover.yml, chat hangs"}
FAULT_LABELS = {"crash": "crash (killed)", "hang": "hang (paused)", "redis_down": "redis down",
                "postgres_down": "postgres down", "removed": "container removed"}
ALWAYS_ON = ("restart_policy", "restarter")


def fault_text(target, fault):
    return {
        "crash": "%s's main process killed from the host (kill -9 of its PID), the same for every contender: the engine "
                 "counts it as a crash, so a restart policy applies (docker kill would count as a manual stop)"
                 % target.service,
        "hang": "%s's container paused (docker pause)" % target.service,
        "redis_down": "%s stopped (docker stop)" % target.redis["service"],
        "postgres_down": "%s stopped (docker stop)" % target.database["service"],
        "removed": "%s's container removed (docker rm -f)" % target.service,
    }[fault]


def cannot(fault, contender, health, detail):
    """Why an always-on contender did not answer users after this fault (the engine's documented behaviour,
    next to what was observed in this run)."""
    if contender == "restart_policy":
        return {"hang": "a paused container does not exit, so there is nothing to restart",
                "redis_down": "the dependency was stopped by hand (docker stop), which a restart policy respects",
                "postgres_down": "the dependency was stopped by hand (docker stop), which a restart policy respects",
                "removed": "a removed container is gone: there is nothing to restart",
                "crash": "the engine did not bring it back within the bound"}[fault]
    if fault == "hang" and "health_status" not in detail and health == "unhealthy":
        return ("the engine stops the healthcheck of a paused container and marks it unhealthy without a "
                "health_status event: nothing on the event stream says it")
    if fault == "removed":
        return "a removed container sends no health events and cannot be started again"
    if fault in ("redis_down", "postgres_down"):
        return ("restarting the service does not start the stopped dependency" if "restarted" in detail
                else "the engine reported no unhealthy service within the bound")
    return "not answered within the bound"


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
        return [{"name": "chat-hangs", "type": "slack", "url": "http://127.0.0.1:%d/hooks" % self.sock.getsockname()[1]}]


class Restarter:
    """bench/restarter.py in its own process, for one run."""

    def __init__(self, target):
        self.lines = []
        self.proc = subprocess.Popen([str(VENV_BIN / "python"), str(ROOT / "bench/restarter.py"), "--project",
                                      target.project, "--service", target.service],
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        if not wait_until(lambda: any(x.startswith("watching") for x in self.lines) or self.proc.poll() is not None, 60):
            raise RuntimeError("the restarter did not start: %s" % self.lines)

    def _read(self):
        for line in self.proc.stdout:
            self.lines.append(line.rstrip())

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.reader.join(5)
        acted = [x.split(" ", 1)[1] for x in self.lines if x.split(" ")[1:2] in (["started"], ["restarted"], ["failed"])]
        seen = [x.split(" ")[2] + (" " + x.split(" ")[3] if x.split(" ")[2] == "health_status:" else "")
                for x in self.lines if x.split(" ")[1:2] == ["event"]]
        return acted, seen


class Bench:
    def __init__(self, target, args, work):
        self.t, self.args, self.work = target, args, Path(work)
        self.hanging = HangingChannel()
        self.results = {}      # fault -> contender -> [run]
        self.failures = 0

    # -- faults ---------------------------------------------------------------------------------

    def inject(self, fault):
        """Inject the fault, return when (monotonic, wall clock); an engine error (a loaded engine sometimes fails to freeze a container)
        is tried again a few times before the run is given up."""
        for attempt in range(3):
            try:
                origin, wall0 = time.monotonic(), time.time()
                self._inject(fault)
                return origin, wall0
            except docker.errors.APIError:
                if attempt == 2:
                    raise
                time.sleep(1)

    def _inject(self, fault):
        t = self.t
        if fault == "crash":
            t.crash(t.service)
        elif fault == "hang":
            t.container(t.service).pause()
        elif fault == "redis_down":
            t.container(t.redis["service"]).stop(timeout=5)
        elif fault == "postgres_down":
            t.container(t.database["service"]).stop(timeout=10)
        elif fault == "removed":
            t.container(t.service).remove(force=True)

    def engine_shows(self, fault):
        """The engine reports the fault (what an operator or the playbook would see when it starts)."""
        t = self.t
        if fault == "removed":
            return t.container(t.service) is None
        name = {"redis_down": t.redis["service"], "postgres_down": t.database["service"]}.get(fault, t.service)
        c = t.container(name)
        return c is not None and c.status == ("paused" if fault == "hang" else "exited")

    # -- contenders -----------------------------------------------------------------------------

    def floor(self, fault, origin, _wall0, watch):
        t = self.t
        how = {"crash": "start", "hang": "unpause", "redis_down": "start %s" % t.redis["service"],
               "postgres_down": "start %s" % t.database["service"], "removed": "compose up, edge reload"}[fault]
        if fault == "crash":
            t.container(t.service).start()
        elif fault == "hang":
            t.container(t.service).unpause()
        elif fault == "redis_down":
            t.container(t.redis["service"]).start()
        elif fault == "postgres_down":
            t.container(t.database["service"]).start()
        elif fault == "removed":
            t.run_compose("up", "-d", "--no-deps", "--no-build", t.service)
            t.reload_edge()
        # the floor checks what users get with the bench's own poll: it verifies when they are answered
        answered = watch.result(180)
        return {"ok": answered is not None, "verified": answered, "ends": answered, "detail": how}

    def runbook(self, _fault, origin, _wall0, _watch):
        """The runbook's commands as written, rung after rung, with its fixed sleeps; its test is the
        checklist through the edge."""
        t = self.t
        svc, deps = t.service, [t.database["service"], t.redis["service"]]
        rungs = (("restart the service", [["restart", svc]], 10),
                 ("restart the dependencies", [["restart", *deps], "sleep60", ["restart", svc]], 10),
                 ("full rebuild", [["down"], ["up", "-d", "--no-build"]], 90))
        for name, steps, settle in rungs:
            for step in steps:
                if step == "sleep60":
                    time.sleep(60)
                else:
                    t.run_compose(*step)
            time.sleep(settle)
            if t.checklist():
                done = time.monotonic() - origin
                return {"ok": True, "verified": done, "ends": done, "detail": name}
        return {"ok": False, "verified": None, "ends": time.monotonic() - origin, "detail": "not recovered"}

    def ours(self, fault, origin, wall0, _watch, channels=None):
        t = self.t
        incident_dir = tempfile.mkdtemp(prefix="incidents-", dir=self.work)
        extra = {"incident_dir": incident_dir, "verify_watch_window": 0, "incident_channels": channels or [],
                 "incident_purpose": "bench", "recover_breaker_max_runs": 1000}
        env = ansible_env()
        times_file = None
        if self.args.profile:
            times_file = Path(incident_dir) / "task_times.jsonl"
            env.update(ANSIBLE_CALLBACK_PLUGINS=str(ROOT / "bench/callback_plugins"),
                       ANSIBLE_CALLBACKS_ENABLED="sre.incident.timeline,bench_task_times",
                       SRE_BENCH_TASK_TIMES=str(times_file))
        started = time.monotonic() - origin
        proc = subprocess.run([str(VENV_BIN / "ansible-playbook"), "playbooks/p0_recover.yml", "-i", str(t.inventory),
                               "-e", json.dumps(extra)], cwd=ROOT, env=env, capture_output=True, text=True,
                              timeout=900, check=False)
        ends = time.monotonic() - origin
        events = []
        for path in Path(incident_dir).glob("*/events.jsonl"):
            events = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        ticks = [e for e in events if e["type"] == "tick" and (e.get("data") or {}).get("key") == "recovery_verified"]
        fixed = [e["data"]["rung"] for e in events if (e.get("data") or {}).get("result") == "fixed"]
        outcome = ([e["data"].get("outcome") for e in events if e["type"] == "closed"] or ["not closed"])[-1]
        run = {"ok": proc.returncode == 0 and bool(ticks), "started": started, "ends": ends,
               "verified": epoch(ticks[0]["ts"]) - wall0 if ticks else None, "outcome": outcome,
               "detail": (fixed[-1] if fixed else "not recovered") + ("" if outcome == "resolved" else ", closed " + outcome),
               "events": events, "wall0": wall0,
               "task_times": ([json.loads(x) for x in times_file.read_text().splitlines()]
                              if times_file and times_file.exists() else None)}
        if fault == "crash" and t.container(t.service) is not None:
            run["restarted"] = epoch(t.container(t.service).attrs["State"]["StartedAt"]) - wall0
        if not run["ok"]:
            sys.stderr.write((proc.stdout[-3000:] + proc.stderr[-2000:]) + "\n")
        if outcome in ("degraded", "escalated", "failed", "not closed"):
            self.restore_normal()
        return run

    def restore_normal(self):
        """A run that ended in a degraded mode leaves the edge on it: back to normal for the next run."""
        self.t.healthy(check=False)
        proc = subprocess.run([str(VENV_BIN / "ansible-playbook"), "playbooks/restore_normal.yml", "-i",
                               str(self.t.inventory)], cwd=ROOT, env=ansible_env(), capture_output=True, text=True,
                              timeout=600, check=False)
        said = "ok" if proc.returncode == 0 else "FAILED:\n" + proc.stdout[-2000:]
        print("    (the run left a degraded mode: restore_normal.yml %s)" % said, flush=True)

    # -- one run --------------------------------------------------------------------------------

    def run(self, fault, contender, bound=None):
        t = self.t
        t.healthy()
        kept = t.restart_policy(t.service)
        policy = None
        if contender == "restart_policy":
            policy = {"Name": "unless-stopped"}
        elif fault == "crash":
            policy = {"Name": "no"}      # every other contender is measured on its own
        restarter = None
        try:
            if policy is not None:
                t.set_restart_policy(t.service, policy)
            if contender == "restarter":
                restarter = Restarter(t)
            count0 = t.container(t.service).attrs.get("RestartCount", 0)
            origin, wall0 = self.inject(fault)
            watch = EdgeWatch(t, origin)
            watch.start()
            if contender in ALWAYS_ON:
                answered = watch.result(bound or 60)
                c = t.container(t.service)
                run = {"ok": answered is not None, "verified": None, "ends": None}
                if contender == "restart_policy":
                    restarts = (c.attrs.get("RestartCount", 0) - count0) if c is not None else 0
                    run["detail"] = "the engine restarted it %d time(s)" % restarts
                else:
                    acted, seen = restarter.stop()
                    restarter = None
                    run["detail"] = "%s; events seen: %s" % ("; ".join(acted) or "no action", ", ".join(seen) or "none")
                health = (c.attrs["State"].get("Health") or {}).get("Status") if c is not None else None
                if health:
                    run["detail"] += "; engine's health status at the end: %s" % health
                if answered is None:
                    run["detail"] += "; " + cannot(fault, contender, health, run["detail"])
            else:
                if not wait_until(lambda: self.engine_shows(fault), 15):
                    raise RuntimeError("the engine does not show the fault %s" % fault)
                runner = {"floor": self.floor, "runbook": self.runbook, "ours": self.ours,
                          "ours_chat": lambda *a: self.ours(*a, channels=self.hanging.channels())}[contender]
                run = runner(fault, origin, wall0, watch)
                answered = watch.result(30 if run["ok"] else 1)
            run["answered"] = answered
            run["ok"] = run["ok"] and answered is not None
            return run
        finally:
            if restarter is not None:
                restarter.stop()
            if policy is not None and kept is not None and t.container(t.service) is not None:
                t.set_restart_policy(t.service, kept)

    def record(self, fault, contender, rep, run, bounded=False):
        self.results.setdefault(fault, {}).setdefault(contender, []).append(run)
        run["bounded"] = bounded
        if not run["ok"] and not bounded:
            self.failures += 1
        verified = ("verified %5.1f s" % run["verified"]) if run.get("verified") is not None else "verified   n/a"
        ends = ("  run ends %5.1f s" % run["ends"]) if contender.startswith("ours") and run.get("ends") else ""
        answered = ("users answered %5.1f s" % run["answered"]) if run.get("answered") is not None else \
            "users NOT answered%s" % (" within %d s" % self.args.cannot_bound if bounded else "")
        print("  %-14s %-26s rep %d: %s  %s%s  (%s)" % (fault, LABELS[contender], rep + 1, answered, verified, ends,
                                                        run.get("detail")), flush=True)

    def save(self, alert=None):
        """Every run's figures so far into --json (kept when a long run is interrupted)."""
        if self.args.json:
            slim = {f: {c: [{k: v for k, v in r.items() if k not in ("events", "task_times")} for r in runs]
                        for c, runs in row.items()} for f, row in self.results.items()}
            Path(self.args.json).write_text(json.dumps({"stack": self.t.describe(), "results": slim, "alert": alert},
                                                       indent=1))

    def main(self, faults, reps, chat):
        for fault in faults:
            print("\n%s: %s" % (FAULT_LABELS[fault], fault_text(self.t, fault)), flush=True)
            for rep in range(reps):
                order = list(CONTENDERS) + (["ours_chat"] if chat and fault == "crash" else [])
                order = order[rep % len(order):] + order[:rep % len(order)]   # nobody always goes first
                for contender in order:
                    bounded = contender in ALWAYS_ON and fault != "crash"
                    if bounded and rep > 0:
                        continue     # what these cannot do is shown once
                    try:
                        run = self.run(fault, contender, self.args.cannot_bound if bounded else None)
                    except (RuntimeError, OSError, docker.errors.DockerException) as exc:
                        # one broken run (the engine refused to pause, a stack that did not come back)
                        # does not throw away the others: it is reported and counted as a failure
                        run = {"ok": False, "answered": None, "verified": None, "ends": None,
                               "detail": "ERROR: %s" % str(exc).splitlines()[0][:300]}
                    self.record(fault, contender, rep, run, bounded)
                    self.save()
        self.t.healthy()


# -- the report ---------------------------------------------------------------------------------

def values(runs, key):
    return [r[key] for r in runs or [] if r.get(key) is not None and r["ok"]]


def med(runs, key):
    return median(values(runs, key))


def timeline(run):
    """Stages of one p0_recover run from its record, in seconds after the fault."""
    wall0 = run["wall0"]
    lines = ["    %6.2f  ansible-playbook started" % run["started"]]
    # a stage lasts from its start (the detection's: before the record existed) until the next one starts
    marks = [(e["stage"], epoch((e.get("data") or {}).get("done_at") or e["ts"]) - wall0)
             for e in run["events"] if e["type"] == "stage"]
    for (name, start), (_next, end) in zip(marks, marks[1:] + [(None, epoch(run["events"][-1]["ts"]) - wall0)]):
        lines.append("    %6.2f  %-9s %5.2f s" % (start, name, end - start))
    for e in run["events"]:
        if e["type"] == "tick" and (e.get("data") or {}).get("key") in ("recovery_verified", "first_fix"):
            lines.append("    %6.2f  tick %s" % (epoch(e["ts"]) - wall0, e["data"]["key"]))
        elif e["type"] == "event" and e.get("stage") == "recover" and "Rung" in e.get("text", ""):
            lines.append("    %6.2f  %s" % (epoch(e["ts"]) - wall0, e["text"].splitlines()[0]))
    lines.append("    %6.2f  users answered through the edge (the bench's own poll)" % run["answered"])
    lines.append("    %6.2f  ansible-playbook ended" % run["ends"])
    return sorted(lines, key=lambda x: float(x.split()[0]))


def task_table(run, top=15):
    rows = run.get("task_times") or []
    per_role = {}
    for row in rows:
        row["role"] = (row["role"] or "(playbook)").replace("sre.incident.", "")
        row["task"] = row["task"].split(" : ", 1)[-1]
        per_role[row["role"]] = per_role.get(row["role"], 0.0) + row["seconds"]
    out = ["    per role: " + ", ".join("%s %.1f s" % kv for kv in sorted(per_role.items(), key=lambda kv: -kv[1]))]
    for row in sorted(rows, key=lambda r: -r["seconds"])[:top]:
        out.append("    %5.2f s  %-10s %s" % (row["seconds"], row["role"], row["task"][:90]))
    return out


def failed_note(bad, total, bounded):
    what = "not answered within the bound" if bounded else "failed: not answered, not verified or an error"
    return "  [%d of %d %s]" % (bad, total, what)


def report(bench, faults, alert, load0):
    t, res = bench.t, bench.results
    print("\n" + "=" * 100)
    print("Stack: %s" % t.describe())
    print("Load average at the start %s, at the end %s (2 cores: figures grow with the load)"
          % (load0, " ".join("%.1f" % x for x in os.getloadavg())))
    print("\nSeconds from the fault (min / median / max): users answered through the edge | verified | run ends")
    for fault in faults:
        print("  %s" % FAULT_LABELS[fault])
        for contender in CONTENDERS + ("ours_chat",):
            runs = res.get(fault, {}).get(contender)
            if not runs:
                continue
            bad = len([r for r in runs if not r["ok"]])
            print("    %-27s %-19s | %-19s | %-19s %s%s" % (
                LABELS[contender], fmt_stats(values(runs, "answered")), fmt_stats(values(runs, "verified")),
                fmt_stats(values(runs, "ends")) if contender.startswith("ours") else "",
                "; ".join(sorted({r["detail"] for r in runs})),
                failed_note(bad, len(runs), runs[0]["bounded"]) if bad else ""))

    # the compact table for the README
    md = ["| fault | " + " | ".join(LABELS[c] for c in CONTENDERS) + " | ours/floor | ours/runbook |",
          "|---|" + "---|" * (len(CONTENDERS) + 2)]
    for fault in faults:
        row = res.get(fault, {})
        cells = []
        for c in CONTENDERS:
            runs = row.get(c)
            if not runs:
                cells.append("-")
                continue
            a, v = values(runs, "answered"), values(runs, "verified")
            if c in ALWAYS_ON:
                cells.append(("%.1f / -" % median(a)) if a else
                             ("not answered in %d s" % bench.args.cannot_bound if runs[0]["bounded"] else "not answered"))
            elif c == "ours":
                cells.append("%s / %s (ends %s)" % (fmt(median(a)), fmt(median(v)), fmt(med(runs, "ends"))))
            else:
                cells.append("%s / %s" % (fmt(median(a)), fmt(median(v))))
        o, f, b = row.get("ours"), row.get("floor"), row.get("runbook")
        r_floor = "%s / %s" % (fmt(ratio(med(o, "answered"), med(f, "answered")), 2),
                               fmt(ratio(med(o, "verified"), med(f, "verified")), 2))
        r_book = "%s / %s" % (fmt(ratio(med(o, "answered"), med(b, "answered")), 2),
                              fmt(ratio(med(o, "verified"), med(b, "verified")), 2))
        md.append("| %s | %s | %s | %s |" % (FAULT_LABELS[fault], " | ".join(cells), r_floor, r_book))

    chat = res.get("crash", {})
    plain, hung = chat.get("ours"), chat.get("ours_chat")
    if plain and hung:
        print("\nCrash with a chat channel that hangs (accepts, never answers), p0_recover.yml, min / median / max:")
        for key, name in (("answered", "users answered"), ("verified", "verified"), ("restarted", "rung 1's restart"),
                          ("ends", "run ends")):
            print("  %-16s plain %-19s chat hangs %-19s ratio %s" % (
                name, fmt_stats(values(plain, key)), fmt_stats(values(hung, key)),
                fmt(ratio(med(hung, key), med(plain, key)), 2)))
        cells = (fmt(med(hung, "answered")), fmt(med(hung, "verified")), fmt(med(hung, "ends")),
                 fmt(ratio(med(hung, "answered"), med(plain, "answered")), 2),
                 fmt(ratio(med(hung, "verified"), med(plain, "verified")), 2))
        md.append("| crash, a chat channel that hangs | - | - | - | - | %s / %s (ends %s); ratio to the plain crash %s / %s "
                  "| - | - |" % cells)
    if alert:
        print("\nA crash answered by the real monitoring chain (one run, timings: %s), seconds after the fault:"
              % ", ".join("%s %s" % kv for kv in alert["timings"].items() if kv[0] in
                          ("scrape_interval", "evaluation_interval", "down_for", "group_wait")))
        for key, name in (("alert_starts_at", "the alert's startsAt (Alertmanager)"),
                          ("alert_seen", "the bench sees it firing in Alertmanager"),
                          ("playbook_started", "p0_recover.yml started by the rulebook (detect)"),
                          ("answered", "users answered through the edge"),
                          ("verified", "verified (the record's tick)")):
            print("  %6s s  %s" % (fmt(alert.get(key)), name))
        print("  runs started by the alert: %s, outcome: %s" % (alert.get("runs"), alert.get("outcome")))
        md.append("| crash, started by the alert (Prometheus, Alertmanager, rulebook; %s timings; one run) | - | - | - | - "
                  "| %s / %s (alert %s, run started %s) | - | - |" % (
                      alert["label"], fmt(alert.get("answered")), fmt(alert.get("verified")),
                      fmt(alert.get("alert_starts_at")), fmt(alert.get("playbook_started"))))

    crash_ours = [r for r in chat.get("ours") or [] if r["ok"]]
    if crash_ours:
        print("\nWhere the time of one p0_recover crash run goes (the record's timeline, seconds after the fault):")
        print("\n".join(timeline(crash_ours[0])))
        if crash_ours[0].get("task_times"):
            print("  its slowest tasks (wall time to the next task):")
            print("\n".join(task_table(crash_ours[0])))

    print("\nTargets (issue 19; medians):")
    if crash_ours:
        from_start = median([r["verified"] - r["started"] for r in crash_ours])
        checks = [("crash: verified <= 4 s after the playbook starts", from_start, 4.0),
                  ("crash: users answered <= 2.5 s after the fault", med(crash_ours, "answered"), 2.5),
                  ("crash: ours/floor (verified) <= 8",
                   ratio(med(crash_ours, "verified"), med(chat.get("floor"), "verified")), 8.0)]
    else:
        checks = []
    for fault in faults:
        if fault != "crash":
            row = res.get(fault, {})
            checks.append(("%s: ours/runbook (verified) <= 0.5" % FAULT_LABELS[fault],
                           ratio(med(row.get("ours"), "verified"), med(row.get("runbook"), "verified")), 0.5))
    if plain and hung:
        checks.append(("crash, chat hangs / plain (verified) <= 1.1",
                       ratio(med(hung, "verified"), med(plain, "verified")), 1.1))
    for name, value, limit in checks:
        verdict = "n/a" if value is None else ("met" if value <= limit else "MISSED by %.0f %%" % (100 * (value / limit - 1)))
        print("  %-52s %8s  %s" % (name, fmt(value, 2), verdict))
    if crash_ours and chat.get("restart_policy"):
        print("  (crash, users answered: ours/restart policy %s, ours/restarter %s)" % (
            fmt(ratio(med(crash_ours, "answered"), med(chat.get("restart_policy"), "answered")), 2),
            fmt(ratio(med(crash_ours, "answered"), med(chat.get("restarter"), "answered")), 2)))
    print("  diagnose.yml ours/script <= 0.5: printed by bench/bench_diagnose.py")

    reps = max([len(runs) for row in res.values() for runs in row.values()] or [0])
    print("\nMarkdown for the README:\n")
    print("`%s`, %s UTC, %d repetition(s), %s; load average %s at the start, %s at the end. Each cell: "
          "seconds from the fault to users answered through the edge / to verified by the contender itself, medians; "
          "\"-\" after the slash: it verifies nothing. Ratios: users answered / verified.\n" % (
              " ".join(["bench/bench_recover.py"] + sys.argv[1:]), time.strftime("%Y-%m-%d %H:%M", time.gmtime()), reps,
              t.describe(), load0,
              " ".join("%.1f" % x for x in os.getloadavg())))
    print("\n".join(md))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=3, help="repetitions per fault")
    parser.add_argument("--faults", default=",".join(FAULTS))
    parser.add_argument("--quick", action="store_true",
                        help="one repetition of the crash for each contender; no chat variant, no alert chain")
    parser.add_argument("--stack", choices=("recsys", "shop"), default=os.environ.get("SRE_BENCH_STACK", "recsys"),
                        help="which example stack (default: the reference stack, or SRE_BENCH_STACK)")
    parser.add_argument("--inventory", help="the stack's inventory (default: SRE_TEST_INVENTORY / "
                                            "SRE_TEST_SHOP_INVENTORY, else inventories/local / inventories/local-shop)")
    parser.add_argument("--alert", choices=("short", "example", "off"), default="short",
                        help="the alert chain's timings (short: the integration test's; example: examples/monitoring's)")
    parser.add_argument("--alert-only", action="store_true", help="only the alert chain")
    parser.add_argument("--cannot-bound", type=int, default=30,
                        help="seconds the restart policy and the restarter get on the faults other than the crash")
    parser.add_argument("--profile", action="store_true", help="record every task's wall time in the p0_recover runs")
    parser.add_argument("--json", help="write every run's figures to this file")
    args = parser.parse_args()
    faults = ["crash"] if args.quick else [f for f in args.faults.split(",") if f]
    unknown = sorted(set(faults) - set(FAULTS))
    if unknown:
        parser.error("unknown fault(s) %s (known: %s)" % (", ".join(unknown), ", ".join(FAULTS)))
    reps = 1 if args.quick else args.n
    target = Target(args.stack, args.inventory)
    load0 = " ".join("%.1f" % x for x in os.getloadavg())
    print("machine: %d cores, %s %s; stack %s; %d repetition(s)" % (
        os.cpu_count(), os.uname().sysname, os.uname().release, target.describe(), reps), flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-recover-") as work:
        bench = Bench(target, args, work)
        if not args.alert_only:
            bench.main(faults, reps, chat=not args.quick)
        alert = None
        if args.alert_only or (args.alert != "off" and not args.quick):
            try:
                alert = run_alert(bench, args, work)
            except Exception as exc:  # pylint: disable=broad-exception-caught  # the faults' figures still count
                bench.failures += 1
                print("  the alert chain could not run: %s" % exc, flush=True)
        report(bench, [] if args.alert_only else faults, alert, load0)
        bench.save(alert)
    return 1 if bench.failures else 0


def run_alert(bench, args, work):
    from alert_chain import AlertChain   # imported here: only this part needs the monitoring example

    t = bench.t
    t.healthy()
    print("\nA crash answered by the real monitoring chain (%s timings): starting Prometheus, Alertmanager, the "
          "blackbox exporter and ansible-rulebook ..." % ("the example's" if args.alert == "example" else "short"),
          flush=True)
    kept = t.restart_policy(t.service)
    t.set_restart_policy(t.service, {"Name": "no"})
    chain = AlertChain(t, Path(work) / "alert", "example" if args.alert == "example" else "short",
                       int(os.environ.get("SRE_BENCH_PROMETHEUS_PORT", "19190")),
                       int(os.environ.get("SRE_BENCH_ALERTMANAGER_PORT", "19193")),
                       int(os.environ.get("SRE_BENCH_BLACKBOX_PORT", "19195")),
                       int(os.environ.get("SRE_BENCH_EDA_PORT", "5011")))
    (Path(work) / "alert").mkdir()

    def inject():
        origin = time.monotonic()
        t.crash(t.service)
        return origin

    try:
        got = chain.run(inject)
    finally:
        if t.container(t.service) is not None:
            t.set_restart_policy(t.service, kept)
    got["label"] = "example" if args.alert == "example" else "short"
    print("  users answered %s s after the crash (alert's startsAt %s s, p0_recover started %s s, verified %s s; %s)"
          % (fmt(got["answered"]), fmt(got["alert_starts_at"]), fmt(got["playbook_started"]), fmt(got["verified"]),
             got["outcome"]), flush=True)
    if got["answered"] is None or got["outcome"] != "resolved":
        bench.failures += 1
        print(chain.log.read_text()[-3000:])
    t.healthy()
    return got


if __name__ == "__main__":
    sys.exit(main())
