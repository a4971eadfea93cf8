# -*- coding: utf-8 -*-
# Copyright (c) sre.incident contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one Docker client of the collection.

Per container, the docker SDK (containers found by their ``com.docker.compose.*`` labels). Whole
stacks (``up``, ``down``), the compose CLI (``docker compose`` v2, else ``docker-compose`` v1) as argv
lists for ``AnsibleModule.run_command``. Callers get plain data; SDK objects leave this file only as
the ``container`` handles passed back into it.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import signal as _signal
import tarfile
import time

from ansible.module_utils.basic import env_fallback

from ansible_collections.sre.incident.plugins.module_utils import _cgroup, _time
from ansible_collections.sre.incident.plugins.module_utils._errors import IncidentError
from ansible_collections.sre.incident.plugins.module_utils._wait import poll_until

try:
    import docker
    import docker.errors
    import requests.exceptions as _requests_exceptions  # the docker SDK's transport
except ImportError as exc:  # pragma: no cover - depends on the environment
    docker = None
    HAS_DOCKER = False
    DOCKER_IMPORT_ERROR = exc
else:
    HAS_DOCKER = True
    DOCKER_IMPORT_ERROR = None

try:
    import yaml
except ImportError:  # pragma: no cover - PyYAML comes with ansible-core
    yaml = None


DEFAULT_DOCKER_HOST = "unix:///var/run/docker.sock"
DEFAULT_DOCKER_TIMEOUT = 60
DEFAULT_STOP_TIMEOUT = 10

LABEL_PROJECT = "com.docker.compose.project"
LABEL_SERVICE = "com.docker.compose.service"
LABEL_ONEOFF = "com.docker.compose.oneoff"
LABEL_NUMBER = "com.docker.compose.container-number"
LABEL_CONFIG_FILES = "com.docker.compose.project.config_files"
LABEL_WORKING_DIR = "com.docker.compose.project.working_dir"

# Shared argument spec for every module that talks to the engine, merged by
# IncidentModule(..., docker=True) (_module.py) and documented once in the sre.incident.docker doc
# fragment. The env fallbacks let an AWX credential inject them.
DOCKER_COMMON_ARGS = dict(
    docker_host=dict(type="str", default=DEFAULT_DOCKER_HOST, fallback=(env_fallback, ["DOCKER_HOST"])),
    docker_timeout=dict(type="int", default=DEFAULT_DOCKER_TIMEOUT, fallback=(env_fallback, ["DOCKER_TIMEOUT"])),
)

STATES = ("present", "started", "stopped", "restarted", "killed", "paused", "unpaused")

# Container statuses as the engine reports them (State.Status).
RUNNING_LIKE = ("running", "restarting", "paused")
MISSING = "missing"


# --------------------------------------------------------------------------- errors

# runs of a read-only command whose output the engine lost (see ComposeClient.exec_in)
EXEC_OUTPUT_ATTEMPTS = 3


class DockerError(IncidentError):
    """Any failure talking to the engine or acting on a container."""

    kind = "docker_error"

    def as_failure(self):
        """Nothing was changed; ``engine_unreachable`` and ``error_kind`` let a playbook branch."""
        return dict(super().as_failure(), changed=False,
                    engine_unreachable=isinstance(self, EngineUnreachable), error_kind=self.kind)


class EngineUnreachable(DockerError):
    """The Docker engine did not answer (socket missing, refused, timed out, bad DOCKER_HOST)."""

    kind = "engine_unreachable"


class ComposeError(DockerError):
    """A precondition about the compose project does not hold; nothing was touched."""

    kind = "compose_error"


class UnknownProject(ComposeError):
    kind = "unknown_project"


class UnknownService(ComposeError):
    kind = "unknown_service"


class MissingContainer(ComposeError):
    kind = "missing_container"


class InvalidTransition(ComposeError):
    kind = "invalid_transition"


class ComposeCliMissing(DockerError):
    kind = "compose_cli_missing"


# --------------------------------------------------------------------------- pure helpers

def normalize_signal(sig):
    """The ``SIGxxx`` name of ``sig`` (``KILL``, ``SIGKILL``, ``9``, 9); ValueError naming a bad value."""
    text = str(sig).strip().upper() if sig is not None else ""
    if not text:
        raise ValueError("signal must not be empty")
    if text.isdigit():
        try:
            return _signal.Signals(int(text)).name
        except ValueError:
            raise ValueError("unknown signal %r" % (sig,)) from None
    name = text if text.startswith("SIG") else "SIG" + text
    if name not in _signal.Signals.__members__:
        raise ValueError("unknown signal %r: use a name like SIGKILL, SIGTERM or SIGHUP" % (sig,))
    return _signal.Signals[name].name


def _attrs(container_or_attrs):
    return container_or_attrs if isinstance(container_or_attrs, dict) else container_or_attrs.attrs


# State.Status from the flags of engines that do not report it, the first set flag wins
_STATUS_FLAGS = (("Paused", "paused"), ("Restarting", "restarting"), ("Running", "running"), ("Dead", "dead"))


def container_state(container):
    """Plain dict of a container (a docker SDK Container or its ``attrs`` dict). status: created, running,
    paused, restarting, removing, exited or dead; health: none, starting, healthy or unhealthy."""
    attrs = _attrs(container) or {}
    state = attrs.get("State") or {}
    config = attrs.get("Config") or {}
    labels = config.get("Labels") or {}
    host_config = attrs.get("HostConfig") or {}
    health = state.get("Health") or {}
    status = state.get("Status")
    if not status:
        flagged = [name for flag, name in _STATUS_FLAGS if state.get(flag)]
        status = flagged[0] if flagged else ("exited" if state else "unknown")
    has_healthcheck = healthcheck_declared((config.get("Healthcheck") or {}).get("Test"))
    number = labels.get(LABEL_NUMBER)
    try:
        number = int(number) if number is not None else None
    except ValueError:
        number = None
    return dict(
        name=(attrs.get("Name") or "").lstrip("/"),
        id=(attrs.get("Id") or "")[:12],
        project=labels.get(LABEL_PROJECT),
        service=labels.get(LABEL_SERVICE),
        number=number,
        status=status,
        running=status == "running",
        health=health.get("Status") or "none",
        has_healthcheck=has_healthcheck,
        exit_code=state.get("ExitCode"),
        oom_killed=bool(state.get("OOMKilled")),
        error=state.get("Error") or None,
        restart_count=attrs.get("RestartCount", 0),
        started_at=state.get("StartedAt"),
        finished_at=state.get("FinishedAt"),
        image=attrs.get("Image"),
        image_name=config.get("Image"),
        restart_policy=((host_config.get("RestartPolicy") or {}).get("Name") or "no"),
    )


