# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A crash answered by the real monitoring chain, for bench/bench_recover.py: the blackbox exporter
probes the stack through its edge, Prometheus fires SreServiceDown, Alertmanager posts it to
ansible-rulebook (extensions/eda/rulebooks/alertmanager.yml), whose one run of p0_recover.yml
brings the service back. Measured from the crash to users answered through the edge.

The daemons are the example's (scripts/monitoring.sh, examples/monitoring) on the bench's own
loopback ports and directory; the rulebook listens on its own port. Timings: ``short`` as
tests/integration/test_monitoring.py runs them (a scrape and an evaluation every second,
``for: 2s``, ``group_wait`` 1 s), or ``example``: the example's real values from
examples/monitoring/targets.yml (a scrape every 15 s, ``for: 1m``, ``group_wait`` 30 s).
"""
from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import yaml

from benchlib import ROOT, VENV_BIN, EdgeWatch, ansible_env, epoch as _epoch, wait_until

RULEBOOK = ROOT / "extensions/eda/rulebooks/alertmanager.yml"
SHORT = {"scrape_interval": "1s", "evaluation_interval": "1s", "probe_timeout": "1s", "down_for": "2s",
         "latency_for": "5m", "users_failing_for": "5m", "error_rate_for": "5m",
         "group_wait": "1s", "group_interval": "2s", "repeat_interval": "1h"}


def _json(url, timeout=5):
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return json.loads(resp.read())
    except (urllib.error.URLError, OSError, ValueError):
        return None


def _listening(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def _hostport(url):
    return urllib.parse.urlsplit(url).netloc


class AlertChain:
    def __init__(self, target, work, timings="short", prometheus_port=19190, alertmanager_port=19193,
                 blackbox_port=19195, eda_port=5011):
        self.target, self.work, self.timings = target, Path(work), timings
        self.prom, self.am, self.bb, self.eda = prometheus_port, alertmanager_port, blackbox_port, eda_port
        self.incident_dir = self.work / "incidents"
        self.log = self.work / "rulebook.log"
        self.rulebook = None

    # -- set up ---------------------------------------------------------------------------------

    def _targets(self):
        example = yaml.safe_load((ROOT / "examples/monitoring/targets.yml").read_text())
        entry = next(s for s in example["stacks"] if s["name"] == self.target.id)
        entry.update(name=self.target.project, edge=_hostport(self.target.edge_url))
        entry.pop("eda_url", None)
        if entry.get("metrics"):
            entry["metrics"] = _hostport(self.target.base_url)
        example["stacks"] = [entry]
        example["eda_url"] = "http://127.0.0.1:%d/alerts" % self.eda
        if self.timings == "short":
            example["timings"] = SHORT
        path = self.work / "targets.yml"
        path.write_text(yaml.safe_dump(example, sort_keys=False))
        return path, example["timings"]

    def _inventory(self):
        """ansible-rulebook runs the playbook from a throwaway copy of the inventory: a copy with the
        stack's project_dir made absolute, and the bench's own purpose (its runs never count against
        real incidents' circuit breaker) and no watch after the recovery."""
        inv = self.work / "inventory"
        shutil.copytree(self.target.inventory, inv)
        group = inv / "group_vars/recsys"
        (group / "stack.yml").write_text(yaml.safe_dump({"incident_stack": self.target.stack}, sort_keys=False))
        (group / "bench.yml").write_text(yaml.safe_dump(
            {"incident_purpose": "bench", "recover_breaker_max_runs": 1000, "verify_watch_window": 0}))
        return inv

    def _monitoring(self, action, targets=None):
        env = dict(ansible_env(), SRE_MON_DIR=str(self.work / "monitoring"), SRE_MON_PROMETHEUS_PORT=str(self.prom),
                   SRE_MON_ALERTMANAGER_PORT=str(self.am), SRE_MON_BLACKBOX_PORT=str(self.bb),
                   SRE_MON_EDA_URL="http://127.0.0.1:%d/alerts" % self.eda)
        if targets:
            env["SRE_MON_TARGETS"] = str(targets)
        out = subprocess.run(["bash", str(ROOT / "scripts/monitoring.sh"), action], cwd=ROOT, env=env,
                             capture_output=True, text=True, timeout=180, check=False)
        if out.returncode != 0:
            raise RuntimeError("monitoring.sh %s: %s" % (action, (out.stdout + out.stderr)[-2000:]))

    def _firing(self):
        got = _json("http://127.0.0.1:%d/api/v2/alerts?%s" % (self.am, urllib.parse.urlencode(
            {"filter": 'alertname="SreServiceDown"', "active": "true", "inhibited": "true"}))) or []
        return [a for a in got if a.get("labels", {}).get("stack") == self.target.project]

    def _probe_ok(self):
        got = _json("http://127.0.0.1:%d/api/v1/query?%s" % (self.prom, urllib.parse.urlencode(
            {"query": 'probe_success{job="sre-health",stack="%s"}' % self.target.project}))) or {}
        return any(r["value"][1] == "1" for r in got.get("data", {}).get("result", []))

    def _events(self):
        found = []
        for path in sorted(self.incident_dir.glob("*/events.jsonl")):
            found += [json.loads(x) for x in path.read_text().splitlines() if x.strip()]
        return found

    def _lease_holder(self):
        try:
            return json.loads((self.target.state_dir / "lease.json").read_text()).get("incident_id")
        except (OSError, ValueError):
            return None

    # -- the run --------------------------------------------------------------------------------

    def run(self, inject):
        """``inject()`` breaks the stack (a crash) and returns the monotonic time of the fault."""
        targets, timings = self._targets()
        inv = self._inventory()
        try:
            self._monitoring("up", targets)   # inside: a daemon that did start is stopped again below
            env = ansible_env(SRE_EDA_PORT=str(self.eda), SRE_EDA_PLAYBOOK="sre.incident.p0_recover",
                              SRE_INCIDENT_DIR=str(self.incident_dir))
            with self.log.open("w") as out:
                self.rulebook = subprocess.Popen(
                    [str(VENV_BIN / "ansible-rulebook"), "--rulebook", str(RULEBOOK), "-i", str(inv),
                     "--env-vars", "SRE_EDA_PORT,SRE_EDA_PLAYBOOK,SRE_INCIDENT_DIR", "-v"],
                    cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
            if not wait_until(lambda: _listening(self.eda) or self.rulebook.poll() is not None, 240, 0.5) \
                    or self.rulebook.poll() is not None:
                raise RuntimeError("ansible-rulebook did not start: %s" % self.log.read_text()[-2000:])
            # steady state: Prometheus sees the stack answering through its edge, nothing fires
            if not wait_until(lambda: self._probe_ok() and not self._firing(), 120, 0.5):
                raise RuntimeError("Prometheus does not see %s healthy" % self.target.project)
            origin = inject()
            wall0 = time.time() - (time.monotonic() - origin)
            watch = EdgeWatch(self.target, origin)
            watch.start()
            budget = 900 if self.timings == "example" else 420
            fired = wait_until(self._firing, budget, 0.2)
            alert = fired[0] if fired else None
            alert_seen = time.monotonic() - origin if fired else None
            answered = watch.result(budget)
            closed = wait_until(lambda: [e for e in self._events() if e["type"] == "closed"], 300, 0.5)
            events = self._events()
            # the run releases the recovery lease after closing the record: let it finish before the
            # rulebook (and its playbook) is stopped
            ids = {e["data"]["id"] for e in events if e["type"] == "opened"}
            wait_until(lambda: self._lease_holder() not in ids, 120, 0.5)
            detect = [(e.get("data") or {}).get("done_at") or e["ts"] for e in events
                      if e["type"] == "stage" and e["stage"] == "detect"]
            verified = [e for e in events if e["type"] == "tick"
                        and (e.get("data") or {}).get("key") == "recovery_verified"]
            outcome = [e["data"].get("outcome") for e in events if e["type"] == "closed"]
            return {
                "timings": timings,
                "answered": answered,
                "alert_starts_at": _epoch(alert["startsAt"]) - wall0 if alert else None,
                "alert_seen": alert_seen,
                "playbook_started": _epoch(detect[0]) - wall0 if detect else None,
                "verified": _epoch(verified[0]["ts"]) - wall0 if verified else None,
                "outcome": outcome[0] if outcome else ("not closed" if not closed else None),
                "runs": len([e for e in events if e["type"] == "opened"]),
            }
        finally:
            if self.rulebook is not None:
                self.rulebook.terminate()
                try:
                    self.rulebook.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    self.rulebook.kill()
                    self.rulebook.wait(timeout=10)
            self._monitoring("down")
