# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Integration tests: the real example stacks on the real Docker engine.

Every test starts from a healthy stack (the ``stack`` fixture - the reference stack - and the
``any_stack`` fixture - each example stack in turn - put it back after each test), breaks it for
real, runs the real playbook, and reads the real state afterwards: what users get through the edge,
container states, database rows. What the tests know of a stack (``StackSpec``) comes from the
stack's own files, never from the collection.
"""
from __future__ import annotations

import hashlib
import json
import re
import os
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import docker
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = ROOT / ".venv" / "bin"


@dataclass
class StackSpec:
    """What the tests know of one example stack, from its own files: never from the collection's code."""

    id: str
    project: str
    inventory: str
    stack_dir: Path
    service: str
    dependencies: tuple
    edge: str
    edge_config: str          # the nginx file in the edge container that the degraded modes rewrite
    edge_source: Path         # the same file in the repository (baked into the edge image)
    base_url: str
    edge_url: str
    users: tuple
    state_dir: Path
    database: dict            # service, user, name, port
    redis: dict               # service, port
    tables: tuple             # checked for data loss (row counts, checksums)
    cache_key: str            # the service's cache key of a user's answer (limit 10), {user} replaced
    db_password_var: str      # the variable of the stack's .env that holds the database password (a secret)
    user_prefix: str          # the seeded users are <user_prefix><user_first> ... (200 or more of them)
    user_first: int
    standby: str | None = None
    optional_services: tuple = ()

    def user(self, n):
        """The id of the seeded user number ``n`` (1 to 200 exist in both stacks)."""
        return "%s%d" % (self.user_prefix, self.user_first - 1 + n)

    def psql(self, sql):
        db = self.database
        return ["psql", "-X", "-p", str(db["port"]), "-U", db["user"], "-d", db["name"], "-tAc", sql]

    def redis_cli(self, *args):
        return ["redis-cli", "-p", str(self.redis["port"]), *args]

    def stack_env(self):
        return dict(STACK=self.id, RECSYS_PROJECT=self.project, RECSYS_STACK_DIR=str(self.stack_dir),
                    RECSYS_OPTIONAL_SERVICES=" ".join(self.optional_services))


# Which copy of each stack the tests drive (default: inventories/local, project recsys, and
# inventories/local-shop, project shop). Another copy can be tested side by side by pointing these at it.
REFERENCE = StackSpec(
    id="recsys",
    project=os.environ.get("SRE_TEST_PROJECT", "recsys"),
    inventory=os.environ.get("SRE_TEST_INVENTORY", "inventories/local"),
    stack_dir=Path(os.environ.get("SRE_TEST_STACK_DIR", str(ROOT / "examples/recommendation-stack"))),
    service="recommendation-service", dependencies=("postgres", "redis"),
    edge="edge", edge_config="/etc/nginx/nginx.conf",
    edge_source=ROOT / "examples/recommendation-stack/edge/nginx.conf",
    base_url=os.environ.get("SRE_TEST_BASE_URL", "http://127.0.0.1:3000"),
    edge_url=os.environ.get("SRE_TEST_EDGE_URL", "http://127.0.0.1:8080"),
    users=tuple(f"user-{i}" for i in range(1, 6)), user_prefix="user-", user_first=1,
    state_dir=Path(os.environ.get("SRE_TEST_STATE_DIR", "/var/lib/sre-incident/recsys")),
    database=dict(service="postgres", user="postgres", name="recommendation_db", port=5432),
    redis=dict(service="redis", port=6379),
    tables=("items", "users", "interactions", "item_scores"),
    cache_key="recs:{user}:10",
    db_password_var="RECSYS_DB_PASSWORD",
    standby="recommendation-service-standby", optional_services=("recommendation-service-standby",),
)
SHOP = StackSpec(
    id="shop",
    project=os.environ.get("SRE_TEST_SHOP_PROJECT", "shop"),
    inventory=os.environ.get("SRE_TEST_SHOP_INVENTORY", "inventories/local-shop"),
    stack_dir=Path(os.environ.get("SRE_TEST_SHOP_STACK_DIR", str(ROOT / "examples/shop-stack"))),
    service="recs-api", dependencies=("pg", "kv"),
    edge="web", edge_config="/etc/nginx/conf.d/shop.conf",
    edge_source=ROOT / "examples/shop-stack/web/shop.conf",
    base_url=os.environ.get("SRE_TEST_SHOP_BASE_URL", "http://127.0.0.1:3100"),
    edge_url=os.environ.get("SRE_TEST_SHOP_EDGE_URL", "http://127.0.0.1:8180"),
    users=tuple(f"c-{i}" for i in range(1001, 1006)), user_prefix="c-", user_first=1001,
    state_dir=Path(os.environ.get("SRE_TEST_SHOP_STATE_DIR", "/var/lib/sre-incident/shop")),
    database=dict(service="pg", user="postgres", name="shop", port=5433),
    redis=dict(service="kv", port=6380),
    tables=("products", "customers", "product_views", "product_rank"),
    cache_key="shop:recs:{user}:10",
    db_password_var="SHOP_DB_PASSWORD",
)
STACKS = {spec.id: spec for spec in (REFERENCE, SHOP)}

