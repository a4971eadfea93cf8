# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Onboarding (GEN-7) on the real engine: playbooks/onboard.yml reads the running shop stack and the
reference stack, and the file it writes is checked against the engine's own view (docker SDK, the
files inside the containers, psql and redis-cli on the written ports, HTTP through the written URLs).
Then the issue's acceptance: p0_recover.yml runs with the written file, unedited, against a killed
recs-api, and users are answered through nginx afterwards.

The shop stack is conftest's SHOP (default project ``shop``, examples/shop-stack, ports 3100/8180); it
is started with scripts/stack.sh when it is not running. These tests run in the lane of the shop stack.
"""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import docker
import jmespath
import pytest
import yaml

from conftest import SHOP, Stack, http_get, read_record, run_playbook, wait_for

SHOP_PROJECT = SHOP.project
SHOP_DIR = SHOP.stack_dir
SHOP_WEB_URL = SHOP.edge_url
SHOP_STATE_DIR = SHOP.state_dir
# The shop's customers: the test plays their traffic through nginx before onboarding, as real
# users would have, so the onboarding finds sample users in the logs.
SHOP_USERS = list(SHOP.users)
# A new user's inventory: the managed host only (the playbooks target the group recsys by default).
HOSTS_ONLY = "recsys:\n  hosts:\n    localhost:\n      ansible_connection: local\n" \
             "      ansible_python_interpreter: \"{{ ansible_playbook_python }}\"\n"

pytestmark = pytest.mark.integration

ENGINE = docker.from_env(timeout=60)


def containers(project, service=None):
    labels = ["com.docker.compose.project=%s" % project]
    if service:
        labels.append("com.docker.compose.service=%s" % service)
    found = ENGINE.containers.list(all=True, filters={"label": labels})
    for c in found:
        c.reload()
    return found


def one(project, service):
    found = containers(project, service)
    assert len(found) == 1, (project, service, found)
    return found[0]


def shop_up():
    """Start (or repair) the shop stack the way every test does (conftest's Stack.restore: containers
    a test's override file created are replaced, a degraded mode's edge file is dropped, compose up)."""
    stack = Stack(SHOP)
    if not (stack.healthy() and stack.service_answers()):
        stack.restore()


@pytest.fixture
def shop():
    shop_up()
    # each test is its own incident: no lease or circuit-breaker history left from another run
    for name in ("lease.json", "ladder_runs.jsonl"):
        (SHOP_STATE_DIR / name).unlink(missing_ok=True)
    yield
    shop_up()


def users_traffic(base, users):
    for user in users:
        status, body = http_get("/api/recommendations/%s?limit=10" % user, base=base, timeout=10)
        assert status == 200 and body["count"] > 5, (user, status, body)


def onboard(project, dest, *args):
    proc = run_playbook("onboard.yml", "-e", "compose_project=%s" % project, "-e", "onboard_output=%s" % dest,
                        *args, inventory="localhost,")
    return proc


def recap_changed(proc):
    line = next(line for line in proc.output.splitlines() if line.startswith("localhost") and "changed=" in line)
    return int(line.split("changed=")[1].split()[0])


def exec_ok(container, argv):
    code, out = container.exec_run(argv, demux=False)
    assert code == 0, (argv, out)
    return out.decode()


def read_in(container, path):
    import io
    import tarfile
    stream, _stat = container.get_archive(path)
    with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as tar:
        return tar.extractfile(tar.getmembers()[0]).read().decode()


def published(container, port):
    binding = container.attrs["NetworkSettings"]["Ports"]["%d/tcp" % port][0]
    return int(binding["HostPort"])


def compose_depends_on(stack_dir, service):
    doc = yaml.safe_load((Path(stack_dir) / "docker-compose.yml").read_text())
    deps = doc["services"][service].get("depends_on") or []
    return list(deps)


def check_against_engine(project, s):
    """Every value of the written incident_stack, checked with the engine and the stack themselves."""
    svc = one(project, s["service"])
    labels = svc.attrs["Config"]["Labels"]
    assert s["name"] == project
    assert s["project_dir"] == labels["com.docker.compose.project.working_dir"]
    # compose v1 records the files relative to the working directory, v2 with absolute paths
    assert [os.path.join(s["project_dir"], f) for f in s["compose_files"]] == [
        os.path.join(s["project_dir"], f) for f in labels["com.docker.compose.project.config_files"].split(",")]
    assert "%d/tcp" % s["service_port"] in svc.attrs["Config"]["ExposedPorts"]
    assert s["base_url"] == "http://127.0.0.1:%d" % published(svc, s["service_port"])
    # the edge's own file routes to the service on that port
    edge = one(project, s["edge"])
    config = read_in(edge, s["edge_config"])
    assert "proxy_pass" in config and "%s:%d" % (s["service"], s["service_port"]) in config
    edge_port = int(s["edge_url"].rsplit(":", 1)[1])
    assert edge_port in [int(b["HostPort"]) for bs in edge.attrs["NetworkSettings"]["Ports"].values() for b in bs or []]
    assert s["dependencies"] == compose_depends_on(s["project_dir"], s["service"])
    # psql and redis-cli with the written service, port, database and user answer
    db = s["database"]
    rows = exec_ok(one(project, db["service"]), ["psql", "-X", "-At", "-U", db["user"], "-p", str(db["port"]),
                                                 "-d", db["name"], "-c", "SELECT count(*) FROM pg_stat_user_tables"])
    assert int(rows.strip()) > 0
    kv = one(project, s["redis"]["service"])
    assert exec_ok(kv, ["redis-cli", "-p", str(s["redis"]["port"]), "PING"]).strip() == "PONG"
    for pattern in s["redis"]["cache_keys"]:
        keys = exec_ok(kv, ["redis-cli", "-p", str(s["redis"]["port"]), "--scan", "--pattern", pattern]).split()
        assert keys, pattern
        value = json.loads(exec_ok(kv, ["redis-cli", "-p", str(s["redis"]["port"]), "GET", keys[0]]))
        assert jmespath.search(s["redis"]["cache_value_query"], value) is True
    env_names = [e.split("=", 1)[0] for e in svc.attrs["Config"]["Env"]]
    assert s["downgrade_env"] in env_names
    exec_ok(svc, ["test", "-s", s["static_top_file"]])
    assert s["log_dir"] in [m["Destination"] for m in svc.attrs["Mounts"] if m["Type"] == "volume"]
    assert s["state_dir"] == "/var/lib/sre-incident/%s" % project
    # the health path answers on the service, and the users through the edge
    assert http_get(s["health_path"], base=s["base_url"])[0] == 200
    for user in s["sample_users"]:
        status, body = http_get(s["recommendations_path"].replace("{user}", user) + "?limit=10", base=s["edge_url"])
        assert status == 200 and len(body["recommendations"]) >= s["min_recommendations"], (user, status)


def comments_above_every_key(text):
    lines = text.splitlines()
    keys = [i for i, line in enumerate(lines) if line.startswith("  ") and not line.startswith("   ")
            and not line.lstrip().startswith("#")]
    return all(lines[i - 1].startswith("  #") for i in keys)


def test_onboard_shop_against_the_engine(shop, tmp_path):
    users_traffic(SHOP_WEB_URL, SHOP_USERS)
    dest = tmp_path / "onboarding" / "shop.stack.yml"
    proc = onboard(SHOP_PROJECT, dest, "--check")
    assert proc.returncode == 0, proc.output
    assert "would write" in proc.output and not dest.exists()
    proc = onboard(SHOP_PROJECT, dest)
    assert proc.returncode == 0, proc.output
    text = dest.read_text()
    s = yaml.safe_load(text)["incident_stack"]
    check_against_engine(SHOP_PROJECT, s)
    # what this test knows of the shop stack, and what it must not find
    assert (s["service"], s["edge"], s["edge_config"]) == ("recs-api", "web", "/etc/nginx/conf.d/shop.conf")
    assert "standby" not in s and "# standby: none" in text
    assert sorted(s["sample_users"]) == SHOP_USERS
    assert "# TODO:" not in text and comments_above_every_key(text)
    # nothing secret in the file
    secret = (SHOP_DIR / ".env").read_text().split("SHOP_DB_PASSWORD=", 1)[1].split()[0]
    assert secret not in text and secret not in proc.output
    # idempotent: check mode and a second run change nothing
    proc = onboard(SHOP_PROJECT, dest, "--check")
    assert proc.returncode == 0 and recap_changed(proc) == 0, proc.output
    proc = onboard(SHOP_PROJECT, dest)
    assert proc.returncode == 0 and recap_changed(proc) == 0 and dest.read_text() == text, proc.output


def test_onboard_reference_stack_against_the_engine(stack, tmp_path):
    from conftest import EDGE_URL, PROJECT, SAMPLE_USERS  # pylint: disable=import-outside-toplevel
    users_traffic(EDGE_URL, SAMPLE_USERS)
    dest = tmp_path / "recsys.stack.yml"
    proc = onboard(PROJECT, dest)
    assert proc.returncode == 0, proc.output
    text = dest.read_text()
    s = yaml.safe_load(text)["incident_stack"]
    check_against_engine(PROJECT, s)
    assert (s["service"], s["edge"]) == ("recommendation-service", "edge")
    # the standby is behind a compose profile: not running, found in the compose file with the same image
    # (compose itself resolves the file's variables: ${RECSYS_IMAGE_PREFIX:-recsys-example}/...)
    resolved = subprocess.run(["docker-compose", "-f", "docker-compose.yml", "config"], cwd=s["project_dir"],
                              capture_output=True, text=True, timeout=60, check=True).stdout
    doc = yaml.safe_load(resolved)
    assert s["standby"] == "recommendation-service-standby"
    assert doc["services"][s["standby"]]["image"] == one(PROJECT, s["service"]).attrs["Config"]["Image"]
    assert s["database"]["name"] == "recommendation_db" and "# TODO:" not in text


def test_onboard_refuses_an_unknown_project(tmp_path):
    dest = tmp_path / "nope.stack.yml"
    proc = onboard("no-such-project", dest)
    assert proc.returncode != 0 and "no compose project 'no-such-project'" in proc.output
    assert not dest.exists()


def test_p0_recover_with_the_onboarded_file_unedited(shop, tmp_path):
    """The issue's acceptance: onboard shop, then p0_recover.yml with the written file as it is."""
    users_traffic(SHOP_WEB_URL, SHOP_USERS)
    dest = tmp_path / "shop.stack.yml"
    proc = onboard(SHOP_PROJECT, dest)
    assert proc.returncode == 0, proc.output
    s = yaml.safe_load(dest.read_text())["incident_stack"]
    assert not [line for line in dest.read_text().splitlines() if line.startswith("# TODO:")]
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(HOSTS_ONLY)

    # a crash: docker kill is a manual stop for the engine, so unless-stopped does not bring it back
    api = one(SHOP_PROJECT, s["service"])
    api.kill()
    assert wait_for(lambda: one(SHOP_PROJECT, s["service"]).attrs["State"]["Status"] == "exited", timeout=30)
    assert http_get("/api/recommendations/c-1001?limit=10", base=SHOP_WEB_URL)[0] in (0, 502, 503, 504)

    incidents = tmp_path / "incidents"
    proc = run_playbook("p0_recover.yml", "-e", "@%s" % dest, inventory=str(inventory),
                        extra_vars=dict(incident_dir=str(incidents), verify_watch_window=4, verify_watch_interval=2))
    assert proc.returncode == 0, proc.output[-4000:]

    # users are answered through nginx, read here, not from the playbook's word
    assert one(SHOP_PROJECT, s["service"]).attrs["State"]["Status"] == "running"
    assert http_get("/health", base=s["edge_url"])[0] == 200
    for user in s["sample_users"]:
        status, body = http_get("/api/recommendations/%s?limit=10" % user, base=s["edge_url"])
        assert status == 200 and len(body["recommendations"]) > 5, (user, status, body)
    _incident, events = read_record(incidents)
    closed = [e for e in events if e.get("type") == "closed" or e.get("event") == "closed"]
    assert closed and closed[-1]["data"]["outcome"] == "resolved"