def healthcheck_declared(test):
    """Whether a container's healthcheck command (``Config.Healthcheck.Test``) is a check: not absent, not NONE."""
    return bool(test) and test[0] != "NONE"


def is_ready(state):
    """Running and, when the container has a healthcheck, healthy."""
    return state.get("status") == "running" and state.get("health") in ("none", "healthy")


# A container without a healthcheck says nothing about when it is ready to serve: a database that
# runs may still be starting. What needs it counts it as ready only once it ran this many seconds.
UNCHECKED_READY_SECONDS = 30.0


def is_settled(state, now=None):
    """Ready, as far as what needs this container can tell: one without a healthcheck only once it
    has run :data:`UNCHECKED_READY_SECONDS` (``now``: UNIX seconds, the current time unless given)."""
    if not is_ready(state):
        return False
    if state.get("has_healthcheck", True):
        return True
    try:
        started = _time.epoch(state.get("started_at") or "", "StartedAt")
    except ValueError:
        return True
    return (time.time() if now is None else now) - started >= UNCHECKED_READY_SECONDS


def status_text(state):
    """Short text for diffs: ``running/healthy``, ``exited(137)/none``, ``missing``."""
    if state is None or state.get("status") == MISSING:
        return MISSING
    status = state.get("status")
    if status in ("exited", "dead") and state.get("exit_code") is not None:
        status = "%s(%s)" % (status, state.get("exit_code"))
    return "%s/%s" % (status, state.get("health", "none"))


def plan_action(state, status, signal="SIGKILL"):
    """The action (or None) that brings a container from ``status`` to the wanted ``state``.

    Besides the plain ones, ``unpause+restart`` / ``unpause+kill`` for paused containers. ``restarted``
    always acts. InvalidTransition when ``state`` cannot be reached (pausing one that is not running).
    """
    if state not in STATES:
        raise ValueError("unknown state %r: choose one of %s" % (state, ", ".join(STATES)))
    if state == "present":
        return None
    if state == "started":
        return {"running": None, "restarting": None, "paused": "unpause"}.get(status, "start")
    if state == "stopped":
        return "stop" if status in RUNNING_LIKE else None
    if state == "restarted":
        return "unpause+restart" if status == "paused" else "restart"
    if state == "killed":
        if status in ("running", "restarting"):
            return "kill"
        if status == "paused":
            # The engine delivers SIGKILL to a paused container; any other signal would
            # stay pending until it is unpaused.
            return "kill" if normalize_signal(signal) == "SIGKILL" else "unpause+kill"
        return None
    if state == "paused":
        if status == "running":
            return "pause"
        if status == "paused":
            return None
        raise InvalidTransition("cannot pause a container that is %s; start it first (state=started)" % (status,))
    # unpaused: anything that is not paused already is "not paused"
    return "unpause" if status == "paused" else None


def predict_status(state, status):
    """The status a container will have after ``state`` is applied (for check mode / diff)."""
    if state == "present":
        return status
    if state in ("started", "restarted"):
        return "running"
    if state in ("stopped", "killed"):
        return "exited" if status in RUNNING_LIKE else status
    if state == "paused":
        return "paused"
    return "running" if status == "paused" else status  # unpaused


def target_reached(state, before, now):
    """Whether a container reached what ``state`` asks for, comparing ``before`` and ``now``. killed: the
    process that ran is gone (not running, or the restart policy already started a new one: new StartedAt)."""
    if state in ("present", "started", "restarted", "unpaused"):
        return is_ready(now)
    if state == "stopped":
        return now.get("status") not in RUNNING_LIKE
    if state == "killed":
        restarted = bool(before) and now.get("started_at") != before.get("started_at")
        return now.get("status") not in RUNNING_LIKE or restarted
    if state == "paused":
        return now.get("status") == "paused"
    return True


def _hopeless(state, now):
    """A container that exited and will not come back on its own cannot become ready."""
    return (state in ("started", "restarted", "unpaused") and now.get("status") in ("exited", "dead", "created")
            and now.get("restart_policy") in ("no", "", None))


# A service that crashes under a restart policy never stays exited: the engine starts it again, so a
# wait on it would run to its end. It is judged lost once each of its containers was restarted this
# many times by the engine (since it was last started by hand) and crashed again while watched for
# this many seconds, with what it needs up all along.
CRASH_LOOP_RESTARTS = 3
CRASH_LOOP_SECONDS = 10.0


class CrashLoop:
    """Watches one service through a wait and tells when it keeps crashing (see :meth:`check`)."""

    def __init__(self, clock=time.monotonic):
        self.clock = clock
        self.since = None
        self.seen = {}    # container id -> [restart count at its first look, crashed since]

    def check(self, mine, needed_up=True):
        """Why the service of the plain states ``mine`` (its containers now) will not come up, or None.

        The watch starts at the first look while ``needed_up`` (its dependencies are ready, see
        :func:`is_settled`), and starts again whenever they are not: a service that crashes while
        its database boots is not lost. A container crashed while watched when its restart count
        grew or it was seen down. The engine's restart delay doubles with every crash, so a count
        of new restarts alone would take longer and longer to reach.
        """
        if not mine or not needed_up:
            self.since, self.seen = None, {}
            return None
        now = self.clock()
        if self.since is None:
            self.since = now
        for st in mine:
            seen = self.seen.setdefault(st["id"], [st["restart_count"] or 0, False])
            seen[1] = seen[1] or (st["restart_count"] or 0) > seen[0] or st["status"] in ("restarting", "exited", "dead")
        looping = all(self.seen[st["id"]][1] and (st["restart_count"] or 0) >= CRASH_LOOP_RESTARTS for st in mine)
        if not looping or now - self.since < CRASH_LOOP_SECONDS:
            return None
        first = mine[0]
        facts = (first["service"] or first["name"], first["restart_count"], first["restart_policy"], now - self.since,
                 first["exit_code"])
        return ("%s keeps crashing: restarted %d times by its restart policy (%s), and down again while watched "
                "for %d s; last exit code %s" % facts)


def _lost(loop, state, needed_up=True):
    """Whether a container that is not ready will not be: it exited for good, or ``loop`` saw it crash-loop."""
    return _hopeless("started", state) or ((state["restart_count"] or 0) >= CRASH_LOOP_RESTARTS
                                           and loop.check([state], needed_up) is not None)


