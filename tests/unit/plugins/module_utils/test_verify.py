# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

import copy
import datetime
import json

import pytest

from ansible_collections.sre.incident.plugins.module_utils import _verify

# One `stats(stream=False)` answer of the real engine (cgroup v1, 2 CPUs, no memory limit), trimmed.
STATS_V1 = json.loads("""
{"cpu_stats": {"cpu_usage": {"total_usage": 3417411267, "percpu_usage": [2009573016, 1407838251],
                             "usage_in_kernelmode": 870000000, "usage_in_usermode": 2540000000},
               "system_cpu_usage": 2885000000000, "online_cpus": 2},
 "precpu_stats": {"cpu_usage": {"total_usage": 3316202554, "percpu_usage": [2002525676, 1313676878]},
                  "system_cpu_usage": 2883040000000, "online_cpus": 2},
 "memory_stats": {"usage": 21995520, "max_usage": 31014912,
                  "stats": {"cache": 49152, "total_cache": 49152, "total_inactive_file": 0, "rss": 20471808},
                  "limit": 25276510208}}
""")

# cgroup v2 shape: inactive_file instead of total_inactive_file, no percpu_usage.
STATS_V2 = json.loads("""
{"cpu_stats": {"cpu_usage": {"total_usage": 2000000000}, "system_cpu_usage": 104000000000, "online_cpus": 4},
 "precpu_stats": {"cpu_usage": {"total_usage": 1000000000}, "system_cpu_usage": 100000000000, "online_cpus": 4},
 "memory_stats": {"usage": 700000000, "limit": 1000000000, "stats": {"inactive_file": 100000000, "file": 150000000}}}
""")

# One-shot answer: precpu_stats empty.
STATS_ONE_SHOT = {
    "cpu_stats": {"cpu_usage": {"total_usage": 5000000000}, "system_cpu_usage": 200000000000, "online_cpus": 2},
    "precpu_stats": {"cpu_usage": {"total_usage": 0}},
    "memory_stats": {"usage": 1000, "limit": 10000, "stats": {"cache": 200}},
}

STACK = dict(name="recsys", project_dir="/srv/recsys", service="recommendation-service",
             base_url="http://127.0.0.1:3000", health_path="/health",
             recommendations_path="/api/recommendations/{user}", sample_users=["u1", "u2", "u3"],
             min_recommendations=6, thresholds=dict(latency_ms=500, cpu_percent=50, memory_percent=60, disk_percent=90))


# --------------------------------------------------------------------------- stats maths

def test_cpu_percent_docker_stats_formula():
    # (3417411267 - 3316202554) / (2885000000000 - 2883040000000) * 2 CPUs * 100
    expected = round(101208713 / 1960000000.0 * 2 * 100, 2)
    assert _verify.cpu_percent(STATS_V1) == expected == 10.33


def test_cpu_percent_counts_cpus_from_percpu_when_online_missing():
    stats = copy.deepcopy(STATS_V1)
    del stats["cpu_stats"]["online_cpus"]
    del stats["precpu_stats"]["online_cpus"]
    assert _verify.cpu_percent(stats) == 10.33


def test_cpu_percent_cgroup_v2():
    # 1e9 ns of the container over 4e9 ns of 4 CPUs: one full core busy = 100 %
    assert _verify.cpu_percent(STATS_V2) == 100.0


def test_cpu_percent_none_without_precpu():
    assert _verify.cpu_percent(STATS_ONE_SHOT) is None
    assert _verify.cpu_percent({}) is None


def test_cpu_percent_none_when_no_system_time_passed():
    before = dict(cpu_usage=dict(total_usage=10), system_cpu_usage=100)
    assert _verify.cpu_percent_between(before, before) is None


def test_memory_usage_v1_subtracts_inactive_file():
    mem = _verify.memory_usage(STATS_V1)
    assert mem["used_bytes"] == 21995520  # total_inactive_file is 0 here
    assert mem["limit_bytes"] == 25276510208
    assert mem["percent"] == round(21995520 * 100.0 / 25276510208, 2)


def test_memory_usage_v2_subtracts_inactive_file():
    mem = _verify.memory_usage(STATS_V2)
    assert mem["used_bytes"] == 600000000
    assert mem["percent"] == 60.0


def test_memory_usage_falls_back_to_cache():
    mem = _verify.memory_usage(STATS_ONE_SHOT)
    assert mem["used_bytes"] == 800
    assert mem["percent"] == 8.0


def test_memory_usage_unknown():
    assert _verify.memory_usage({"memory_stats": {}})["percent"] is None


