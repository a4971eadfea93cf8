# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Degraded modes (runbook stage 4, SPEC P0-6, GEN-3, GEN-4): what to do when the recovery ladder failed.

What each option needs, does, checks and reverts is said in ``docs/degraded_modes.md``, the rules of
``enable`` and ``disable`` in the module's documentation (``plugins/modules/degrade.py``). Here each option is an ``APPLY``, a
check (``CHECKS``) and a ``revert``; :func:`observe` reads which are on. None needs anything of ours
in the team's images: the edge (the team's nginx) is driven through the engine by ``_edge``.
"""

from __future__ import annotations

import fnmatch
import glob
import json
import os
import re
import struct
import time

from ansible_collections.sre.incident.plugins.module_utils import _compose, _edge, _files, _http, _stack, _time
from ansible_collections.sre.incident.plugins.module_utils._errors import IncidentError
from ansible_collections.sre.incident.plugins.module_utils._wait import poll_until

try:
    import jmespath
except ImportError:  # pragma: no cover - depends on the environment
    jmespath = None

OPTIONS = ("A", "B", "C", "D")
NAMES = {"A": "standby", "B": "static", "C": "cache_snapshot", "D": "offline"}
LETTERS = {name: letter for letter, name in NAMES.items()}
MODE_CHOICES = ("auto",) + OPTIONS + tuple(NAMES[letter] for letter in OPTIONS)
DEFAULT_ORDER = list(OPTIONS)
MARKER_FILE = "degraded-cache-snapshot.json"
SNAPSHOT_GLOB = "dump-*.rdb"
DEFAULT_TIMEOUT = 60.0
BATCH = 100
# Lua: per key, keep (and un-expire) a fresher live entry, else set the snapshot's value; returns how many set
_RESTORE_LUA = ("local n = 0 for i = 1, #KEYS do if redis.call('EXISTS', KEYS[i]) == 1 then "
                "redis.call('PERSIST', KEYS[i]) else redis.call('SET', KEYS[i], ARGV[i]) n = n + 1 end end return n")


class DegradeError(IncidentError):
    """An option could not be applied, verified or reverted; ``details`` are plain data."""

    refused = False


class Refused(DegradeError):
    """Leaving degraded mode was refused: the service is not verified healthy."""

    refused = True


# --------------------------------------------------------------------------- input

def normalize_mode(value):
    """``auto`` or the letter (A-D) of a mode given as a letter or a name; ValueError naming it."""
    text = str(value or "").strip()
    if text.lower() == "auto":
        return "auto"
    if text.upper() in OPTIONS:
        return text.upper()
    if text.lower() in LETTERS:
        return LETTERS[text.lower()]
    raise ValueError("unknown degraded mode %r: choose auto, A, B, C, D, standby, static, cache_snapshot or offline"
                     % (value,))


def normalize_order(values):
    """The order as letters, duplicates refused; ValueError naming a bad entry."""
    if values is None:
        return list(DEFAULT_ORDER)
    if isinstance(values, str):
        values = [v for v in re.split(r"[,\s]+", values) if v]
    order = []
    for value in values:
        letter = normalize_mode(value)
        if letter == "auto":
            raise ValueError("order lists modes (A, B, C, D or their names), not 'auto'")
        if letter in order:
            raise ValueError("mode %s (%s) appears twice in order %r" % (letter, NAMES[letter], list(values)))
        order.append(letter)
    if not order:
        raise ValueError("order is empty: list at least one of A, B, C, D")
    return order


def validate_stack(stack, needs_c=False, snapshot_dir=None):
    """incident_stack checked for what degrading needs; raises ValueError naming the problem."""
    _stack.validate(stack)
    if not stack.get("edge"):
        raise ValueError("incident_stack.edge is not set: degraded modes are applied at the edge (its compose service, "
                         "e.g. edge)")
    if not stack.get("edge_url"):
        raise ValueError("incident_stack.edge_url is not set: degraded modes are checked through the edge")
    if needs_c and not (snapshot_dir or stack.get("state_dir")):
        raise ValueError("option C needs incident_stack.state_dir (or snapshot_dir) to find Redis snapshots")
    _stack.cache_keys(stack)
    query = (stack.get("redis") or {}).get("cache_value_query")
    if query:
        if jmespath is None:
            raise ValueError("incident_stack.redis.cache_value_query needs the jmespath Python library")
        try:
            jmespath.compile(query)
        except Exception as exc:  # jmespath raises several parse error types
            raise ValueError("incident_stack.redis.cache_value_query %r is not a JMESPath expression: %s" % (query, exc)) from None
    return stack


# --------------------------------------------------------------------------- RDB reading (option C)

class RdbError(ValueError):
    """The snapshot is not an RDB file this reader understands."""


def lzf_decompress(data, expected_len):
    """Decompress an LZF block (as written by Redis) of ``expected_len`` bytes."""
    out = bytearray()
    i = 0
    size = len(data)
    while i < size:
        ctrl = data[i]
        i += 1
        if ctrl < 32:
            run = ctrl + 1
            if i + run > size:
                raise RdbError("LZF literal runs past the end of the block")
            out += data[i:i + run]
            i += run
            continue
        run = ctrl >> 5
        if run == 7:
            if i >= size:
                raise RdbError("truncated LZF back reference")
            run += data[i]
            i += 1
        if i >= size:
            raise RdbError("truncated LZF back reference")
        ref = len(out) - ((ctrl & 0x1F) << 8) - data[i] - 1
        i += 1
        if ref < 0:
            raise RdbError("LZF back reference before the start of the block")
        for offset in range(run + 2):
            out.append(out[ref + offset])
    if len(out) != expected_len:
        raise RdbError("LZF block decompressed to %d bytes, expected %d" % (len(out), expected_len))
    return bytes(out)


_INT_FORMATS = {0: "<b", 1: "<h", 2: "<i"}  # strings encoded as 8, 16 and 32 bit integers


class _Reader:
    def __init__(self, data):
        self.data = data
        self.pos = 0

    def read(self, count):
        if self.pos + count > len(self.data):
            raise RdbError("truncated RDB file at byte %d" % self.pos)
        chunk = self.data[self.pos:self.pos + count]
        self.pos += count
        return chunk

    def byte(self):
        return self.read(1)[0]

    def length(self):
        """(value, special): a length, or the special-encoding code when ``special``."""
        first = self.byte()
        kind = first >> 6
        if kind == 0:
            return first & 0x3F, False
        if kind == 1:
            return ((first & 0x3F) << 8) | self.byte(), False
        if first == 0x80:
            return struct.unpack(">I", self.read(4))[0], False
        if first == 0x81:
            return struct.unpack(">Q", self.read(8))[0], False
        if kind == 3:
            return first & 0x3F, True
        raise RdbError("bad length encoding 0x%02x at byte %d" % (first, self.pos - 1))

    def plain_length(self):
        value, special = self.length()
        if special:
            raise RdbError("unexpected encoded value where a length belongs (byte %d)" % self.pos)
        return value

    def string(self):
        value, special = self.length()
        if not special:
            return self.read(value)
        if value in _INT_FORMATS:
            fmt = _INT_FORMATS[value]
            return str(struct.unpack(fmt, self.read(struct.calcsize(fmt)))[0]).encode()
        if value == 3:
            compressed_len = self.plain_length()
            expected = self.plain_length()
            return lzf_decompress(self.read(compressed_len), expected)
        raise RdbError("unknown string encoding %d" % value)

    def skip_strings(self, count):
        for _string in range(count):
            self.string()


# value types whose payload is one (ziplist / listpack / intset) string
_BLOB_TYPES = (9, 10, 11, 12, 13, 16, 17, 20)


def _skip_value(reader, vtype):
    if vtype in (1, 2, 14):  # list, set, quicklist (v1): n strings
        reader.skip_strings(reader.plain_length())
    elif vtype == 4:  # hash: n field/value pairs
        reader.skip_strings(2 * reader.plain_length())
    elif vtype == 3:  # zset (v1): member + score as a length-prefixed text
        for _member in range(reader.plain_length()):
            reader.string()
            score_len = reader.byte()
            if score_len < 253:  # 253-255: nan, +inf, -inf without text
                reader.read(score_len)
    elif vtype == 5:  # zset2: member + binary double
        for _member in range(reader.plain_length()):
            reader.string()
            reader.read(8)
    elif vtype in _BLOB_TYPES:
        reader.string()
    elif vtype == 18:  # quicklist 2: n (container, listpack) nodes
        for _node in range(reader.plain_length()):
            reader.plain_length()
            reader.string()
    else:
        raise RdbError("value type %d (stream or module) is not supported" % vtype)


def parse_rdb(data, patterns=("recs:*",), db=0):
    """String entries of ``db`` whose key matches one of ``patterns`` (Redis glob), read from an RDB file's bytes.

    Returns dict(version, ctime (save time, UNIX seconds, or None), entries ({key (str): dict(value (bytes),
    expire_ms (int or None))}), keys_total (every key in ``db``), complete (False when reading stopped at an
    unsupported value), error). RdbError when ``data`` is not an RDB file at all.
    """
    if not data.startswith(b"REDIS") or len(data) < 9:
        raise RdbError("not an RDB file (no REDIS header)")
    try:
        version = int(data[5:9].decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        raise RdbError("not an RDB file (bad version %r)" % (data[5:9],)) from None
    reader = _Reader(data)
    reader.pos = 9
    patterns = [patterns] if isinstance(patterns, str) else list(patterns)
    result = dict(version=version, ctime=None, entries={}, keys_total=0, complete=True, error=None)
    current_db = 0
    expire_ms = None
    try:
        while True:
            opcode = reader.byte()
            if opcode == 0xFF:  # EOF
                break
            if opcode == 0xFA:  # AUX field
                name = reader.string()
                value = reader.string()
                if name == b"ctime":
                    try:
                        result["ctime"] = int(value)
                    except ValueError:
                        pass
            elif opcode == 0xFE:  # SELECTDB
                current_db = reader.plain_length()
            elif opcode == 0xFB:  # RESIZEDB
                reader.plain_length()
                reader.plain_length()
            elif opcode == 0xFC:  # EXPIRETIME_MS
                expire_ms = struct.unpack("<q", reader.read(8))[0]
            elif opcode == 0xFD:  # EXPIRETIME (seconds)
                expire_ms = struct.unpack("<i", reader.read(4))[0] * 1000
            elif opcode == 0xF8:  # IDLE
                reader.plain_length()
            elif opcode == 0xF9:  # FREQ
                reader.read(1)
            elif opcode == 0xF5:  # FUNCTION2
                reader.string()
            elif opcode in (0xF6, 0xF7):
                raise RdbError("module data / functions (opcode %d) are not supported" % opcode)
            else:
                vtype = opcode
                key = reader.string()
                if current_db == db:
                    result["keys_total"] += 1
                if vtype == 0:
                    value = reader.string()
                    name = key.decode("utf-8", "replace")
                    if current_db == db and any(fnmatch.fnmatchcase(name, pat) for pat in patterns):
                        result["entries"][name] = dict(value=value, expire_ms=expire_ms)
                else:
                    _skip_value(reader, vtype)
                expire_ms = None
    except RdbError as exc:
        result["complete"] = False
        result["error"] = str(exc)
    return result


_STAMP_RE = re.compile(r"dump-(\d{8}T\d{6}Z)\.rdb$")


def newest_snapshot(directory):
    """Path of the newest ``dump-<UTC yyyymmddTHHMMSSZ>.rdb`` in ``directory`` (names sort by time), or None."""
    paths = sorted(glob.glob(os.path.join(directory, SNAPSHOT_GLOB))) if directory else []
    return paths[-1] if paths else None


def snapshot_taken_at(path, ctime=None):
    """When the snapshot was taken (UNIX seconds): the RDB's own ctime, else the name's stamp, else mtime."""
    if ctime:
        return float(ctime)
    found = _STAMP_RE.search(os.path.basename(path))
    if found:
        return _time.epoch(found.group(1))
    return os.stat(path).st_mtime


# --------------------------------------------------------------------------- context

class Context:
    """Where and how to act: the engine client, the compose CLI runner (``run_command(argv, environ_update=None)``,
    ``AnsibleModule.run_command``-like), the stack, the edge, the clock."""

    def __init__(self, client, run_command, stack, timeout=DEFAULT_TIMEOUT, snapshot_dir=None, interval=0.5,
                 probe_timeout=3.0, clock=time.monotonic, now=time.time):
        self.client = client
        self.run_command_env = run_command
        self.stack = stack
        self.timeout = float(timeout)
        self.snapshot_dir = snapshot_dir
        self.interval = interval
        self.probe_timeout = probe_timeout
        self.clock = clock
        self.now = now
        self.project = stack["name"]
        self.service = stack["service"]
        self.standby = stack.get("standby") or None
        self.redis = (stack.get("redis") or {}).get("service") or "redis"
        self.downgrade_env = _stack.downgrade_env(stack)
        # the runbook's "latency under 500 ms" (SPEC P0-5): a standby or a restored cache that answers
        # as slowly as the broken service does not serve users
        self.max_latency_ms = float((stack.get("thresholds") or {}).get("latency_ms") or 500)
        self.edge = _edge.Edge(client, stack, run_command=self.runner(), probe_timeout=probe_timeout, interval=0.3,
                               clock=clock)

    # ---- compose CLI
    def runner(self, env=None):
        def run(argv):
            return self.run_command_env(argv, environ_update=dict(env or {}))
        return run

    def compose_files(self):
        return [f if os.path.isabs(f) else os.path.join(self.stack["project_dir"], f)
                for f in (self.stack.get("compose_files") or ["docker-compose.yml"])]

    def declared_services(self):
        return _compose.services_in_compose_files(self.compose_files())

    def up(self, services, env=None, profiles=None, timeout=None):
        return _compose.ensure_project(
            self.client, self.runner(env), self.project, self.stack["project_dir"],
            self.stack.get("compose_files") or ["docker-compose.yml"], "present", services=services,
            profiles=profiles, no_deps=True, wait=True, timeout=timeout or self.timeout)

    # ---- containers
    def containers(self, service):
        return self.client.find_containers(self.project, service) if service else []

    def running(self, service):
        return next((c for c in self.containers(service) if _compose.container_state(c)["status"] == "running"), None)

    def exec(self, service, argv):
        c = self.running(service)
        if c is None:
            raise DegradeError("service %s of project %s is not running" % (service, self.project), service=service)
        return self.client.exec_in(c, argv)

    # ---- the edge
    def edge_mode(self):
        """The configuration the edge serves (normal, standby, offline, unknown), or None without an edge container."""
        if not self.edge.containers():
            return None
        try:
            return self.edge.mode()["mode"]
        except (_edge.EdgeError, _compose.DockerError):
            return None

    def edge_serving(self, deadline):
        """Make the edge answer again after the service moved (B and its revert recreate it)."""
        return self.edge.ensure_serving(timeout=max(5.0, deadline - self.clock()))

    # ---- redis
    def redis_cli(self, *args):
        res = self.exec(self.redis, _stack.redis_cli(self.stack, *args))
        out = (res["stdout"] or "").strip()
        if res["rc"] != 0 or out.startswith("ERR") or out.startswith("(error)"):
            raise DegradeError("redis-cli %s failed: %s" % (args[0] if args else "", (res["stderr"] or out).strip()[:500]))
        return out

    # ---- probes (every HTTP request of this module goes through probe)
    def probe(self, url):
        return _http.probe(url, self.probe_timeout)

    def users(self, base=None, max_latency=True):
        """What users get at ``base`` (default: through the edge); see _edge.users_answered."""
        return _edge.users_answered(self.stack, base or self.stack["edge_url"], probe=lambda url, _timeout: self.probe(url),
                                    max_latency_ms=self.max_latency_ms if max_latency else None)

    def marker_path(self):
        state_dir = self.stack.get("state_dir")
        return os.path.join(str(state_dir), MARKER_FILE) if state_dir else None

    def read_marker(self):
        path = self.marker_path()
        if not path or not os.path.exists(path):
            return None
        try:
            with open(path, "r", encoding="utf-8") as handle:
                return json.load(handle)
        except (OSError, ValueError):
            return dict(path=path, unreadable=True)


def downgrade_on(container, variable):
    """Whether ``container`` runs with the downgrade ``variable`` on (1, true, yes, on)."""
    env = dict(item.partition("=")[::2] for item in (((container.attrs or {}).get("Config") or {}).get("Env") or []))
    return str(env.get(variable, "")).strip().lower() in ("1", "true", "yes", "on")


def _service_downgrade(ctx):
    """Whether the service's container runs with the downgrade variable on (None when it has no container)."""
    found = [downgrade_on(c, ctx.downgrade_env) for c in ctx.containers(ctx.service)]
    return any(found) if found else None


