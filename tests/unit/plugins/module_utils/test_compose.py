# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

import datetime
import functools
import time

import pytest

from ansible_collections.sre.incident.plugins.module_utils import _compose, _verify
from ansible_collections.sre.incident.plugins.module_utils._compose import (
    ComposeClient,
    compose_environment,
    container_state,
    interpolate,
    plan_action,
    predict_status,
    target_reached,
)


def make_attrs(name="recsys_web_1", service="web", project="recsys", status="running", health=None,
               healthcheck=True, exit_code=0, oneoff="False", number="1", restart_policy="no",
               started_at="2024-01-01T00:00:00Z", config_files=None):
    labels = {
        "com.docker.compose.project": project,
        "com.docker.compose.service": service,
        "com.docker.compose.oneoff": oneoff,
        "com.docker.compose.container-number": number,
    }
    if config_files:
        labels["com.docker.compose.project.config_files"] = config_files
    state = {
        "Status": status, "Running": status == "running", "Paused": status == "paused",
        "Restarting": status == "restarting", "OOMKilled": False, "Dead": False, "Pid": 1,
        "ExitCode": exit_code, "Error": "", "StartedAt": started_at,
        "FinishedAt": "0001-01-01T00:00:00Z",
    }
    if health:
        state["Health"] = {"Status": health, "FailingStreak": 0, "Log": []}
    config = {"Labels": labels, "Image": "recsys_web"}
    if healthcheck:
        config["Healthcheck"] = {"Test": ["CMD", "true"]}
    return {
        "Id": "0123456789abcdef0123", "Name": "/" + name, "Image": "sha256:abc", "RestartCount": 2,
        "State": state, "Config": config, "HostConfig": {"RestartPolicy": {"Name": restart_policy}},
    }


# ------------------------------------------------------------------ container_state

def test_container_state_plain_dict():
    st = container_state(make_attrs(health="healthy"))
    assert st == dict(
        name="recsys_web_1", id="0123456789ab", project="recsys", service="web", number=1,
        status="running", running=True, health="healthy", has_healthcheck=True, exit_code=0,
        oom_killed=False, error=None, restart_count=2, started_at="2024-01-01T00:00:00Z",
        finished_at="0001-01-01T00:00:00Z", image="sha256:abc", image_name="recsys_web",
        restart_policy="no",
    )


def test_container_state_without_health_and_old_engine_fields():
    attrs = make_attrs(status="exited", exit_code=137, healthcheck=False)
    del attrs["State"]["Status"]
    st = container_state(attrs)
    assert st["status"] == "exited"
    assert st["health"] == "none"
    assert st["has_healthcheck"] is False
    assert st["exit_code"] == 137
    attrs = make_attrs()
    del attrs["State"]["Status"]
    attrs["State"]["Paused"] = True
    assert container_state(attrs)["status"] == "paused"


def test_container_state_disabled_healthcheck():
    attrs = make_attrs()
    attrs["Config"]["Healthcheck"] = {"Test": ["NONE"]}
    assert container_state(attrs)["has_healthcheck"] is False


def test_is_ready_and_status_text():
    assert _compose.is_ready(container_state(make_attrs(health="healthy")))
    assert _compose.is_ready(container_state(make_attrs(healthcheck=False)))
    assert not _compose.is_ready(container_state(make_attrs(health="starting")))
    assert not _compose.is_ready(container_state(make_attrs(status="exited")))
    assert _compose.status_text(container_state(make_attrs(status="exited", exit_code=137))) == "exited(137)/none"
    assert _compose.status_text(None) == "missing"


# ------------------------------------------------------------------ plans

@pytest.mark.parametrize("state, status, action", [
    ("present", "exited", None),
    ("started", "running", None),
    ("started", "restarting", None),
    ("started", "exited", "start"),
    ("started", "created", "start"),
    ("started", "paused", "unpause"),
    ("stopped", "running", "stop"),
    ("stopped", "paused", "stop"),
    ("stopped", "exited", None),
    ("restarted", "running", "restart"),
    ("restarted", "exited", "restart"),
    ("restarted", "paused", "unpause+restart"),
    ("killed", "running", "kill"),
    ("killed", "exited", None),
    ("killed", "created", None),
    ("killed", "paused", "kill"),
    ("paused", "running", "pause"),
    ("paused", "paused", None),
    ("unpaused", "paused", "unpause"),
    ("unpaused", "running", None),
    ("unpaused", "exited", None),
])
def test_plan_action(state, status, action):
    assert plan_action(state, status) == action


def test_plan_kill_paused_with_other_signal_unpauses_first():
    assert plan_action("killed", "paused", "SIGTERM") == "unpause+kill"
    assert plan_action("killed", "paused", "9") == "kill"


@pytest.mark.parametrize("status", ["exited", "created", "restarting"])
def test_cannot_pause_a_stopped_container(status):
    with pytest.raises(_compose.InvalidTransition, match=status):
        plan_action("paused", status)


def test_unknown_state():
    with pytest.raises(ValueError, match="bogus"):
        plan_action("bogus", "running")


def test_predict_status():
    assert predict_status("started", "exited") == "running"
    assert predict_status("killed", "running") == "exited"
    assert predict_status("unpaused", "exited") == "exited"


