# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""sre.incident.verify on the real stacks (both example stacks): real measurements, real induced failures.

Each test breaks one thing for a short window (the stack is shared with other test files), runs
the module through ``ansible-playbook``, and compares what it reports with the real state read
here (HTTP, the engine). Everything broken is repaired in ``finally``.
"""
from __future__ import annotations

import calendar
import json
import os
import random
import subprocess
import threading
import time
from pathlib import Path

import pytest

from conftest import ROOT, VENV_BIN, http_get, local_stack, wait_for
from faults import fault as inject_fault

pytestmark = pytest.mark.integration

PLAYBOOK = """
- name: Run recovery_check once per call
  hosts: recsys
  gather_facts: false
  tasks:
    - name: Say the playbook is ready (the test injects its fault now)
      ansible.builtin.copy:
        content: ready
        dest: "{{ rc_out }}.ready"
        mode: "0600"
      delegate_to: localhost
    - name: Wait for the go
      ansible.builtin.wait_for:
        path: "{{ rc_out }}.go"
        timeout: 60
      delegate_to: localhost
    - name: Check
      sre.incident.verify:
        stack: "{{ rc_stack }}"
        since: "{{ item.since | default(omit) }}"
        checks: "{{ item.checks | default(omit) }}"
        thresholds: "{{ item.thresholds | default(omit) }}"
        probe_rounds: "{{ item.probe_rounds | default(omit) }}"
        watch_window: "{{ item.watch_window | default(omit) }}"
        watch_interval: "{{ item.watch_interval | default(omit) }}"
        rebound_error_rate: "{{ item.rebound_error_rate | default(omit) }}"
      loop: "{{ rc_calls }}"
      register: rc
    - name: Save the results
      ansible.builtin.copy:
        content: "{{ rc.results | to_json }}"
        dest: "{{ rc_out }}"
        mode: "0600"
      delegate_to: localhost