def wait_up(client, containers, timeout, interval=0.25):
    """Poll the containers one ``up`` started, together, until each is ready or lost, within ``timeout``.

    A container is lost when it exited for good, or keeps crashing under its restart policy while
    every other one is settled (:func:`is_settled`) or lost itself (what a container needs is taken
    to be the rest of the ``up``: an nginx whose upstream's container exited cannot start either).
    Returns the plain state of each, as last seen, in the order given.
    """
    loops = {c.name: CrashLoop() for c in containers}
    states, lost = {}, set()

    def check():
        for c in containers:
            if c.name not in lost:
                states[c.name] = client.refresh(c)
        settled = {name for name, st in states.items() if is_settled(st)} | lost
        for c in containers:
            if c.name not in settled and _lost(loops[c.name], states[c.name], settled >= set(states) - {c.name}):
                lost.add(c.name)
        return all(is_ready(states[c.name]) or c.name in lost for c in containers)

    poll_until(check, timeout, interval=interval)
    return [states[c.name] for c in containers]


def _container_sort_key(state):
    return (state.get("service") or "", state.get("number") or 0, state.get("name") or "")


# --------------------------------------------------------------------------- connection

def _engine_error(exc, docker_host):
    return EngineUnreachable(
        "Docker engine unreachable at %s: %s. Is the engine running, and does docker_host "
        "(or DOCKER_HOST) point at it?" % (docker_host or os.environ.get("DOCKER_HOST") or DEFAULT_DOCKER_HOST, exc),
        docker_host=docker_host,
    )


def connect(docker_host=None, timeout=DEFAULT_DOCKER_TIMEOUT, max_pool_size=None):
    """A :class:`ComposeClient` connected to the engine, checked with a ping (EngineUnreachable here, not
    in the middle of an action). DOCKER_HOST, DOCKER_TLS_VERIFY and DOCKER_CERT_PATH are honoured, an
    explicit ``docker_host`` first; ``max_pool_size``: pooled connections, for callers using threads."""
    if not HAS_DOCKER:
        raise DockerError("the docker Python SDK is not installed: %s" % (DOCKER_IMPORT_ERROR,))
    environment = dict(os.environ)
    if docker_host:
        environment["DOCKER_HOST"] = docker_host
    try:
        kwargs = dict(timeout=timeout, environment=environment)
        if max_pool_size:
            kwargs["max_pool_size"] = int(max_pool_size)
        client = docker.from_env(**kwargs)
        client.ping()
    except (docker.errors.DockerException, _requests_exceptions.RequestException, OSError) as exc:
        raise _engine_error(exc, docker_host) from None
    return ComposeClient(client, docker_host=docker_host)


class _ChunkReader(io.RawIOBase):
    """A read-only binary file over an iterator of byte chunks (an archive as the engine streams it)."""

    def __init__(self, chunks, what):
        super().__init__()
        self._chunks = iter(chunks)
        self._buf = b""
        self._what = what

    def readable(self):
        return True

    def readinto(self, target):
        while not self._buf:
            try:
                self._buf = next(self._chunks)
            except StopIteration:
                return 0
            except _requests_exceptions.RequestException as exc:
                raise DockerError("%s broke off: %s" % (self._what, exc)) from None
        size = min(len(target), len(self._buf))
        target[:size] = self._buf[:size]
        self._buf = self._buf[size:]
        return size


# --------------------------------------------------------------------------- the client

