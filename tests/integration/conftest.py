# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Integration tests: the real reference stack on the real Docker engine.

Every test starts from a healthy stack (the ``stack`` fixture puts it back after each test),
breaks it for real, runs the real playbook, and reads the real state afterwards.
"""
from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import docker
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = ROOT / ".venv" / "bin"
# Which copy of the reference stack the tests drive (default: inventories/local, project
# recsys). Another copy can be tested side by side by pointing these at it.
PROJECT = os.environ.get("SRE_TEST_PROJECT", "recsys")
INVENTORY = os.environ.get("SRE_TEST_INVENTORY", "inventories/local")
STACK_DIR = Path(os.environ.get("SRE_TEST_STACK_DIR", str(ROOT / "examples/recommendation-stack")))
SERVICE = "recommendation-service"
BASE_URL = os.environ.get("SRE_TEST_BASE_URL", "http://127.0.0.1:3000")
EDGE_URL = os.environ.get("SRE_TEST_EDGE_URL", "http://127.0.0.1:8080")
SAMPLE_USERS = [f"user-{i}" for i in range(1, 6)]
STATE_DIR = Path(os.environ.get("SRE_TEST_STATE_DIR", "/var/lib/sre-incident/recsys"))


def local_stack():
    """incident_stack of inventories/local with its template resolved (for -e overrides)."""
    path = ROOT / INVENTORY / "group_vars/recsys/stack.yml"
    stack = yaml.safe_load(path.read_text())["incident_stack"]
    stack["project_dir"] = str(STACK_DIR)
    return stack


def run_playbook(playbook, *args, extra_vars=None, check=False, inventory=INVENTORY,
                 timeout=600, env=None, prefix=()):
    """``prefix``: argv before ansible-playbook, e.g. ("nice", "-n", "10")."""
    cmd = [*prefix, str(VENV_BIN / "ansible-playbook"), f"playbooks/{playbook}", "-i", inventory]
    if check:
        cmd.append("--check")
    if extra_vars:
        cmd += ["-e", json.dumps(extra_vars)]
    cmd += list(args)
    full_env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_NOCOLOR="1",
                    ANSIBLE_FORCE_COLOR="0", PATH=f"{VENV_BIN}:{os.environ.get('PATH', '')}")
    full_env.update(env or {})
    proc = subprocess.run(cmd, cwd=ROOT, env=full_env, capture_output=True, text=True,
                          timeout=timeout, check=False)
    proc.output = proc.stdout + proc.stderr
    return proc


def http_get(path, base=BASE_URL, timeout=3):
    """(status, parsed JSON or None); status 0 when nothing answers.

    The test's own requests say they are synthetic (X-User-Id), so that through the edge they are
    not counted as real users' traffic (sre.incident.traffic, docs/monitoring.md).
    """
    request = urllib.request.Request(base + path, headers={"X-User-Id": "synthetic-test"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            body = resp.read()
            status = resp.status
    except urllib.error.HTTPError as exc:
        body, status = exc.read(), exc.code
    except (urllib.error.URLError, OSError):
        return 0, None
    try:
        return status, json.loads(body)
    except ValueError:
        return status, None


def read_record(incident_dir):
    """The events of the only incident under ``incident_dir``, read straight from disk."""
    dirs = [d for d in Path(incident_dir).iterdir() if d.is_dir()]
    assert len(dirs) == 1, f"expected one incident in {incident_dir}, found {dirs}"
    lines = (dirs[0] / "events.jsonl").read_text().splitlines()
    return dirs[0].name, [json.loads(line) for line in lines]


def wait_for(check, timeout=60, interval=0.25):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)


class Stack:
    """Reads and breaks the real stack through the Docker engine."""

    def __init__(self):
        self.client = docker.from_env(timeout=60)

    def containers(self, service=None):
        labels = [f"com.docker.compose.project={PROJECT}"]
        if service:
            labels.append(f"com.docker.compose.service={service}")
        return self.client.containers.list(all=True, filters={"label": labels})

    def container(self, service=SERVICE):
        found = self.containers(service)
        return found[0] if found else None

    def state(self, service=SERVICE):
        c = self.container(service)
        if c is None:
            return None
        c.reload()
        return c.attrs["State"]

    def started_at(self):
        return {c.name: c.attrs["State"]["StartedAt"] for c in self.containers()}

    def service_answers(self):
        status, _body = http_get("/health")
        if status != 200:
            return False
        for user in SAMPLE_USERS:
            status, body = http_get(f"/api/recommendations/{user}?limit=10")
            if status != 200 or not body or len(body.get("recommendations", [])) <= 5:
                return False
        return True

    def healthy(self):
        cs = self.containers()
        wanted = [c for c in cs if c.labels.get("com.docker.compose.service") != f"{SERVICE}-standby"]
        return bool(wanted) and all(
            c.attrs["State"].get("Health", {}).get("Status") == "healthy" for c in wanted)

    def exec(self, service, argv):
        """Run a command in a service's container; (exit code, output)."""
        code, out = self.container(service).exec_run(argv)
        return code, out.decode("utf-8", "replace")

    def sql(self, query):
        code, out = self.exec("postgres", ["psql", "-U", "postgres", "-d", "recommendation_db", "-tAc", query])
        assert code == 0, out
        return out.strip()

    def redis(self, *args):
        code, out = self.exec("redis", ["redis-cli", *args])
        assert code == 0, out
        return out.strip()

    def reset_responder_state(self):
        """Each test is its own incident: no lease or circuit-breaker history left from another."""
        for name in ("lease.json", "ladder_runs.jsonl"):
            (STATE_DIR / name).unlink(missing_ok=True)

    def restore(self):
        """Put the stack back to healthy, whatever a test did to it."""
        for c in self.containers():
            if c.status == "paused":
                c.unpause()
            if c.labels.get("com.docker.compose.service") == f"{SERVICE}-standby":
                c.remove(force=True)   # degraded option A: the standby is off in normal service
        subprocess.run(["bash", str(ROOT / "scripts/stack.sh"), "up"], check=True,
                       env=dict(os.environ, RECSYS_PROJECT=PROJECT, RECSYS_STACK_DIR=str(STACK_DIR)),
                       capture_output=True, text=True, timeout=300)
        edge = self.container("edge")
        if edge is not None and edge.status == "running":
            edge.exec_run(["edge-mode", "normal"])   # degraded options A and D switch the edge
        assert wait_for(self.service_answers, timeout=60), "stack did not come back"