class FakeClient:
    """Stands in for _compose.ComposeClient: stats, logs, find_containers."""

    def __init__(self, stats=None, logs=None, containers=None):
        self._stats = list(stats or [])
        self._logs = logs or {}
        self.containers = containers if containers is not None else [FakeContainer("svc-1")]
        self.log_calls = []

    def stats(self, container, one_shot=False):
        self.one_shot = one_shot
        return self._stats.pop(0)

    def logs(self, container, tail=None, since=None, timestamps=True):
        self.log_calls.append(dict(container=container.name, since=since, tail=tail, timestamps=timestamps))
        return self._logs.get(container.name, "")

    def find_containers(self, project, service=None, all=True):
        return self.containers


class FakeContainer:
    def __init__(self, name, status="running", env=None):
        self.name = name
        self.status = status
        self.attrs = {"Config": {"Env": env or []}}


def test_read_resources_takes_cpu_from_a_sample_with_its_window():
    client = FakeClient(stats=[STATS_V1])
    reading = _verify.read_resources(client, FakeContainer("svc-1"))
    assert reading["cpu_percent"] == 10.33 and reading["online_cpus"] == 2
    assert client.one_shot is False   # the client brings the CPU window (ComposeClient.stats)


# --------------------------------------------------------------------------- logs
# (what an error line is: tests/unit/plugins/module_utils/test_logs.py)

def _ts(second):
    return "2026-11-27T01:30:%02d.500000000Z" % second


def _epoch(second):
    return datetime.datetime(2026, 11, 27, 1, 30, second, 500000, tzinfo=datetime.timezone.utc).timestamp()


LOG = "\n".join([
    _ts(10) + ' {"level": "ERROR", "msg": "before the fix"}',
    _ts(20) + ' {"level": "INFO", "msg": "request"}',
    _ts(21) + ' {"level": "ERROR", "msg": "database error", "detail": "password=recsys-demo-S3cret"}',
    _ts(22) + ' {"level": "WARNING", "msg": "redis unavailable", "error": "Error 111"}',
    _ts(30) + " panic: something",
    "",
])


def test_count_errors_since_and_until():
    found = _verify.count_errors(LOG, _epoch(20))
    assert found["count"] == 2
    assert found["lines"] == 4
    found = _verify.count_errors(LOG, _epoch(20), until=_epoch(30))
    assert found["count"] == 1
    found = _verify.count_errors(LOG, _epoch(10))
    assert found["count"] == 3
    assert _verify.count_errors(LOG, _epoch(31))["count"] == 0


def test_count_errors_excerpt_is_redacted_and_cut():
    found = _verify.count_errors(LOG, _epoch(20), secrets={"recsys-demo-S3cret"})
    assert "recsys-demo-S3cret" not in json.dumps(found)
    long_line = _ts(40) + " ERROR " + "x" * 1000
    found = _verify.count_errors(long_line, _epoch(40))
    assert len(found["excerpt"][0]) == _verify.EXCERPT_CHARS


def test_read_errors_asks_the_engine_from_the_whole_second_and_filters_exactly():
    client = FakeClient(logs={"svc-1": LOG})
    containers = [FakeContainer("svc-1", env=["POSTGRES_PASSWORD=recsys-demo-S3cret"])]
    found = _verify.read_errors(client, containers, _epoch(21))
    assert client.log_calls[0]["since"] == int(_epoch(21))
    assert client.log_calls[0]["timestamps"] is True
    assert found["count"] == 2
    assert found["by_container"] == {"svc-1": {"count": 2, "lines": 3}}
    assert "recsys-demo-S3cret" not in json.dumps(found)


# --------------------------------------------------------------------------- input

def test_validate_checks():
    assert _verify.validate_checks(None) == list(_verify.CHECKS)
    assert _verify.validate_checks([]) == []
    assert _verify.validate_checks(["latency", "health", "latency"]) == ["latency", "health"]
    with pytest.raises(_verify.VerifyError, match="'cpu'"):
        _verify.validate_checks(["cpu"])


# --------------------------------------------------------------------------- evaluate

def fake_probe(answers):
    """A probe answering by URL suffix: answers = {suffix: (status, body, latency)}."""
    def probe(url, timeout):
        for suffix, (status, body, latency) in answers.items():
            if url.split("?")[0].endswith(suffix):
                return dict(url=url, status=status, ok=status == 200, latency_ms=latency,
                            error=None if status == 200 else ("connection refused" if status is None else "status %s" % status),
                            body_json=body)
        raise AssertionError(url)
    return probe


