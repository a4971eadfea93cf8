#!/usr/bin/env python
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Side by side: the runbook's diagnose_p0.sh against playbooks/diagnose.yml, on the same stack.

Runs the script (bench/diagnose_p0.sh) and ``ansible-playbook playbooks/diagnose.yml -i
inventories/local`` alternately N times, prints min / median / max wall time of each, the ratio
ours / script (medians; target <= 1.0), and how many of the runbook's 7 items each produced,
checked in what they wrote (the script's logs/ and stdout, our bundle's facts), not assumed.

    .venv/bin/python bench/bench_diagnose.py            # 5 rounds
    .venv/bin/python bench/bench_diagnose.py --quick    # 1 round
    .venv/bin/python bench/bench_diagnose.py -n 10 --json

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

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = ROOT / ".venv" / "bin"
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


def script_items(workdir, stdout):
    """Which of the 7 items the script produced, from its logs/ files and its stdout."""
    logs = Path(workdir) / "logs"
    status = _section(stdout, 1)
    db = _read(logs / "db_status.log") or ""
    redis = _read(logs / "redis_status.log") or ""
    stats = _read(logs / "docker_stats.log") or ""
    disk = _read(logs / "disk_space.log") or ""
    return {
        "1": "recsys" in status and ("Up" in status or "Exit" in status),
        "2": bool((_read(logs / "service.log") or "").strip()),
        "3": "recommendation_db" in db and "numbackends" in db,
        "4": "redis_version" in redis and "used_memory" in redis and "connected_clients" in redis,
        "5": "CPU %" in stats and "recsys" in stats,
        "6": "Filesystem" in disk,
        "7": (logs / "errors.log").exists(),  # grep may find nothing: the item is the (possibly empty) list
    }


def ours_items(bundle_root):
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
        "3": ok("database") and (facts["database"].get("stat_database") or {}).get("datname") == "recommendation_db",
        "4": ok("redis") and (facts["redis"].get("summary") or {}).get("used_memory") is not None
        and (facts["redis"].get("summary") or {}).get("connected_clients") is not None,
        "5": ok("resources") and any(c.get("cpu_pct") is not None for c in facts["resources"].get("containers") or []),
        "6": ok("disk") and bool(facts["disk"].get("host")),
        "7": ok("errors") and "total" in facts["errors"],
    }


def run_script(tmp):
    work = tempfile.mkdtemp(prefix="script-", dir=tmp)
    start = time.monotonic()
    proc = subprocess.run(["bash", str(ROOT / "bench" / "diagnose_p0.sh"), work], cwd=ROOT, capture_output=True, text=True,
                          timeout=300, check=False)
    elapsed = time.monotonic() - start
    return elapsed, script_items(work, proc.stdout), proc.returncode


def run_ours(tmp):
    work = tempfile.mkdtemp(prefix="ours-", dir=tmp)
    extra = dict(diagnose_bundle_dir=os.path.join(work, "bundles"), diagnose_snapshot_dir=os.path.join(work, "snapshots"),
                 diagnose_label="bench", incident_dir=os.path.join(work, "incidents"))
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_NOCOLOR="1",
               PATH="%s:%s" % (VENV_BIN, os.environ.get("PATH", "")))
    start = time.monotonic()
    proc = subprocess.run([str(VENV_BIN / "ansible-playbook"), "playbooks/diagnose.yml", "-i", "inventories/local",
                           "-e", json.dumps(extra)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)
    elapsed = time.monotonic() - start
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout[-3000:] + proc.stderr[-3000:])
    return elapsed, ours_items(extra["diagnose_bundle_dir"]), proc.returncode


def describe(times):
    return dict(min=round(min(times), 3), median=round(statistics.median(times), 3), max=round(max(times), 3))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--rounds", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="one round")
    parser.add_argument("--json", action="store_true", help="print the result as JSON too")
    args = parser.parse_args(argv)
    rounds = 1 if args.quick else max(1, args.rounds)
    script_t, ours_t = [], []
    script_produced, ours_produced = [], []
    failures = 0
    with tempfile.TemporaryDirectory(prefix="bench-diagnose-") as tmp:
        for i in range(rounds):
            # alternate which goes first, so neither always runs on a warmer cache
            order = (("script", run_script), ("ours", run_ours)) if i % 2 == 0 else (("ours", run_ours), ("script", run_script))
            for name, func in order:
                elapsed, items, rc = func(tmp)
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
    print("ratio ours/script (medians): %s  (target <= 1.0: %s)" % (ratio, "met" if ratio is not None and ratio <= 1.0 else "NOT met"))
    if args.json:
        print(json.dumps(dict(rounds=rounds, script=s, ours=o, ratio=ratio, script_items=min(script_produced),
                              ours_items=min(ours_produced))))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
