# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the benchmarks share: the stack under measurement, read from its inventory; the runbook's
checklist asked through the edge (what users reach); a watch that polls it from outside; the engine.

Not part of the collection: the benchmarks' own view of a stack, sharing no code with the plugins.
"""
from __future__ import annotations

import concurrent.futures
import datetime
import json
import os
import re
import signal
import statistics
import subprocess
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import docker
import yaml

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = ROOT / ".venv" / "bin"
# The two example stacks: the inventory each runs from unless another is named (a copy made by
# scripts/stack-copy.sh prints SRE_TEST_INVENTORY; the integration tests name the shop's copy
# SRE_TEST_SHOP_INVENTORY). Everything else (project, ports, users, state dir) is read from it.
STACKS = {"recsys": ("SRE_TEST_INVENTORY", "inventories/local"),
          "shop": ("SRE_TEST_SHOP_INVENTORY", "inventories/local-shop")}
# the benchmarks' probes are synthetic traffic (docs/monitoring.md): the access log leaves them out
HEADERS = {"X-User-Id": "synthetic-bench"}


def ansible_env(**more):
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_NOCOLOR="1",
               PATH="%s:%s" % (VENV_BIN, os.environ.get("PATH", "")))
    env.update(more)
    return env


def median(values):
    return statistics.median(values) if values else None


def stats(values):
    return (min(values), statistics.median(values), max(values)) if values else None


class Target:
    """One stack, as its inventory describes it (``group_vars/recsys/stack.yml``)."""

    def __init__(self, stack_id="recsys", inventory=None):
        env_name, default = STACKS[stack_id]
        self.id = stack_id
        self.inventory = Path(inventory or os.environ.get(env_name) or ROOT / default)
        if not self.inventory.is_absolute():
            self.inventory = ROOT / self.inventory
        self.stack = yaml.safe_load((self.inventory / "group_vars/recsys/stack.yml").read_text())["incident_stack"]
        s = self.stack
        self.project = s["name"]
        self.project_dir = self._project_dir(s["project_dir"])
        s["project_dir"] = str(self.project_dir)
        self.compose_files = [self.project_dir / f for f in s.get("compose_files") or ["docker-compose.yml"]]
        self.service = s["service"]
        self.edge = s["edge"]
        self.database = s["database"]
        self.redis = s["redis"]
        self.base_url = s["base_url"].rstrip("/")
        self.edge_url = s["edge_url"].rstrip("/")
        self.users = list(s["sample_users"])
        self.min_items = int(s.get("min_recommendations", 6))
        self.limit = int(s.get("recommendations_limit", 10))
        self.state_dir = Path(s["state_dir"])
        self.client = docker.from_env(timeout=120)

    def _project_dir(self, value):
        if "{{" not in value:
            return Path(value)
        # the embedded inventories say "{{ (inventory_dir ~ '/../../examples/<stack>') | realpath }}"
        match = re.search(r"inventory_dir\s*~\s*'([^']*)'", value)
        if not match:
            raise ValueError("cannot resolve project_dir %r of %s" % (value, self.inventory))
        return Path(os.path.realpath(str(self.inventory) + match.group(1)))

    def describe(self):
        return "%s (project %s, inventory %s, edge %s)" % (self.id, self.project, self.inventory, self.edge_url)

    # -- HTTP, from outside, through the edge ---------------------------------------------------

    def get(self, url, timeout=2.0):
        request = urllib.request.Request(url, headers=HEADERS)
        try:
            with urllib.request.urlopen(request, timeout=timeout) as resp:
                return resp.status, json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as exc:
            return exc.code, None
        except (urllib.error.URLError, OSError, ValueError):
            return 0, None

    def user_url(self, base, user):
        return base + self.stack["recommendations_path"].format(user=user) + "?limit=%d" % self.limit

    def checklist(self, base=None, timeout=2.0, pool=None):
        """The runbook's user-facing checklist: /health 200, every sample user more than 5 items.
        With a thread ``pool`` the users are asked at the same time (the check ends with the slowest)."""
        base = base or self.edge_url
        if self.get(base + self.stack["health_path"], timeout)[0] != 200:
            return False
        urls = [self.user_url(base, user) for user in self.users]
        answers = pool.map(lambda url: self.get(url, timeout), urls) if pool else (self.get(url, timeout) for url in urls)
        return all(status == 200 and isinstance(body, dict) and len(body.get("recommendations") or []) >= self.min_items
                   for status, body in answers)

    # -- the engine -----------------------------------------------------------------------------

    def container(self, service):
        found = self.client.containers.list(all=True, filters={"label": [
            "com.docker.compose.project=%s" % self.project, "com.docker.compose.service=%s" % service]})
        return found[0] if found else None

    def compose(self, *args):
        found = subprocess.run(["sh", "-c", "command -v docker-compose"], capture_output=True, check=False)
        binary = ["docker-compose"] if found.returncode == 0 else ["docker", "compose"]
        files = [a for f in self.compose_files for a in ("-f", str(f))]
        return binary + ["-p", self.project, "--project-directory", str(self.project_dir), *files, *args]

    def run_compose(self, *args, timeout=300):
        return subprocess.run(self.compose(*args), capture_output=True, text=True, timeout=timeout, check=False)

    def reload_edge(self):
        edge = self.container(self.edge)
        if edge is not None and edge.status == "running":
            edge.exec_run(["nginx", "-s", "reload"])

    def restart_policy(self, service):
        c = self.container(service)
        return dict(c.attrs["HostConfig"].get("RestartPolicy") or {"Name": "no"}) if c else None

    def set_restart_policy(self, service, policy):
        c = self.container(service)
        if c is not None and policy is not None:
            name = policy.get("Name") or "no"
            c.update(restart_policy={"Name": name, "MaximumRetryCount": policy.get("MaximumRetryCount") or 0}
                     if name == "on-failure" else {"Name": name})

    def crash(self, service):
        """Kill the service's main process from the host (SIGKILL), as a crash: the engine counts it
        as the container exiting by itself (a restart policy applies), unlike ``docker kill``."""
        c = self.container(service)
        pid = c.attrs["State"]["Pid"]
        os.kill(pid, signal.SIGKILL)
        wait_until(lambda: _dead(pid), 10, 0.005)   # no answer from the old process can reach a probe after this
        return pid

    def healthy(self, timeout=180, check=True):
        """Back to the steady state: every service up and unpaused, users answered through the edge
        (``check=False``: only up and unpaused)."""
        for service in (self.service, self.database["service"], self.redis["service"], self.edge):
            c = self.container(service)
            if c is not None and c.status == "paused":
                c.unpause()
        out = self.run_compose("up", "-d", "--no-build")
        if out.returncode != 0:
            raise RuntimeError("compose up failed: %s" % (out.stdout + out.stderr)[-2000:])
        if not check:
            return
        deadline = time.monotonic() + timeout
        reloaded = False
        while time.monotonic() < deadline:
            if self.checklist():
                return
            # an nginx with a static upstream still sends users to a recreated service's old address
            if not reloaded and self.checklist(base=self.base_url):
                self.reload_edge()
                reloaded = True
            time.sleep(0.2)
        raise RuntimeError("the stack %s did not come back healthy within %d s" % (self.project, timeout))


def _dead(pid):
    try:
        with open("/proc/%d/stat" % pid, encoding="ascii", errors="replace") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except OSError:
        return True


def wait_until(check, timeout, interval=0.05):
    """Poll ``check`` until it returns something true (returned) or ``timeout`` seconds passed."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = check()
        if got:
            return got
        time.sleep(interval)
    return check()