def observe(ctx):
    """Which degraded modes are on, read from the edge's configuration, the containers and the C marker."""
    edge_mode = ctx.edge_mode()
    downgrade = _service_downgrade(ctx)
    service = [_compose.container_state(c) for c in ctx.containers(ctx.service)]
    standby = [_compose.container_state(c) for c in ctx.containers(ctx.standby)] if ctx.standby else []
    marker = ctx.read_marker()
    on = dict(A=edge_mode == "standby", B=bool(downgrade), C=marker is not None, D=edge_mode == "offline")
    active = [m for m in OPTIONS if on[m]]
    return dict(edge_mode=edge_mode, downgrade_mode=downgrade,
                service_status=_compose.status_text(service[0]) if service else _compose.MISSING,
                standby_running=any(s["status"] == "running" for s in standby),
                standby_status=_compose.status_text(standby[0]) if standby else _compose.MISSING,
                cache_snapshot=marker, active=active, active_names=[NAMES[m] for m in active])


def describe(observed):
    """Short text for diffs: ``normal`` or the active modes with their letters."""
    return ", ".join("%s (%s)" % (NAMES[m], m) for m in observed.get("active") or []) or "normal"


# --------------------------------------------------------------------------- can an option apply here?

def not_applicable(ctx, letter):
    """Why option ``letter`` cannot apply on this stack (a text), or None when it can be tried."""
    if letter == "A":
        if not ctx.standby:
            return "no standby: incident_stack.standby is not set"
        if ctx.standby not in ctx.declared_services():
            return "no standby: %s is not a service of %s" % (ctx.standby, ", ".join(ctx.compose_files()))
    if letter in ("A", "D"):
        if not ctx.stack.get("edge_config"):
            return "incident_stack.edge_config is not set: the edge's configuration file is not known"
        if not ctx.stack.get("state_dir"):
            return "incident_stack.state_dir is not set: the team's edge configuration must be kept before it is changed"
    if letter == "A" and ctx.stack.get("service_port") in (None, ""):
        return "incident_stack.service_port is not set: the edge's upstream cannot be found"
    return None