# the reference stack, as the tests that only drive it name it
PROJECT = REFERENCE.project
INVENTORY = REFERENCE.inventory
STACK_DIR = REFERENCE.stack_dir
SERVICE = REFERENCE.service
BASE_URL = REFERENCE.base_url
EDGE_URL = REFERENCE.edge_url
SAMPLE_USERS = list(REFERENCE.users)
STATE_DIR = REFERENCE.state_dir


def local_stack(spec=REFERENCE):
    """incident_stack of a stack's inventory with its template resolved (for -e overrides)."""
    path = ROOT / spec.inventory / "group_vars/recsys/stack.yml"
    stack = yaml.safe_load(path.read_text())["incident_stack"]
    stack["project_dir"] = str(spec.stack_dir)
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
    """Reads and breaks one real stack through the Docker engine (``spec`` says which)."""

    def __init__(self, spec=REFERENCE):
        self.spec = spec
        self.client = docker.from_env(timeout=60)

    @property
    def inventory(self):
        return self.spec.inventory

    def run_playbook(self, playbook, *args, **kwargs):
        kwargs.setdefault("inventory", self.spec.inventory)
        return run_playbook(playbook, *args, **kwargs)

    def containers(self, service=None):
        labels = [f"com.docker.compose.project={self.spec.project}"]
        if service:
            labels.append(f"com.docker.compose.service={service}")
        return self.client.containers.list(all=True, filters={"label": labels})

    def container(self, service=None):
        found = self.containers(service or self.spec.service)
        return found[0] if found else None

    def state(self, service=None):
        c = self.container(service)
        if c is None:
            return None
        c.reload()
        return c.attrs["State"]

    def started_at(self):
        return {c.name: c.attrs["State"]["StartedAt"] for c in self.containers()}

    def answers(self, base=None):
        """/health 200 and more than 5 recommendations for every sample user, asked at ``base`` (default: the edge)."""
        base = base or self.spec.edge_url
        status, _body = http_get("/health", base=base)
        if status != 200:
            return False
        for user in self.spec.users:
            status, body = http_get(f"/api/recommendations/{user}?limit=10", base=base)
            if status != 200 or not body or len(body.get("recommendations", [])) <= 5:
                return False
        return True

    def service_answers(self):
        """What users get through the edge, and the service itself at its own port."""
        return self.answers(self.spec.edge_url) and self.answers(self.spec.base_url)

    def healthy(self):
        """Every service's container healthy, and created from the stack's own compose file alone (a test that
        ran compose with an override of its own leaves containers the next test must not inherit)."""
        cs = self.containers()
        wanted = [c for c in cs if c.labels.get("com.docker.compose.service") not in self.spec.optional_services]
        own = [os.path.basename(f) for c in wanted
               for f in c.labels.get("com.docker.compose.project.config_files", "").split(",")]
        return bool(wanted) and set(own) == {"docker-compose.yml"} and all(
            c.attrs["State"].get("Health", {}).get("Status") == "healthy" for c in wanted)

    def exec(self, service, argv):
        """Run a command in a service's container; (exit code, output)."""
        code, out = self.container(service).exec_run(argv)
        return code, out.decode("utf-8", "replace")

    def sql(self, query):
        code, out = self.exec(self.spec.database["service"], self.spec.psql(query))
        assert code == 0, out
        return out.strip()

    def redis(self, *args):
        code, out = self.exec(self.spec.redis["service"], self.spec.redis_cli(*args))
        assert code == 0, out
        return out.strip()

    def edge_config_sha256(self):
        """SHA-256 of the edge's nginx file as it is inside the running container."""
        code, out = self.exec(self.spec.edge, ["sha256sum", self.spec.edge_config])
        assert code == 0, out
        return out.split()[0]

    def edge_source_sha256(self):
        return hashlib.sha256(self.spec.edge_source.read_bytes()).hexdigest()

    def reset_responder_state(self):
        """Each test is its own incident: no lease, circuit-breaker history or kept edge original left from another."""
        for name in ("lease.json", "ladder_runs.jsonl"):
            (self.spec.state_dir / name).unlink(missing_ok=True)

    def restore(self):
        """Put the stack back to healthy, whatever a test did to it."""
        for c in self.containers():
            if c.status == "paused":
                c.unpause()
            if self.spec.standby and c.labels.get("com.docker.compose.service") == self.spec.standby:
                c.remove(force=True)   # degraded option A: the standby is off in normal service
        for c in self.containers():
            files = {os.path.basename(f) for f in c.labels.get("com.docker.compose.project.config_files", "").split(",")}
            if files != {"docker-compose.yml"}:
                # created with a test's override file: compose would keep it (its own config did not change)
                c.remove(force=True)
        edge = self.container(self.spec.edge)
        if edge is not None and edge.status == "running" and self.edge_config_sha256() != self.edge_source_sha256():
            edge.remove(force=True)    # a degraded mode's configuration left in the edge: a fresh one from the image
        for leftover in (self.spec.state_dir / "edge").glob("*") if (self.spec.state_dir / "edge").is_dir() else ():
            leftover.unlink()
        subprocess.run(["bash", str(ROOT / "scripts/stack.sh"), "up"], check=True,
                       env=dict(os.environ, **self.spec.stack_env()), capture_output=True, text=True, timeout=300)
        if self.spec.edge and wait_for(lambda: self.answers(self.spec.base_url), timeout=60) \
                and not self.answers(self.spec.edge_url):
            self.container(self.spec.edge).restart(timeout=5)   # a stock nginx still sending users to an old address
        assert wait_for(self.service_answers, timeout=60), f"stack {self.spec.project} did not come back"