RECS = {"recommendations": list(range(10))}
HEALTHY = {"/health": (200, {"status": "ok"}, 2.0), "/u1": (200, RECS, 20.0), "/u2": (200, RECS, 30.0),
           "/u3": (200, RECS, 40.0)}


def _evaluate(answers=None, client=None, checks=None, **kwargs):
    client = client or FakeClient(stats=[STATS_V1], logs={"svc-1": ""})
    return _verify.evaluate(STACK, _epoch(20), checks=checks, client=client, probe_rounds=1,
                            probe=fake_probe(answers or HEALTHY), **kwargs)


def by_name(result):
    return {c["name"]: c for c in result["checks"]}


def test_everything_passes_with_values():
    r = _evaluate()
    assert r["passed"] is True
    assert r["failed_checks"] == []
    c = by_name(r)
    # STACK has no edge_url: what users reach is not checked, and the result says so
    assert [x["name"] for x in r["checks"]] == [n for n in _verify.CHECKS if n != "edge"]
    assert r["not_checked"] == ["edge: incident_stack.edge_url is not set, so what users reach was not probed"]
    assert "not checked: edge" in _verify.summarize(r)
    assert c["health"]["value"] == 200
    assert c["recommendations"]["value"] == 10 and c["recommendations"]["threshold"] == 6
    assert c["latency"]["value"] == 40.0 and c["latency"]["threshold"] == 500.0
    assert c["log_errors"]["value"] == 0 and c["log_errors"]["threshold"] == 0
    assert c["resources"]["value"] == {"cpu_percent": 10.33, "memory_percent": 0.09}
    assert set(r["checklist"]) == set(_verify.CHECKLIST_MAP) - {"users_answered_via_edge"}
    assert all(item["passed"] for item in r["checklist"].values())
    assert r["checklist"]["latency_under_500ms"]["text"] == "max 40.0 ms (limit 500 ms)"
    assert r["checklist"]["several_users_ok"]["value"] == "3/3 users"


EDGE_STACK = dict(STACK, edge_url="http://127.0.0.1:8080")


def edge_probe(service_answers, edge_answers):
    """Answers by base: the service's port (3000) and the edge (8080) answer differently."""
    direct, via_edge = fake_probe(service_answers), fake_probe(edge_answers)

    def probe(url, timeout):
        return (via_edge if url.startswith(EDGE_STACK["edge_url"]) else direct)(url, timeout)
    return probe


def test_edge_502_while_the_service_answers_fails_only_the_edge_check():
    stale = {k: (502, None, 1.0) for k in HEALTHY}
    r = _verify.evaluate(EDGE_STACK, _epoch(20), client=FakeClient(stats=[STATS_V1], logs={"svc-1": ""}), probe_rounds=1,
                         probe=edge_probe(HEALTHY, stale))
    assert r["passed"] is False and r["failed_checks"] == ["edge"]
    edge = by_name(r)["edge"]
    assert edge["value"] == 0 and edge["threshold"] == 3 and edge["failing_users"] == ["u1", "u2", "u3"]
    assert "through the edge" in edge["detail"] and "status 502" in edge["detail"]
    assert r["checklist"]["users_answered_via_edge"]["passed"] is False
    assert r["checklist"]["health_200"]["passed"] is True
    assert r["not_checked"] == []


def test_edge_answering_users_passes_with_its_count():
    r = _verify.evaluate(EDGE_STACK, _epoch(20), client=FakeClient(stats=[STATS_V1], logs={"svc-1": ""}), probe_rounds=2,
                         probe=edge_probe(HEALTHY, HEALTHY))
    assert r["passed"] is True
    assert by_name(r)["edge"]["value"] == 3
    assert r["checklist"]["users_answered_via_edge"]["text"] == "3 of 3 users answered through the edge"


def test_health_503_fails_health_only():
    answers = dict(HEALTHY)
    answers["/health"] = (503, {"status": "unhealthy", "down": ["redis"]}, 3.0)
    r = _evaluate(answers)
    assert r["failed_checks"] == ["health"]
    assert by_name(r)["health"]["value"] == 503
    assert "down: redis" in by_name(r)["health"]["detail"]
    assert r["checklist"]["health_200"]["passed"] is False


def test_too_few_recommendations_for_one_user():
    answers = dict(HEALTHY)
    answers["/u2"] = (200, {"recommendations": [1, 2, 3, 4, 5]}, 10.0)
    r = _evaluate(answers)
    assert r["failed_checks"] == ["recommendations"]
    c = by_name(r)["recommendations"]
    assert c["value"] == 5
    assert "u2" in c["detail"]
    assert r["checklist"]["recommendations_returned"]["passed"] is True
    assert r["checklist"]["several_users_ok"]["passed"] is False