# --------------------------------------------------------------------------- checks

def _poll(ctx, check, deadline):
    """Poll ``check`` (-> dict with ``problems``) until it has none or the deadline: (ok, its last answer
    with ``waited_s``)."""
    last = {}

    def attempt():
        last["m"] = check()
        return not last["m"]["problems"]

    ok, _value, elapsed = poll_until(attempt, max(0.0, deadline - ctx.clock()), interval=ctx.interval)
    return ok, dict(last.get("m") or {}, waited_s=round(elapsed, 3))


def _claims(recs, key, expected):
    """Problems for answers whose ``key`` (source, instance) says something else than ``expected``; answers
    without ``key`` claim nothing."""
    return ["%s: %s %s, expected %s" % (user, key, r[key], expected)
            for user, r in recs.items() if r.get(key) is not None and r[key] != expected]


def standby_verified(ctx):
    """Every sample user answered through the edge, by the standby where the answers say their instance."""
    res = ctx.users()
    problems = list(res["problems"]) + _claims(res["recommendations"], "instance", "standby")
    return dict(res, ok=not problems, problems=problems)


def static_verified(ctx):
    """Every sample user answered through the edge, from the static top N where the answers say their source."""
    res = ctx.users(max_latency=False)
    problems = list(res["problems"]) + _claims(res["recommendations"], "source", "static")
    downgrade = _service_downgrade(ctx)
    if not downgrade:
        problems.append("%s does not run with %s=true" % (ctx.service, ctx.downgrade_env))
    return dict(res, ok=not problems, problems=problems, downgrade_mode=downgrade)


