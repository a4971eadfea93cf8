# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Degraded modes (runbook stage 4, SPEC P0-6): what to do when the recovery ladder failed.

Four options, each with ``apply``, ``verify`` and ``revert``; ``observe`` reads which are on:

A ``standby``        start the standby instance (compose profile ``standby``), wait until it is
                     healthy, switch the edge upstream to it (``edge-mode standby``, exec through
                     the docker SDK). Verified through the edge: every sample user gets enough
                     recommendations, answered by the standby instance.
B ``static``         recreate the service with ``DOWNGRADE_MODE=true`` (compose ``up -d --no-deps``
                     with the variable in compose's environment; a restart would not apply it).
                     Verified directly and through the edge: the top N with ``source: static``.
C ``cache_snapshot`` put the cached recommendations (``recs:*``) of the newest Redis snapshot
                     (``<state_dir>/redis-snapshots/dump-<ts>.rdb``) back into the live Redis,
                     without expiry, keeping any fresher entry; nothing else in Redis is touched
                     and Redis is not restarted. The snapshot is read in Python (Redis itself
                     drops entries whose TTL passed when it loads a file, so an old snapshot
                     would restore nothing). A marker file in ``state_dir`` says C is on.
                     Verified through the edge: every sample user is answered, from the cache
                     for those whose entry was restored.
D ``offline``        ``edge-mode offline``: the edge answers ``/api/recommendations/...`` with 503
                     and a friendly JSON error, ``/health`` through the edge stays truthful.

``enable`` tries the options in order; each is verified after it is applied, a failed one is
reverted before the next is tried, the first that verifies wins. An option that is already on
and verifies is left alone (``changed: false``). ``disable`` leaves every degraded mode, only
while the service itself is verified healthy (unless forced), service first, edge last.
"""

from __future__ import annotations

import datetime
import glob
import json
import os
import re
import struct
import time

from ansible_collections.sre.incident.plugins.module_utils import _compose, _http, _stack
from ansible_collections.sre.incident.plugins.module_utils._wait import poll_until

OPTIONS = ("A", "B", "C", "D")
NAMES = {"A": "standby", "B": "static", "C": "cache_snapshot", "D": "offline"}
LETTERS = {name: letter for letter, name in NAMES.items()}
MODE_CHOICES = ("auto",) + OPTIONS + tuple(NAMES[letter] for letter in OPTIONS)
DEFAULT_ORDER = list(OPTIONS)
EDGE_MODES = ("normal", "standby", "offline")
MARKER_FILE = "degraded-cache-snapshot.json"
SNAPSHOT_SUBDIR = "redis-snapshots"
SNAPSHOT_GLOB = "dump-*.rdb"
CACHE_PREFIX = "recs:"
DEFAULT_TIMEOUT = 60.0
BATCH = 100
# Lua run by redis-cli for restored entries: keep (and un-expire) a fresher live entry,
# else set the snapshot's value. Returns how many were set.
_RESTORE_LUA = ("local n = 0 for i = 1, #KEYS do if redis.call('EXISTS', KEYS[i]) == 1 then "
                "redis.call('PERSIST', KEYS[i]) else redis.call('SET', KEYS[i], ARGV[i]) n = n + 1 end end return n")


class DegradeError(Exception):
    """An option could not be applied, verified or reverted; ``details`` are plain data."""

    def __init__(self, message, **details):
        super().__init__(message)
        self.msg = message
        self.details = details


class Refused(DegradeError):
    """Leaving degraded mode was refused: the service is not verified healthy."""


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
    try:
        _stack.validate(stack)
    except _stack.StackError as exc:
        raise ValueError(str(exc)) from None
    if not stack.get("edge"):
        raise ValueError("incident_stack.edge is not set: degraded modes switch the edge (service name, e.g. edge)")
    if not stack.get("edge_url"):
        raise ValueError("incident_stack.edge_url is not set: degraded modes are checked through the edge")
    if needs_c and not (snapshot_dir or stack.get("state_dir")):
        raise ValueError("option C needs incident_stack.state_dir (or snapshot_dir) to find Redis snapshots")
    return stack


def timestamp(now=None):
    moment = datetime.datetime.fromtimestamp(time.time() if now is None else now, tz=datetime.timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


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
        if value == 0:
            return str(struct.unpack("<b", self.read(1))[0]).encode()
        if value == 1:
            return str(struct.unpack("<h", self.read(2))[0]).encode()
        if value == 2:
            return str(struct.unpack("<i", self.read(4))[0]).encode()
        if value == 3:
            compressed_len = self.plain_length()
            expected = self.plain_length()
            return lzf_decompress(self.read(compressed_len), expected)
        raise RdbError("unknown string encoding %d" % value)

    def skip_strings(self, count):
        remaining = count
        while remaining > 0:
            self.string()
            remaining -= 1


# value types whose payload is one (ziplist / listpack / intset) string
_BLOB_TYPES = (9, 10, 11, 12, 13, 16, 17, 20)


def _skip_value(reader, vtype):
    if vtype in (1, 2, 14):  # list, set, quicklist (v1): n strings
        reader.skip_strings(reader.plain_length())
    elif vtype == 4:  # hash: n field/value pairs
        reader.skip_strings(2 * reader.plain_length())
    elif vtype == 3:  # zset (v1): member + score as a length-prefixed text
        remaining = reader.plain_length()
        while remaining > 0:
            reader.string()
            score_len = reader.byte()
            if score_len < 253:  # 253-255: nan, +inf, -inf without text
                reader.read(score_len)
            remaining -= 1
    elif vtype == 5:  # zset2: member + binary double
        remaining = reader.plain_length()
        while remaining > 0:
            reader.string()
            reader.read(8)
            remaining -= 1
    elif vtype in _BLOB_TYPES:
        reader.string()
    elif vtype == 18:  # quicklist 2: n (container, listpack) nodes
        remaining = reader.plain_length()
        while remaining > 0:
            reader.plain_length()
            reader.string()
            remaining -= 1
    else:
        raise RdbError("value type %d (stream or module) is not supported" % vtype)


def parse_rdb(data, prefix=CACHE_PREFIX, db=0):
    """String entries of ``db`` whose key starts with ``prefix``, read from an RDB file's bytes.

    Returns dict(version, ctime (the save time as UNIX seconds, or None), entries ({key (str):
    dict(value (bytes), expire_ms (int or None))}), keys_total (every key seen in ``db``),
    complete (False when reading stopped early at an unsupported value), error). Raises
    RdbError when ``data`` is not an RDB file at all.
    """
    if not data.startswith(b"REDIS") or len(data) < 9:
        raise RdbError("not an RDB file (no REDIS header)")
    try:
        version = int(data[5:9].decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        raise RdbError("not an RDB file (bad version %r)" % (data[5:9],)) from None
    reader = _Reader(data)
    reader.pos = 9
    prefix_bytes = prefix.encode("utf-8") if isinstance(prefix, str) else prefix
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
                    if current_db == db and key.startswith(prefix_bytes):
                        result["entries"][key.decode("utf-8", "replace")] = dict(value=value, expire_ms=expire_ms)
                else:
                    _skip_value(reader, vtype)
                expire_ms = None
    except RdbError as exc:
        result["complete"] = False
        result["error"] = str(exc)
    return result


def snapshot_dir_for(stack, snapshot_dir=None):
    if snapshot_dir:
        return snapshot_dir
    return os.path.join(str(stack["state_dir"]), SNAPSHOT_SUBDIR)


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
        moment = datetime.datetime.strptime(found.group(1), "%Y%m%dT%H%M%SZ").replace(tzinfo=datetime.timezone.utc)
        return moment.timestamp()
    return os.stat(path).st_mtime


# --------------------------------------------------------------------------- context

class Context:
    """Where and how to act: the engine client, the compose CLI runner, the stack, the clock.

    ``run_command(argv, environ_update=None)`` is ``AnsibleModule.run_command``-like.
    """

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
        self.edge = stack.get("edge")
        self.standby = stack.get("standby")
        self.redis = (stack.get("redis") or {}).get("service") or "redis"
        self.min_items = int(stack.get("min_recommendations", 6))
        # the runbook's "latency under 500 ms" (SPEC P0-5): a standby or a restored cache that answers
        # as slowly as the broken service does not serve users
        self.max_latency_ms = float((stack.get("thresholds") or {}).get("latency_ms") or 500)
        self.limit = int(stack.get("recommendations_limit", 10))
        self.direct = _stack.urls(stack)
        self.via_edge = _stack.urls(stack, base=stack["edge_url"])

    # ---- compose CLI
    def runner(self, env=None):
        def run(argv):
            return self.run_command_env(argv, environ_update=dict(env or {}))
        return run

    def up(self, services, env=None, profiles=None, timeout=None):
        return _compose.ensure_project(
            self.client, self.runner(env), self.project, self.stack["project_dir"],
            self.stack.get("compose_files") or ["docker-compose.yml"], "present", services=services,
            profiles=profiles, no_deps=True, wait=True, timeout=timeout or self.timeout)

    # ---- containers
    def containers(self, service):
        return self.client.find_containers(self.project, service) if service else []

    def running(self, service):
        for c in self.containers(service):
            if _compose.container_state(c)["status"] == "running":
                return c
        return None

    def exec(self, service, argv):
        c = self.running(service)
        if c is None:
            raise DegradeError("service %s of project %s is not running" % (service, self.project), service=service)
        return self.client.exec_in(c, argv)

    # ---- the edge
    def edge_mode(self):
        """The mode the edge serves (normal, standby, offline), or None when the edge is not running."""
        if self.running(self.edge) is None:
            return None
        res = self.exec(self.edge, ["edge-mode"])
        try:
            return json.loads(res["stdout"].strip().splitlines()[-1]).get("mode") or None
        except (ValueError, IndexError, AttributeError):
            return None

    def set_edge_mode(self, mode):
        if mode not in EDGE_MODES:
            raise ValueError("unknown edge mode %r" % (mode,))
        res = self.exec(self.edge, ["edge-mode", mode])
        if res["rc"] != 0:
            raise DegradeError("edge-mode %s failed (rc=%s): %s" % (mode, res["rc"], (res["stderr"] or res["stdout"]).strip()),
                               **res)
        try:
            return json.loads(res["stdout"].strip().splitlines()[-1])
        except (ValueError, IndexError):
            return dict(mode=mode, output=res["stdout"].strip())

    # ---- redis
    def redis_cli(self, *args):
        res = self.exec(self.redis, ["redis-cli"] + [str(a) for a in args])
        out = (res["stdout"] or "").strip()
        if res["rc"] != 0 or out.startswith("ERR") or out.startswith("(error)"):
            raise DegradeError("redis-cli %s failed: %s" % (args[0] if args else "", (res["stderr"] or out).strip()[:500]))
        return out

    # ---- probes
    def probe(self, url):
        res = _http.probe(url, self.probe_timeout)
        body = res.get("body_json") if isinstance(res.get("body_json"), dict) else {}
        recs = body.get("recommendations")
        return dict(url=url, status=res["status"], error=res["error"] if res["status"] is None else None,
                    latency_ms=res.get("latency_ms"), count=len(recs) if isinstance(recs, list) else None, source=body.get("source"),
                    instance=body.get("instance"), body_error=body.get("error"), body=body)

    def marker_path(self):
        return os.path.join(str(self.stack.get("state_dir") or ""), MARKER_FILE) if self.stack.get("state_dir") else None

    def read_marker(self):
        path = self.marker_path()
        if not path or not os.path.exists(path):
            return None
        try:
            with open(path, "r", encoding="utf-8") as handle:
                return json.load(handle)
        except (OSError, ValueError):
            return dict(path=path, unreadable=True)


def _service_downgrade(ctx):
    """DOWNGRADE_MODE of the service's container (True/False), None when it has no container."""
    found = None
    for c in ctx.containers(ctx.service):
        env = dict(item.partition("=")[::2] for item in (((c.attrs or {}).get("Config") or {}).get("Env") or []))
        value = str(env.get("DOWNGRADE_MODE", "")).strip().lower() in ("1", "true", "yes", "on")
        found = bool(found) or value
    return found


def observe(ctx):
    """Which degraded modes are on, read from the edge, the containers and the C marker."""
    edge_mode = ctx.edge_mode()
    downgrade = _service_downgrade(ctx)
    service = [_compose.container_state(c) for c in ctx.containers(ctx.service)]
    standby = [_compose.container_state(c) for c in ctx.containers(ctx.standby)] if ctx.standby else []
    marker = ctx.read_marker()
    active = []
    if edge_mode == "standby":
        active.append("A")
    if downgrade:
        active.append("B")
    if marker is not None:
        active.append("C")
    if edge_mode == "offline":
        active.append("D")
    return dict(edge_mode=edge_mode, downgrade_mode=downgrade,
                service_status=_compose.status_text(service[0]) if service else _compose.MISSING,
                standby_running=any(s["status"] == "running" for s in standby),
                standby_status=_compose.status_text(standby[0]) if standby else _compose.MISSING,
                cache_snapshot=marker, active=active, active_names=[NAMES[m] for m in active])


def describe(observed):
    """Short text for diffs: ``normal`` or the active modes with their letters."""
    active = observed.get("active") or []
    if not active:
        return "normal"
    return ", ".join("%s (%s)" % (NAMES[m], m) for m in active)


# --------------------------------------------------------------------------- checks

def _poll(ctx, check, deadline):
    """Poll ``check`` (returning (ok, measured)) until ok or the deadline; returns the last measurement."""
    last = {}

    def attempt():
        ok, measured = check()
        last["m"] = measured
        return ok

    ok, value_unused, elapsed = poll_until(attempt, max(0.0, deadline - ctx.clock()), interval=ctx.interval)
    measured = dict(last.get("m") or {})
    measured["waited_s"] = round(elapsed, 3)
    return ok, measured


def _as_check(func):
    def check():
        res = func()
        return res["ok"], res
    return check


def _recs(ctx, urls):
    return {user: ctx.probe(url) for user, url in urls["recommendations"].items()}


def _too_slow(ctx, user, r, where):
    """A problem text when the answer took longer than the latency threshold, else None."""
    if r.get("latency_ms") is not None and r["latency_ms"] > ctx.max_latency_ms:
        return "%s %s: %.0f ms, over %.0f ms" % (user, where, r["latency_ms"], ctx.max_latency_ms)
    return None


def _slim(results):
    return {user: {k: v for k, v in r.items() if k != "body"} for user, r in results.items()}


def service_verified(ctx, urls=None, allow_static=True):
    """The service's own checks: /health 200 and enough recommendations per sample user."""
    urls = urls or ctx.direct
    health = ctx.probe(urls["health"])
    recs = _recs(ctx, urls)
    problems = []
    if health["status"] != 200:
        problems.append("/health answered %s" % (health["status"] if health["status"] is not None else health["error"]))
    for user, r in recs.items():
        if r["status"] != 200 or (r["count"] or 0) < ctx.min_items:
            problems.append("%s: status %s, %s item(s)" % (user, r["status"] if r["status"] is not None else r["error"],
                                                           r["count"]))
        elif not allow_static and r["source"] == "static":
            problems.append("%s: still static recommendations" % user)
    return dict(ok=not problems, problems=problems, url=urls["base"], health_status=health["status"],
                recommendations=_slim(recs))


def verify_standby(ctx, deadline):
    def check():
        mode = ctx.edge_mode()
        recs = _recs(ctx, ctx.via_edge)
        problems = [] if mode == "standby" else ["edge mode is %s, not standby" % mode]
        for user, r in recs.items():
            if r["status"] != 200 or (r["count"] or 0) < ctx.min_items or r["instance"] != "standby":
                problems.append("%s via edge: status %s, %s item(s), instance %s" % (user, r["status"], r["count"], r["instance"]))
            elif _too_slow(ctx, user, r, "via edge"):
                problems.append(_too_slow(ctx, user, r, "via edge"))
        return not problems, dict(edge_mode=mode, recommendations=_slim(recs), problems=problems)
    return _poll(ctx, check, deadline)


def verify_static(ctx, deadline):
    def check():
        problems = []
        results = {}
        edge_mode = ctx.edge_mode()
        targets = [("direct", ctx.direct)] + ([("edge", ctx.via_edge)] if edge_mode == "normal" else [])
        for where, urls in targets:
            recs = _recs(ctx, urls)
            results[where] = _slim(recs)
            for user, r in recs.items():
                if r["status"] != 200 or (r["count"] or 0) < ctx.min_items or r["source"] != "static":
                    problems.append("%s (%s): status %s, %s item(s), source %s" % (user, where, r["status"], r["count"], r["source"]))
        return not problems, dict(edge_mode=edge_mode, recommendations=results, downgrade_mode=_service_downgrade(ctx),
                                  problems=problems)
    return _poll(ctx, check, deadline)


def verify_cache(ctx, deadline, marker=None):
    marker = marker or ctx.read_marker() or {}
    restored = set(marker.get("keys") or [])

    def check():
        problems = []
        if not restored:
            problems.append("the snapshot put no cached recommendation back")
        recs = _recs(ctx, ctx.via_edge)
        from_cache = 0
        for user, r in recs.items():
            key = "%s%s:%s" % (CACHE_PREFIX, user, ctx.limit)
            if r["status"] != 200 or (r["count"] or 0) < ctx.min_items:
                problems.append("%s via edge: status %s, %s item(s)" % (user, r["status"], r["count"]))
            elif key in restored and r["source"] != "cache":
                problems.append("%s via edge: source %s, expected the restored cache" % (user, r["source"]))
            elif _too_slow(ctx, user, r, "via edge"):
                problems.append(_too_slow(ctx, user, r, "via edge"))
            if r["source"] == "cache":
                from_cache += 1
        return not problems, dict(recommendations=_slim(recs), from_cache=from_cache, keys_restored=len(restored),
                                  problems=problems)
    return _poll(ctx, check, deadline)


def verify_offline(ctx, deadline):
    def check():
        problems = []
        mode = ctx.edge_mode()
        if mode != "offline":
            problems.append("edge mode is %s, not offline" % mode)
        recs = _recs(ctx, ctx.via_edge)
        for user, r in recs.items():
            if r["status"] != 503 or not r["body_error"]:
                problems.append("%s via edge: status %s, error %r (expected 503 with a JSON error)" % (user, r["status"], r["body_error"]))
        edge_health = ctx.probe(ctx.via_edge["health"])
        direct_health = ctx.probe(ctx.direct["health"])
        if (edge_health["status"] == 200) != (direct_health["status"] == 200):
            problems.append("/health via edge answered %s while the service answers %s" % (edge_health["status"], direct_health["status"]))
        return not problems, dict(edge_mode=mode, recommendations=_slim(recs), edge_health_status=edge_health["status"],
                                  service_health_status=direct_health["status"], problems=problems)
    return _poll(ctx, check, deadline)


# --------------------------------------------------------------------------- apply / revert

def _standby_profile(ctx):
    return ctx.stack.get("standby_profile") or "standby"


def apply_standby(ctx, deadline):
    if not ctx.standby:
        raise DegradeError("incident_stack.standby is not set: option A needs a standby service")
    res = ctx.up([ctx.standby], profiles=[_standby_profile(ctx)], timeout=max(1.0, deadline - ctx.clock()))
    states = [s for s in res["containers"] if s.get("service") == ctx.standby]
    if not res["ready"]:
        state = states[0] if states else {}
        raise DegradeError("standby %s is not ready: %s" % (ctx.standby, _compose.status_text(state) if state else "missing"),
                           standby=_compose.status_text(state) if state else _compose.MISSING)
    edge = ctx.set_edge_mode("standby")
    return dict(standby=_compose.status_text(states[0]) if states else None, edge=edge)


def revert_standby(ctx):
    done = {}
    if ctx.edge_mode() == "standby":
        done["edge"] = ctx.set_edge_mode("normal")
    stopped = []
    for c in ctx.containers(ctx.standby):
        if _compose.container_state(c)["status"] in _compose.RUNNING_LIKE:
            ctx.client.stop(c)
            stopped.append(c.name)
    done["stopped"] = stopped
    return done


def _set_downgrade(ctx, value, deadline, require_ready=True):
    env = {"DOWNGRADE_MODE": "true" if value else "false"}
    res = ctx.up([ctx.service], env=env, timeout=max(1.0, deadline - ctx.clock()))
    states = [s for s in res["containers"] if s.get("service") == ctx.service]
    measured = dict(service=_compose.status_text(states[0]) if states else _compose.MISSING,
                    downgrade_mode=_service_downgrade(ctx), recreated=res["changed"])
    if not res["ready"] and require_ready:
        raise DegradeError("%s recreated with DOWNGRADE_MODE=%s is not ready: %s"
                           % (ctx.service, env["DOWNGRADE_MODE"], measured["service"]), **measured)
    return measured


def apply_static(ctx, deadline):
    return _set_downgrade(ctx, True, deadline)


def revert_static(ctx, deadline=None):
    if not _service_downgrade(ctx):
        return dict(recreated=False)
    # the flag is what is reverted; whether the service is ready is checked by the caller
    return _set_downgrade(ctx, False, deadline if deadline is not None else ctx.clock() + ctx.timeout, require_ready=False)


def _write_marker(path, data):
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    tmp = path + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=2, sort_keys=True)
    os.replace(tmp, path)