class ComposeClient:
    """Compose-aware operations on one engine, built on a docker SDK ``DockerClient``."""

    def __init__(self, client, docker_host=None):
        self.client = client
        self.docker_host = docker_host

    def _wrap(self, what, func, *args, **kwargs):
        """Call an SDK function; turn SDK / transport errors into DockerError."""
        try:
            return func(*args, **kwargs)
        except docker.errors.NotFound as exc:
            raise DockerError("%s: container not found (removed meanwhile?): %s" % (what, exc)) from None
        except docker.errors.APIError as exc:
            raise DockerError("%s failed: %s" % (what, exc.explanation or exc)) from None
        except docker.errors.DockerException as exc:
            raise DockerError("%s failed: %s" % (what, exc)) from None
        except _requests_exceptions.ConnectionError as exc:
            raise _engine_error(exc, self.docker_host) from None
        except _requests_exceptions.RequestException as exc:
            raise DockerError("%s failed talking to the engine: %s" % (what, exc)) from None

    def find_containers(self, project, service=None, all=True):
        """Containers of a compose project (or of one service), one-off runs excluded, sorted by service,
        container number, name. ``all=False`` lists running ones only."""
        labels = ["%s=%s" % (LABEL_PROJECT, project)]
        if service is not None:
            labels.append("%s=%s" % (LABEL_SERVICE, service))
        found = self._wrap("listing containers of project %r" % (project,), self.client.containers.list,
                           all=all, filters={"label": labels})
        found = [c for c in found if (_attrs(c).get("Config") or {}).get("Labels", {}).get(LABEL_ONEOFF) != "True"]
        return sorted(found, key=lambda c: _container_sort_key(container_state(c)))

    def projects(self):
        """Names of every compose project with at least one container on this engine."""
        found = self._wrap("listing compose containers", self.client.containers.list,
                           all=True, filters={"label": [LABEL_PROJECT]})
        return sorted({(_attrs(c).get("Config") or {}).get("Labels", {}).get(LABEL_PROJECT) for c in found} - {None})

    def project_services(self, project, containers=None):
        """Service names that have at least one (non one-off) container in ``project``."""
        if containers is None:
            containers = self.find_containers(project)
        return sorted({container_state(c)["service"] for c in containers} - {None})

    def declared_services(self, project, containers=None):
        """Services the project's compose files declare (:func:`config_files`), to tell "removed, needs
        compose up" from "no such service"; [] when the files are not readable here."""
        return services_in_compose_files(config_files(self.find_containers(project) if containers is None else containers))

    def refresh(self, container):
        """Re-read a container from the engine; its plain state."""
        self._wrap("inspecting container %s" % (container.name,), container.reload)
        return container_state(container)

    # ---- actions: each returns the new plain state
    def _stop_timeout(self, container, stop_timeout):
        if stop_timeout is not None:
            return int(stop_timeout)
        configured = (_attrs(container).get("Config") or {}).get("StopTimeout")
        return int(configured) if configured is not None else DEFAULT_STOP_TIMEOUT

    def start(self, container):
        self._wrap("starting %s" % container.name, container.start)
        return self.refresh(container)

    def stop(self, container, stop_timeout=None):
        self._wrap("stopping %s" % container.name, container.stop, timeout=self._stop_timeout(container, stop_timeout))
        return self.refresh(container)

    def restart(self, container, stop_timeout=None):
        """Restart; a paused container is unpaused first (portable across engine versions)."""
        if container_state(container)["status"] == "paused":
            self.unpause(container)
        self._wrap("restarting %s" % container.name, container.restart,
                   timeout=self._stop_timeout(container, stop_timeout))
        return self.refresh(container)

    def kill(self, container, signal="SIGKILL"):
        """Send ``signal``; a paused container is unpaused first unless the signal is SIGKILL."""
        sig = normalize_signal(signal)
        if container_state(container)["status"] == "paused" and sig != "SIGKILL":
            self.unpause(container)
        self._wrap("killing %s with %s" % (container.name, sig), container.kill, signal=sig)
        return self.refresh(container)

    def pause(self, container):
        self._wrap("pausing %s" % container.name, container.pause)
        return self.refresh(container)

    def unpause(self, container):
        self._wrap("unpausing %s" % container.name, container.unpause)
        return self.refresh(container)

    def apply(self, container, action, signal="SIGKILL", stop_timeout=None):
        """Run one planned action (see :func:`plan_action`); restart and kill unpause first themselves."""
        if action is None:
            return container_state(container)
        if action in ("restart", "unpause+restart"):
            return self.restart(container, stop_timeout=stop_timeout)
        if action in ("kill", "unpause+kill"):
            return self.kill(container, signal=signal)
        if action == "stop":
            return self.stop(container, stop_timeout=stop_timeout)
        if action in ("start", "pause", "unpause"):
            return getattr(self, action)(container)
        raise ValueError("unknown action %r" % (action,))

    def wait_for(self, container, state, timeout, before=None, interval=0.25):
        """Poll until ``container`` reaches what ``state`` asks for (:func:`target_reached`); returns
        ``(ok, plain_state, elapsed_seconds)``. Gives up early on one that exited for good or keeps
        crashing under its restart policy (:class:`CrashLoop`)."""
        last = [None]
        loop = CrashLoop()

        def check():
            last[0] = self.refresh(container)
            return target_reached(state, before, last[0]) or (state in ("started", "restarted", "unpaused")
                                                              and _lost(loop, last[0]))

        _stopped, _value, elapsed = poll_until(check, timeout, interval=interval)
        return target_reached(state, before, last[0]), last[0], elapsed

    def wait_ready(self, container, timeout, interval=0.25):
        """Poll until the container is running and, if it has a healthcheck, healthy."""
        return self.wait_for(container, "started", timeout, interval=interval)

    # ---- reading inside containers (diagnostics, snapshots); plain data out
    def exec_in(self, container, argv, user=None, environment=None, expect_output=False):
        """Run ``argv`` (a list, no shell) in a running container: dict(cmd, rc, stdout, stderr), text as
        UTF-8 (invalid bytes replaced). DockerError when it is not running or the engine refuses.

        ``expect_output``: the command is read-only and prints something when it succeeds (``redis-cli
        INFO``). Under load the engine now and then hands back its exit code 0 without its output; it is
        then run again (``EXEC_OUTPUT_ATTEMPTS`` times in all) rather than taken for an empty answer.
        """
        kwargs = dict(demux=True)
        if user:
            kwargs["user"] = user
        if environment:
            kwargs["environment"] = environment
        what = "exec %s in %s" % (argv[0] if argv else "?", container.name)
        for _attempt in range(EXEC_OUTPUT_ATTEMPTS if expect_output else 1):
            result = self._wrap(what, container.exec_run, list(argv), **kwargs)
            out, err = result.output if isinstance(result.output, tuple) else (result.output, b"")
            if not (expect_output and result.exit_code == 0 and not (out or b"").strip()):
                break
        return dict(cmd=list(argv), rc=result.exit_code, stdout=(out or b"").decode("utf-8", "replace"),
                    stderr=(err or b"").decode("utf-8", "replace"))

    def _exec_finished(self, what, exec_id, timeout=30.0):
        """The exit code of a finished exec, polled (bounded) until the engine says it ended."""
        def ended():
            info = self._wrap(what, self.client.api.exec_inspect, exec_id)
            return info if not info.get("Running") else None

        ok, info, _elapsed = poll_until(ended, timeout, interval=0.1)
        if not ok:
            raise DockerError("%s: still running %s s after its output ended" % (what, timeout))
        return info.get("ExitCode")

    def exec_stream_out(self, container, argv, sink, user=None, environment=None, max_stderr=64 * 1024):
        """Run ``argv`` (no shell) in a running container, its stdout handed to ``sink(bytes)`` as it
        arrives, never held in memory (a database dump can be large). Returns dict(cmd, rc, bytes, stderr)."""
        what = "exec %s in %s" % (argv[0] if argv else "?", container.name)
        api = self.client.api
        created = self._wrap(what, api.exec_create, container.id, list(argv), stdout=True, stderr=True,
                             user=user or "", environment=environment)
        stream = self._wrap(what, api.exec_start, created["Id"], stream=True, demux=True)
        size = 0
        err = bytearray()
        try:
            for out, errout in stream:
                if out:
                    sink(out)
                    size += len(out)
                if errout and len(err) < max_stderr:
                    err.extend(errout[:max_stderr - len(err)])
        except _requests_exceptions.RequestException as exc:  # transport errors in the middle of the stream
            raise DockerError("%s: the output stream broke off: %s" % (what, exc)) from None
        rc = self._exec_finished(what, created["Id"])
        return dict(cmd=list(argv), rc=rc, bytes=size, stderr=bytes(err).decode("utf-8", "replace"))

    def exec_stream_in(self, container, argv, chunks, user=None, environment=None, max_output=64 * 1024):
        """Run ``argv`` (no shell) in a running container with ``chunks`` (iterable of bytes) as its stdin;
        stdout and stderr collected (bounded). Returns dict(cmd, rc, bytes (sent), stdout, stderr)."""
        import socket as _socket  # pylint: disable=import-outside-toplevel
        import threading  # pylint: disable=import-outside-toplevel

        from docker.utils.socket import frames_iter  # pylint: disable=import-outside-toplevel

        what = "exec %s in %s" % (argv[0] if argv else "?", container.name)
        api = self.client.api
        created = self._wrap(what, api.exec_create, container.id, list(argv), stdin=True, stdout=True, stderr=True,
                             user=user or "", environment=environment)
        sock = self._wrap(what, api.exec_start, created["Id"], socket=True)
        raw = getattr(sock, "_sock", sock)
        collected = {1: bytearray(), 2: bytearray()}
        errors = []

        def read():
            # the output is read while the input is written, so a chatty command never blocks
            try:
                for stream_id, data in frames_iter(sock, False):
                    buf = collected.get(stream_id, collected[2])
                    if len(buf) < max_output:
                        buf.extend(data[:max_output - len(buf)])
            except Exception as exc:  # pylint: disable=broad-except
                errors.append(exc)

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        sent = 0
        try:
            for chunk in chunks:
                raw.sendall(chunk)
                sent += len(chunk)
            raw.shutdown(_socket.SHUT_WR)
        except OSError as exc:
            raise DockerError("%s: writing its input failed after %d bytes: %s (output: %s)" % (
                what, sent, exc, bytes(collected[2] or collected[1]).decode("utf-8", "replace")[-500:])) from None
        finally:
            reader.join()
            try:
                sock.close()
            except OSError:
                pass
        if errors:
            raise DockerError("%s: reading its output failed: %s" % (what, errors[0]))
        rc = self._exec_finished(what, created["Id"])
        return dict(cmd=list(argv), rc=rc, bytes=sent, stdout=bytes(collected[1]).decode("utf-8", "replace"),
                    stderr=bytes(collected[2]).decode("utf-8", "replace"))

    def archive_reader(self, container, path):
        """The engine's tar archive of ``path`` in a container (running or stopped; its volumes
        included) as a binary file object read as it streams in. Returns (reader, stat)."""
        stream, stat = self._wrap("reading %s from %s" % (path, container.name), container.get_archive, path)
        return _ChunkReader(stream, "reading %s from %s" % (path, container.name)), stat or {}

    def archive_in(self, container, path, data):
        """Extract a tar archive (bytes or a binary file object) into ``path`` of a container
        (running or stopped; into its volumes too). Owners and modes come from the archive."""
        ok = self._wrap("writing into %s of %s" % (path, container.name), container.put_archive, path, data)
        if not ok:
            raise DockerError("the engine refused the archive for %s of %s" % (path, container.name))

    def logs(self, container, tail=None, since=None, until=None, timestamps=True):
        """A container's log (stdout and stderr) as text; ``tail`` lines, ``since`` / ``until`` UNIX times.
        The engine compares whole seconds (``since`` rounded down, ``until`` up): callers filter finer."""
        kwargs = dict(stdout=True, stderr=True, timestamps=timestamps)
        if tail is not None:
            kwargs["tail"] = int(tail)
        if since is not None:
            kwargs["since"] = int(since)
        if until is not None:
            kwargs["until"] = int(until) + 1
        data = self._wrap("reading the log of %s" % container.name, container.logs, **kwargs)
        return (data or b"").decode("utf-8", "replace")

    def top(self, container):
        """The processes of a running container as the engine lists them: dict(Titles, Processes)."""
        return self._wrap("listing the processes of %s" % container.name, container.top)

    @property
    def local_engine(self):
        """Whether the engine listens on this host's unix socket (its containers' processes are ours to see)."""
        api = getattr(self.client, "api", None)
        return str(getattr(api, "base_url", "")).startswith("http+docker://")

    def stats(self, container, one_shot=False):
        """One raw stats sample in the engine's shape; without ``one_shot`` it carries ``precpu_stats``
        half a second of host time before it (``_cgroup.with_cpu_window``), for CPU %.

        Read from the host's control-group files where they show the container (a local engine), else
        the engine's one-shot readings (answered at its next collection pass, up to a second); a docker
        SDK without ``one_shot`` (before 6.1, e.g. Debian 12's python3-docker 5.0) gets its full sample."""
        if self.local_engine:
            state = _attrs(container).get("State") or {}
            if state.get("Running"):
                read = _cgroup.sample if one_shot else _cgroup.sample_with_cpu
                found = read(state.get("Pid"), getattr(container, "id", None))
                if found is not None:
                    return found
        first = self._one_shot_stats(container)
        if one_shot or (first.get("precpu_stats") or {}).get("system_cpu_usage"):
            return first
        return _cgroup.with_cpu_window(first, lambda: self._one_shot_stats(container))

    def _one_shot_stats(self, container):
        try:
            return self._wrap("reading stats of %s" % container.name, container.stats, stream=False, one_shot=True)
        except TypeError as exc:
            if "one_shot" not in str(exc):
                raise
        return self._wrap("reading stats of %s" % container.name, container.stats, stream=False)

    def image_info(self, image):
        """dict(id, tags, created, size) of an image id or name; None when the image is absent."""
        try:
            img = self._wrap("inspecting image %s" % (image,), self.client.images.get, image)
        except DockerError:
            return None
        attrs = img.attrs or {}
        return dict(id=attrs.get("Id"), tags=list(attrs.get("RepoTags") or []), created=attrs.get("Created"),
                    size=attrs.get("Size"))

    def read_file(self, container, path, max_bytes=16 * 1024 * 1024):
        """Bytes of one regular file inside a container (running or stopped), via the archive API;
        DockerError when the path is missing, not a regular file or larger than ``max_bytes``."""
        stream, stat = self._wrap("reading %s from %s" % (path, container.name), container.get_archive, path)
        if stat and int(stat.get("size") or 0) > max_bytes:
            raise DockerError("%s in %s is larger than %d bytes" % (path, container.name, max_bytes))
        buf = io.BytesIO()
        for chunk in stream:
            buf.write(chunk)
            if buf.tell() > max_bytes + 1024 * 1024:
                raise DockerError("%s in %s is larger than %d bytes" % (path, container.name, max_bytes))
        buf.seek(0)
        with tarfile.open(fileobj=buf, mode="r:") as tar:
            for member in tar:
                if member.isfile():
                    handle = tar.extractfile(member)
                    return handle.read() if handle is not None else b""
        raise DockerError("%s in %s is not a regular file" % (path, container.name))