def _stack_fixture(spec):
    s = Stack(spec)
    s.restore()
    return s


@pytest.fixture(scope="session")
def stack_session():
    return _stack_fixture(REFERENCE)


@pytest.fixture
def stack(stack_session):
    """The reference stack, healthy for the test; put back afterwards."""
    yield from _healthy(stack_session)


def _healthy(s):
    if not (s.healthy() and s.service_answers()):
        s.restore()
    s.reset_responder_state()
    yield s
    if not (s.healthy() and s.service_answers()):
        s.restore()


_SESSIONS = {}


@pytest.fixture(params=sorted(STACKS), ids=sorted(STACKS))
def any_stack(request):
    """Each example stack in turn (GEN-6: one set of tests, both stacks), healthy for the test; put back afterwards."""
    spec = STACKS[request.param]
    if spec.id not in _SESSIONS:
        _SESSIONS[spec.id] = _stack_fixture(spec)
    yield from _healthy(_SESSIONS[spec.id])


# Tests with stacks of their own (not the reference stack): with pytest-xdist they run beside the rest.
OWN_STACKS = ("tests/integration/test_drills.py", "tests/integration/test_monitoring.py")
# Modules that drive the shop stack without the any_stack parameter: in the shop's lane, except their tests
# named for the reference stack (they use the ``stack`` fixture, which repairs the reference stack: on the
# other lane it would start a container that a test there has just killed).
SHOP_MODULES = ("tests/integration/test_onboard.py",)
REFERENCE_MARK = "reference_stack"
# Modules that need no stack at all: spread over both lanes like the unit tests.
FREE_MODULES = ("tests/integration/test_docs.py", "tests/integration/test_execution_environment.py")


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """With pytest-xdist (``make test`` runs ``-n 2``): the tests that share the reference stack stay
    together on one worker, in order; the tests of the second example stack and the drills (their own
    staging hosts) run beside them on another; the unit tests and the tests without a stack are spread.
    (``--dist loadgroup`` would do this with markers, but pytest-xdist 3.8 cannot rename node ids under
    pytest 9.)"""
    from xdist.scheduler import LoadScopeScheduling  # pylint: disable=import-outside-toplevel

    class StackScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid):
            path = nodeid.split("::", 1)[0]
            if not path.startswith("tests/integration/") or path in FREE_MODULES:
                return nodeid
            # one lane for the reference stack, the other for the second example stack and the drills
            # (their own staging hosts): two scopes, so each lane keeps its order and its stack
            if path in SHOP_MODULES and REFERENCE_MARK in nodeid:
                return "reference_stack"
            if path in OWN_STACKS or path in SHOP_MODULES or re.search(r"\[(.*-)?shop(-.*)?\]$", nodeid):
                return "second_lane"
            return "reference_stack"

    return StackScheduling(config, log)


_WORKER_SECONDS = {}


def pytest_runtest_logreport(report):
    """With pytest-xdist, the controller adds up each worker's test time (setup, call and teardown)."""
    node = getattr(report, "node", None)
    if node is not None:
        worker = node.gateway.id
        _WORKER_SECONDS[worker] = _WORKER_SECONDS.get(worker, 0.0) + report.duration


def pytest_terminal_summary(terminalreporter):
    """One line that tells whether the two lanes are balanced (CI's time is the longer one)."""
    if _WORKER_SECONDS:
        busy = ", ".join("%s %.0f s" % item for item in sorted(_WORKER_SECONDS.items()))
        terminalreporter.write_line("time in tests per worker: " + busy)