def read_snapshot(ctx):
    """The newest snapshot and its cached recommendations; DegradeError when there is none usable."""
    directory = snapshot_dir_for(ctx.stack, ctx.snapshot_dir)
    path = newest_snapshot(directory)
    if not path:
        raise DegradeError("no Redis snapshot (%s) in %s: take one with playbooks/diagnose.yml" % (SNAPSHOT_GLOB, directory),
                           snapshot_dir=directory)
    try:
        with open(path, "rb") as handle:
            data = handle.read()
        parsed = parse_rdb(data)
    except (OSError, RdbError) as exc:
        raise DegradeError("cannot read the Redis snapshot %s: %s" % (path, exc), snapshot=path) from None
    taken = snapshot_taken_at(path, parsed["ctime"])
    return dict(path=path, taken_at=timestamp(taken), age_s=round(ctx.now() - taken, 1), parsed=parsed)


def apply_cache(ctx, deadline):
    # C serves through the service: without a service that answers at all it cannot help, and
    # nothing is touched.
    health = ctx.probe(ctx.direct["health"])
    if health["status"] is None:
        raise DegradeError("option C serves the cache through %s, which does not answer (%s)" % (ctx.service, health["error"]),
                           precondition=True)
    if not ctx.stack.get("state_dir"):
        raise DegradeError("option C needs incident_stack.state_dir for its marker", precondition=True)
    snap = read_snapshot(ctx)
    entries = snap["parsed"]["entries"]
    measured = dict(snapshot=snap["path"], snapshot_taken_at=snap["taken_at"], snapshot_age_s=snap["age_s"],
                    snapshot_complete=snap["parsed"]["complete"], snapshot_keys=snap["parsed"]["keys_total"],
                    entries_found=len(entries))
    if not entries:
        raise DegradeError("the snapshot %s holds no cached recommendation (%s*)" % (snap["path"], CACHE_PREFIX),
                           precondition=True, **measured)
    keys = []
    values = []
    for key in sorted(entries):
        try:
            values.append(entries[key]["value"].decode("utf-8"))
        except UnicodeDecodeError:
            continue
        keys.append(key)
    set_count = 0
    marker = dict(mode=NAMES["C"], applied_at=timestamp(ctx.now()), keys=[], **measured)
    # the marker goes first, so a half-done restore is still seen (and reverted)
    _write_marker(ctx.marker_path(), marker)
    for start in range(0, len(keys), BATCH):
        chunk_keys = keys[start:start + BATCH]
        chunk_values = values[start:start + BATCH]
        out = ctx.redis_cli("EVAL", _RESTORE_LUA, len(chunk_keys), *(chunk_keys + chunk_values))
        marker["keys"].extend(chunk_keys)
        _write_marker(ctx.marker_path(), marker)
        try:
            set_count += int(out.split()[-1])
        except (ValueError, IndexError):
            pass
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
        out = ctx.redis_cli("DEL", *keys[start:start + BATCH])
        try:
            deleted += int(out.split()[-1])
        except (ValueError, IndexError):
            pass
    os.unlink(ctx.marker_path())
    return dict(deleted=deleted, marker_removed=ctx.marker_path())