def test_target_reached():
    running = container_state(make_attrs(healthcheck=False))
    starting = container_state(make_attrs(health="starting"))
    exited = container_state(make_attrs(status="exited"))
    assert target_reached("started", None, running)
    assert not target_reached("started", None, starting)
    assert target_reached("stopped", running, exited)
    assert not target_reached("killed", running, running)
    # restart policy brought up a new process: the killed one is gone
    reborn = container_state(make_attrs(started_at="2024-01-01T00:01:00Z"))
    assert target_reached("killed", running, reborn)


@pytest.mark.parametrize("given, name", [("SIGKILL", "SIGKILL"), ("kill", "SIGKILL"), ("9", "SIGKILL"),
                                         (15, "SIGTERM"), ("sigterm", "SIGTERM"), ("HUP", "SIGHUP")])
def test_normalize_signal(given, name):
    assert _compose.normalize_signal(given) == name


@pytest.mark.parametrize("bad", ["SIGFOO", "", None, "999"])
def test_normalize_signal_rejects(bad):
    with pytest.raises(ValueError):
        _compose.normalize_signal(bad)


# ------------------------------------------------------------------ compose CLI argv

def test_compose_argv_prefers_v2_when_it_answers():
    calls = []

    def run_command(argv):
        calls.append(argv)
        return 0, "Docker Compose version v2.27.0", ""

    which = {"docker": "/usr/bin/docker", "docker-compose": "/usr/bin/docker-compose"}.get
    argv = _compose.compose_argv("recsys", "/srv/stack", ["docker-compose.yml"], run_command=run_command, which=which)
    assert argv == ["/usr/bin/docker", "compose", "-p", "recsys", "--project-directory", "/srv/stack",
                    "-f", "/srv/stack/docker-compose.yml"]
    assert calls == [["/usr/bin/docker", "compose", "version"]]


def test_compose_argv_falls_back_to_v1():
    which = {"docker": "/usr/bin/docker", "docker-compose": "/usr/local/bin/docker-compose"}.get
    argv = _compose.compose_argv("recsys", "/srv/stack", ["/abs/a.yml"], run_command=lambda a: (1, "", "unknown"),
                                 which=which)
    assert argv[:3] == ["/usr/local/bin/docker-compose", "-p", "recsys"]
    assert argv[-2:] == ["-f", "/abs/a.yml"]


def test_compose_cli_missing():
    with pytest.raises(_compose.ComposeCliMissing):
        _compose.compose_binary(run_command=lambda a: (1, "", ""), which=lambda name: None)


def test_services_in_compose_files(tmp_path):
    a = tmp_path / "a.yml"
    a.write_text("services:\n  web: {image: x}\n  db: {image: y}\n")
    b = tmp_path / "b.yml"
    b.write_text("services:\n  standby:\n    profiles: [degraded]\n")
    bad = tmp_path / "bad.yml"
    bad.write_text(": : :\n")
    assert _compose.services_in_compose_files([str(a), str(b), str(bad), str(tmp_path / "none.yml")]) == \
        ["db", "standby", "web"]


# ------------------------------------------------------------------ ensure_services with a fake engine

class FakeContainer:
    """Just enough of docker.models.containers.Container, with engine-like transitions."""

    def __init__(self, attrs):
        self.attrs = attrs
        self.name = attrs["Name"].lstrip("/")
        self.calls = []

    def _set(self, status, exit_code=None, new_process=False):
        st = self.attrs["State"]
        st["Status"] = status
        st["Running"] = status == "running"
        st["Paused"] = status == "paused"
        if exit_code is not None:
            st["ExitCode"] = exit_code
        if new_process:
            st["StartedAt"] = "2024-01-01T00:%02d:00Z" % (len(self.calls),)
            if "Health" in st:
                st["Health"]["Status"] = "healthy"

    def reload(self):
        pass

    def start(self):
        self.calls.append("start")
        self._set("running", new_process=True)

    def stop(self, timeout=None):
        self.calls.append(("stop", timeout))
        self._set("exited", 143)

    def restart(self, timeout=None):
        self.calls.append(("restart", timeout))
        self._set("running", new_process=True)

    def kill(self, signal=None):
        self.calls.append(("kill", signal))
        self._set("exited", 137)

    def pause(self):
        self.calls.append("pause")
        self._set("paused")

    def unpause(self):
        self.calls.append("unpause")
        self._set("running")


class FakeContainers:
    def __init__(self, containers):
        self.containers = containers

    def list(self, all=True, filters=None):
        wanted = dict(label.split("=", 1) for label in filters["label"] if "=" in label)
        keys = [label for label in filters["label"] if "=" not in label]
        out = []
        for c in self.containers:
            labels = c.attrs["Config"]["Labels"]
            if all is False and c.attrs["State"]["Status"] != "running":
                continue
            if any(labels.get(k) != v for k, v in wanted.items()) or any(k not in labels for k in keys):
                continue
            out.append(c)
        return out


class FakeDocker:
    def __init__(self, containers):
        self.containers = FakeContainers(containers)


@pytest.fixture
def engine():
    web = FakeContainer(make_attrs("recsys_web_1", "web", health="healthy"))
    db = FakeContainer(make_attrs("recsys_db_1", "db", status="exited", exit_code=137, healthcheck=False))
    oneoff = FakeContainer(make_attrs("recsys_web_run_1", "web", oneoff="True"))
    other = FakeContainer(make_attrs("other_x_1", "x", project="other"))
    return dict(web=web, db=db, oneoff=oneoff, client=ComposeClient(FakeDocker([web, db, oneoff, other])))