def offline_verified(ctx):
    """The recommendations answer 503 with a JSON error through the edge; /health there says what the service says."""
    urls = _stack.urls(ctx.stack, base=ctx.stack["edge_url"])
    problems = []
    answers = {}
    for user, url in urls["recommendations"].items():
        r = ctx.probe(url)
        body = r.get("body_json") if isinstance(r.get("body_json"), dict) else {}
        answers[user] = dict(status=r["status"], error=body.get("error"))
        if r["status"] != 503 or not body.get("error"):
            problems.append("%s through the edge: status %s, error %r (expected 503 with a JSON error)"
                            % (user, r["status"], body.get("error")))
    edge_health = ctx.probe(urls["health"])["status"]
    direct_health = ctx.probe(_stack.urls(ctx.stack)["health"])["status"]
    if (edge_health == 200) != (direct_health == 200):
        problems.append("/health through the edge answered %s while the service answers %s" % (edge_health, direct_health))
    return dict(ok=not problems, problems=problems, recommendations=answers, edge_health_status=edge_health,
                service_health_status=direct_health)


def service_verified(ctx, base=None, allow_static=True):
    """The service's own checks at ``base`` (default its own port): /health 200 and enough recommendations per user."""
    res = ctx.users(base or ctx.stack["base_url"], max_latency=False)
    problems = list(res["problems"])
    if not allow_static:
        problems += ["%s: still static recommendations" % user for user, r in res["recommendations"].items()
                     if r.get("source") == "static"]
        if _service_downgrade(ctx):
            problems.append("%s still runs with %s=true" % (ctx.service, ctx.downgrade_env))
    return dict(res, ok=not problems, problems=problems)


