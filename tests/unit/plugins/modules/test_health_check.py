# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

import functools
import time

import pytest

from ansible_collections.sre.incident.plugins.module_utils import _compose
from ansible_collections.sre.incident.plugins.modules import health_check

from .harness import JSONHandler, patch_engine, patch_exits, run_module, serving  # noqa: F401  pylint: disable=unused-import


class Handler(JSONHandler):

    def do_GET(self):
        status, body = {
            "/health": (200, {"status": "ok"}),
            "/recs": (200, {"recommendations": [1, 2, 3, 4, 5, 6]}),
        }.get(self.path, (503, {"status": "down"}))
        self.send_json(status, body)


@pytest.fixture(scope="module")
def server():
    with serving(Handler) as url:
        yield url


run = functools.partial(run_module, health_check)


def test_healthy(server):
    r = run(dict(url=server + "/health", count=2, interval=0.01))
    assert r["changed"] is False
    assert r["healthy"] is True
    assert r["success_ratio"] == 1.0
    assert r["urls"] == [server + "/health"]
    assert len(r["probes"]) == 2
    assert set(r["latency_ms"]) >= {"min", "p50", "p95", "max"}


def test_runs_in_check_mode(server):
    r = run(dict(url=server + "/health", count=1), check_mode=True)
    assert "failed" not in r
    assert r["healthy"] is True
    assert r["changed"] is False


def test_unhealthy_is_not_a_failure_by_default(server):
    r = run(dict(urls=[server + "/health", server + "/down"], count=1, interval=0))
    assert "failed" not in r
    assert r["healthy"] is False
    assert r["success_ratio"] == 0.5


def test_a_deadline_bounds_the_wait_instead_of_wait_timeout(server):
    # what is left of a deadline 1.5 s ahead, not the 30 s of wait_timeout; a passed one still gets its 1 s
    started = time.monotonic()
    r = run(dict(url=server + "/down", count=1, interval=0, wait_timeout=30, deadline=time.time() + 1.5))
    assert r["healthy"] is False and r["attempts"] > 1 and 1.2 < time.monotonic() - started < 5
    started = time.monotonic()
    r = run(dict(url=server + "/down", count=1, interval=0, deadline=time.time() - 60))
    assert r["healthy"] is False and 0.8 < time.monotonic() - started < 4


def test_min_success_ratio(server):
    r = run(dict(urls=[server + "/health", server + "/down"], count=1, interval=0, min_success_ratio=0.5))
    assert r["healthy"] is True


def test_fail_on_unhealthy(server):
    r = run(dict(url=server + "/down", count=1, fail_on_unhealthy=True))
    assert r["failed"] is True
    assert "503" in r["msg"]
    assert r["healthy"] is False
    assert r["probes"][0]["status"] == 503


def test_json_query(server):
    r = run(dict(url=server + "/recs", count=1, json_query=["length(recommendations) > `5`"]))
    assert r["healthy"] is True
    r = run(dict(url=server + "/recs", count=1, json_query=["length(recommendations) > `6`"]))
    assert r["healthy"] is False
    assert r["probes"][0]["failed_assertions"] == ["length(recommendations) > `6`"]


def test_target_down_is_a_result():
    r = run(dict(url="http://127.0.0.1:9/health", count=1, timeout=0.5))
    assert "failed" not in r
    assert r["healthy"] is False
    assert r["probes"][0]["status"] is None


@pytest.mark.parametrize("args, word", [
    (dict(url="127.0.0.1:3000/health"), "127.0.0.1:3000/health"),
    (dict(urls=["http://127.0.0.1/", "gopher://x"]), "gopher://x"),
    (dict(url="http://127.0.0.1/", count=0), "count"),
    (dict(url="http://127.0.0.1/", timeout=0), "timeout"),
    (dict(url="http://127.0.0.1/", min_success_ratio=1.5), "min_success_ratio"),
    (dict(url="http://127.0.0.1/", json_query=["length(("]), "length(("),
])
def test_bad_input_fails_before_probing(args, word, monkeypatch):
    def no_probe(*a, **k):
        raise AssertionError("probed despite bad input")

    monkeypatch.setattr(health_check._http, "probe", no_probe)
    r = run(args)
    assert r["failed"] is True
    assert word in r["msg"]


def test_url_or_urls_required():
    r = run(dict(count=1))
    assert r["failed"] is True
    assert "url" in r["msg"]


def test_url_and_urls_exclusive():
    r = run(dict(url="http://a/", urls=["http://b/"]))
    assert r["failed"] is True
    assert "mutually exclusive" in r["msg"]


def test_missing_jmespath(monkeypatch):
    monkeypatch.setattr(health_check._http, "HAS_JMESPATH", False)
    r = run(dict(url="http://127.0.0.1/", json_query=["a"]))
    assert r["failed"] is True
    assert "jmespath" in r["msg"]


def test_containers_read_beside_the_probes(server, monkeypatch):
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    seen = []

    def read_states(project, services, docker_host=None, timeout=None):
        seen.append((project, services, docker_host, timeout))
        return dict(containers=[dict(service="web", status="exited", exit_code=137)], containers_error=None)

    patch_engine(monkeypatch, read_states=read_states)
    r = run(dict(url=server + "/health", count=1, containers=dict(project="recsys", services=["web", "db"])))
    assert "failed" not in r
    assert seen == [("recsys", ["web", "db"], "unix:///var/run/docker.sock", 60)]
    assert r["containers"] == [dict(service="web", status="exited", exit_code=137)]
    assert r["containers_error"] is None
    assert r["healthy"] is True