def test_find_containers_ignores_oneoff_and_other_projects(engine):
    names = [c.name for c in engine["client"].find_containers("recsys")]
    assert names == ["recsys_db_1", "recsys_web_1"]
    assert engine["client"].project_services("recsys") == ["db", "web"]
    assert engine["client"].projects() == ["other", "recsys"]


def test_unknown_project_touches_nothing(engine):
    with pytest.raises(_compose.UnknownProject, match="'nope'.*other, recsys"):
        _compose.ensure_services(engine["client"], "nope", ["web"], "restarted")


def test_unknown_service_touches_nothing(engine):
    with pytest.raises(_compose.UnknownService) as info:
        _compose.ensure_services(engine["client"], "recsys", ["web", "cache"], "restarted")
    assert "'cache'" in info.value.msg and "db, web" in info.value.msg
    assert info.value.details["known_services"] == ["db", "web"]
    assert engine["web"].calls == []


def test_invalid_transition_touches_nothing(engine):
    with pytest.raises(_compose.InvalidTransition, match="recsys_db_1"):
        _compose.ensure_services(engine["client"], "recsys", ["web", "db"], "paused")
    assert engine["web"].calls == []


def test_missing_container_needs_compose_up(engine, tmp_path):
    compose = tmp_path / "docker-compose.yml"
    compose.write_text("services:\n  web: {}\n  db: {}\n  standby: {}\n")
    engine["web"].attrs["Config"]["Labels"]["com.docker.compose.project.config_files"] = str(compose)
    with pytest.raises(_compose.MissingContainer, match="compose up"):
        _compose.ensure_services(engine["client"], "recsys", ["standby"], "started")
    # stopping a service without containers is a no-op
    res = _compose.ensure_services(engine["client"], "recsys", ["standby"], "stopped")
    assert res["changed"] is False
    assert res["services"]["standby"]["missing"] is True


def _recreating(engine, ready=True):
    """A ``recreate`` for ensure_services, as compose_service builds it from ensure_project: an ``up -d`` that creates
    one running container per service (none in check mode, ready then None); records the calls."""
    calls = []

    def recreate(services, timeout, check_mode=False):
        calls.append((list(services), timeout))
        made = [] if check_mode else [FakeContainer(make_attrs("recsys_%s_1" % s, s, health="healthy")) for s in services]
        engine["client"].client.containers.containers.extend(made)
        states = [_compose.container_state(c) for c in made]
        return dict(changed=True, containers=states, ready=None if check_mode else ready,
                    not_ready=[] if ready else states, commands=[dict(cmd=["docker", "compose", "up"], rc=0)])
    return recreate, calls


def test_a_removed_service_is_recreated_and_the_others_act(engine):
    recreate, calls = _recreating(engine)
    res = _compose.ensure_services(engine["client"], "recsys", ["db", "standby"], "restarted", interval=0.01,
                                   recreate=recreate)
    assert calls == [(["standby"], 30.0)]
    assert engine["db"].calls == [("restart", 10)]
    assert res["recreated"] == ["standby"] and res["changed"] is True and res["ready"] is True
    assert res["services"]["standby"]["missing"] is False and res["services"]["standby"]["ready"] is True
    assert res["diff"]["before"] == {"db": "exited(137)/none", "standby": "missing"}
    assert res["commands"][0]["rc"] == 0
    # nothing missing: nothing recreated
    res = _compose.ensure_services(engine["client"], "recsys", ["db"], "started", interval=0.01, recreate=recreate)
    assert res["recreated"] == [] and len(calls) == 1


def test_a_gone_project_is_recreated_only_for_started_and_restarted():
    engine = dict(client=ComposeClient(FakeDocker([])))
    recreate, calls = _recreating(engine, ready=False)
    res = _compose.ensure_services(engine["client"], "recsys", ["web"], "started", recreate=recreate)
    assert calls == [(["web"], 30.0)] and res["recreated"] == ["web"]
    assert res["ready"] is False and res["not_ready"] == ["recsys_web_1"]
    with pytest.raises(_compose.UnknownProject):
        _compose.ensure_services(ComposeClient(FakeDocker([])), "recsys", ["web"], "stopped", recreate=recreate)


def test_check_mode_says_what_it_would_recreate(engine):
    recreate, calls = _recreating(engine)
    res = _compose.ensure_services(engine["client"], "recsys", ["web", "standby"], "restarted", check_mode=True,
                                   recreate=functools.partial(recreate, check_mode=True))
    assert res["recreated"] == ["standby"] and res["changed"] is True and res["ready"] is False
    assert res["services"]["standby"]["missing"] is True and engine["web"].calls == []