def cache_verified(ctx):
    """Every sample user answered through the edge, after the snapshot put cached answers back."""
    restored = len((ctx.read_marker() or {}).get("keys") or [])
    res = ctx.users()
    problems = list(res["problems"])
    if not restored:
        problems.append("the snapshot put no cached answer back")
    from_cache = sum(1 for r in res["recommendations"].values() if r.get("source") == "cache")
    return dict(res, problems=problems, from_cache=from_cache, keys_restored=restored)


CHECKS = {"A": standby_verified, "B": static_verified, "C": cache_verified, "D": offline_verified}


def verify_option(ctx, letter, deadline):
    """Poll option ``letter``'s check until it verifies or the deadline: (ok, measured)."""
    return _poll(ctx, lambda: CHECKS[letter](ctx), deadline)


# --------------------------------------------------------------------------- apply / revert

def apply_standby(ctx, deadline):
    res = ctx.up([ctx.standby], profiles=[ctx.stack.get("standby_profile") or "standby"], timeout=max(1.0, deadline - ctx.clock()))
    states = [s for s in res["containers"] if s.get("service") == ctx.standby]
    if not res["ready"]:
        state = states[0] if states else {}
        raise DegradeError("standby %s is not ready: %s" % (ctx.standby, _compose.status_text(state) if state else "missing"),
                           standby=_compose.status_text(state) if state else _compose.MISSING)
    edge = _at_edge(ctx.edge.apply, "standby", lambda: standby_verified(ctx), max(1.0, deadline - ctx.clock()))
    return dict(standby=_compose.status_text(states[0]) if states else None, edge=edge)


def revert_standby(ctx):
    done = {}
    if ctx.edge_mode() == "standby":
        done["edge"] = _at_edge(ctx.edge.restore)
    stopped = []
    for c in ctx.containers(ctx.standby):
        if _compose.container_state(c)["status"] in _compose.RUNNING_LIKE:
            ctx.client.stop(c)
            stopped.append(c.name)
    done["stopped"] = stopped
    return done


def _at_edge(func, *args):
    """``func(*args)`` of the edge, an EdgeError raised as a DegradeError."""
    try:
        return func(*args)
    except _edge.EdgeError as exc:
        raise DegradeError(exc.msg, **exc.details) from None


def _set_downgrade(ctx, value, deadline):
    """Recreate the service with the downgrade variable ``value``; switched on it must be ready (switched off,
    the caller checks that)."""
    env = {ctx.downgrade_env: "true" if value else "false"}
    res = ctx.up([ctx.service], env=env, timeout=max(1.0, deadline - ctx.clock()))
    states = [s for s in res["containers"] if s.get("service") == ctx.service]
    measured = dict(service=_compose.status_text(states[0]) if states else _compose.MISSING,
                    downgrade_mode=_service_downgrade(ctx), recreated=res["changed"])
    if not res["ready"] and value:
        raise DegradeError("%s recreated with %s=%s is not ready: %s"
                           % (ctx.service, ctx.downgrade_env, env[ctx.downgrade_env], measured["service"]), **measured)
    if res["ready"] and ctx.edge.service:
        # the recreated container has a new address: the edge may still send users to the old one
        measured["edge"] = ctx.edge_serving(deadline)
    return measured


def apply_static(ctx, deadline):
    measured = _set_downgrade(ctx, True, deadline)
    if _service_downgrade(ctx) is not True:
        var = ctx.downgrade_env
        raise DegradeError("%s was recreated but does not run with %s=true: does the compose file pass %s through "
                           "(e.g. %s: ${%s:-false})?" % (ctx.service, var, var, var, var), **measured)
    return measured