@pytest.fixture(scope="session")
def stack_session():
    s = Stack()
    s.restore()
    return s


@pytest.fixture
def stack(stack_session):
    """A healthy stack for the test; put back afterwards."""
    if not (stack_session.healthy() and stack_session.service_answers()):
        stack_session.restore()
    stack_session.reset_responder_state()
    yield stack_session
    if not (stack_session.healthy() and stack_session.service_answers()):
        stack_session.restore()


# Tests with stacks of their own (not the reference stack): with pytest-xdist they run beside the rest.
OWN_STACKS = ("tests/integration/test_drills.py", "tests/integration/test_monitoring.py")


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """With pytest-xdist (``make test`` runs ``-n 2``): the tests that share the reference stack stay
    together on one worker, in order; a module with stacks of its own (the drills' staging hosts)
    runs beside them on another; the unit tests are spread. (``--dist loadgroup`` would do this
    with markers, but pytest-xdist 3.8 cannot rename node ids under pytest 9.)"""
    from xdist.scheduler import LoadScopeScheduling  # pylint: disable=import-outside-toplevel

    class StackScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid):
            path = nodeid.split("::", 1)[0]
            if path in OWN_STACKS:
                return path
            return "reference_stack" if path.startswith("tests/integration/") else nodeid

    return StackScheduling(config, log)