class EdgeWatch(threading.Thread):
    """Polls the checklist through the edge every ``interval`` seconds from ``origin`` on, and keeps
    the time of the first round that passed (users answered again), in seconds after ``origin``.

    A round counts only if it started after ``origin``; its time is when it ended (the last of its
    answers arrived), so a figure never claims an answer before it was given.
    """

    def __init__(self, target, origin, interval=0.05, timeout=2.0):
        super().__init__(daemon=True)
        self.target, self.origin, self.interval, self.timeout = target, origin, interval, timeout
        self.answered = None
        self.rounds = 0
        self._halt = threading.Event()

    def run(self):
        with concurrent.futures.ThreadPoolExecutor(len(self.target.users)) as pool:
            while not self._halt.is_set():
                if self.target.checklist(timeout=self.timeout, pool=pool):
                    self.answered = time.monotonic() - self.origin
                    return
                self.rounds += 1
                self._halt.wait(self.interval)

    def result(self, timeout):
        """Wait at most ``timeout`` s more for the first good round; None if there was none."""
        self.join(timeout)
        self._halt.set()
        return self.answered


def epoch(ts):
    """An RFC 3339 time (Alertmanager's nanoseconds, the record's milliseconds) as epoch seconds."""
    match = re.match(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)$", ts)
    if not match:
        raise ValueError("not an RFC 3339 time: %r" % ts)
    base = datetime.datetime.fromisoformat(match.group(1) + match.group(3).replace("Z", "+00:00"))
    return base.timestamp() + float("0." + (match.group(2) or "0"))


def fmt(value, digits=1):
    return "%.*f" % (digits, value) if value is not None else "n/a"


def fmt_stats(values):
    got = stats(values)
    return "%.1f / %.1f / %.1f" % got if got else "n/a"


def ratio(a, b):
    return a / b if a is not None and b else None