def config_files(containers):
    """The compose files a project's containers were made from, each once (from their labels)."""
    files = []
    for c in containers:
        labels = ((_attrs(c) or {}).get("Config") or {}).get("Labels") or {}
        workdir = labels.get(LABEL_WORKING_DIR) or ""
        files += [os.path.join(workdir, path.strip()) for path in (labels.get(LABEL_CONFIG_FILES) or "").split(",") if path.strip()]
    return list(dict.fromkeys(files))


def compose_services(paths):
    """The ``services`` mapping of each readable compose file, in order (missing or unreadable files skipped)."""
    for path in paths if yaml is not None else ():
        try:
            with open(path, "r", encoding="utf-8") as handle:
                data = yaml.safe_load(handle)
        except (OSError, yaml.YAMLError, UnicodeDecodeError):
            continue
        services = data.get("services") if isinstance(data, dict) else None
        if isinstance(services, dict):
            yield services


def service_profiles(paths):
    """{service: [profiles]} of the readable compose files (a service without profiles: [])."""
    return {str(name): list((spec.get("profiles") if isinstance(spec, dict) else None) or [])
            for services in compose_services(paths) for name, spec in services.items()}


def services_in_compose_files(paths):
    """The services the readable compose files declare, sorted."""
    return sorted(service_profiles(paths))


_VARIABLE = re.compile(r"\$(?:\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<default>[^}]*))?\}"
                       r"|(?P<plain>[A-Za-z_][A-Za-z0-9_]*)|(?P<escaped>\$))")


def interpolate(text, environ):
    """``text`` with compose's variables replaced from ``environ``: ``${VAR:-default}`` when unset or
    empty, ``${VAR-default}`` when unset; ``${VAR?err}`` / ``${VAR:?err}`` read as ``${VAR}``."""
    def value(match):
        if match.group("escaped"):
            return "$"
        name = match.group("braced") or match.group("plain")
        op, default = match.group("op") or "", match.group("default") or ""
        found = environ.get(name)
        if (op == ":-" and not found) or (op == "-" and found is None):
            return default
        return found or ""
    return _VARIABLE.sub(value, str(text))