def revert_static(ctx, deadline=None):
    if not _service_downgrade(ctx):
        return dict(recreated=False)
    return _set_downgrade(ctx, False, deadline if deadline is not None else ctx.clock() + ctx.timeout)


def _count(reply):
    """The integer a redis-cli command answered (0 when it answered none)."""
    try:
        return int(reply.split()[-1])
    except (ValueError, IndexError):
        return 0


def _write_marker(path, data):
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    _files.write_json(path, data)


def read_snapshot(ctx):
    """The newest snapshot and its cached answers; DegradeError when there is none usable."""
    directory = ctx.snapshot_dir or os.path.join(str(ctx.stack["state_dir"]), "redis-snapshots")
    path = newest_snapshot(directory)
    if not path:
        raise DegradeError("no Redis snapshot (%s) in %s: take one with playbooks/diagnose.yml" % (SNAPSHOT_GLOB, directory),
                           snapshot_dir=directory, precondition=True)
    try:
        with open(path, "rb") as handle:
            data = handle.read()
        parsed = parse_rdb(data, _stack.cache_keys(ctx.stack))
    except (OSError, RdbError) as exc:
        raise DegradeError("cannot read the Redis snapshot %s: %s" % (path, exc), snapshot=path, precondition=True) from None
    taken = snapshot_taken_at(path, parsed["ctime"])
    return dict(path=path, taken_at=_time.format_seconds(taken), age_s=round(ctx.now() - taken, 1), parsed=parsed)


def usable_value(stack, raw):
    """The text of a cached value when it is one the service can serve, else None.

    Any non-empty UTF-8 string, or, with ``incident_stack.redis.cache_value_query``, a JSON value on
    which that JMESPath expression is true (JMESPath truth: false, null, empty string/list/object are false).
    """
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if not text.strip():
        return None
    query = (stack.get("redis") or {}).get("cache_value_query")
    if not query:
        return text
    try:
        found = jmespath.search(query, json.loads(text))
    except (ValueError, jmespath.exceptions.JMESPathError):
        return None
    return text if found not in (None, False, "", [], {}) else None


def apply_cache(ctx, deadline):
    # C serves through the service: one that does not answer at all cannot be helped (nothing is touched)
    health = ctx.probe(_stack.urls(ctx.stack)["health"])
    if health["status"] is None:
        raise DegradeError("option C serves the cache through %s, which does not answer (%s)" % (ctx.service, health["error"]),
                           precondition=True)
    if not ctx.stack.get("state_dir"):
        raise DegradeError("option C needs incident_stack.state_dir for its marker", precondition=True)
    snap = read_snapshot(ctx)
    entries = snap["parsed"]["entries"]
    patterns = _stack.cache_keys(ctx.stack)
    measured = dict(snapshot=snap["path"], snapshot_taken_at=snap["taken_at"], snapshot_age_s=snap["age_s"],
                    snapshot_complete=snap["parsed"]["complete"], snapshot_keys=snap["parsed"]["keys_total"],
                    entries_found=len(entries), cache_keys=patterns)
    usable = {key: usable_value(ctx.stack, entry["value"]) for key, entry in sorted(entries.items())}
    keys = [key for key, text in usable.items() if text is not None]
    values = [usable[key] for key in keys]
    measured["entries_usable"] = len(keys)
    if not keys:
        query = (ctx.stack.get("redis") or {}).get("cache_value_query")
        raise DegradeError("the snapshot %s holds no usable cached answer (keys %s%s)"
                           % (snap["path"], ", ".join(patterns), ", values matching %s" % query if query else ""),
                           precondition=True, **measured)
    set_count = 0
    marker = dict(mode=NAMES["C"], applied_at=_time.format_seconds(ctx.now()), keys=[], **measured)
    # the marker goes first, so a half-done restore is still seen (and reverted)
    _write_marker(ctx.marker_path(), marker)
    for start in range(0, len(keys), BATCH):
        chunk_keys = keys[start:start + BATCH]
        chunk_values = values[start:start + BATCH]
        out = ctx.redis_cli("EVAL", _RESTORE_LUA, len(chunk_keys), *(chunk_keys + chunk_values))
        marker["keys"].extend(chunk_keys)
        _write_marker(ctx.marker_path(), marker)
        set_count += _count(out)
    measured.update(keys_restored=set_count, keys_kept=len(keys) - set_count, marker=ctx.marker_path())
    marker.update(keys_restored=set_count, keys_kept=len(keys) - set_count)
    _write_marker(ctx.marker_path(), marker)
    return measured


def revert_cache(ctx):
    marker = ctx.read_marker()
    if marker is None:
        return dict(deleted=0)
    keys = list(marker.get("keys") or [])
    deleted = 0
    for start in range(0, len(keys), BATCH):
        deleted += _count(ctx.redis_cli("DEL", *keys[start:start + BATCH]))
    os.unlink(ctx.marker_path())
    return dict(deleted=deleted, marker_removed=ctx.marker_path())


def apply_offline(ctx, deadline):
    return dict(edge=_at_edge(ctx.edge.apply, "offline", lambda: offline_verified(ctx), max(1.0, deadline - ctx.clock())))


def revert_offline(ctx):
    if ctx.edge_mode() == "offline":
        return dict(edge=_at_edge(ctx.edge.restore))
    return {}


