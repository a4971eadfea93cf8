#!/usr/bin/env python
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Side by side: the runbook's diagnose_p0.sh against playbooks/diagnose.yml, on the same stack.

Runs the script (bench/diagnose_p0.sh, given the stack's names) and ``ansible-playbook
playbooks/diagnose.yml -i <the stack's inventory>`` alternately N times, prints min / median / max
wall time of each, the ratio ours / script (medians; target <= 0.5, issue 19), and how many of the
runbook's 7 items each produced, checked in what they wrote (the script's logs/ and stdout, our
bundle's facts), not assumed.

    .venv/bin/python bench/bench_diagnose.py                 # 5 rounds, the reference stack
    .venv/bin/python bench/bench_diagnose.py --quick         # 1 round
    .venv/bin/python bench/bench_diagnose.py --stack shop    # the second example stack
    .venv/bin/python bench/bench_diagnose.py -n 10 --json

The stack's inventory: --inventory, else SRE_TEST_INVENTORY (SRE_TEST_SHOP_INVENTORY with --stack
shop), else inventories/local (inventories/local-shop); bench/benchlib.py reads it.

Not a test: it measures, it does not judge (exit status 0 unless a run fails).
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchlib import ROOT, VENV_BIN, Target, ansible_env

ITEMS = ("service status", "recent logs", "database status", "redis status", "system resources", "disk space",
         "recent errors")


def _read(path):
    try:
        return Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None


def _section(stdout, number):
    start = stdout.find("[%d] " % number)
    if start < 0:
        return ""
    end = stdout.find("[%d] " % (number + 1), start)
    return stdout[start:end if end > 0 else None]


def script_items(target, workdir, stdout):
    """Which of the 7 items the script produced, from its logs/ files and its stdout."""
    logs = Path(workdir) / "logs"
    status = _section(stdout, 1)
    db = _read(logs / "db_status.log") or ""
    redis = _read(logs / "redis_status.log") or ""
    stats = _read(logs / "docker_stats.log") or ""
    disk = _read(logs / "disk_space.log") or ""
    return {
        "1": target.project in status and ("Up" in status or "Exit" in status),
        "2": bool((_read(logs / "service.log") or "").strip()),
        "3": target.database["name"] in db and "numbackends" in db,
        "4": "redis_version" in redis and "used_memory" in redis and "connected_clients" in redis,
        "5": "CPU %" in stats and target.project in stats,
        "6": "Filesystem" in disk,
        "7": (logs / "errors.log").exists(),  # grep may find nothing: the item is the (possibly empty) list
    }


def ours_items(target, bundle_root):
    """Which of the 7 items our run produced, from the bundle's facts.json."""
    dirs = sorted(d for d in glob.glob(os.path.join(bundle_root, "*")) if os.path.isdir(d))
    if not dirs:
        return {str(i): False for i in range(1, 8)}
    facts = json.loads(_read(os.path.join(dirs[-1], "facts.json")) or "{}")

    def ok(part):
        return bool((facts.get(part) or {}).get("ok"))

    return {
        "1": ok("status") and bool(facts["status"].get("containers")),
        "2": ok("logs") and bool(facts["logs"].get("lines")),
        "3": ok("database") and (facts["database"].get("stat_database") or {}).get("datname") == target.database["name"],
        "4": ok("redis") and (facts["redis"].get("summary") or {}).get("used_memory") is not None
        and (facts["redis"].get("summary") or {}).get("connected_clients") is not None,
        "5": ok("resources") and any(c.get("cpu_pct") is not None for c in facts["resources"].get("containers") or []),
        "6": ok("disk") and bool(facts["disk"].get("host")),
        "7": ok("errors") and "total" in facts["errors"],
    }


def script_env(target):
    """The runbook's script, told the names of this stack (and nothing else)."""
    return dict(os.environ, BENCH_PROJECT=target.project, BENCH_COMPOSE_FILE=str(target.compose_files[0]),
                BENCH_SERVICE=target.service, BENCH_DB_SERVICE=target.database["service"],
                BENCH_DB_NAME=target.database["name"], BENCH_DB_PORT=str(target.database.get("port", 5432)),
                BENCH_REDIS_SERVICE=target.redis["service"], BENCH_REDIS_PORT=str(target.redis.get("port", 6379)))