def compose_environment(project_dir, environ=None):
    """The variables compose interpolates with: ``<project_dir>/.env`` under the process environment."""
    values = {}
    if project_dir:
        try:
            with open(os.path.join(project_dir, ".env"), "r", encoding="utf-8") as handle:
                for line in handle:
                    line = line.strip()
                    if line and not line.startswith("#") and "=" in line:
                        key, val = line.split("=", 1)
                        values[key.strip()] = val.strip().strip("'\"")
        except OSError:
            pass
    values.update(os.environ if environ is None else environ)
    return values


# --------------------------------------------------------------------------- service states

def ensure_services(client, project, services, state, wait=True, timeout=30.0, signal="SIGKILL",
                    stop_timeout=None, check_mode=False, interval=0.25, recreate=None):
    """Bring the compose services of ``project`` to ``state``; the work of compose_service.

    Every precondition is checked before anything is touched (ComposeError family); then each
    container's action is planned from its status (check mode stops here), run in the order given,
    and with ``wait`` every concerned container is polled, all within one ``timeout``. A wait that
    times out raises nothing: the caller decides from ``ready``/``not_ready``.

    ``recreate``, a function ``(services, timeout)`` returning :func:`ensure_project`'s result (its
    ``up -d`` of those services, in check mode its prediction), lets ``started`` and ``restarted`` bring
    back a service without a container (removed, or the whole project gone) instead of failing; it
    runs first, within the same ``timeout``, and the result names those services in ``recreated``.
    """
    start_clock = time.monotonic()
    signal = normalize_signal(signal)
    services = list(dict.fromkeys(services or []))
    if not services:
        raise ComposeError("no service given: name at least one service of project %r" % (project,))

    containers = client.find_containers(project)
    if recreate is not None and state in ("started", "restarted"):
        present = {container_state(c)["service"] for c in containers}
        missing = [s for s in services if s not in present]
        if missing:
            # the compose files name the services: ensure_project refuses an unknown one before it runs anything
            recreated = recreate(missing, timeout)
            kept = [s for s in services if s not in missing]
            result = ensure_services(
                client, project, kept, state, wait=wait, timeout=max(0.0, start_clock + float(timeout) - time.monotonic()),
                signal=signal, stop_timeout=stop_timeout, check_mode=check_mode, interval=interval) if kept else None
            return _with_recreated(result, state, services, missing, recreated, start_clock)
    if not containers:
        known_projects = client.projects()
        raise UnknownProject(
            "unknown compose project %r: no container carries the label %s=%s. Known projects on this engine: %s"
            % (project, LABEL_PROJECT, project, ", ".join(known_projects) or "(none)"),
            known_projects=known_projects,
        )
    known = sorted(set(client.project_services(project, containers)) | set(client.declared_services(project, containers)))
    unknown = [s for s in services if s not in known]
    if unknown:
        raise UnknownService(
            "unknown service%s %s in compose project %r. Known services: %s"
            % ("s" if len(unknown) > 1 else "", ", ".join(repr(s) for s in unknown), project, ", ".join(known)),
            unknown=unknown, known_services=known,
        )

    plans = []  # (container, state before, action), in the order of services
    problems = []
    for service in services:
        mine = [c for c in containers if container_state(c)["service"] == service]
        if not mine and state in ("started", "restarted", "paused"):
            problems.append(MissingContainer(
                "service %r of project %r has no container (it was removed); state=%s cannot act on it. "
                "A compose up is needed to recreate it (for example: docker compose -p %s up -d %s; docker-compose with compose v1)"
                % (service, project, state, project, service),
                service=service,
            ))
        for c in mine:
            st = container_state(c)
            try:
                plans.append((c, st, plan_action(state, st["status"], signal)))
            except InvalidTransition as exc:
                problems.append(InvalidTransition("container %s (service %s): %s" % (st["name"], service, exc.msg),
                                                  container=st))
    if problems:
        first = problems[0]
        if len(problems) > 1:
            first.msg = "; ".join(p.msg for p in problems)
            first.args = (first.msg,)
        raise first

    current = [st for (_ctr, st, _act) in plans]
    actions = {st["name"]: action for (_ctr, st, action) in plans}
    if check_mode:
        predicted = [dict(st, status=predict_status(state, st["status"]), exit_code=None) if action else st
                     for (_ctr, st, action) in plans]
        return _result(state, services, current, actions, all(target_reached(state, None, st) for st in current),
                       start_clock, current, predicted)

    for c, _st, action in plans:
        client.apply(c, action, signal=signal, stop_timeout=stop_timeout)
    # nothing done, nothing to wait for (a started or restarted container is waited for all the same)
    waiting = [(c, st) for c, st, action in plans if action is not None or state in ("started", "restarted")]
    after = {}
    if wait and state in ("started", "restarted", "unpaused"):
        # together, as the containers of one up: one crash-looping while another boots is waited for
        seen = wait_up(client, [c for c, _st in waiting], max(0.0, start_clock + float(timeout) - time.monotonic()),
                       interval=interval)
        after = {st["name"]: now for (_c, st), now in zip(waiting, seen)}
    elif wait and state != "present":
        deadline = start_clock + float(timeout)
        for c, st in waiting:
            _ok, after[st["name"]], _elapsed = client.wait_for(c, state, max(0.0, deadline - time.monotonic()),
                                                               before=st, interval=interval)
    not_ready = [after[st["name"]] for _c, st in waiting
                 if st["name"] in after and not target_reached(state, st, after[st["name"]])]
    waited = list(after)
    final = [after[st["name"]] if st["name"] in after else client.refresh(c) for (c, st, _act) in plans]
    if wait and state != "present":
        ready = not not_ready
    else:
        ready = all(target_reached(state, st, now) for (_ctr, st, _act), now in zip(plans, final))
    return _result(state, services, final, actions, ready, start_clock, current, final, not_ready, waited)


def _with_recreated(result, state, services, missing, recreated, start_clock):
    """:func:`ensure_services`' result for ``services`` from the one of those that had containers (``result``,
    None when none had) and :func:`ensure_project`'s ``recreated`` of the ``missing`` ones."""
    result = result or _result(state, [], [], {}, True, start_clock, [], [])
    final = result["containers"] + [st for st in recreated["containers"] if st["service"] in missing]
    # ready: in check mode (ready None) nothing was recreated, so the missing services are not
    merged = _result(state, services, final, result["actions"], result["ready"] and bool(recreated["ready"]),
                     start_clock, [], final, result["not_ready_states"] + recreated["not_ready"], result["waited"])
    merged["diff"]["before"].update(result["diff"]["before"])
    merged.update(changed=result["changed"] or recreated["changed"], recreated=list(missing),
                  commands=recreated["commands"])
    return merged