def test_volumes_go_only_with_a_backup_set_and_stay_when_none_could_be_taken():
    assert _compose.volumes_decision(False, None, "redis is not running") == dict(remove_volumes=False, volumes_text=None)
    kept = _compose.volumes_decision(True, None, "redis is not running")
    assert kept["remove_volumes"] is False and kept["volumes_text"].endswith("volumes are kept: redis is not running")
    removed = _compose.volumes_decision(True, "/b/manifest.json")
    assert removed["remove_volumes"] is True
    assert "Restore with playbooks/restore_backup.yml -e backup=/b/manifest.json" in removed["volumes_text"]
    # check mode takes no backup; outside it, neither a set nor why there is none is refused
    assert _compose.volumes_decision(True, check_mode=True)["remove_volumes"] is True
    with pytest.raises(ValueError, match="remove_volumes needs backup_manifest"):
        _compose.volumes_decision(True)
    with pytest.raises(ValueError, match="exclude each other"):
        _compose.volumes_decision(True, "/b/manifest.json", "redis is not running")


def test_check_mode_predicts_and_does_nothing(engine):
    res = _compose.ensure_services(engine["client"], "recsys", ["web", "db"], "started", check_mode=True)
    assert res["changed"] is True
    assert res["actions"] == {"recsys_web_1": None, "recsys_db_1": "start"}
    assert res["diff"]["before"] == {"web": "running/healthy", "db": "exited(137)/none"}
    assert res["diff"]["after"]["db"].startswith("running/")
    assert engine["db"].calls == [] and engine["web"].calls == []


def test_started_acts_then_is_idempotent(engine):
    res = _compose.ensure_services(engine["client"], "recsys", ["db", "web"], "started", interval=0.01)
    assert res["changed"] is True
    assert res["ready"] is True
    assert engine["db"].calls == ["start"]
    assert engine["web"].calls == []
    assert {c["name"]: c["status"] for c in res["containers"]} == {"recsys_db_1": "running", "recsys_web_1": "running"}
    res = _compose.ensure_services(engine["client"], "recsys", ["db", "web"], "started", interval=0.01)
    assert res["changed"] is False


def test_restarted_always_changes_and_unpauses_first(engine):
    engine["web"]._set("paused")
    res = _compose.ensure_services(engine["client"], "recsys", ["web"], "restarted", stop_timeout=3, interval=0.01)
    assert res["changed"] is True
    assert engine["web"].calls == ["unpause", ("restart", 3)]
    assert res["ready"] is True
    assert res["waited"] == ["recsys_web_1"]


def test_killed_only_running(engine):
    res = _compose.ensure_services(engine["client"], "recsys", ["web", "db"], "killed", signal="TERM", interval=0.01)
    assert res["changed"] is True
    assert engine["web"].calls == [("kill", "SIGTERM")]
    assert engine["db"].calls == []
    res = _compose.ensure_services(engine["client"], "recsys", ["web", "db"], "killed", interval=0.01)
    assert res["changed"] is False


def test_wait_timeout_reported_not_raised(engine):
    engine["web"].attrs["State"]["Health"]["Status"] = "starting"
    res = _compose.ensure_services(engine["client"], "recsys", ["web"], "started", timeout=0.1, interval=0.02)
    assert res["changed"] is False
    assert res["ready"] is False
    assert res["not_ready"] == ["recsys_web_1"]
    assert res["not_ready_states"][0]["health"] == "starting"


def test_hopeless_container_stops_the_wait_early(engine):
    class Crashing(FakeContainer):
        def start(self):
            self.calls.append("start")
            self._set("exited", 1)

    crash = Crashing(make_attrs("recsys_crash_1", "crash", status="exited", healthcheck=False))
    client = ComposeClient(FakeDocker([crash]))
    res = _compose.ensure_services(client, "recsys", ["crash"], "started", timeout=30, interval=0.01)
    assert res["ready"] is False
    assert res["elapsed"] < 5


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def _looping(restarts, status="restarting"):
    return dict(container_state(make_attrs("shop_api_1", "api", status=status, healthcheck=False,
                                           exit_code=1, restart_policy="unless-stopped")),
                restart_count=restarts)


def test_crash_loop_needs_three_restarts_and_a_crash_over_ten_seconds():
    clock = Clock()
    loop = _compose.CrashLoop(clock=clock)
    assert loop.check([_looping(2)]) is None          # down, but restarted only twice so far
    clock.now += 30
    assert loop.check([_looping(2)]) is None
    assert loop.check([_looping(3)]) == ("api keeps crashing: restarted 3 times by its restart policy "
                                         "(unless-stopped), and down again while watched for 30 s; last exit code 1")
    loop = _compose.CrashLoop(clock=clock)
    loop.check([_looping(6)])
    clock.now += 9
    assert loop.check([_looping(6)]) is None          # a crash loop, but not yet watched for ten seconds
    clock.now += 1
    assert loop.check([_looping(6)]).startswith("api keeps crashing: restarted 6 times")


def test_crash_loop_needs_a_crash_while_watched():
    clock = Clock()
    loop = _compose.CrashLoop(clock=clock)
    loop.check([_looping(5, status="running")])         # crashed in the past, runs now (hung, or up)
    clock.now += 30
    assert loop.check([_looping(5, status="running")]) is None
    assert loop.check([_looping(6, status="running")]) is not None   # it crashed and was restarted between looks


def test_crash_loop_starts_the_watch_again_while_what_it_needs_is_not_ready():
    clock = Clock()
    loop = _compose.CrashLoop(clock=clock)
    loop.check([_looping(3)])
    clock.now += 20
    assert loop.check([_looping(9)], needed_up=False) is None   # its database boots: crashing is expected
    assert loop.check([_looping(9)]) is None                    # the watch starts here
    clock.now += 9
    assert loop.check([_looping(11)]) is None
    clock.now += 1
    assert loop.check([_looping(12)]) is not None