APPLY = {"A": apply_standby, "B": apply_static, "C": apply_cache, "D": apply_offline}


def revert(ctx, letter, deadline=None):
    if letter == "B":
        return revert_static(ctx, deadline)
    return {"A": revert_standby, "C": revert_cache, "D": revert_offline}[letter](ctx)


# --------------------------------------------------------------------------- enable / disable

def _entry(letter):
    return dict(option=letter, mode=NAMES[letter], applied=False, verified=None, reverted=False,
                already_active=False, measured={}, error=None, not_applicable=None)


def try_option(ctx, letter, verify=True):
    """Apply one option, verify it, revert it when it does not verify. Returns its ``tried`` entry."""
    entry = _entry(letter)
    started = ctx.clock()
    reason = not_applicable(ctx, letter)
    if reason:
        entry.update(not_applicable=reason, error="not applicable: %s" % reason, verified=False, elapsed_s=0.0)
        return entry
    deadline = ctx.clock() + ctx.timeout
    try:
        entry["measured"] = APPLY[letter](ctx, deadline) or {}
        entry["applied"] = True
        if verify:
            ok, measured = verify_option(ctx, letter, deadline)
            entry["verified"] = ok
            entry["measured"]["verify"] = measured
            if not ok:
                entry["error"] = "not verified: %s" % "; ".join(measured.get("problems") or ["?"])
    except (DegradeError, _compose.DockerError) as exc:
        details = dict(exc.details or {})
        entry["error"] = exc.msg
        precondition = details.pop("precondition", False)
        # C writes its marker before it touches Redis
        entry["applied"] = ctx.read_marker() is not None if letter == "C" else not precondition
        entry["measured"].update(details)
        entry["verified"] = False
    if entry["verified"] is False and entry["applied"]:
        try:
            entry["measured"]["revert"] = revert(ctx, letter, ctx.clock() + ctx.timeout)
            entry["reverted"] = True
        except (DegradeError, _compose.DockerError) as exc:
            entry["revert_error"] = exc.msg
    entry["elapsed_s"] = round(ctx.clock() - started, 3)
    return entry


def summarize(entry):
    """One line per tried option, for the incident record and notifications."""
    if entry.get("not_applicable"):
        return ("%s (%s): not applicable: %s" % (entry.get("mode"), entry.get("option"), entry["not_applicable"]))[:400]
    if entry.get("already_active"):
        state = "already on, verified" if entry.get("verified") is not False else "already on, NOT verified"
    elif entry.get("verified"):
        state = "applied and verified"
    elif entry.get("applied") and entry.get("verified") is None:
        state = "applied (not verified)"
    elif entry.get("applied"):
        state = "applied, not verified, %s" % ("reverted" if entry.get("reverted") else "NOT reverted")
    elif "verified" in entry:
        state = "not applied"
    else:
        state = "switched off"
    text = "%s (%s): %s" % (entry.get("mode"), entry.get("option"), state)
    if entry.get("error"):
        text += ": %s" % entry["error"]
    return text[:400]


def _result(before, after, tried, changed, winner, msg, **extra):
    """The module's result. ``degraded``: a mode serves users (``winner``, verified unless ``verify`` is off);
    ``summary``: ``msg`` and what was tried, one line for the output, the record and the notice."""
    snapshot = next((e["measured"] for e in reversed(tried) if e["option"] == "C" and e["measured"].get("snapshot")), None)
    marker = (after or before).get("cache_snapshot") or {}
    source = snapshot or marker
    age = source.get("snapshot_age_s")
    if not snapshot and marker.get("snapshot_taken_at"):
        age = round(time.time() - _time.epoch(marker["snapshot_taken_at"]), 1)
    tried_summary = [summarize(e) for e in tried]
    result = dict(changed=changed, degraded=winner is not None, active_mode=NAMES[winner] if winner else None,
                  active_option=winner, summary="%s. Tried: %s" % (msg, "; ".join(tried_summary) or "nothing"),
                  active_modes=list((after or before).get("active_names") or []), tried=tried,
                  snapshot=source.get("snapshot"), snapshot_age_s=age,
                  not_applicable={e["option"]: e["not_applicable"] for e in tried if e.get("not_applicable")},
                  tried_summary=tried_summary, before=before, after=after, msg=msg,
                  diff=dict(before=describe(before), after=describe(after) if after else describe(before)))
    result.update(extra)
    return result


