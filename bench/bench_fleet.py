#!/usr/bin/env python
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Fleet scale: playbooks/diagnose.yml over 1, 4 and 8 managed hosts, side by side in one run.

The managed hosts are the staging host containers of scripts/staging.sh (sshd, python3, the
docker SDK; each manages its own copy of the reference stack), reached over SSH like real
machines. This starts FLEET_MAX of them (names fleet1..fleetN, their own inventory, so a drill's
staging hosts are left alone), then for each repetition runs diagnose.yml limited to the first
1, 4 and 8 hosts, one size after the other, and prints min / median / max wall time per size and
the ratio to one host (medians). Target: 8 hosts take at most 3x one host on a 2-core machine.

    .venv/bin/python bench/bench_fleet.py               # 1, 4, 8 hosts, 3 repetitions
    .venv/bin/python bench/bench_fleet.py --quick       # 1 and 2 hosts, 1 repetition (checks it runs)
    .venv/bin/python bench/bench_fleet.py --sizes 1,2,4,8 -n 5 --keep

Not a test: it measures and prints; exit status 0 unless a run fails. The hosts are removed at
the end unless --keep.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = ROOT / ".venv" / "bin"
INVENTORY = Path("/var/lib/sre-incident/fleet-inventory")


def host_specs(count):
    """``name:app_port:edge_port:ssh_port`` of fleet hosts 1..count, for scripts/staging.sh."""
    return " ".join("fleet%d:%d:%d:%d" % (i, 3800 + i, 8800 + i, 2400 + i) for i in range(1, count + 1))


def staging(action, count):
    env = dict(os.environ, STAGING_HOSTS=host_specs(count), STAGING_INVENTORY=str(INVENTORY))
    subprocess.run(["bash", str(ROOT / "scripts" / "staging.sh"), action], cwd=ROOT, env=env, check=True)


def run_diagnose(size, incident_dir):
    limit = ",".join("fleet%d" % i for i in range(1, size + 1))
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), PATH="%s:%s" % (VENV_BIN, os.environ["PATH"]))
    start = time.monotonic()
    proc = subprocess.run(
        [str(VENV_BIN / "ansible-playbook"), "playbooks/diagnose.yml", "-i", str(INVENTORY), "--limit", limit,
         "--forks", str(max(size, 5)), "-e", "incident_dir=%s" % incident_dir, "-e", "diagnose_label=fleet-bench"],
        cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    elapsed = time.monotonic() - start
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout[-3000:] + proc.stderr[-2000:])
    ok_hosts = sum(1 for line in proc.stdout.splitlines()
                   if line.startswith("fleet") and " failed=0 " in line and " unreachable=0 " in line)
    return elapsed, proc.returncode == 0 and ok_hosts == size


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=3, help="repetitions per size")
    parser.add_argument("--sizes", default="1,4,8", help="host counts, comma separated")
    parser.add_argument("--quick", action="store_true", help="1 and 2 hosts, one repetition")
    parser.add_argument("--keep", action="store_true", help="leave the fleet hosts running")
    args = parser.parse_args()
    sizes = [1, 2] if args.quick else sorted({int(s) for s in args.sizes.split(",") if s})
    reps = 1 if args.quick else args.n
    print("machine: %d cores, %s %s; sizes %s, %d repetition(s)"
          % (os.cpu_count(), os.uname().sysname, os.uname().release, sizes, reps), flush=True)
    started = time.monotonic()
    staging("up", max(sizes))
    print("%d fleet hosts up in %.1f s" % (max(sizes), time.monotonic() - started), flush=True)
    times = {size: [] for size in sizes}
    failures = 0
    try:
        with tempfile.TemporaryDirectory(prefix="bench-fleet-") as incident_dir:
            run_diagnose(1, incident_dir)   # warm-up: first SSH connections, file caches
            for rep in range(reps):
                for size in sizes:
                    elapsed, ok = run_diagnose(size, incident_dir)
                    if not ok:
                        failures += 1
                        print("  %d host(s) rep %d: FAILED after %.1f s" % (size, rep + 1, elapsed), flush=True)
                        continue
                    times[size].append(elapsed)
                    print("  %d host(s) rep %d: %6.1f s" % (size, rep + 1, elapsed), flush=True)
    finally:
        if not args.keep:
            staging("down", max(sizes))
    print("\ndiagnose.yml over N managed hosts (seconds: min / median / max)")
    print("%6s %22s %12s" % ("hosts", "time", "ratio to 1"))
    base = statistics.median(times[sizes[0]]) if times[sizes[0]] else None
    for size in sizes:
        if not times[size]:
            print("%6d %22s %12s" % (size, "n/a", "n/a"))
            continue
        med = statistics.median(times[size])
        cells = "%5.1f/%5.1f/%5.1f" % (min(times[size]), med, max(times[size]))
        print("%6d %22s %12s" % (size, cells, "%.2f" % (med / base) if base else "n/a"))
    if not args.quick and 8 in times and times[8] and base:
        ratio = statistics.median(times[8]) / base
        print("target: 8 hosts <= 3x one host: %s (%.2f)" % ("met" if ratio <= 3.0 else "MISSED", ratio))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