"""


def iso(epoch):
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(epoch)) + ".%03dZ" % int((epoch % 1) * 1000)


def recovery_check(spec, tmp_path, *calls, stack=None, fault=None):
    """Run the module once per call dict; returns the module results in order.

    ``fault()`` is called once the playbook is up and waiting, right before the module runs, so
    the stack is broken for about a second before it is measured (other test sessions repair
    the shared stack when they find it broken).
    """
    book = tmp_path / "rc.yml"
    book.write_text(PLAYBOOK)
    out = tmp_path / f"rc-{random.randrange(10 ** 9)}.json"
    extra = dict(rc_stack=stack or local_stack(spec), rc_calls=list(calls), rc_out=str(out))
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_NOCOLOR="1",
               PATH=f"{VENV_BIN}:{os.environ.get('PATH', '')}")
    proc = subprocess.Popen([str(VENV_BIN / "ansible-playbook"), str(book), "-i", spec.inventory,
                             "-e", json.dumps(extra)], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        ready = Path(f"{out}.ready")
        assert wait_for(lambda: ready.exists() or proc.poll() is not None, timeout=60, interval=0.05)
        if fault is not None:
            fault()
        Path(f"{out}.go").write_text("go")
        output, _err = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, output[-4000:]
    return json.loads(out.read_text())


def by_name(result):
    return {c["name"]: c for c in result["checks"]}


def settled(stack):
    """Wait (bounded) until the shared stack is healthy and answers; other sessions break it too."""
    return wait_for(lambda: stack.healthy() and stack.service_answers(), timeout=90)


def snapshot(stack):
    """Who runs since when: changes when anyone stops, restarts or recreates a container."""
    return {c.name: (c.status, c.attrs["State"]["StartedAt"]) for c in stack.containers()
            if c.labels.get("com.docker.compose.service") not in stack.spec.optional_services}


def restart(stack, service):
    """Start a stopped/killed container again and wait until the service answers."""
    container = stack.container(service)
    if container is not None:
        container.reload()
        if container.status != "running":
            container.start()
    if not settled(stack):
        stack.restore()


ATTEMPTS = 4


def untouched_run(stack_, tmp_path, *calls, **kwargs):
    """Run on a settled stack; retry when another session changed a container during the run."""
    for _attempt in range(ATTEMPTS):
        assert settled(stack_), "the shared stack did not settle"
        before = snapshot(stack_)
        results = recovery_check(stack_.spec, tmp_path, *calls, **kwargs)
        if snapshot(stack_) == before and stack_.healthy():
            return results
    pytest.fail(f"the stack was changed by someone else during each of {ATTEMPTS} runs")


def test_healthy_stack_passes_every_check_with_real_values(any_stack, tmp_path):
    stack, spec = any_stack, any_stack.spec
    result = untouched_run(stack, tmp_path, dict(since=iso(time.time())))[0]
    assert result["passed"] is True, result["summary"]
    assert result["changed"] is False
    checks = by_name(result)
    assert list(checks) == ["health", "recommendations", "latency", "log_errors", "resources", "edge"]
    assert checks["health"]["value"] == 200 == http_get("/health", base=spec.base_url)[0]
    # what users reach: the edge answers as the service does
    assert checks["edge"]["passed"] is True and http_get("/health", base=spec.edge_url)[0] == 200
    _status, body = http_get("/api/recommendations/%s?limit=10" % spec.users[0], base=spec.base_url)
    assert checks["recommendations"]["value"] == len(body["recommendations"]) == 10
    assert 0 < checks["latency"]["value"] < 500
    assert checks["log_errors"]["value"] == 0
    # the resources are those of the real container, read independently from the engine
    container = stack.container()
    raw = container.stats(stream=False)
    limit = raw["memory_stats"]["limit"]
    (reading,) = checks["resources"]["containers"]
    assert reading["container"] == container.name
    assert reading["memory_limit_bytes"] == limit
    assert abs(reading["memory_used_bytes"] - raw["memory_stats"]["usage"]) < 64 * 1024 * 1024
    assert 0 <= checks["resources"]["value"]["cpu_percent"] < 50
    assert 0 < checks["resources"]["value"]["memory_percent"] < 60
    assert set(result["checklist"]) == {"health_200", "recommendations_returned", "several_users_ok",
                                        "latency_under_500ms", "no_new_errors", "resources_normal",
                                        "users_answered_via_edge"}
    assert all(item["passed"] for item in result["checklist"].values())


def under_fault(stack, tmp_path, service, call):
    """Stop ``service`` right before the module runs, start it again after.

    Retried when someone else revived it meanwhile (other sessions repair the shared stack when
    they find it broken): the container must still be stopped when the module has returned.
    """
    for _attempt in range(ATTEMPTS):
        assert settled(stack), "the shared stack did not settle"
        try:
            result = recovery_check(stack.spec, tmp_path, call, fault=lambda: stack.container(service).stop(timeout=5))[0]
            held = (stack.state(service) or {}).get("Status") not in (None, "running")
        finally:
            restart(stack, service)
        if held:
            return result
    pytest.fail(f"{service} was restarted by someone else during each of {ATTEMPTS} runs")


def test_service_stopped_fails_health_and_resources(any_stack, tmp_path):
    result = under_fault(any_stack, tmp_path, any_stack.spec.service,
                         dict(checks=["health", "recommendations", "latency", "resources"], probe_rounds=1))
    checks = by_name(result)
    assert result["passed"] is False
    assert checks["health"]["passed"] is False and checks["health"]["value"] is None
    assert "connection refused" in checks["health"]["detail"]
    assert checks["recommendations"]["passed"] is False
    assert checks["latency"]["value"] is None
    assert "is exited" in checks["resources"]["detail"]


def test_redis_stopped_fails_health_with_503(any_stack, tmp_path):
    result = under_fault(any_stack, tmp_path, any_stack.spec.redis["service"], dict(checks=["health"], probe_rounds=1))
    health = by_name(result)["health"]
    assert health["passed"] is False
    assert health["value"] == 503
    assert "redis" in health["detail"]


def make_database_errors(stack):
    """Stop the database, ask for recommendations nobody has cached (503 + error log), start it again."""
    spec = stack.spec
    stack.container(spec.database["service"]).stop(timeout=5)
    failed = 0
    try:
        for limit in random.sample(range(11, 99), 3):
            user = spec.user(random.randint(20, 200))
            status, _body = http_get(f"/api/recommendations/{user}?limit={limit}", base=spec.base_url)
            failed += status == 503
    finally:
        restart(stack, spec.database["service"])
    return failed


def service_identity(stack):
    container = stack.container()
    return container and (container.id, container.attrs["State"]["StartedAt"])


def test_error_lines_after_since_fail_no_new_errors(any_stack, tmp_path):
    stack = any_stack
    for _attempt in range(ATTEMPTS):
        assert settled(stack)
        # the errors live in this container's log: it must stay the same one until it is read
        identity = service_identity(stack)
        before = time.time()
        failed = make_database_errors(stack)
        after = time.time()
        if failed != 3:
            continue
        old, new = recovery_check(stack.spec, tmp_path, dict(checks=["log_errors"], since=iso(before)),
                                  dict(checks=["log_errors"], since=iso(after)))
        if service_identity(stack) == identity and stack.healthy():
            break
    else:
        pytest.fail("could not provoke and read database errors on the shared stack")
    old_check, new_check = by_name(old)["log_errors"], by_name(new)["log_errors"]
    # every failed request logged at least one error line (the database error and its 503 access line)
    assert old_check["passed"] is False
    assert old_check["value"] >= failed
    assert any('"level":"error"' in line.lower().replace(" ", "") for line in old_check["excerpt"]), old_check["excerpt"]
    assert new_check["passed"] is True, new_check["detail"]
    assert new_check["value"] == 0


def test_injected_latency_fails_the_latency_check(any_stack, tmp_path):
    stack = any_stack

    def inject():   # about 800 ms per answer, from the host (tc in the service's network namespace)
        inject_fault(tmp_path, name="latency", state="injected", delay_ms=800, inventory=stack.spec.inventory)

    try:
        result = untouched_run(stack, tmp_path, dict(checks=["recommendations", "latency"], probe_rounds=1),
                               fault=inject)[0]
    finally:
        inject_fault(tmp_path, name="latency", state="rolled_back", inventory=stack.spec.inventory)
    checks = by_name(result)
    assert checks["recommendations"]["passed"] is True
    assert checks["latency"]["passed"] is False
    assert 500 < checks["latency"]["value"] < 2500
    assert result["failed_checks"] == ["latency"]


QUIET = (177, 178)  # sample users other tests do not probe


def quiet_stack(spec):
    return dict(local_stack(spec), sample_users=[spec.user(n) for n in QUIET])


def test_watch_takes_one_sample_per_interval(any_stack, tmp_path):
    stack = any_stack
    quiet = quiet_stack(stack.spec)
    result = untouched_run(stack, tmp_path, dict(checks=[], watch_window=6, watch_interval=2), stack=quiet)[0]
    assert result["watch_passed"] is True, result["samples"]
    assert all(s["error_rate"] == 0 and s["latency_ms"] > 0 for s in result["samples"])
    offsets = [s["offset_s"] for s in result["samples"]]
    # 0, 2, 4 and the closing sample at the window's end, 6: the whole window is looked at
    assert len(offsets) == 4 and 5.5 < offsets[-1] < 6.5, offsets
    assert all(1.5 < b - a < 2.5 for a, b in zip(offsets, offsets[1:])), offsets
    # what the record ticks; no check ran, so nothing is verified
    assert result["ticks"] == {"watch_every_minute": "4 samples every 2 s over 6 s",
                               "error_rate_no_rebound": "max error rate 0.0 (limit 0.0)"}, result["ticks"]


def test_watch_catches_a_rebound_early(any_stack, tmp_path):
    stack = any_stack
    quiet = quiet_stack(stack.spec)
    first_user = b'"user":"%s"' % stack.spec.user(QUIET[0]).encode()
    for _attempt in range(ATTEMPTS):
        assert settled(stack)
        service = stack.container()
        killed = {}

        def killer():
            # kill the service about 2 s after the watch's first sample reached it
            def first_sample_seen():
                try:
                    return first_user in service.logs(since=int(started), stdout=True, stderr=False).replace(b" ", b"")
                except Exception:  # the container was removed by someone else
                    return None
            if wait_for(first_sample_seen, timeout=30, interval=0.1):
                time.sleep(2.0)  # the fault lands between the second and the third sample
                try:
                    service.kill()
                    killed["at"] = time.time()
                except Exception:  # someone else stopped it first
                    pass

        started = time.time()
        thread = threading.Thread(target=killer, daemon=True)
        try:
            result = recovery_check(stack.spec, tmp_path, dict(checks=[], watch_window=20, watch_interval=2), stack=quiet,
                                    fault=thread.start)[0]
        finally:
            thread.join(timeout=40)
            restart(stack, stack.spec.service)
        if "at" in killed and result["samples"][0]["error_rate"] == 0:
            break
    else:
        pytest.fail("could not kill the service mid-watch on the shared stack")
    assert result["watch_passed"] is False
    assert result["passed"] is False
    rebound = result["samples"][-1]
    assert result["rebound_at"] == rebound["ts"]
    assert result["rebound"].startswith("Error rate rebounded at %s: health: " % rebound["ts"]), result["rebound"]
    assert set(result["ticks"]) == {"watch_every_minute"}, result["ticks"]
    # the first sample that saw the kill (it may have landed in the middle of that sample's probes)
    assert rebound["error_rate"] > 0
    assert all(sample["error_rate"] == 0 for sample in result["samples"][:-1]), result["samples"]
    # stopped early: the rebound came at the first sample after the kill, well before the 20 s window ended
    assert rebound["offset_s"] < 12
    assert 2 <= len(result["samples"]) < 10
    assert calendar.timegm(time.strptime(rebound["ts"][:19], "%Y-%m-%dT%H:%M:%S")) >= int(killed["at"]) - 1
