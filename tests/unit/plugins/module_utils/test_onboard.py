# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""_onboard: the guessing, on views captured from the two example stacks (fixtures/onboard/), and the parsers.

view-shop.json: the shop stack (compose v1, healthy, traffic in its logs, cache warm).
view-recsys.json: the reference stack captured while its service was down (HTTP checks refused),
nginx proxying through a ``set`` variable, a standby behind a compose profile (not running).
"""
from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import pytest
import yaml

from ansible_collections.sre.incident.plugins.module_utils import _onboard as o

FIXTURES = Path(__file__).parent / "fixtures" / "onboard"


def view(name):
    return json.loads((FIXTURES / ("view-%s.json" % name)).read_text())


def container(v, service):
    return next(c for c in v["containers"] if c["service"] == service)


# --------------------------------------------------------------------------- whole proposals

def test_shop_everything_inferred():
    p = o.infer(view("shop"))
    s = p.stack
    assert p.unknown == []
    assert s["name"] == "shop" and s["project_dir"] == "/srv/shop-stack" and s["compose_files"] == ["docker-compose.yml"]
    assert (s["service"], s["service_port"], s["edge"], s["edge_config"]) == ("recs-api", 8000, "web", "/etc/nginx/conf.d/shop.conf")
    assert s["dependencies"] == ["pg", "kv"] and "standby" not in s and "option A does not apply" in p.absent["standby"]
    assert (s["base_url"], s["edge_url"]) == ("http://127.0.0.1:3100", "http://127.0.0.1:8180")
    assert s["health_path"] == "/health" and "healthcheck" in p.notes["health_path"]
    assert s["sample_users"] == ["c-1001", "c-1002", "c-1003", "c-1004", "c-1005"]
    assert s["database"] == dict(service="pg", name="shop", user="postgres", port=5433)
    assert "PGDATABASE" in p.notes["database.name"] and "shop_app" in p.notes["database.user"]
    assert s["redis"] == dict(service="kv", port=6380, cache_keys=["shop:recs:*"],
                              cache_value_query="length(recommendations) > `0`")
    assert "command line" in p.notes["redis.port"]
    assert s["downgrade_env"] == "DOWNGRADE_MODE" and s["static_top_file"] == "/app/data/top.json"
    assert s["log_dir"] == "/var/log/recs-api" and "shop_api-logs" in p.notes["log_dir"]
    assert s["state_dir"] == "/var/lib/sre-incident/shop"


def test_reference_stack_with_its_service_down():
    p = o.infer(view("recsys"))
    s = p.stack
    assert (s["service"], s["service_port"], s["edge"]) == ("recommendation-service", 3000, "edge")
    # proxy_pass http://$recsys_upstream, the variable set in the same location
    assert "$recsys_upstream" in p.notes["service"]
    assert s["standby"] == "recommendation-service-standby" and "profile standby" in p.notes["standby"]
    assert s["database"]["name"] == "recommendation_db" and s["database"]["port"] == 5432
    assert s["redis"]["cache_keys"] == ["recs:*"] and s["redis"]["cache_value_query"] == "length(@) > `0`"
    assert s["static_top_file"] == "/srv/recsys/static_top.json" and "STATIC_TOP_FILE" in p.notes["static_top_file"]
    assert s["log_dir"] == "/var/log/recsys"
    # the HTTP checks were refused: said as tried, never as checked
    assert "tried:" in p.notes["health_path"] and "checked" not in p.notes["health_path"]
    assert "tried:" in p.notes["recommendations_path"]


def test_the_written_file_loads_back_to_the_proposal_with_a_comment_above_every_key():
    for name in ("shop", "recsys"):
        p = o.infer(view(name))
        text = o.render(p, name)
        assert yaml.safe_load(text) == {"incident_stack": p.stack}
        lines = text.splitlines()
        section = None
        for i, line in enumerate(lines):
            match = re.match(r"^( +)([a-z_]+):", line)
            if not match:
                continue
            if len(match.group(1)) == 2:
                section = match.group(2)
            if len(match.group(1)) == 2 or section in ("database", "redis"):
                assert lines[i - 1].startswith(match.group(1) + "# "), (name, line)
    assert "# TODO:" not in o.render(o.infer(view("shop")), "shop")


def test_no_timestamp_so_the_same_view_gives_the_same_file():
    assert o.render(o.infer(view("shop")), "shop") == o.render(o.infer(view("shop")), "shop")


def test_without_traffic_the_users_are_placeholders_marked_todo():
    v = view("shop")
    v["users_seen"] = []
    v["checks"].pop("http")
    p = o.infer(v)
    assert p.stack["sample_users"] == o.PLACEHOLDER_USERS
    assert any(u.startswith("sample_users:") for u in p.unknown)
    text = o.render(p, "shop")
    assert "# TODO: sample_users" in text and "not checked: no sample user" in p.notes["recommendations_path"]


def test_compose_v2_depends_on_label_wins_over_unreadable_files():
    v = view("shop")
    v["compose"] = None
    container(v, "recs-api")["depends_on_label"] = ["kv", "pg", "web"]
    p = o.infer(v)
    assert p.stack["dependencies"] == ["kv", "pg"]  # the edge is never a dependency
    assert o.LABEL_DEPENDS_ON in p.notes["dependencies"]


def test_no_depends_on_falls_back_to_the_databases_and_caches_found():
    v = view("shop")
    v["compose"] = None
    p = o.infer(v)
    assert sorted(p.stack["dependencies"]) == ["kv", "pg"] and "PostgreSQL or Redis" in p.notes["dependencies"]


def test_a_dependency_without_a_healthcheck_is_named_in_its_note():
    v = view("shop")
    assert "healthcheck" not in o.infer(v).notes["dependencies"]    # pg and kv both have one
    container(v, "pg")["healthcheck"] = ["NONE"]
    note = o.infer(v).notes["dependencies"]
    assert "pg has no healthcheck" in note and "30 s" in note and "kv" not in note.split(";", 1)[1]
    container(v, "kv")["healthcheck"] = None
    assert "pg and kv have no healthcheck" in o.infer(v).notes["dependencies"]
    rendered = " ".join(line.strip("# ") for line in o.render(o.infer(v), "shop").splitlines())
    assert "pg and kv have no healthcheck" in rendered


def test_without_nginx_the_service_is_the_one_publishing_a_port():
    v = view("shop")
    v["containers"] = [c for c in v["containers"] if c["service"] != "web"]
    p = o.infer(v)
    assert p.stack["service"] == "recs-api" and "edge" not in p.stack and "edge_url" not in p.stack
    assert p.stack["service_port"] == 8000 and "only port" in p.notes["service_port"]


def test_ports_from_the_service_variables_when_nothing_else_says():
    v = view("shop")
    for c in v["containers"]:
        c["listening"] = None
        c["processes"] = None
    container(v, "kv")["argv"] = ["redis-server", "/etc/redis/redis.conf"]
    container(v, "pg")["image"] = "shop/postgres:15"
    container(v, "kv")["image"] = "shop/redis:7"
    p = o.infer(v)
    assert p.stack["database"]["port"] == 5433 and "PGPORT" in p.notes["database.port"]
    assert p.stack["redis"]["port"] == 6380 and "REDIS_URL" in p.notes["redis.port"]


def test_a_failed_psql_check_is_a_todo():
    v = view("shop")
    v["checks"]["database"] = dict(argv=["psql"], ok=False, error="FATAL: role \"postgres\" does not exist")
    p = o.infer(v)
    assert any("database.user" in u and "role" in u for u in p.unknown)


def test_no_cache_keys_is_a_todo_and_the_default_applies():
    v = view("shop")
    v["checks"]["redis_keys"] = dict(scanned=3, families={"sess:*": dict(count=3, type="hash", shape=None)})
    p = o.infer(v)
    assert "cache_keys" not in p.stack["redis"] and "redis.cache_keys" in p.absent
    assert any(u.startswith("redis.cache_keys") for u in p.unknown)


def test_standby_found_by_image_among_running_services():
    v = view("shop")
    twin = copy.deepcopy(container(v, "recs-api"))
    twin.update(service="recs-api-b", name="shop_recs-api-b_1", ports=[])
    v["containers"].append(twin)
    p = o.infer(v)
    assert p.stack["standby"] == "recs-api-b" and p.stack["service"] == "recs-api"


# --------------------------------------------------------------------------- parsers

def test_public_env_keeps_no_secret():
    names, env = o.public_env(["PGPASSWORD=s3cret", "PGUSER=app", "DATABASE_URL=postgres://app:s3cret@db:5433/shop",
                               "API_TOKEN=t", "REDIS_URL=redis://:pw@kv:6380/0", "PGDATABASE=shop", "FOO=bar",
                               "SESSION_SECRET_PATH=/run/x"])
    assert names == sorted(["PGPASSWORD", "PGUSER", "DATABASE_URL", "API_TOKEN", "REDIS_URL", "PGDATABASE", "FOO",
                            "SESSION_SECRET_PATH"])
    assert env == {"PGUSER": "app", "DATABASE_URL": "postgres://db:5433/shop", "REDIS_URL": "redis://kv:6380/0",
                   "PGDATABASE": "shop"}
    assert "s3cret" not in json.dumps(env) and "pw" not in json.dumps(env)


def test_listening_ports_from_proc_net_tcp():
    text = """  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000:18EB 00000000:0000 0A 00000000:00000000 00:00000000 00000000   101        0 1 1 0 100 0 0 10 0
   1: 0100007F:18EB 0100007F:9C40 01 00000000:00000000 00:00000000 00000000   101        0 1 1 0 100 0 0 10 0
  sl  local_address                         remote_address                        st tx_queue rx_queue
   0: 00000000000000000000000000000000:18EB 00000000000000000000000000000000:0000 0A 00000000:00000000