def test_slow_answer_fails_latency_with_the_max():
    answers = dict(HEALTHY)
    answers["/u3"] = (200, RECS, 612.5)
    r = _evaluate(answers)
    assert r["failed_checks"] == ["latency"]
    assert by_name(r)["latency"]["value"] == 612.5


def test_service_down_fails_http_checks():
    down = {k: (None, None, None) for k in HEALTHY}
    r = _evaluate(down, checks=["health", "recommendations", "latency"])
    assert r["failed_checks"] == ["health", "recommendations", "latency"]
    assert by_name(r)["latency"]["value"] is None
    assert by_name(r)["health"]["value"] is None


def test_new_error_lines_fail_log_errors():
    client = FakeClient(stats=[STATS_V1], logs={"svc-1": LOG})
    r = _evaluate(client=client)
    assert r["failed_checks"] == ["log_errors"]
    c = by_name(r)["log_errors"]
    assert c["value"] == 2
    assert "database error" in c["detail"]


def test_high_cpu_fails_resources():
    busy = copy.deepcopy(STATS_V1)
    busy["cpu_stats"]["cpu_usage"]["total_usage"] = busy["precpu_stats"]["cpu_usage"]["total_usage"] + 980000000
    r = _evaluate(client=FakeClient(stats=[busy], logs={"svc-1": ""}))
    assert r["failed_checks"] == ["resources"]
    assert by_name(r)["resources"]["value"]["cpu_percent"] == 100.0
    assert "CPU 100.0% >= 50%" in by_name(r)["resources"]["detail"]


def test_stopped_container_fails_resources_and_no_container_fails_logs():
    client = FakeClient(containers=[FakeContainer("svc-1", status="exited")])
    r = _evaluate(client=client, checks=["resources"])
    assert "svc-1 is exited" in by_name(r)["resources"]["detail"]
    r = _evaluate(client=FakeClient(containers=[]), checks=["log_errors", "resources"])
    assert r["failed_checks"] == ["log_errors", "resources"]
    assert by_name(r)["log_errors"]["value"] is None


def test_docker_checks_need_a_client():
    with pytest.raises(_verify.VerifyError, match="need the Docker engine"):
        _verify.evaluate(STACK, 0.0, checks=["resources"], client=None, probe=fake_probe(HEALTHY))


def test_no_checks_passes():
    r = _verify.evaluate(STACK, 0.0, checks=[], client=None, probe=fake_probe(HEALTHY))
    assert r["passed"] is True and r["checks"] == []


def test_summarize():
    r = _evaluate()
    assert _verify.summarize(r).startswith("recovery verified: health 200; recommendations 10; latency 40")
    answers = dict(HEALTHY)
    answers["/u3"] = (200, RECS, 612.5)
    r = _evaluate(answers)
    assert _verify.summarize(r).startswith("recovery not verified: latency = 612.5 (threshold 500)")
    r = dict(checks=[], watch_passed=False, rebound_at="T", rebound_error_rate=0.0,
             samples=[dict(error_rate=0.5, failing=["health: connection refused"])])
    assert "watch: error rate 0.5 > 0.0 at T (health: connection refused)" in _verify.summarize(r)


# --------------------------------------------------------------------------- watch

class FakeTime:
    """A monotonic clock that only moves when slept (or by a sampler's own duration)."""

    def __init__(self):
        self.now = 100.0
        self.sleeps = []

    def clock(self):
        return self.now

    def sleep(self, seconds):
        assert seconds > 0
        self.sleeps.append(seconds)
        self.now += seconds


def make_sampler(rates, fake, duration=0.2):
    calls = []

    def sampler(log_since):
        rate = rates[len(calls)]
        calls.append(log_since)
        fake.now += duration  # a sample takes some time
        return dict(ts="t%d" % len(calls), epoch=1000.0 + len(calls), error_rate=rate, latency_ms=10.0,
                    failing=["health: down"] if rate else [])
    return sampler, calls


def test_sample_times_cover_the_whole_window():
    assert _verify.sample_times(6, 2) == [0, 2, 4, 6]
    assert _verify.sample_times(900, 60) == [60 * i for i in range(16)]
    assert _verify.sample_times(5, 2) == [0, 2, 4, 5]
    assert _verify.sample_times(2, 1) == [0, 1, 2]       # the drills' short watch (scripts/staging.sh)
    assert _verify.sample_times(2, 2) == [0, 2]
    assert _verify.sample_times(0, 60) == []