def run_script(target, tmp):
    work = tempfile.mkdtemp(prefix="script-", dir=tmp)
    start = time.monotonic()
    proc = subprocess.run(["bash", str(ROOT / "bench" / "diagnose_p0.sh"), work], cwd=ROOT, env=script_env(target),
                          capture_output=True, text=True, timeout=300, check=False)
    elapsed = time.monotonic() - start
    return elapsed, script_items(target, work, proc.stdout), proc.returncode


def run_ours(target, tmp):
    work = tempfile.mkdtemp(prefix="ours-", dir=tmp)
    extra = dict(diagnose_bundle_dir=os.path.join(work, "bundles"), diagnose_snapshot_dir=os.path.join(work, "snapshots"),
                 diagnose_label="bench", incident_dir=os.path.join(work, "incidents"))
    start = time.monotonic()
    proc = subprocess.run([str(VENV_BIN / "ansible-playbook"), "playbooks/diagnose.yml", "-i", str(target.inventory),
                           "-e", json.dumps(extra)], cwd=ROOT, env=ansible_env(), capture_output=True, text=True,
                          timeout=300, check=False)
    elapsed = time.monotonic() - start
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout[-3000:] + proc.stderr[-3000:])
    return elapsed, ours_items(target, extra["diagnose_bundle_dir"]), proc.returncode


def describe(times):
    return dict(min=round(min(times), 3), median=round(statistics.median(times), 3), max=round(max(times), 3))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--rounds", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="one round")
    parser.add_argument("--json", action="store_true", help="print the result as JSON too")
    parser.add_argument("--stack", choices=("recsys", "shop"), default=os.environ.get("SRE_BENCH_STACK", "recsys"),
                        help="which example stack (default: the reference stack, or SRE_BENCH_STACK)")
    parser.add_argument("--inventory", help="the stack's inventory (default: see above)")
    args = parser.parse_args(argv)
    target = Target(args.stack, args.inventory)
    print("stack %s" % target.describe(), flush=True)
    rounds = 1 if args.quick else max(1, args.rounds)
    script_t, ours_t = [], []
    script_produced, ours_produced = [], []
    failures = 0
    with tempfile.TemporaryDirectory(prefix="bench-diagnose-") as tmp:
        for i in range(rounds):
            # alternate which goes first, so neither always runs on a warmer cache
            order = (("script", run_script), ("ours", run_ours)) if i % 2 == 0 else (("ours", run_ours), ("script", run_script))
            for name, func in order:
                elapsed, items, rc = func(target, tmp)
                failures += rc != 0 and name == "ours"
                (script_t if name == "script" else ours_t).append(elapsed)
                (script_produced if name == "script" else ours_produced).append(sum(1 for v in items.values() if v))
                print("round %d %-6s %6.2f s  items %d/7 %s%s" % (
                    i + 1, name, elapsed, sum(1 for v in items.values() if v), "".join("x" if items[k] else "." for k in sorted(items)),
                    "" if rc == 0 else "  (rc %d)" % rc), flush=True)
    s, o = describe(script_t), describe(ours_t)
    ratio = round(o["median"] / s["median"], 3) if s["median"] else None
    print()
    print("%-28s %8s %8s %8s %s" % ("", "min", "median", "max", "items (of the runbook's 7)"))
    print("%-28s %8.2f %8.2f %8.2f %d" % ("diagnose_p0.sh (runbook)", s["min"], s["median"], s["max"], min(script_produced)))
    print("%-28s %8.2f %8.2f %8.2f %d" % ("diagnose.yml (ours)", o["min"], o["median"], o["max"], min(ours_produced)))
    verdict = "n/a" if ratio is None else ("met" if ratio <= 0.5 else "MISSED by %.0f %%" % (100 * (ratio / 0.5 - 1)))
    print("ratio ours/script (medians): %s  (target <= 0.5: %s)" % (ratio, verdict))
    print("\nMarkdown:\n\n| | min | median | max | items (of the runbook's 7) |\n|---|---|---|---|---|")
    print("| diagnose_p0.sh (runbook) | %.2f s | %.2f s | %.2f s | %d |" % (s["min"], s["median"], s["max"], min(script_produced)))
    print("| diagnose.yml (ours) | %.2f s | %.2f s | %.2f s | %d |" % (o["min"], o["median"], o["max"], min(ours_produced)))
    print("| ours/script | | %s | | |" % ratio)
    if args.json:
        print(json.dumps(dict(rounds=rounds, script=s, ours=o, ratio=ratio, script_items=min(script_produced),
                              ours_items=min(ours_produced))))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