def test_crash_loop_counts_every_container_of_the_service():
    clock = Clock()
    loop = _compose.CrashLoop(clock=clock)
    other = dict(_looping(0, status="running"), id="fedcba987654")
    loop.check([_looping(4), other])
    clock.now += 10
    assert loop.check([_looping(5), other]) is None             # one replica still runs
    # a container recreated during the wait is watched from its first look
    fresh = dict(_looping(4), id="aaaaaaaaaaaa")
    assert loop.check([_looping(5), fresh]) is not None


class Looping(FakeContainer):
    """Crashes at once, and its restart policy starts it again: the engine counts one more restart per look."""

    def start(self):
        self.calls.append("start")
        self._set("restarting", 1)

    def reload(self):
        self.attrs["RestartCount"] += 1


def test_a_crash_loop_under_a_restart_policy_stops_the_wait_early(monkeypatch):
    monkeypatch.setattr(_compose, "CRASH_LOOP_SECONDS", 0.2)
    crash = Looping(make_attrs("shop_api_1", "api", project="shop", status="exited", healthcheck=False,
                               restart_policy="unless-stopped"))
    res = _compose.ensure_services(ComposeClient(FakeDocker([crash])), "shop", ["api"], "started", timeout=30,
                                   interval=0.01)
    assert res["ready"] is False and res["not_ready"] == ["shop_api_1"]
    assert 0.2 <= res["elapsed"] < 5


def test_an_up_waits_on_a_crash_loop_while_the_rest_of_it_is_not_ready(monkeypatch):
    monkeypatch.setattr(_compose, "CRASH_LOOP_SECONDS", 0.05)
    crash = Looping(make_attrs("shop_api_1", "api", project="shop", status="restarting", healthcheck=False,
                               restart_policy="unless-stopped"))

    class Booting(FakeContainer):
        looks = 0

        def reload(self):
            Booting.looks += 1
            if Booting.looks > 20:     # the database is ready after 20 looks
                self.attrs["State"]["Health"]["Status"] = "healthy"
    db = Booting(make_attrs("shop_db_1", "db", project="shop", health="starting"))
    started = time.monotonic()
    seen = _compose.wait_up(ComposeClient(FakeDocker([crash, db])), [crash, db], 30, interval=0.005)
    assert [st["name"] for st in seen if not _compose.is_ready(st)] == ["shop_api_1"]
    assert Booting.looks > 20 and time.monotonic() - started < 5


def test_an_up_gives_up_on_what_needs_a_container_that_exited_for_good(monkeypatch):
    """The order does not matter: the edge, crash-looping because its upstream exited, is waited on first."""
    monkeypatch.setattr(_compose, "CRASH_LOOP_SECONDS", 0.05)
    edge = Looping(make_attrs("recsys_edge_1", "edge", status="restarting", healthcheck=False,
                              restart_policy="unless-stopped"))
    service = FakeContainer(make_attrs("recsys_web_1", "web", status="exited", exit_code=1))
    db = FakeContainer(make_attrs("recsys_db_1", "db", health="healthy"))
    started = time.monotonic()
    seen = _compose.wait_up(ComposeClient(FakeDocker([edge, service, db])), [edge, service, db], 30, interval=0.005)
    assert [st["name"] for st in seen] == ["recsys_edge_1", "recsys_web_1", "recsys_db_1"]
    assert sorted(st["name"] for st in seen if not _compose.is_ready(st)) == ["recsys_edge_1", "recsys_web_1"]
    assert time.monotonic() - started < 5


def test_services_started_together_wait_for_one_that_crashes_until_its_database_is_up(monkeypatch):
    """compose_service with several services waits for them as one up: the service that crashes while
    the database boots is not given up on, and comes up once the database is ready."""
    monkeypatch.setattr(_compose, "CRASH_LOOP_SECONDS", 0.05)
    db = FakeContainer(make_attrs("shop_db_1", "db", project="shop", health="starting"))

    class NeedsDb(Looping):
        def reload(self):
            looks[0] += 1
            if looks[0] > 30:
                db.attrs["State"]["Health"]["Status"] = "healthy"
            if db.attrs["State"]["Health"]["Status"] == "healthy":
                self._set("running")
            else:
                super().reload()
    looks = [0]
    api = NeedsDb(make_attrs("shop_api_1", "api", project="shop", status="exited", healthcheck=False,
                             restart_policy="unless-stopped"))
    res = _compose.ensure_services(ComposeClient(FakeDocker([api, db])), "shop", ["api", "db"], "started",
                                   timeout=30, interval=0.005)
    assert res["ready"] is True and res["not_ready"] == [] and res["waited"] == ["shop_api_1", "shop_db_1"]
    assert looks[0] > 30 and res["elapsed"] < 5