def test_watch_without_rebound_samples_on_schedule():
    fake = FakeTime()
    sampler, calls = make_sampler([0.0] * 4, fake)
    r = _verify.watch(STACK, 6, 2, 500.0, sampler=sampler, clock=fake.clock, sleep=fake.sleep)
    assert r["passed"] is True and r["rebound_at"] is None
    # the closing sample at the window's end looks at its last interval too
    assert [s["offset_s"] for s in r["samples"]] == [0.0, 2.0, 4.0, 6.0]
    assert [s["duration_s"] for s in r["samples"]] == [0.2, 0.2, 0.2, 0.2]
    # paced: never sleeps past the next due time, in bounded steps
    assert max(fake.sleeps) <= 0.5
    assert sum(fake.sleeps) == pytest.approx(6.0 - 0.2 * 3)
    # the first sample counts log lines from since, each next one from the previous sample
    assert calls == [500.0, 1001.0, 1002.0, 1003.0]


def test_watch_stops_early_on_rebound():
    fake = FakeTime()
    sampler, calls = make_sampler([0.0, 0.5, 0.0, 0.0], fake)
    r = _verify.watch(STACK, 8, 2, 0.0, sampler=sampler, clock=fake.clock, sleep=fake.sleep)
    assert r["passed"] is False
    assert r["rebound_at"] == "t2"
    assert len(r["samples"]) == 2 and len(calls) == 2
    assert r["elapsed"] < 8


def test_watch_tolerates_up_to_the_rebound_rate():
    fake = FakeTime()
    sampler, _calls = make_sampler([0.0, 0.2, 0.1, 0.4], fake)
    r = _verify.watch(STACK, 8, 2, 0.0, rebound_error_rate=0.2, sampler=sampler, clock=fake.clock, sleep=fake.sleep)
    assert r["passed"] is False
    assert [s["error_rate"] for s in r["samples"]] == [0.0, 0.2, 0.1, 0.4]
    assert r["rebound_sample"]["error_rate"] == 0.4


def test_watch_slow_samples_do_not_sleep():
    fake = FakeTime()
    sampler, _calls = make_sampler([0.0] * 4, fake, duration=3.0)
    r = _verify.watch(STACK, 6, 2, 0.0, sampler=sampler, clock=fake.clock, sleep=fake.sleep)
    assert len(r["samples"]) == 4
    assert fake.sleeps == []


@pytest.mark.parametrize("window, interval, rate, word", [
    (-1, 1, 0, "window"), (10, 0, 0, "interval"), (5, 10, 0, "longer than the window"),
    (10, 1, 1.0, "rebound_error_rate"), (10, 1, -0.1, "rebound_error_rate"),
])
def test_watch_bad_input(window, interval, rate, word):
    with pytest.raises(_verify.VerifyError, match=word):
        _verify.watch(STACK, window, interval, 0.0, rebound_error_rate=rate, sampler=lambda since: {})


def test_take_sample_error_rate_and_latency():
    answers = dict(HEALTHY)
    answers["/u2"] = (503, {"error": "db"}, 5.0)
    client = FakeClient(logs={"svc-1": LOG})
    s = _verify.take_sample(STACK, _epoch(20), client=client, probe=fake_probe(answers), now=lambda: _epoch(30))
    assert s["probes"] == 4 and s["errors"] == 1
    assert s["error_rate"] == 0.25
    assert s["latency_ms"] == 40.0
    assert s["log_errors"] == 1  # the ERROR at :21; the panic at :30 belongs to the next interval
    assert s["failing"] == ["u2: status 503"]


def test_latency_is_judged_after_the_warm_up_round():
    from ansible_collections.sre.incident.plugins.module_utils._verify import latency_check

    def probe(round_no, ms):
        return {"round": round_no, "latency_ms": ms, "status": 200, "ok": True}

    cold_then_warm = [probe(1, 900.0), probe(1, 40.0), probe(2, 60.0), probe(2, 45.0)]
    assert latency_check(cold_then_warm, 500)["passed"] is True
    slow_when_warm = [probe(1, 40.0), probe(2, 700.0)]
    assert latency_check(slow_when_warm, 500)["passed"] is False
    unanswered_first = [{"round": 1, "latency_ms": None, "status": None, "error": "refused"}, probe(2, 40.0)]
    assert latency_check(unanswered_first, 500)["passed"] is False