def cannot_recover(client, project, service, dependencies=(), crash_loop=None):
    """Why ``service`` of a compose project cannot pass its checks now, or None (also when the engine
    does not answer): every container of it exited, or a dependency has none running (nothing
    brings it back while one only waits), or (``crash_loop``, a :class:`CrashLoop` kept through the
    wait) it keeps crashing under its restart policy while every dependency is settled."""
    try:
        states = [container_state(c) for c in client.find_containers(project)]
    except DockerError:
        return None
    mine = [st for st in states if st["service"] == service]
    if mine and all(st["status"] in ("exited", "dead") for st in mine):
        return "every container of %s exited (exit code %s)" % (service, mine[0].get("exit_code"))
    for dependency in dependencies or ():
        theirs = [st for st in states if st["service"] == dependency]
        if not any(st["status"] in RUNNING_LIKE for st in theirs):
            return "dependency %s is %s: %s cannot recover while it is down" % (
                dependency, _service_text(theirs), service)
    if crash_loop is not None:
        needed_up = all(any(is_settled(st) for st in states if st["service"] == d) for d in dependencies or ())
        return crash_loop.check(mine, needed_up)
    return None


def read_states(project, services, docker_host=None, timeout=DEFAULT_DOCKER_TIMEOUT):
    """dict(containers, containers_error) of ``services`` of a compose project, for a check that reports
    what it finds (read only). An engine that does not answer or a project without containers gives
    ``containers_error`` (msg, error_kind, engine_unreachable); UnknownService (a configuration error,
    not a finding) is raised."""
    try:
        found = ensure_services(connect(docker_host, timeout=timeout), project, services, "present", check_mode=True)
    except UnknownService:
        raise
    except DockerError as exc:
        failure = exc.as_failure()
        return dict(containers=[], containers_error=dict(msg=failure["msg"], error_kind=failure["error_kind"],
                                                         engine_unreachable=failure["engine_unreachable"]))
    return dict(containers=found["containers"], containers_error=None)


def _service_text(states):
    return ", ".join(status_text(s) for s in states) if states else MISSING


def _per_service(services, states):
    return {service: _service_text([s for s in states if s["service"] == service]) for service in services}


def _result(state, services, final, actions, ready, start_clock, before, after, not_ready=(), waited=()):
    final = sorted(final, key=_container_sort_key)
    summary = {}
    for service in services:
        mine = [s for s in final if s.get("service") == service]
        summary[service] = dict(
            containers=len(mine),
            running=sum(1 for s in mine if s["status"] == "running"),
            healthy=sum(1 for s in mine if s["health"] == "healthy"),
            ready=bool(mine) and all(is_ready(s) for s in mine),
            status=_service_text(mine),
            actions={s["name"]: actions.get(s["name"]) for s in mine},
            changed=any(actions.get(s["name"]) for s in mine),
            missing=not mine,
        )
    return dict(
        changed=any(action is not None for action in actions.values()),
        state=state,
        actions=actions,
        containers=final,
        services=summary,
        ready=bool(ready),
        not_ready=[s["name"] for s in not_ready],
        not_ready_states=list(not_ready),
        waited=list(waited),
        recreated=[],
        elapsed=round(time.monotonic() - start_clock, 3),
        diff=dict(before=_per_service(services, before), after=_per_service(services, after)),
    )


# --------------------------------------------------------------------------- compose CLI

def compose_binary(run_command, which=shutil.which):
    """``['docker', 'compose']`` (v2, when ``docker compose version`` answers through ``run_command``,
    ``AnsibleModule.run_command``-like) else ``['docker-compose']`` (v1); ComposeCliMissing without either."""
    docker_bin = which("docker")
    if docker_bin and run_command([docker_bin, "compose", "version"])[0] == 0:
        return [docker_bin, "compose"]
    v1 = which("docker-compose")
    if v1:
        return [v1]
    raise ComposeCliMissing("neither 'docker compose' (v2) nor 'docker-compose' (v1) is installed")


def compose_argv(project, project_dir, files, run_command, which=shutil.which):
    """Base argv for a compose CLI call on one project: binary, -p, --project-directory, -f."""
    argv = compose_binary(run_command, which=which) + ["-p", project]
    if project_dir:
        argv += ["--project-directory", project_dir]
    for f in files or []:
        argv += ["-f", os.path.join(project_dir or "", f)]
    return argv


# --------------------------------------------------------------------------- whole project (compose CLI)

PROJECT_STATES = ("present", "absent", "rebuilt")


def _snapshot(states):
    """{container name: (id, status, health)}: what ``changed`` of compose_project compares."""
    return {st["name"]: (st["id"], st["status"], st["health"]) for st in states}


def _status_health(states):
    return {st["name"]: "%s (%s)" % (st["status"], st["health"]) for st in states}


def project_volumes(client, project):
    """Names of the named volumes compose created for ``project`` (by label)."""
    vols = client._wrap("listing volumes of project %r" % (project,), client.client.volumes.list,
                        filters={"label": "%s=%s" % (LABEL_PROJECT, project)})
    return sorted(v.name for v in vols)


def volumes_decision(remove_volumes, backup_manifest=None, backup_error=None, check_mode=False):
    """Whether ``down`` removes the project's named volumes (the runbook's ``down -v``), and what happens to them in
    words (None without ``remove_volumes``): ``remove_volumes`` is the operator's decision to lose data, taken only
    with a backup set (``backup_manifest``, which :func:`ensure_project` checks again just before); a backup that
    could not be taken (``backup_error``, its message) keeps the volumes. Neither: ValueError, unless in check mode
    (where no backup is taken). dict(remove_volumes, volumes_text)."""
    if backup_manifest and backup_error:
        raise ValueError("backup_manifest and backup_error exclude each other: the backup set was taken or it was not "
                         "(backup_manifest=%r, backup_error=%r)" % (backup_manifest, backup_error))
    if not remove_volumes:
        return dict(remove_volumes=False, volumes_text=None)
    if backup_error:
        return dict(remove_volumes=False, volumes_text="No backup could be taken, so the volumes are kept: %s" % backup_error)
    if not backup_manifest and not check_mode:
        raise ValueError("remove_volumes needs backup_manifest: volumes are removed only after a verified backup "
                         "(module sre.incident.backup)")
    if not backup_manifest:
        return dict(remove_volumes=True, volumes_text="Would remove the volumes after a backup set of the stack")
    return dict(remove_volumes=True, volumes_text=(
        "Backed up the stack before removing its volumes (data loss allowed): %s. Restore with "
        "playbooks/restore_backup.yml -e backup=%s" % (backup_manifest, backup_manifest)))