def test_cannot_recover_a_crash_loop_only_once_its_dependencies_are_ready():
    crash = FakeContainer(make_attrs("shop_api_1", "api", project="shop", status="restarting", healthcheck=False,
                                     restart_policy="unless-stopped"))
    crash.attrs["RestartCount"] = 5
    db = FakeContainer(make_attrs("shop_db_1", "db", project="shop", health="starting"))
    client, clock = ComposeClient(FakeDocker([crash, db])), Clock()
    loop = _compose.CrashLoop(clock=clock)
    for _look in range(3):
        assert _compose.cannot_recover(client, "shop", "api", ["db"], crash_loop=loop) is None
        clock.now += 10
    db.attrs["State"]["Health"]["Status"] = "healthy"
    assert _compose.cannot_recover(client, "shop", "api", ["db"], crash_loop=loop) is None
    clock.now += 10
    why = _compose.cannot_recover(client, "shop", "api", ["db"], crash_loop=loop)
    assert why.startswith("api keeps crashing: restarted 5 times") and "watched for 10 s" in why
    assert _compose.cannot_recover(client, "shop", "api", ["db"]) is None    # without the watch: no loop seen


def _ago(seconds):
    moment = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(seconds=seconds)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def test_a_container_without_a_healthcheck_is_settled_once_it_ran_thirty_seconds():
    now = 1_000_000.0
    started = time.strftime("%Y-%m-%dT%H:%M:%S.000000001Z", time.gmtime(now - 29))   # as the engine writes it
    bare = container_state(make_attrs("shop_db_1", "db", healthcheck=False, started_at=started))
    assert _compose.is_ready(bare) and not _compose.is_settled(bare, now=now)
    assert _compose.is_settled(bare, now=now + 1)
    checked = container_state(make_attrs("shop_db_1", "db", health="healthy", started_at=started))
    assert _compose.is_settled(checked, now=now)                 # its healthcheck says so
    starting = container_state(make_attrs("shop_db_1", "db", health="starting"))
    assert not _compose.is_settled(starting, now=now)
    down = container_state(make_attrs("shop_db_1", "db", status="exited", healthcheck=False))
    assert not _compose.is_settled(down, now=now)
    unknown = container_state(make_attrs("shop_db_1", "db", healthcheck=False, started_at=""))
    assert _compose.is_settled(unknown, now=now)                 # no start time: as ready as it looks


def test_cannot_recover_waits_thirty_seconds_on_a_dependency_without_a_healthcheck():
    """A database that runs may still be starting: the service crashing meanwhile is not lost yet."""
    crash = FakeContainer(make_attrs("shop_api_1", "api", project="shop", status="restarting", healthcheck=False,
                                     restart_policy="unless-stopped"))
    crash.attrs["RestartCount"] = 5
    db = FakeContainer(make_attrs("shop_db_1", "db", project="shop", healthcheck=False, started_at=_ago(5)))
    client, clock = ComposeClient(FakeDocker([crash, db])), Clock()
    loop = _compose.CrashLoop(clock=clock)
    for _look in range(3):
        assert _compose.cannot_recover(client, "shop", "api", ["db"], crash_loop=loop) is None
        clock.now += 10
    db.attrs["State"]["StartedAt"] = _ago(31)
    assert _compose.cannot_recover(client, "shop", "api", ["db"], crash_loop=loop) is None
    clock.now += 10
    assert _compose.cannot_recover(client, "shop", "api", ["db"], crash_loop=loop).startswith("api keeps crashing")


def test_an_up_waits_on_a_crash_loop_while_a_container_without_a_healthcheck_is_young(monkeypatch):
    monkeypatch.setattr(_compose, "CRASH_LOOP_SECONDS", 0.05)
    monkeypatch.setattr(_compose, "UNCHECKED_READY_SECONDS", 0.5)
    crash = Looping(make_attrs("shop_api_1", "api", project="shop", status="restarting", healthcheck=False,
                               restart_policy="unless-stopped"))
    db = FakeContainer(make_attrs("shop_db_1", "db", project="shop", healthcheck=False, started_at=_ago(0)))
    started = time.monotonic()
    seen = _compose.wait_up(ComposeClient(FakeDocker([crash, db])), [crash, db], 30, interval=0.01)
    assert [st["name"] for st in seen if not _compose.is_ready(st)] == ["shop_api_1"]
    assert 0.5 <= time.monotonic() - started < 5


def test_sdk_errors_become_docker_error(engine):
    import docker.errors

    def boom(**kwargs):
        raise docker.errors.APIError("conflict", explanation="container is marked for removal")

    engine["web"].restart = boom
    with pytest.raises(_compose.DockerError, match="marked for removal"):
        _compose.ensure_services(engine["client"], "recsys", ["web"], "restarted")


def test_connect_unreachable_engine():
    with pytest.raises(_compose.EngineUnreachable) as info:
        _compose.connect("unix:///nonexistent/docker.sock", timeout=2)
    assert info.value.kind == "engine_unreachable"
    assert "nonexistent" in info.value.msg


def test_docker_common_args_use_env_fallback():
    spec = _compose.DOCKER_COMMON_ARGS
    assert spec["docker_host"]["fallback"][1] == ["DOCKER_HOST"]
    assert spec["docker_timeout"]["type"] == "int" and spec["docker_timeout"]["default"] == 60


def test_as_failure_names_the_kind_and_keeps_the_details():
    down = _compose.EngineUnreachable("engine at unix:///nope did not answer")
    assert down.as_failure() == dict(msg="engine at unix:///nope did not answer", changed=False,
                                     engine_unreachable=True, error_kind="engine_unreachable")
    other = _compose.DockerError("no such service", services=["x"])
    failure = other.as_failure()
    assert failure["engine_unreachable"] is False and failure["error_kind"] == "docker_error"
    assert failure["services"] == ["x"] and failure["changed"] is False