def apply_offline(ctx, deadline):
    return dict(edge=ctx.set_edge_mode("offline"))


def revert_offline(ctx):
    if ctx.edge_mode() == "offline":
        return dict(edge=ctx.set_edge_mode("normal"))
    return {}


APPLY = {"A": apply_standby, "B": apply_static, "C": apply_cache, "D": apply_offline}
VERIFY = {"A": verify_standby, "B": verify_static, "C": verify_cache, "D": verify_offline}


def revert(ctx, letter, deadline=None):
    if letter == "A":
        return revert_standby(ctx)
    if letter == "B":
        return revert_static(ctx, deadline)
    if letter == "C":
        return revert_cache(ctx)
    return revert_offline(ctx)


# --------------------------------------------------------------------------- enable / disable

def _entry(letter):
    return dict(option=letter, mode=NAMES[letter], applied=False, verified=None, reverted=False,
                already_active=False, measured={}, error=None)


def try_option(ctx, letter, verify=True):
    """Apply one option, verify it, revert it when it does not verify. Returns its ``tried`` entry."""
    entry = _entry(letter)
    deadline = ctx.clock() + ctx.timeout
    started = ctx.clock()
    try:
        entry["measured"] = APPLY[letter](ctx, deadline) or {}
        entry["applied"] = True
        if verify:
            ok, measured = VERIFY[letter](ctx, deadline)
            entry["verified"] = ok
            entry["measured"]["verify"] = measured
            if not ok:
                entry["error"] = "not verified: %s" % "; ".join(measured.get("problems") or ["?"])
    except (DegradeError, _compose.DockerError) as exc:
        details = dict(exc.details or {})
        entry["error"] = exc.msg
        if letter == "C":
            entry["applied"] = ctx.read_marker() is not None  # C writes its marker before it touches Redis
        else:
            entry["applied"] = not details.pop("precondition", False)
        details.pop("precondition", None)
        entry["measured"].update(details)
        entry["verified"] = False
    if entry["verified"] is False:
        try:
            entry["measured"]["revert"] = revert(ctx, letter, ctx.clock() + ctx.timeout)
            entry["reverted"] = True
        except (DegradeError, _compose.DockerError) as exc:
            entry["revert_error"] = exc.msg
    entry["elapsed_s"] = round(ctx.clock() - started, 3)
    return entry


