# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""_fault: refusal, validation, and inject/rollback decisions against a fake target."""
from __future__ import annotations

import pytest

from ansible_collections.sre.incident.plugins.module_utils import _fault

STACK = {"name": "stg1", "service": "recommendation-service", "database": {"service": "postgres", "name": "recommendation_db",
                                                                           "user": "postgres"}, "redis": {"service": "redis"}}


class FakeTarget:
    def __init__(self):
        self.status_of = {"recommendation-service": "running", "redis": "running", "postgres": "running"}
        self.redis = {}
        self.calls = []

    def status(self, service):
        return {"status": self.status_of[service]}

    def act(self, service, action):
        self.calls.append((action, service))
        self.status_of[service] = {"kill": "exited", "stop": "exited", "pause": "paused", "unpause": "running",
                                   "start": "running"}[action]

    def wait_ready(self, service, timeout):
        return True, {"status": "running"}, 0.1

    def exec(self, service, argv):
        self.calls.append(("exec", service, argv[0]))
        self.argvs = getattr(self, "argvs", []) + [list(argv)]
        if argv[0] == "redis-cli" and argv[1] == "-p":
            argv = argv[:1] + argv[3:]
        if argv[0] == "redis-cli":
            cmd = argv[2]
            if cmd == "GET":
                value = self.redis.get(argv[3])
                return dict(rc=0, stdout='"%s"' % value if value is not None else "(nil)", stderr="")
            if cmd == "SET":
                self.redis[argv[3]] = argv[4]
            if cmd == "DEL":
                self.redis.pop(argv[3], None)
            return dict(rc=0, stdout="(integer) 0", stderr="")
        return dict(rc=0, stdout="", stderr="")


@pytest.mark.parametrize("env", ["production", "Production "])
def test_refuses_production_environment(env):
    with pytest.raises(_fault.Refused, match="production"):
        _fault.refuse_production(env, exists=lambda path: False)


def test_refuses_marker_file():
    with pytest.raises(_fault.Refused, match="/etc/sre-incident/production"):
        _fault.refuse_production("staging", exists=lambda path: True)
    _fault.refuse_production("staging", exists=lambda path: False)


@pytest.mark.parametrize("params, message", [
    (dict(name="nope", stack=STACK), "unknown fault"),
    (dict(name="latency", stack={}), "stack"),
    (dict(name="latency", stack=STACK, delay_ms=0), "delay_ms"),
    (dict(name="disk_fill", stack=STACK, log_dir="relative"), "log_dir"),
    (dict(name="cache_wipe", stack=STACK, checksum_tables=["items; drop"]), "identifier"),
])
def test_bad_input_names_the_value(params, message):
    with pytest.raises(ValueError, match=message):
        _fault.validate(params)


@pytest.mark.parametrize("name, service, injected_status", [
    ("app_crash", "recommendation-service", "exited"), ("app_hang", "recommendation-service", "paused"),
    ("redis_down", "redis", "exited"), ("postgres_down", "postgres", "exited")])
def test_container_faults_inject_and_roll_back_idempotently(name, service, injected_status):
    target = FakeTarget()
    check = _fault.run(dict(name=name, state="injected", stack=STACK), target, check_mode=True)
    assert check["changed"] and check["injected"] and target.calls == []
    first = _fault.run(dict(name=name, state="injected", stack=STACK), target)
    assert first["changed"] and target.status_of[service] == injected_status
    assert not _fault.run(dict(name=name, state="injected", stack=STACK), target)["changed"]
    back = _fault.run(dict(name=name, state="rolled_back", stack=STACK), target)
    assert back["changed"] and not back["injected"] and target.status_of[service] == "running"
    assert not _fault.run(dict(name=name, state="rolled_back", stack=STACK), target)["changed"]