# ------------------------------------------------------------------ read_states (a finding, not a failure)

def test_read_states_reports_containers_and_leaves_out_missing_ones(engine, monkeypatch):
    monkeypatch.setattr(_compose, "connect", lambda host, timeout: engine["client"])
    engine["client"].declared_services = lambda project, containers=None: ["db", "web", "cache"]
    found = _compose.read_states("recsys", ["web", "db", "cache"])
    assert found["containers_error"] is None
    assert {(c["service"], c["status"]) for c in found["containers"]} == {("web", "running"), ("db", "exited")}
    assert engine["web"].calls == [] and engine["db"].calls == []


def test_read_states_unknown_project_is_a_finding(engine, monkeypatch):
    monkeypatch.setattr(_compose, "connect", lambda host, timeout: engine["client"])
    found = _compose.read_states("nope", ["web"])
    assert found["containers"] == []
    assert found["containers_error"]["error_kind"] == "unknown_project"
    assert found["containers_error"]["engine_unreachable"] is False


def test_read_states_unreachable_engine_is_a_finding(monkeypatch):
    def unreachable(host, timeout):
        raise _compose.EngineUnreachable("cannot reach the Docker engine at %s" % host)
    monkeypatch.setattr(_compose, "connect", unreachable)
    found = _compose.read_states("recsys", ["web"], docker_host="unix:///nowhere.sock")
    assert found["containers"] == []
    assert found["containers_error"]["engine_unreachable"] is True
    assert "/nowhere.sock" in found["containers_error"]["msg"]


def test_read_states_unknown_service_is_raised(engine, monkeypatch):
    monkeypatch.setattr(_compose, "connect", lambda host, timeout: engine["client"])
    with pytest.raises(_compose.UnknownService, match="'cache'"):
        _compose.read_states("recsys", ["web", "cache"])


# ------------------------------------------------------------------ cannot_recover (the ladder's early give-up)

def test_cannot_recover_while_a_dependency_is_down(engine):
    why = _compose.cannot_recover(engine["client"], "recsys", "web", ["db"])
    assert why.startswith("dependency db is exited") and "web cannot recover" in why


def test_cannot_recover_when_the_service_exited(engine):
    why = _compose.cannot_recover(engine["client"], "recsys", "db")
    assert why == "every container of db exited (exit code 137)"


def test_can_recover_while_everything_needed_runs(engine):
    assert _compose.cannot_recover(engine["client"], "recsys", "web") is None
    engine["db"].start()
    assert _compose.cannot_recover(engine["client"], "recsys", "web", ["db"]) is None


def test_cannot_recover_when_a_dependency_was_removed(engine):
    why = _compose.cannot_recover(engine["client"], "recsys", "web", ["cache"])
    assert why.startswith("dependency cache is ") and why.endswith("web cannot recover while it is down")


def test_unreachable_engine_is_no_reason_to_give_up(engine, monkeypatch):
    def unreachable(*args, **kwargs):
        raise _compose.EngineUnreachable("engine gone")
    monkeypatch.setattr(engine["client"], "find_containers", unreachable)
    assert _compose.cannot_recover(engine["client"], "recsys", "web", ["db"]) is None


@pytest.mark.parametrize("text, expected", [
    ("${PREFIX:-recsys-example}/svc:latest", "recsys-example/svc:latest"),
    ("${EMPTY:-fallback}", "fallback"),
    ("${EMPTY-kept}", ""),
    ("${UNSET-used}", "used"),
    ("${PREFIX2}/x $PREFIX2", "team/x team"),
    ("${REQ:?must be set}", "r"),
    ("cost $$5", "cost $5"),
    ("plain/image:1", "plain/image:1"),
])
def test_interpolate_reads_compose_variables_like_compose(text, expected):
    assert interpolate(text, {"EMPTY": "", "PREFIX2": "team", "REQ": "r"}) == expected


def test_compose_environment_reads_dot_env_under_the_process_environment(tmp_path):
    (tmp_path / ".env").write_text("# comment\nA=from-file\nB='quoted'\n")
    env = compose_environment(str(tmp_path), environ={"A": "from-process"})
    assert env["A"] == "from-process" and env["B"] == "quoted"
    assert compose_environment(str(tmp_path / "missing"), environ={}) == {}


class _OldSdkContainer:
    """A container of a docker SDK before 6.1: stats() knows no one_shot."""
    name = "old-sdk"

    def __init__(self):
        self.calls = []

    def stats(self, decode=None, stream=True):
        self.calls.append(dict(decode=decode, stream=stream))
        return {"read": "now", "precpu_stats": {}}


class _NewSdkContainer(_OldSdkContainer):
    def stats(self, decode=None, stream=True, one_shot=None):  # pylint: disable=arguments-differ
        self.calls.append(dict(decode=decode, stream=stream, one_shot=one_shot))
        return {"read": "now"}


def test_stats_one_shot_with_an_sdk_that_knows_it():
    container = _NewSdkContainer()
    assert ComposeClient(FakeDocker([])).stats(container, one_shot=True) == {"read": "now"}
    assert container.calls == [dict(decode=None, stream=False, one_shot=True)]