def summarize(entry):
    """One line per tried option, for the incident record and notifications."""
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
    snapshot = None
    for entry in tried:
        if entry["option"] == "C" and entry["measured"].get("snapshot"):
            snapshot = entry["measured"]
    marker = (after or before).get("cache_snapshot") or {}
    source = snapshot or marker
    age = source.get("snapshot_age_s")
    if not snapshot and marker.get("snapshot_taken_at"):
        taken = datetime.datetime.strptime(marker["snapshot_taken_at"], "%Y-%m-%dT%H:%M:%SZ")
        age = round(time.time() - taken.replace(tzinfo=datetime.timezone.utc).timestamp(), 1)
    result = dict(changed=changed, active_mode=NAMES[winner] if winner else None, active_option=winner,
                  active_modes=list((after or before).get("active_names") or []), tried=tried,
                  snapshot=source.get("snapshot"), snapshot_age_s=age,
                  tried_summary=[summarize(e) for e in tried], before=before, after=after, msg=msg,
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
        entry = _entry(letter)
        entry["already_active"] = True
        if verify:
            ok, measured = VERIFY[letter](ctx, ctx.clock() + min(ctx.timeout, 15.0))
            entry.update(verified=ok, measured=dict(verify=measured))
            if not ok:
                entry["error"] = "active but not verified: %s" % "; ".join(measured.get("problems") or ["?"])
        tried.append(entry)
        if not verify or entry["verified"]:
            others = [m for m in before["active"] if m != letter]
            if not others:
                return _result(before, before, tried, False, letter, "%s (%s) is already on" % (NAMES[letter], letter))
            if check_mode:
                after = dict(before, active=[letter], active_names=[NAMES[letter]])
                return _result(before, after, tried, True, letter, "would switch off %s" % ", ".join(NAMES[m] for m in others))
            for other in others:
                revert(ctx, other)
            return _result(before, observe(ctx), tried, True, letter,
                           "%s (%s) is on; switched off %s" % (NAMES[letter], letter, ", ".join(NAMES[m] for m in others)))
        break  # an active mode that does not verify any more is applied again below
    if check_mode:
        first = candidates[0]
        after = dict(before, active=[first], active_names=[NAMES[first]])
        return _result(before, after, tried, True, first,
                       "would try %s in turn, each verified after it is applied"
                       % ", ".join("%s (%s)" % (NAMES[m], m) for m in candidates), would_try=candidates)
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
        raise DegradeError("no degraded mode could be verified: %s" % "; ".join(
            "%s (%s): %s" % (e["mode"], e["option"], e["error"]) for e in tried),
            **_result(before, after, tried, after["active"] != before["active"] or any(e["applied"] for e in tried),
                      None, "no degraded mode verified"))
    return _result(before, after, tried, True, winner, "%s (%s) is on" % (NAMES[winner], winner))


def disable(ctx, force=False, check_mode=False):
    """Leave every degraded mode, only once the service is verified healthy (unless ``force``)."""
    before = observe(ctx)
    if not before["active"] and not before["standby_running"]:
        return _result(before, before, [], False, None, "no degraded mode is on", health=None)
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
        ok, full = _poll(ctx, _as_check(lambda: service_verified(ctx, allow_static=False)), deadline)
        if not ok and not force:
            apply_static(ctx, ctx.clock() + ctx.timeout)
            raise DegradeError("%s is not verified with full recommendations after DOWNGRADE_MODE was switched off (%s); "
                               "static recommendations are back on" % (ctx.service, "; ".join(full.get("problems") or [])),
                               **_result(before, observe(ctx), reverted, True, None, "rolled back", health=full))
    if "C" in before["active"]:
        reverted.append(dict(option="C", mode=NAMES["C"], measured=revert_cache(ctx)))
    if "D" in before["active"]:
        reverted.append(dict(option="D", mode=NAMES["D"], measured=revert_offline(ctx)))
    if "A" in before["active"] or before["standby_running"]:
        reverted.append(dict(option="A", mode=NAMES["A"], measured=revert_standby(ctx)))
    after = observe(ctx)
    ok, final = _poll(ctx, _as_check(lambda: service_verified(ctx, ctx.via_edge, allow_static=False)),
                      ctx.clock() + min(ctx.timeout, 30.0))
    if after["active"]:
        raise DegradeError("still degraded after switching off: %s" % describe(after),
                           **_result(before, after, reverted, True, None, "not all modes switched off", health=final))
    if not ok and not force:
        raise DegradeError("every degraded mode is off, but the service is not verified through the edge: %s"
                           % "; ".join(final.get("problems") or []),
                           **_result(before, after, reverted, True, None, "not verified after", health=final))
    return _result(before, after, reverted, True, None, "back to normal: %s switched off" % describe(before),
                   health=final, verified=ok)