def test_latency_sets_and_deletes_the_key_and_diffs():
    target = FakeTarget()
    result = _fault.run(dict(name="latency", state="injected", stack=STACK, delay_ms=900), target)
    assert target.redis == {"recsys:delay_ms": "900"} and result["actions"] == ["set recsys:delay_ms = 900"]
    assert "not injected" in result["diff"]["before"] and result["diff"]["after"] == "latency: injected\n"
    assert _fault.run(dict(name="latency", state="rolled_back", stack=STACK), target)["changed"]
    assert target.redis == {}


def test_psql_and_redis_cli_use_the_ports_of_incident_stack():
    target = FakeTarget()
    stack = dict(STACK, database=dict(STACK["database"], port=5433), redis={"service": "redis", "port": 6380})
    _fault.run(dict(name="latency", state="injected", stack=stack, delay_ms=900), target)
    assert target.redis == {"recsys:delay_ms": "900"}
    assert all(argv[1:3] == ["-p", "6380"] for argv in target.argvs if argv[0] == "redis-cli")
    s = _fault.validate(dict(name="latency", stack=stack))
    _fault.psql(target, s, "SELECT 1")
    psql = target.argvs[-1]
    assert psql[0] == "psql" and psql[psql.index("-p") + 1] == "5433"


def test_rollback_when_nothing_is_injected_touches_nothing():
    target = FakeTarget()
    result = _fault.run(dict(name="app_crash", state="rolled_back", stack=STACK), target)
    assert not result["changed"] and result["actions"] == [] and target.calls == []


def test_redis_value_parsing_and_checksum_sql():
    assert _fault._redis_value("(nil)") is None
    assert _fault._redis_value('"800"') == "800"
    assert _fault._redis_value("(integer) 3") == 3
    sql = _fault.checksum_sql(["items", "users"])
    assert "FROM items x" in sql and "FROM users x" in sql and "ORDER BY x::text" in sql


def test_holder_names_its_connections():
    s = _fault.validate(dict(name="db_connections_exhausted", stack=STACK))
    argv = _fault.holder_argv(s, 47)
    assert argv[0] == "python3" and _fault.HOLDER_NAME in argv[2] and "range(47)" in argv[2]


class LeakTarget(FakeTarget):
    """Postgres with 50 slots (3 reserved for superusers) and 4 client backends; the leak opens what it is asked."""

    def __init__(self):
        super().__init__()
        self.held = 0
        self.detached = []

    def exec(self, service, argv):
        if argv[0] == "psql":
            query = argv[-1]
            if "current_setting('max_connections')" in query:
                return dict(rc=0, stdout="50 3 4", stderr="")
            if "pg_terminate_backend" in query:
                n, self.held = self.held, 0
                return dict(rc=0, stdout=str(n), stderr="")
            if "application_name" in query:
                return dict(rc=0, stdout=str(self.held), stderr="")
        return super().exec(service, argv)

    def exec_detached(self, service, argv):
        self.detached.append((service, argv))
        self.held = int(argv[2].split("range(")[1].split(")")[0])


def test_connection_leak_runs_in_the_service_container_and_leaves_spare_slots():
    target = LeakTarget()
    result = _fault.run(dict(name="db_connections_exhausted", state="injected", stack=STACK, spare_connections=5), target)
    # 50 slots - 3 for superusers - 5 spare - 4 in use = 38 leaked, from the application's own container
    assert target.detached[0][0] == "recommendation-service" and target.held == 38
    assert result["changed"] and result["injected"] and result["severity"] == "P1"
    assert "42 of max_connections=50 in use, 5 left" in result["actions"][0]
    back = _fault.run(dict(name="db_connections_exhausted", state="rolled_back", stack=STACK), target)
    assert back["changed"] and not back["injected"] and target.held == 0


def test_holder_uses_the_services_own_database_settings():
    s = _fault.validate(dict(name="db_connections_exhausted", stack=STACK))
    code = _fault.holder_argv(s, 3)[2]
    assert "POSTGRES_PASSWORD" in code and "DATABASE_URL" in code and "except psycopg2.Error:\n        break" in code
    compile(code, "holder", "exec")
    with pytest.raises(ValueError, match="spare_connections"):
        _fault.validate(dict(name="db_connections_exhausted", stack=STACK, spare_connections=-1))