def test_stats_one_shot_falls_back_to_a_full_sample_on_an_older_sdk():
    container = _OldSdkContainer()
    assert ComposeClient(FakeDocker([])).stats(container, one_shot=True) == {"read": "now", "precpu_stats": {}}
    assert container.calls == [dict(decode=None, stream=False)]


def test_stats_other_type_errors_are_not_swallowed():
    class Broken(_OldSdkContainer):
        def stats(self, decode=None, stream=True, one_shot=None):  # pylint: disable=arguments-differ
            raise TypeError("something else")
    with pytest.raises(TypeError, match="something else"):
        ComposeClient(FakeDocker([])).stats(Broken(), one_shot=True)


class _ExecContainer:
    """A container whose engine loses the output of the first ``lost`` runs (exit code 0, no output)."""

    name = "recsys-redis-1"

    def __init__(self, lost, output=b"redis_version:7.2.4\n"):
        self.lost = lost
        self.output = output
        self.runs = 0

    def exec_run(self, argv, **kwargs):
        import collections  # pylint: disable=import-outside-toplevel
        self.runs += 1
        out = b"" if self.runs <= self.lost else self.output
        return collections.namedtuple("ExecResult", "exit_code output")(0, (out, b""))


@pytest.mark.parametrize("lost, runs, stdout", [(0, 1, "redis_version:7.2.4\n"), (1, 2, "redis_version:7.2.4\n"),
                                                (2, 3, "redis_version:7.2.4\n"), (5, 3, "")])
def test_exec_in_runs_a_read_only_command_again_when_its_output_was_lost(lost, runs, stdout):
    container = _ExecContainer(lost)
    res = ComposeClient(None).exec_in(container, ["redis-cli", "INFO"], expect_output=True)
    assert (container.runs, res["rc"], res["stdout"]) == (runs, 0, stdout)


def test_exec_in_runs_a_command_once_unless_its_output_is_expected():
    container = _ExecContainer(lost=1)
    res = ComposeClient(None).exec_in(container, ["redis-cli", "FLUSHDB"])
    assert (container.runs, res["stdout"]) == (1, "")


class _StatsContainer:
    id = "c1d2"
    name = "recsys-redis-1"
    attrs = {"State": {"Running": True, "Pid": 4242}}

    def __init__(self):
        self.asked = []

    def stats(self, **kwargs):
        self.asked.append(kwargs)
        return {"read_from": "engine"}


class _Engine:
    def __init__(self, base_url):
        self.api = type("Api", (), {"base_url": base_url})()


@pytest.mark.parametrize("base_url, on_host, expected", [
    ("http+docker://localhost", {"read_from": "cgroup"}, "cgroup"),   # a local engine: the host's files
    ("http+docker://localhost", None, "engine"),                      # they do not show it: the engine
    ("https://192.0.2.10:2376", {"read_from": "cgroup"}, "engine"),   # a remote engine: never the files here
])
def test_stats_come_from_the_host_files_only_for_a_local_engine(monkeypatch, base_url, on_host, expected):
    seen = []
    monkeypatch.setattr(_compose._cgroup, "sample", lambda pid, cid: seen.append(("one", pid, cid)) or on_host)
    monkeypatch.setattr(_compose._cgroup, "sample_with_cpu", lambda pid, cid: seen.append(("cpu", pid, cid)) or on_host)
    container = _StatsContainer()
    assert ComposeClient(_Engine(base_url)).stats(container, one_shot=True)["read_from"] == expected
    assert ComposeClient(_Engine(base_url)).stats(container)["read_from"] == expected
    assert seen == ([("one", 4242, "c1d2"), ("cpu", 4242, "c1d2")] if base_url.startswith("http+docker") else [])
    assert container.asked == ([] if expected == "cgroup" else [dict(stream=False, one_shot=True)] * 2)


class _OneShots(_StatsContainer):
    """A remote engine's one-shot readings, each ``step`` ns of host time (2 CPUs) after the one before."""

    def __init__(self, step):
        super().__init__()
        self.step, self.system = step, 10 ** 12

    def stats(self, **kwargs):
        self.asked.append(kwargs)
        self.system += self.step
        return {"cpu_stats": {"system_cpu_usage": self.system, "online_cpus": 2, "cpu_usage": {"total_usage": self.system // 4}}}


def test_a_remote_engines_cpu_window_is_two_one_shot_readings_half_a_second_apart():
    container = _OneShots(step=4 * 10 ** 8)     # 0.2 s of 2 CPUs between two readings
    got = ComposeClient(_Engine("https://192.0.2.10:2376")).stats(container)
    assert len(container.asked) == 4 and all(a == dict(stream=False, one_shot=True) for a in container.asked)
    assert got["precpu_stats"]["system_cpu_usage"] == 10 ** 12 + 4 * 10 ** 8
    assert got["cpu_stats"]["system_cpu_usage"] - got["precpu_stats"]["system_cpu_usage"] >= 10 ** 9   # 0.5 s of 2 CPUs
    assert _verify.cpu_percent(got) == 50.0


def test_a_full_sample_of_an_older_sdk_is_used_as_it_is():
    container = _OldSdkContainer()
    container.stats = lambda decode=None, stream=True: {"precpu_stats": {"system_cpu_usage": 1}, "cpu_stats": {}}
    assert ComposeClient(FakeDocker([])).stats(container) == {"precpu_stats": {"system_cpu_usage": 1}, "cpu_stats": {}}