"""
    assert o.listening_ports(text) == [6379]
    assert o.listening_ports("") == []


@pytest.mark.parametrize("argv, kind, port", [
    (["postgres", "-D", "/d", "-p", "5433"], "postgres", 5433),
    (["postgres", "-c", "port=6543"], "postgres", 6543),
    (["redis-server", "/etc/redis/redis.conf", "--port", "6380"], "redis", 6380),
    (["redis-server", "/etc/redis/redis.conf"], "redis", None),
])
def test_port_in_argv(argv, kind, port):
    assert o.port_in_argv(argv, kind) == port


@pytest.mark.parametrize("test, path", [
    (["CMD", "curl", "-fsS", "http://127.0.0.1:8000/healthz"], "/healthz"),
    (["CMD-SHELL", "wget -qO- http://localhost:3000/api/health || exit 1"], "/api/health"),
    (["CMD", "node", "-e", "require('http').get('http://127.0.0.1:8000/health', r => 0)"], "/health"),
    (["CMD", "pg_isready"], None),
    (None, None),
])
def test_health_path_of(test, path):
    assert o.health_path_of(test) == path


def test_nginx_upstream_blocks_and_files():
    dump = """# configuration file /etc/nginx/nginx.conf:
http {
    include /etc/nginx/conf.d/*.conf;
}

# configuration file /etc/nginx/conf.d/app.conf:
upstream backend { server api:9000 max_fails=3; keepalive 8; }
server {
    listen 127.0.0.1:8081;
    # proxy_pass http://old:1;
    location /static/ { root /srv; }
    location /api/ { proxy_pass http://backend; }
    location = /metrics { proxy_pass http://exporter:9100/metrics; }
}
"""
    r = o.nginx_routes(dump)
    assert r["files"] == ["/etc/nginx/nginx.conf", "/etc/nginx/conf.d/app.conf"]
    assert r["listens"] == [8081]
    api = next(x for x in r["proxies"] if x["location"] == "/api/")
    assert (api["host"], api["port"], api["file"]) == ("api", 9000, "/etc/nginx/conf.d/app.conf")
    assert len(r["proxies"]) == 2  # the commented-out one is not a directive


def test_users_from_logs_only_successful_recommendation_requests():
    lines = [
        '{"ts":1.0,"method":"GET","uri":"/api/recommendations/c-1001?limit=10","status":200}',
        '{"level":"info","path":"/api/recommendations/c-1002?limit=5","status":200}',
        '{"uri":"/api/recommendations/c-9999?limit=10","status":502}',
        '172.18.0.1 - - [06/Dec/2026:11:00:00 +0000] "GET /api/recommendations/u%201 HTTP/1.1" 200 512 "-" "curl"',
        '2026-12-06T11:00:00.000000000Z {"uri":"/api/recommendations/c-1001","status":200}',
        '{"uri":"/api/recommendations/clear-cache","status":200,"method":"POST"}',
        "not a request",
    ]
    got = o.users_from_logs(lines)
    assert got[0] == ("c-1001", 2)
    users = [u for u, _n in got]
    assert "c-9999" not in users and "u 1" in users and "c-1002" in users
    assert "clear-cache" not in users  # a POST to the clear-cache endpoint is not a user


@pytest.mark.parametrize("keys, families", [
    (["shop:recs:c-1001:10", "shop:recs:c-1002:10"], ["shop:recs:*"]),
    (["recs:user-1:10"], ["recs:*"]),
    (["recs:user-1:10", "recs:user-2:10", "recsys:delay_ms"], ["recs:*", "recsys:*"]),
    (["plainkey"], []),
])
def test_key_families(keys, families):
    assert sorted(o.key_families(keys)) == families


@pytest.mark.parametrize("value, query", [
    ('{"user":"u","recommendations":[1,2],"computed_at":"x"}', "length(recommendations) > `0`"),
    ("[1,2,3]", "length(@) > `0`"),
    ('{"a":[1],"items":[2]}', "length(items) > `0`"),
    ('{"a":[1],"b":[2]}', None),
    ("not json", None),
])
def test_value_query_from_the_shape(value, query):
    assert o.value_query(o.value_shape(value)) == query


@pytest.mark.parametrize("params, needle", [
    (dict(project="Shop!", dest="/tmp/x.yml"), "Shop!"),
    (dict(project="", dest="/tmp/x.yml"), "''"),
    (dict(project="shop", dest=""), "dest"),
])
def test_bad_input_named(params, needle):
    with pytest.raises(o.OnboardError, match=re.escape(needle)):
        o.validate(params)


def test_dest_that_is_a_directory(tmp_path):
    with pytest.raises(o.OnboardError, match="is a directory"):
        o.validate(dict(project="shop", dest=str(tmp_path)))


class FakeClient:
    """Enough of _compose.ComposeClient for gather() on a project that is not there."""

    def find_containers(self, project):
        return []

    def projects(self):
        return ["recsys", "shop"]


def test_unknown_project_names_the_projects_there(tmp_path):
    dest = tmp_path / "out" / "nope.stack.yml"
    with pytest.raises(o.OnboardError, match="no compose project 'nope'.*recsys, shop"):
        o.run(FakeClient(), dict(project="nope", dest=str(dest)))
    assert not dest.parent.exists()


@pytest.mark.parametrize("value, text", [
    ("shop", "shop"), ("recs-api", "recs-api"), ("true", '"true"'), ("8000", '"8000"'), (8000, "8000"),
    ("/api/recommendations/{user}", '"/api/recommendations/{user}"'), ("shop:recs:*", '"shop:recs:*"'),
    ("length(@) > `0`", '"length(@) > `0`"'), (True, "true"),
])
def test_scalars_plain_only_when_yaml_reads_them_back_as_the_same_string(value, text):
    assert o._scalar(value) == text
    assert yaml.safe_load("k: %s" % text)["k"] == value