def ensure_project(client, run_command, project, project_dir, files, state, services=None, profiles=None,
                   no_deps=False, build=False, remove_volumes=False, backup_manifest=None,
                   wait=True, timeout=90.0, check_mode=False, interval=0.25):
    """Bring a whole compose project to ``state`` with the compose CLI; the work of compose_project.

    present: ``up -d``; absent: ``down``; rebuilt: both. ``down -v`` only with ``remove_volumes`` and
    a ``backup_manifest`` (of ``_backup.take``) that covers every volume of the project with files of
    the right sizes and SHA-256, checked just before (``_backup.BackupError`` otherwise, nothing run;
    in check mode, where no backup is taken, only when given). ``changed`` compares the containers.
    """
    start_clock = time.monotonic()
    if not project_dir or not os.path.isdir(project_dir):
        raise ComposeError("project_dir %r is not a directory" % (project_dir,))
    files = files or ["docker-compose.yml"]
    paths = [os.path.join(project_dir, f) for f in files]
    missing = [p for p in paths if not os.path.isfile(p)]
    if missing:
        raise ComposeError("compose file not found: %s" % (", ".join(missing),))
    declared = services_in_compose_files(paths)
    services = list(dict.fromkeys(services or []))
    unknown = [s for s in services if s not in declared]
    if unknown:
        raise UnknownService("unknown service %s in project %r; the compose files declare: %s"
                             % (", ".join(repr(s) for s in unknown), project, ", ".join(declared) or "nothing"),
                             known_services=declared)
    if remove_volumes and state == "present":
        raise ValueError("remove_volumes only applies to state=absent or state=rebuilt")
    volumes_decision(remove_volumes, backup_manifest, check_mode=check_mode)   # no down -v without a backup set

    before = [container_state(c) for c in client.find_containers(project)]
    # what `up` brings up: the services asked for, else those not behind an inactive profile
    active = set(profiles or [])
    up_services = services or [s for s, prof in service_profiles(paths).items() if not prof or active & set(prof)]
    if state == "present":
        changed = any(not mine or not all(is_ready(st) for st in mine)
                      for mine in ([st for st in before if st["service"] == s] for s in up_services))
    else:
        changed = bool(before) or state == "rebuilt"
    result = dict(changed=changed, state=state, project=project, commands=[],
                  volumes=project_volumes(client, project) if remove_volumes else [],
                  backup_manifest=backup_manifest if remove_volumes else None)
    if remove_volumes and backup_manifest:
        from ansible_collections.sre.incident.plugins.module_utils import _backup  # pylint: disable=import-outside-toplevel
        try:
            _backup.verify(backup_manifest, project=project, volumes=result["volumes"])
        except _backup.BackupError as exc:
            raise _backup.BackupError("volumes not removed, nothing run: %s" % exc.msg, **exc.details) from None
    if check_mode:
        result.update(containers=before, ready=None, not_ready=[], elapsed=round(time.monotonic() - start_clock, 3),
                      diff=dict(before=_status_health(before), after="(%s)" % state))
        return result

    base = compose_argv(project, project_dir, files, run_command)
    for profile in profiles or []:
        base += ["--profile", profile]

    def run(args, what):
        argv = base + args
        rc, out, err = run_command(argv)
        result["commands"].append(dict(cmd=argv, rc=rc, stdout=out, stderr=err))
        if rc != 0:
            raise ComposeError("compose %s failed (rc=%s): %s" % (what, rc, (err or out).strip()[-2000:]),
                               cmd=argv, rc=rc, stdout=out, stderr=err)

    if state in ("absent", "rebuilt"):
        run(["down", "--remove-orphans"] + (["-v"] if remove_volumes else []), "down")
    if state in ("present", "rebuilt"):
        run(["up", "-d"] + ([] if build else ["--no-build"]) + (["--no-deps"] if no_deps else []) + services, "up")

    not_ready = []
    if wait and state != "absent":
        started = [c for c in client.find_containers(project) if container_state(c)["service"] in up_services]
        seen = wait_up(client, started, max(0.0, start_clock + float(timeout) - time.monotonic()), interval=interval)
        not_ready = [st for st in seen if not is_ready(st)]
    after = [container_state(c) for c in client.find_containers(project)]
    result.update(changed=_snapshot(after) != _snapshot(before), containers=after, ready=not not_ready,
                  not_ready=not_ready, elapsed=round(time.monotonic() - start_clock, 3),
                  diff=dict(before=_status_health(before), after=_status_health(after)))
    return result


# --------------------------------------------------------------------------- exec, logs, image per service
# (for _cache.py and _report.py: ComposeClient's exec_in / logs / image_info addressed by compose service)

def _exec_target(client, project, service, argv):
    """The first running container of a service (MissingContainer if none); ValueError for a non-list ``argv``."""
    if isinstance(argv, str) or not argv:
        raise ValueError("exec needs an argv list, got %r" % (argv,))
    found = client.find_containers(project, service=service, all=False)
    if not found:
        raise MissingContainer("no running container of service %r in compose project %r" % (service, project),
                               service=service)
    return found[0]


def exec_in_service(client, project, service, argv, expect_output=False):
    """ComposeClient.exec_in in the first running container of ``service``, plus ``container``."""
    container = _exec_target(client, project, service, argv)
    return dict(client.exec_in(container, argv, expect_output=expect_output), container=container.name)


def service_logs(client, project, service, since=None, tail=None):
    """[dict(container, lines)] of every container of ``service``: stdout and stderr, no engine timestamps;
    ``since``: UNIX seconds; ``tail``: the last N lines only."""
    return [dict(container=c.name, lines=client.logs(c, tail=tail, since=since, timestamps=False).splitlines())
            for c in client.find_containers(project, service=service)]


def service_image(client, project, service):
    """The image of the first container of ``service``: dict(container, image_id, image_name, created)."""
    found = client.find_containers(project, service=service)
    if not found:
        raise MissingContainer("service %r of compose project %r has no container" % (service, project), service=service)
    state = container_state(found[0])
    info = client.image_info(state["image"]) or {}
    return dict(container=state["name"], image_id=state["image"], image_name=state["image_name"], created=info.get("created"))


def exec_detached_in_service(client, project, service, argv, user=None):
    """Start ``argv`` (a list, no shell) in the first running container of ``service`` like ``docker exec -d``:
    returns dict(container, cmd) at once, the process outlives the call (drills hold resources, _fault.py)."""
    container = _exec_target(client, project, service, argv)
    client._wrap("exec -d %s in %s" % (argv[0], container.name), container.exec_run, list(argv), detach=True,
                 **(dict(user=user) if user else {}))
    return dict(container=container.name, cmd=list(argv))