def enable(ctx, mode="auto", order=None, verify=True, check_mode=False):
    """Enable a degraded mode (``mode`` a letter or ``auto`` = try ``order``). See the module doc."""
    mode = normalize_mode(mode)
    candidates = normalize_order(order) if mode == "auto" else [mode]
    before = observe(ctx)
    tried = []
    for letter in candidates:
        if letter not in before["active"]:
            continue
        entry = dict(_entry(letter), already_active=True)
        if verify:
            ok, measured = verify_option(ctx, letter, ctx.clock() + min(ctx.timeout, 15.0))
            entry.update(verified=ok, measured=dict(verify=measured))
            if not ok:
                entry["error"] = "active but not verified: %s" % "; ".join(measured.get("problems") or ["?"])
        tried.append(entry)
        if not verify or entry["verified"]:
            others = [m for m in before["active"] if m != letter]
            if not others:
                return _result(before, before, tried, False, letter, "degraded mode %s (%s) is already on" % (NAMES[letter], letter))
            if check_mode:
                after = dict(before, active=[letter], active_names=[NAMES[letter]])
                return _result(before, after, tried, True, letter, "would switch off %s" % ", ".join(NAMES[m] for m in others))
            for other in others:
                revert(ctx, other)
            return _result(before, observe(ctx), tried, True, letter,
                           "degraded mode %s (%s) is on; switched off %s" % (NAMES[letter], letter, ", ".join(NAMES[m] for m in others)))
        break  # an active mode that does not verify any more is applied again below
    if check_mode:
        reasons = {m: not_applicable(ctx, m) for m in candidates}
        skipped = [dict(_entry(m), not_applicable=reasons[m]) for m in candidates if reasons[m]]
        can = [m for m in candidates if not reasons[m]]
        first = can[0] if can else None
        after = dict(before, active=[first], active_names=[NAMES[first]]) if first else before
        # a dry run serves nobody: ``degraded`` stays false, ``active_mode`` says what would be tried first
        return _result(before, after, skipped, bool(first), first,
                       "would try %s in turn, each verified after it is applied" % ", ".join(
                           "%s (%s)" % (NAMES[m], m) for m in can) if can else "no option applies on this stack",
                       would_try=can, degraded=False)
    tried = []
    winner = None
    for letter in candidates:
        entry = try_option(ctx, letter, verify=verify)
        tried.append(entry)
        if entry["applied"] and entry["verified"] is not False:
            winner = letter
            break
    if winner:
        for other in observe(ctx)["active"]:
            if other != winner:
                revert(ctx, other)
    after = observe(ctx)
    if not winner:
        failed = _result(before, after, tried, after["active"] != before["active"] or any(e["applied"] for e in tried),
                         None, "no degraded mode could be verified")
        raise DegradeError(failed["summary"], **failed)
    return _result(before, after, tried, True, winner, "degraded mode %s (%s) is on" % (NAMES[winner], winner))


def disable(ctx, force=False, check_mode=False):
    """Leave every degraded mode, only once the service is verified healthy (unless ``force``)."""
    before = observe(ctx)
    if not before["active"] and not before["standby_running"]:
        return _result(before, before, [], False, None, "no degraded mode is on", health=None)
    if before["edge_mode"] == "unknown":
        raise DegradeError("the edge configuration %s was changed by someone else since a degraded mode kept the team's "
                           "original in %s: not overwriting it; compare the two and put the right one back by hand"
                           % (ctx.stack.get("edge_config"), ctx.edge.saved_dir),
                           **_result(before, before, [], False, None, "refused"))
    health = service_verified(ctx)
    if not health["ok"] and not force:
        raise Refused("refusing to leave degraded mode %s: %s is not verified healthy (%s). Recover it first, or "
                      "use force=true" % (describe(before), ctx.service, "; ".join(health["problems"])),
                      **_result(before, before, [], False, None, "refused", health=health))
    if check_mode:
        after = dict(before, active=[], active_names=[], standby_running=False)
        return _result(before, after, [], True, None, "would switch off %s" % describe(before), health=health)
    reverted = []
    deadline = ctx.clock() + ctx.timeout
    if "B" in before["active"]:
        # the service first, while the edge still shields users: back to full recommendations
        reverted.append(dict(option="B", mode=NAMES["B"], measured=revert_static(ctx, deadline)))
        ok, full = _poll(ctx, lambda: service_verified(ctx, allow_static=False), deadline)
        if not ok and not force:
            apply_static(ctx, ctx.clock() + ctx.timeout)
            problems = "; ".join(full.get("problems") or [])
            raise DegradeError("%s is not verified with full recommendations after %s was switched off (%s); "
                               "static recommendations are back on" % (ctx.service, ctx.downgrade_env, problems),
                               **_result(before, observe(ctx), reverted, True, None, "rolled back", health=full))
    for letter in ("C", "D", "A"):  # a running standby is stopped even with the edge already back
        if letter in before["active"] or (letter == "A" and before["standby_running"]):
            reverted.append(dict(option=letter, mode=NAMES[letter], measured=revert(ctx, letter)))
    after = observe(ctx)
    # users reach the service through the edge: a recreated service may need the edge reloaded
    edge = ctx.edge_serving(ctx.clock() + min(ctx.timeout, 30.0)) if ctx.edge.service else None
    ok, final = _poll(ctx, lambda: service_verified(ctx, ctx.stack["edge_url"], allow_static=False),
                      ctx.clock() + min(ctx.timeout, 30.0))
    if after["active"]:
        raise DegradeError("still degraded after switching off: %s" % describe(after),
                           **_result(before, after, reverted, True, None, "not all modes switched off", health=final))
    if not ok and not force:
        raise DegradeError("every degraded mode is off, but users are not answered through the edge: %s"
                           % "; ".join(final.get("problems") or []),
                           **_result(before, after, reverted, True, None, "not verified after", health=final, edge=edge))
    return _result(before, after, reverted, True, None, "back to normal: %s switched off" % describe(before),
                   health=final, verified=ok, edge=edge)