def test_containers_not_asked_for_reads_no_engine(server, monkeypatch):
    def no_engine(*a, **k):
        raise AssertionError("read the engine without containers")

    patch_engine(monkeypatch, read_states=no_engine)
    r = run(dict(url=server + "/health", count=1))
    assert r["containers"] == [] and r["containers_error"] is None


def test_containers_unknown_service_fails_naming_it(server, monkeypatch):
    def read_states(project, services, docker_host=None, timeout=None):
        raise _compose.UnknownService("unknown service 'cache' in project 'recsys'")

    patch_engine(monkeypatch, read_states=read_states)
    r = run(dict(url=server + "/health", count=1, containers=dict(project="recsys", services=["cache"])))
    assert r["failed"] is True
    assert "'cache'" in r["msg"]


def test_the_engine_answer_on_its_way_is_waited_for_when_a_place_failed():
    """stop_early: after a failed round the containers' states decide whether a second round is needed;
    an engine answer still on its way is waited for (bounded), not taken for no answer."""
    import concurrent.futures  # pylint: disable=import-outside-toplevel
    import threading  # pylint: disable=import-outside-toplevel
    gate = threading.Event()
    states = dict(containers=[dict(service="web", status="exited")], containers_error=None)
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        reading = pool.submit(lambda: gate.wait(5) and states)
        assert health_check._settled_containers(reading) is None
        threading.Timer(0.1, gate.set).start()
        assert health_check._settled_containers(reading, wait_s=5.0) == states["containers"]
    slow = concurrent.futures.Future()
    assert health_check._settled_containers(slow, wait_s=0.05) is None


class Places(JSONHandler):
    """``/up/...`` answers like a healthy service, ``/stale/...`` like an edge whose upstream is gone,
    ``/hung/...`` only after 3 s (a paused service)."""

    def do_GET(self):
        import time  # pylint: disable=import-outside-toplevel
        place, _sep, rest = self.path.lstrip("/").partition("/")
        if place == "hung":
            time.sleep(3)
        body = {"status": "ok"} if rest == "health" else {"recommendations": [1, 2, 3, 4, 5, 6]}
        self.send_json(502 if place == "stale" else 200, body)


@pytest.fixture(scope="module")
def places():
    with serving(Places) as url:
        yield url


def _stack(base, edge=None):
    return dict(name="recsys", project_dir="/srv/recsys", service="api", base_url=base, edge_url=edge, edge="edge" if edge else None,
                health_path="/health", recommendations_path="/rec/{user}", sample_users=["u1", "u2"], min_recommendations=6)


def _engine_says(monkeypatch, status):
    def read_states(project, services, docker_host=None, timeout=None):
        return dict(containers=[dict(service="api", status=status)], containers_error=None)
    patch_engine(monkeypatch, read_states=read_states)


def test_a_service_the_engine_shows_stopped_is_probed_with_the_short_timeout(places, monkeypatch):
    _engine_says(monkeypatch, "paused")
    r = run(dict(stack=_stack(places + "/hung"), where=["service"], count=3, stop_early=True, timeout=2))
    assert r["probe_timeout"] == 0.5 and r["rounds"] == 1 and r["healthy"] is False
    assert r["waited"] < 1.5 and all(not p["ok"] for p in r["probes"])
    assert r["assessment"]["kind"] == "service_down"


def test_a_running_service_keeps_its_timeout(places, monkeypatch):
    _engine_says(monkeypatch, "running")
    r = run(dict(stack=_stack(places + "/up"), where=["service"], count=1, stop_early=True, timeout=2))
    assert r["probe_timeout"] == 2 and r["healthy"] is True
    # without stop_early (a wait) the timeout is never shortened
    _engine_says(monkeypatch, "exited")
    r = run(dict(stack=_stack(places + "/up"), where=["service"], count=1, timeout=2))
    assert r["probe_timeout"] == 2


@pytest.mark.parametrize("edge, serving", [("/up", True), ("/stale", False)])
def test_check_edge_looks_through_the_edge_once_the_service_answers(places, monkeypatch, edge, serving):
    _engine_says(monkeypatch, "running")
    r = run(dict(stack=_stack(places + "/up", places + edge), where=["service"], check_edge=True, count=1, wait_timeout=5))
    assert r["healthy"] is True and r["edge"]["serving"] is serving
    assert bool(r["edge"]["problems"]) is not serving


def test_check_edge_says_nothing_when_it_did_not_look(places, monkeypatch):
    _engine_says(monkeypatch, "running")
    r = run(dict(stack=_stack(places + "/up"), where=["service"], check_edge=True, count=1))
    assert r["edge"] is None    # no edge_url
    r = run(dict(stack=_stack(places + "/stale", places + "/up"), where=["service"], check_edge=True, count=1))
    assert r["healthy"] is False and r["edge"] is None    # the service does not answer: the edge is not looked at


@pytest.mark.parametrize("args, word", [
    (dict(url="http://127.0.0.1/", check_edge=True), "check_edge"),
    (dict(stack=_stack("http://127.0.0.1:9/"), check_edge=True), "where"),
    (dict(stack=_stack("http://127.0.0.1:9/"), down_timeout=-1), "-1"),
])
def test_check_edge_and_down_timeout_bad_input(args, word, monkeypatch):
    def no_probe(*a, **k):
        raise AssertionError("probed despite bad input")

    monkeypatch.setattr(health_check._http, "probe", no_probe)
    r = run(args)
    assert r["failed"] is True and word in r["msg"]
