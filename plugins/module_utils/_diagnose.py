# -*- coding: utf-8 -*-
# Copyright (c) sre.incident contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Diagnostics: collect the evidence of the runbook's ``diagnose_p0.sh`` and more, as facts.

Parts (each independent: a part that fails is ``{ok: false, error: ...}`` and the others are
still collected; they run concurrently in threads):

=========== ===================================================================== ============
part        what                                                                  runbook item
=========== ===================================================================== ============
http        /health and every sample user's recommendations, probed concurrently
            (the probe of sre.incident.health_check): status, latency
status      every container of the project: state, health, restarts, exit code,   [1]
            OOM flag, started-at, image id and image creation time
logs        the last N log lines of the service, its ERROR/FATAL/panic lines      [2]
database    pg_stat_database of the service's database, connections against      [3]
            max_connections, long-running and slow (pg_stat_statements) queries
redis       INFO server memory clients stats persistence keyspace, parsed         [4]
resources   CPU % and memory % per running container (from the raw stats API)    [5]
disk        host filesystems (statvfs of /proc/mounts) and the stack's volumes    [6]
errors      ERROR/FATAL/panic lines of every container since a given time         [7]
changes     images rebuilt, containers recreated/restarted in the window, compose
            files' modification times, the project's last git commits
degraded    edge mode and the downgrade variable (incident_stack.downgrade_env, DOWNGRADE_MODE):
            is a degraded mode left on?
fallbacks   newest Redis snapshot, static top-N in the service image, standby
=========== ===================================================================== ============

Everything that leaves this file (facts, bundle files) has gone through ``_redact``: the values
of secret-looking variables of every container's environment are hunted in all collected text.
"""

from __future__ import annotations

import concurrent.futures
import glob
import hashlib
import io
import json
import os
import shutil
import re
import tarfile
import time

from ansible_collections.sre.incident.plugins.module_utils import _degrade, _edge, _files, _http, _logs, _redact, _redis, _stack, _time, _verify
from ansible_collections.sre.incident.plugins.module_utils._compose import (
    DockerError,
    compose_environment,
    compose_services,
    config_files,
    container_state,
    interpolate,
)
from ansible_collections.sre.incident.plugins.module_utils._errors import InputError

# the runbook's diagnose_p0.sh items [1]..[7] and the part holding each
RUNBOOK_ITEMS = (
    ("1", "service status", "status"),
    ("2", "recent logs", "logs"),
    ("3", "database status", "database"),
    ("4", "redis status", "redis"),
    ("5", "system resources", "resources"),
    ("6", "disk space", "disk"),
    ("7", "recent errors", "errors"),
)
RAW_FILES = {
    "http": "00-http-probes.txt",
    "status": "01-service-status.txt",
    "logs": "02-service.log",
    "database": "03-db-status.txt",
    "redis": "04-redis-status.txt",
    "resources": "05-docker-stats.txt",
    "disk": "06-disk-space.txt",
    "errors": "07-errors.log",
    "changes": "08-recent-changes.txt",
    "degraded": "09-degraded-mode.txt",
    "fallbacks": "10-fallbacks.txt",
}
PARTS = tuple(RAW_FILES)

DEFAULT_THRESHOLDS = dict(
    latency_ms=500,
    cpu_percent=50,
    memory_percent=60,
    disk_percent=85,
    disk_critical_percent=95,
    db_connections_percent=80,
    db_connections_critical_percent=95,
    redis_memory_percent=90,
    evicted_keys=0,
    error_lines=0,
    error_lines_critical=50,
    snapshot_max_age=86400,
)

_PSEUDO_FS = frozenset((
    "proc", "sysfs", "cgroup", "cgroup2", "devpts", "mqueue", "securityfs", "debugfs", "tracefs", "pstore", "bpf",
    "configfs", "fusectl", "hugetlbfs", "autofs", "binfmt_misc", "nsfs", "rpc_pipefs", "selinuxfs", "efivarfs",
    "devtmpfs", "ramfs", "fuse.gvfsd-fuse", "fuse.portal", "squashfs", "nfsd",
))
# Mounts the engine makes for containers (their root filesystems and volumes): the volumes are
# reported per volume, the rest is the host's disk seen again.
_SKIP_MOUNT_PREFIXES = ("/var/lib/docker/", "/var/lib/containerd/", "/run/docker/", "/run/containerd/", "/proc/", "/sys/")


class DiagnosticsError(InputError):
    """Bad input (a bad time, an unknown part, a missing directory): fails before collecting."""


# --------------------------------------------------------------------------- logs

def scan_errors(log_text, since=None, keep=50, until=None):
    """Count the error lines of a log fetched with timestamps, at or after ``since`` and before
    ``until`` (UNIX times, None: no bound); dict(count, grep_count (the runbook's
    ``grep -i "error\\|fatal\\|panic"``), by_level, lines (the last ``keep``), first_ts, last_ts, scanned).
    """
    count = grep_count = scanned = 0
    by_level = {}
    lines = []
    first_ts = last_ts = None
    for epoch, raw, text in _logs.timed_lines(log_text, since, until):
        scanned += 1
        if _logs.runbook_grep_match(text):
            grep_count += 1
        level = _logs.line_level(text)
        if not _logs.is_error_level(level):
            continue
        count += 1
        by_level[level] = by_level.get(level, 0) + 1
        lines.append(raw)
        if len(lines) > keep:
            del lines[0]
        if epoch is not None:
            first_ts = epoch if first_ts is None else first_ts
            last_ts = epoch
    return dict(count=count, grep_count=grep_count, by_level=by_level, lines=lines, first_ts=_time.format_ts(first_ts),
                last_ts=_time.format_ts(last_ts), scanned=scanned)


# --------------------------------------------------------------------------- redis

def _number(value):
    if isinstance(value, (int, float)):
        return value
    text = str(value).strip()
    if re.match(r"^-?\d+$", text):
        return int(text)
    if re.match(r"^-?\d+\.\d+(e[+-]?\d+)?$", text, re.IGNORECASE):
        return float(text)
    return text


def parse_redis_info(text):
    """``redis-cli INFO`` output -> ``{section: {key: value}}``, numbers converted, keyspace lines as dicts."""
    sections = {}
    current = "default"
    for raw in (text or "").splitlines():
        line = raw.strip()
        if not line:
            continue
        if line.startswith("#"):
            current = line.lstrip("#").strip().lower() or "default"
            sections.setdefault(current, {})
            continue
        key, sep, value = line.partition(":")
        if not sep:
            continue
        if current == "keyspace" or ("=" in value and "," in value and key.startswith("db")):
            sections.setdefault(current, {})[key] = {k: _number(v) for k, _eq, v in
                                                     (item.partition("=") for item in value.split(","))}
        else:
            sections.setdefault(current, {})[key] = _number(value)
    return sections


def _pct(part, whole, digits=2):
    try:
        part = float(part)
        whole = float(whole)
    except (TypeError, ValueError):
        return None
    if whole <= 0:
        return None
    return round(part * 100.0 / whole, digits)


def redis_summary(sections):
    """The figures a playbook branches on, from :func:`parse_redis_info`."""
    flat = {}
    for values in sections.values():
        flat.update(values)
    hits = flat.get("keyspace_hits")
    misses = flat.get("keyspace_misses")
    ratio = None
    if isinstance(hits, int) and isinstance(misses, int) and hits + misses > 0:
        ratio = round(hits / float(hits + misses), 4)
    maxmemory = flat.get("maxmemory")
    keys = sum(v.get("keys", 0) for v in (sections.get("keyspace") or {}).values() if isinstance(v, dict))
    return dict(
        version=flat.get("redis_version"),
        uptime_s=flat.get("uptime_in_seconds"),
        used_memory=flat.get("used_memory"),
        used_memory_human=flat.get("used_memory_human"),
        maxmemory=maxmemory,
        maxmemory_policy=flat.get("maxmemory_policy"),
        used_memory_pct=_pct(flat.get("used_memory"), maxmemory) if maxmemory else None,
        evicted_keys=flat.get("evicted_keys"),
        expired_keys=flat.get("expired_keys"),
        connected_clients=flat.get("connected_clients"),
        blocked_clients=flat.get("blocked_clients"),
        rejected_connections=flat.get("rejected_connections"),
        keyspace_hits=hits,
        keyspace_misses=misses,
        hit_ratio=ratio,
        keys=keys,
        rdb_last_save_time=flat.get("rdb_last_save_time"),
        rdb_last_bgsave_status=flat.get("rdb_last_bgsave_status"),
        rdb_bgsave_in_progress=flat.get("rdb_bgsave_in_progress"),
        rdb_changes_since_last_save=flat.get("rdb_changes_since_last_save"),
    )


# --------------------------------------------------------------------------- postgres

def _sql_literal(value):
    return "'" + str(value).replace("'", "''") + "'"


def pg_queries(database, long_running_s=30):
    """The two SQL statements run with ``psql -At``: the main JSON object, then slow queries."""
    db = _sql_literal(database)
    main = (
        "SELECT json_build_object("
        "'database', (SELECT row_to_json(d) FROM (SELECT datname, numbackends, xact_commit, xact_rollback, blks_read,"
        " blks_hit, tup_returned, tup_fetched, deadlocks, conflicts, temp_bytes, stats_reset"
        " FROM pg_stat_database WHERE datname = %(db)s) d),"
        "'connections_used', (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'),"
        "'connections_by_state', (SELECT coalesce(json_object_agg(st, n), '{}') FROM (SELECT coalesce(state, 'unknown') st,"
        " count(*) n FROM pg_stat_activity WHERE backend_type = 'client backend' GROUP BY 1) s),"
        "'max_connections', current_setting('max_connections')::int,"
        "'superuser_reserved_connections', current_setting('superuser_reserved_connections')::int,"
        "'long_running', (SELECT coalesce(json_agg(q), '[]') FROM (SELECT pid, usename, datname, state, wait_event_type,"
        " round(extract(epoch FROM now() - query_start)::numeric, 1) AS seconds, left(query, 500) AS query"
        " FROM pg_stat_activity WHERE state IS NOT NULL AND state <> 'idle' AND pid <> pg_backend_pid()"
        " AND backend_type = 'client backend' AND query_start < now() - interval '%(secs)d seconds'"
        " ORDER BY query_start LIMIT 20) q),"
        "'server_version', current_setting('server_version'),"
        "'now', now())"
    ) % dict(db=db, secs=int(long_running_s))
    slow = (
        "SELECT coalesce(json_agg(s), '[]') FROM (SELECT calls, round(total_exec_time::numeric, 1) AS total_ms,"
        " round(mean_exec_time::numeric, 1) AS mean_ms, round(max_exec_time::numeric, 1) AS max_ms, rows,"
        " left(query, 500) AS query FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database"
        " WHERE datname = %s) ORDER BY mean_exec_time DESC LIMIT 10) s"
    ) % db
    return main, slow


def parse_pg_output(stdout):
    """The JSON documents ``psql -At`` printed, parsed, in order (other lines skipped). One may span
    lines: PostgreSQL's ``json_agg`` puts a newline between the elements it aggregates."""
    text = stdout or ""
    decoder = json.JSONDecoder()
    found = []
    pos = 0
    while pos < len(text):
        end = text.find("\n", pos)
        end = len(text) if end < 0 else end
        line = text[pos:end]
        start = pos + len(line) - len(line.lstrip())
        pos = end + 1
        if start < end and text[start] in "[{":
            try:
                doc, stop = decoder.raw_decode(text, start)
            except ValueError:
                continue
            found.append(doc)
            nxt = text.find("\n", stop)
            pos = len(text) if nxt < 0 else nxt + 1
    return found


def db_summary(main, slow=None):
    main = main or {}
    database = main.get("database") or {}
    used = main.get("connections_used")
    maximum = main.get("max_connections")
    return dict(
        database=database.get("datname"),
        numbackends=database.get("numbackends"),
        xact_commit=database.get("xact_commit"),
        xact_rollback=database.get("xact_rollback"),
        deadlocks=database.get("deadlocks"),
        connections_used=used,
        max_connections=maximum,
        connections_pct=_pct(used, maximum),
        long_running=len(main.get("long_running") or []),
        slow_queries=len(slow) if isinstance(slow, list) else None,
        server_version=main.get("server_version"),
    )


# --------------------------------------------------------------------------- docker stats

def stats_summary(name, stats):
    """One container's row, CPU % and memory with the recovery checklist's formulas (as ``docker stats``)."""
    mem = _verify.memory_usage(stats)
    nets = (stats or {}).get("networks") or {}
    blk = ((stats or {}).get("blkio_stats") or {}).get("io_service_bytes_recursive") or []
    return dict(
        name=name,
        cpu_pct=_verify.cpu_percent(stats),
        mem_used=mem["used_bytes"],
        mem_limit=mem["limit_bytes"],
        mem_pct=mem["percent"],
        net_rx=sum(int(v.get("rx_bytes", 0)) for v in nets.values()),
        net_tx=sum(int(v.get("tx_bytes", 0)) for v in nets.values()),
        block_read=sum(int(v.get("value", 0)) for v in blk if str(v.get("op", "")).lower() == "read"),
        block_write=sum(int(v.get("value", 0)) for v in blk if str(v.get("op", "")).lower() == "write"),
        pids=((stats or {}).get("pids_stats") or {}).get("current"),
    )


# --------------------------------------------------------------------------- disk

def parse_df(text):
    """``df -P -k`` output -> list of dict(filesystem, size_kb, used_kb, avail_kb, used_pct, mount)."""
    rows = []
    for line in (text or "").splitlines()[1:]:
        fields = line.split()
        if len(fields) < 6:
            continue
        try:
            size, used, avail = int(fields[1]), int(fields[2]), int(fields[3])
        except ValueError:
            continue
        pct = fields[4].rstrip("%")
        rows.append(dict(filesystem=fields[0], size_kb=size, used_kb=used, avail_kb=avail,
                         used_pct=float(pct) if pct.replace(".", "", 1).isdigit() else _pct(used, used + avail),
                         mount=" ".join(fields[5:])))
    return rows


def parse_proc_mounts(text):
    """``/proc/mounts`` -> list of dict(device, mount, fstype) with octal escapes decoded."""
    out = []
    for line in (text or "").splitlines():
        fields = line.split()
        if len(fields) < 3:
            continue
        mount = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), fields[1])
        out.append(dict(device=fields[0], mount=mount, fstype=fields[2]))
    return out


def statvfs_usage(mount, statvfs=os.statvfs):
    """df's figures for one mount point: size, used, avail (KiB) and used % (as df rounds it up)."""
    st = statvfs(mount)
    frsize = st.f_frsize or st.f_bsize
    size = st.f_blocks * frsize // 1024
    free = st.f_bfree * frsize // 1024
    avail = st.f_bavail * frsize // 1024
    used = size - free
    pct = float(-(-used * 100 // (used + avail))) if used + avail > 0 else None  # df rounds up
    return dict(size_kb=size, used_kb=used, avail_kb=avail, used_pct=pct,
                inodes_used_pct=_pct(st.f_files - st.f_ffree, st.f_files) if st.f_files else None)


def host_filesystems(mounts_text, statvfs=os.statvfs):
    """Usage of the host's real filesystems (pseudo filesystems and duplicates left out)."""
    rows = []
    seen = set()
    for m in parse_proc_mounts(mounts_text):
        if m["fstype"] in _PSEUDO_FS or m["mount"].startswith(_SKIP_MOUNT_PREFIXES):
            continue
        try:
            usage = statvfs_usage(m["mount"], statvfs=statvfs)
        except OSError:
            continue
        if usage["size_kb"] <= 0:
            continue
        key = (m["device"], m["fstype"], usage["size_kb"], usage["used_kb"])
        if key in seen:
            continue
        seen.add(key)
        rows.append(dict(filesystem=m["device"], fstype=m["fstype"], mount=m["mount"], **usage))
    return rows


# --------------------------------------------------------------------------- evaluation

def _finding(check, level, reason, value=None, threshold=None, kind="warning"):
    return dict(check=check, level=level, kind=kind, reason=reason, value=value, threshold=threshold)


def evaluate(summary, parts_ok, thresholds=None):
    """Findings (dicts: check, level warning|critical, kind, reason, value, threshold) from :func:`build_summary`;
    ``kind``: ``down`` (the service is not running), ``degraded`` (it runs but fails users) or ``warning``."""
    th = dict(DEFAULT_THRESHOLDS)
    th.update({k: v for k, v in (thresholds or {}).items() if v is not None})
    out = []
    s = summary

    def tiered(check, value, reason, critical, warning, strict=False):
        """Critical (kind degraded) from th[critical] on, else a warning from th[warning] on (above it if strict)."""
        if value >= th[critical]:
            out.append(_finding(check, "critical", reason, value, th[critical], kind="degraded"))
        elif value > th[warning] if strict else value >= th[warning]:
            out.append(_finding(check, "warning", reason, value, th[warning]))

    if s.get("http_success_ratio") is not None:
        if s["http_success_ratio"] == 0:
            out.append(_finding("http", "critical", "the service answers no request (/health %s)" % (s.get("health_status"),),
                                0.0, 1.0, kind="down"))
        elif not s.get("http_healthy"):
            out.append(_finding("http", "critical", "%d %% of the probes failed (/health %s)" % (
                round((1 - s["http_success_ratio"]) * 100), s.get("health_status")), s["http_success_ratio"], 1.0, kind="degraded"))
    p95 = s.get("latency_p95_ms")
    if p95 is not None and p95 > th["latency_ms"]:
        out.append(_finding("latency_ms", "critical", "p95 latency %s ms over %s ms" % (p95, th["latency_ms"]), p95, th["latency_ms"],
                            kind="degraded"))
    if parts_ok.get("status", True):
        if s.get("service_status") != "running":
            out.append(_finding("service_running", "critical", "the service is %s%s" % (
                s.get("service_status"), " (exit code %s)" % s.get("exit_code") if s.get("exit_code") not in (None, 0) or
                s.get("service_status") == "exited" else ""), s.get("service_status"), "running", kind="down"))
        elif s.get("service_health") == "unhealthy":
            out.append(_finding("service_health", "critical", "the service container is unhealthy", "unhealthy", "healthy",
                                kind="degraded"))
        for name in s.get("dependencies_down") or []:
            out.append(_finding("dependency_running", "critical", "dependency %s is %s" % (name, (s.get("services") or {}).get(name)),
                                name, "running", kind="degraded"))
        if s.get("oom_killed"):
            out.append(_finding("oom_killed", "warning", "the service was OOM-killed", True, False))
    for check, what, key in (("cpu_percent", "CPU", "cpu_pct"), ("memory_percent", "memory", "mem_pct")):
        for name, pct in sorted((s.get(key) or {}).items()):
            if pct is not None and pct >= th[check]:
                out.append(_finding(check, "warning", "%s of %s at %s %% (limit %s %%)" % (what, name, pct, th[check]), pct, th[check]))
    for mount, pct in sorted((s.get("disk_used_pct_by_mount") or {}).items()):
        if pct is not None:
            tiered("disk_percent", pct, "disk %s %s %% full" % (mount, pct), "disk_critical_percent", "disk_percent")
    if s.get("db_connections_pct") is not None:
        tiered("db_connections", s["db_connections_pct"], "database connections %s/%s" % (s.get("db_connections_used"), s.get("db_max_connections")),
               "db_connections_critical_percent", "db_connections_percent")
    evicted = s.get("redis_evicted_keys")
    if isinstance(evicted, int) and evicted > th["evicted_keys"]:
        out.append(_finding("redis_evictions", "warning", "redis evicted %d keys" % evicted, evicted, th["evicted_keys"]))
    rmem = s.get("redis_used_memory_pct")
    if rmem is not None and rmem >= th["redis_memory_percent"]:
        out.append(_finding("redis_memory", "warning", "redis memory at %s %% of maxmemory" % rmem, rmem, th["redis_memory_percent"]))
    if isinstance(s.get("error_lines"), int):
        tiered("error_lines", s["error_lines"], "%d error lines in the service log" % s["error_lines"], "error_lines_critical", "error_lines",
               strict=True)
    if s.get("degraded_mode_on"):
        out.append(_finding("degraded_mode", "warning", "a degraded mode is left on: %s" % ", ".join(s.get("degraded_reasons") or []),
                            True, False))
    for name in s.get("fallbacks_not_ready") or []:
        out.append(_finding("fallback_" + name, "warning", "fallback %s is not ready: %s" % (
            name, (s.get("fallback_reasons") or {}).get(name)), False, True))
    down = set(s.get("dependencies_down") or [])
    explained = {"database": "postgres" in down or s.get("service_status") != "running",
                 "redis": "redis" in down, "logs": s.get("service_status") in ("missing",),
                 "degraded": s.get("edge_status") not in (None, "running")}
    for part, ok in sorted(parts_ok.items()):
        if not ok and not explained.get(part):
            out.append(_finding("part_" + part, "warning", "part %s could not be collected" % part, False, True))
    return out


def verdict(findings):
    levels = {f["level"] for f in findings}
    return "critical" if "critical" in levels else "warning" if "warning" in levels else "ok"


# --------------------------------------------------------------------------- summary

#: The fallbacks of degraded mode checked by the part ``fallbacks``, and each one's readiness in words.
FALLBACKS = ("snapshot", "static_top", "standby")
FALLBACK_STATES = {True: "ready", False: "not ready", None: "not checked"}


def build_summary(parts, stack):
    """The flat dict a playbook branches on (see the module's RETURN for the keys)."""
    service = stack.get("service")
    deps = list(stack.get("dependencies") or [])
    s = dict(service=service)
    http = parts.get("http") or {}
    s["http_healthy"] = http.get("healthy") if http.get("ok") else None
    s["http_success_ratio"] = http.get("success_ratio") if http.get("ok") else None
    s["health_status"] = http.get("health_status")
    s["latency_p95_ms"] = (http.get("latency_ms") or {}).get("p95")
    s["latency_max_ms"] = (http.get("latency_ms") or {}).get("max")

    def ok(name):
        return bool((parts.get(name) or {}).get("ok"))

    status = parts.get("status") or {}
    containers = status.get("containers") or []
    s["services"] = {}
    for c in containers:
        s["services"].setdefault(c.get("service"), c.get("status"))
    main = next((c for c in containers if c.get("service") == service), {})
    s["service_status"] = main.get("status", "missing") if ok("status") else None
    # the service is down: it answers no request, or its container does not run (evaluate's findings of kind down)
    s["service_down"] = s["http_success_ratio"] == 0 or s["service_status"] not in (None, "running")
    s["service_health"] = main.get("health")
    s["exit_code"] = main.get("exit_code")
    s["oom_killed"] = bool(main.get("oom_killed"))
    s["restart_count"] = main.get("restart_count")
    s["started_at"] = main.get("started_at")
    s["dependencies_down"] = [d for d in deps if ok("status") and s["services"].get(d, "missing") != "running"]
    logs = parts.get("logs") or {}
    s["error_lines"] = logs.get("error_count") if ok("logs") else None
    s["log_lines"] = len(logs.get("lines") or []) if ok("logs") else None
    errors = parts.get("errors") or {}
    s["error_lines_all"] = errors.get("total") if ok("errors") else None
    db = (parts.get("database") or {}).get("summary") or {}
    for key in ("connections_used", "max_connections", "connections_pct", "long_running", "slow_queries", "xact_rollback"):
        s["db_" + key] = db.get(key)
    rs = (parts.get("redis") or {}).get("summary") or {}
    for key in ("used_memory", "maxmemory", "used_memory_pct", "evicted_keys", "connected_clients", "hit_ratio"):
        s["redis_" + key] = rs.get(key)
    res = (parts.get("resources") or {}).get("containers") or []
    s["cpu_pct"] = {r["name"]: r.get("cpu_pct") for r in res}
    s["mem_pct"] = {r["name"]: r.get("mem_pct") for r in res}
    cpus = [v for v in s["cpu_pct"].values() if v is not None]
    mems = [v for v in s["mem_pct"].values() if v is not None]
    s["cpu_pct_max"] = max(cpus) if cpus else None
    s["mem_pct_max"] = max(mems) if mems else None
    disk = parts.get("disk") or {}
    by_mount = {row["mount"]: row.get("used_pct") for row in disk.get("host") or []}
    by_mount.update(("volume:%s" % row.get("volume"), row.get("used_pct")) for row in disk.get("volumes") or [])
    s["disk_used_pct_by_mount"] = by_mount
    used = [v for v in by_mount.values() if v is not None]
    s["disk_used_pct"] = max(used) if used else None
    changes = parts.get("changes") or {}
    s["recent_changes"] = len(changes.get("recent") or []) if ok("changes") else None
    deg = parts.get("degraded") or {}
    s["edge_mode"] = deg.get("edge_mode")
    s["edge_status"] = deg.get("edge_status")
    s["downgrade_mode"] = deg.get("downgrade_mode")
    s["degraded_mode_on"] = bool(deg.get("degraded")) if ok("degraded") else None
    s["degraded_reasons"] = deg.get("reasons") or []
    fb = parts.get("fallbacks") or {}
    snap = fb.get("snapshot") or {}
    s["snapshot_age_s"] = snap.get("age_s")
    s["snapshot_path"] = snap.get("path")
    s["static_top_present"] = (fb.get("static_top") or {}).get("present")
    s["standby_defined"] = (fb.get("standby") or {}).get("defined")
    s["standby_image_present"] = (fb.get("standby") or {}).get("image_present")
    s["fallbacks_ready"] = {name: (fb.get(name) or {}).get("ready") for name in FALLBACKS} if ok("fallbacks") else {}
    s["fallbacks_not_ready"] = sorted(n for n, r in s["fallbacks_ready"].items() if r is False)
    s["fallbacks_not_checked"] = sorted(n for n, r in s["fallbacks_ready"].items() if r is None)
    # each fallback in words: a fallback not looked at (the part did not run, or incident_stack does not
    # name what to check) is "not checked", never "not ready" (OUT-2)
    s["fallbacks"] = {name: FALLBACK_STATES[s["fallbacks_ready"].get(name)] for name in FALLBACKS}
    s["fallback_reasons"] = {n: (fb.get(n) or {}).get("reason") for n in s["fallbacks_not_ready"]}
    s["parts_failed"] = sorted(name for name, part in parts.items() if not (part or {}).get("ok"))
    return s


# --------------------------------------------------------------------------- collection

class Context:
    """What every part needs: the client, the stack, the containers, the secrets to redact."""

    def __init__(self, client, stack, log_lines=200, since=None, run_command=None, now=None, snapshot_dir=None,
                 extra_secrets=(), changes_window_s=86400, probe_count=1, probe_timeout=2.0, cpu_sample=True):
        self.client = client
        self.stack = stack
        self.project = stack["name"]
        self.service = stack["service"]
        self.log_lines = int(log_lines)
        self.since = since
        self.run_command = run_command
        self.now = time.time() if now is None else now
        self.snapshot_dir = snapshot_dir
        self.changes_window_s = changes_window_s
        self.probe_count = int(probe_count)
        self.probe_timeout = float(probe_timeout)
        self.cpu_sample = bool(cpu_sample)
        self.containers = client.find_containers(self.project)
        self.secrets = set(v for v in extra_secrets or () if v)
        for c in self.containers:
            self.secrets |= _redact.secret_values(((c.attrs or {}).get("Config") or {}).get("Env") or [])
        self._images = {}

    def redact(self, data):
        return _redact.redact_data(data, self.secrets)

    def text(self, text):
        return _redact.redact_text(text, self.secrets)

    def by_service(self, service):
        return [c for c in self.containers if container_state(c)["service"] == service]

    def running(self, service):
        return next((c for c in self.by_service(service) if container_state(c)["status"] == "running"), None)

    def image(self, image_id):
        if image_id not in self._images:
            self._images[image_id] = self.client.image_info(image_id) if image_id else None
        return self._images[image_id]

    def compose_files(self):
        files = config_files(self.containers)
        if not files and self.stack.get("project_dir"):
            files = [os.path.join(self.stack["project_dir"], f) for f in self.stack.get("compose_files") or ["docker-compose.yml"]]
        return files


def _redis_service(stack):
    value = stack.get("redis")
    return (value.get("service") if isinstance(value, dict) else value) or "redis"


def _must_run(ctx, service):
    """The running container of ``service``; DockerError saying what its containers are otherwise."""
    c = ctx.running(service)
    if c is None:
        raise DockerError("service %s is not running (%s)" % (service, ", ".join(
            container_state(x)["status"] for x in ctx.by_service(service)) or "no container"))
    return c


def part_status(ctx):
    rows = []
    details = []
    for c in ctx.containers:
        st = container_state(c)
        attrs = c.attrs or {}
        img = ctx.image(st["image"]) or {}
        health = (attrs.get("State") or {}).get("Health") or {}
        last_probe = (health.get("Log") or [{}])[-1] if health.get("Log") else {}
        st.update(created=attrs.get("Created"), image_created=img.get("created"), image_tags=img.get("tags"),
                  health_output=(last_probe.get("Output") or "").strip()[-300:] or None,
                  health_failing_streak=health.get("FailingStreak"))
        rows.append(st)
        details.append(dict(name=st["name"], State=attrs.get("State"), Config=dict(
            Image=(attrs.get("Config") or {}).get("Image"), Env=(attrs.get("Config") or {}).get("Env"),
            Cmd=(attrs.get("Config") or {}).get("Cmd")), RestartCount=attrs.get("RestartCount"),
            Mounts=attrs.get("Mounts"), Created=attrs.get("Created")))
    header = "%-45s %-30s %-12s %-10s %-5s %-8s %s" % ("NAME", "SERVICE", "STATUS", "HEALTH", "EXIT", "RESTARTS", "STARTED")
    lines = [header] + ["%-45s %-30s %-12s %-10s %-5s %-8s %s" % (
        r["name"], r["service"], r["status"], r["health"], r["exit_code"], r["restart_count"], r["started_at"]) for r in rows]
    raw = "\n".join(lines) + "\n\n# container details (environment redacted)\n" + json.dumps(details, indent=2, default=str)
    return dict(containers=rows), raw


def part_logs(ctx):
    found = ctx.by_service(ctx.service)
    if not found:
        raise DockerError("service %s has no container" % ctx.service)
    c = found[0]
    tail = ctx.client.logs(c, tail=ctx.log_lines, until=ctx.now, timestamps=True)
    lines = [line for line in tail.splitlines() if line.strip()]
    scan = scan_errors(ctx.client.logs(c, since=ctx.since, until=ctx.now, timestamps=True), since=ctx.since, until=ctx.now)
    result = dict(container=c.name, lines=lines, error_count=scan["count"], grep_count=scan["grep_count"],
                  by_level=scan["by_level"], error_lines=scan["lines"], first_error_ts=scan["first_ts"],
                  last_error_ts=scan["last_ts"], since=_time.format_ts(ctx.since), until=_time.format_ts(ctx.now),
                  window=dict(since=ctx.since, until=ctx.now))
    return result, tail


def part_errors(ctx):
    per = {}
    raw = []
    total = 0
    for c in ctx.containers:
        name = c.name
        try:
            text = ctx.client.logs(c, since=ctx.since, until=ctx.now, timestamps=True)
        except DockerError as exc:
            per[name] = dict(ok=False, error=str(exc))
            continue
        scan = scan_errors(text, since=ctx.since, keep=20, until=ctx.now)
        per[name] = dict(ok=True, service=container_state(c)["service"], count=scan["count"], grep_count=scan["grep_count"],
                         by_level=scan["by_level"], lines=scan["lines"], last_ts=scan["last_ts"])
        total += scan["count"]
        raw.append("### %s (%d error lines since %s)\n%s" % (name, scan["count"], _time.format_ts(ctx.since) or "start", "\n".join(scan["lines"])))
    return dict(total=total, containers=per, since=_time.format_ts(ctx.since)), "\n\n".join(raw) + "\n"


def part_database(ctx):
    db = ctx.stack.get("database") or {}
    c = _must_run(ctx, db.get("service") or "postgres")
    name = db.get("name") or "postgres"
    user = db.get("user") or "postgres"
    main_sql, slow_sql = pg_queries(name)
    argv = ["psql", "-X", "-q", "-At", "-U", user, "-d", name] + _stack.port_args(ctx.stack, "database") + [
        "-c", "SET statement_timeout = 5000", "-c", main_sql, "-c", slow_sql]
    res = ctx.client.exec_in(c, argv, environment={"PGCONNECT_TIMEOUT": "5"}, expect_output=True)
    docs = parse_pg_output(res["stdout"])
    main = docs[0] if docs and isinstance(docs[0], dict) else None
    if main is None:
        raise DockerError("psql failed (rc %s): %s" % (res["rc"], (res["stderr"] or res["stdout"]).strip()[:500]))
    slow = docs[1] if len(docs) > 1 and isinstance(docs[1], list) else None
    result = dict(container=c.name, stat_database=main.get("database"), connections_used=main.get("connections_used"),
                  connections_by_state=main.get("connections_by_state"), max_connections=main.get("max_connections"),
                  superuser_reserved_connections=main.get("superuser_reserved_connections"),
                  long_running=main.get("long_running") or [], slow_queries=slow,
                  slow_queries_error=None if slow is not None else (res["stderr"].strip()[:300] or "no pg_stat_statements"),
                  summary=db_summary(main, slow))
    raw = "# pg_stat_database WHERE datname = %s\n%s\n\n# full result\n%s\n%s" % (
        name, json.dumps(main.get("database"), indent=2), json.dumps(result, indent=2, default=str), res["stderr"])
    return result, raw


def part_redis(ctx):
    c = _must_run(ctx, _redis_service(ctx.stack))
    res = ctx.client.exec_in(c, _stack.redis_cli(ctx.stack, "INFO", "server", "memory", "clients", "stats", "persistence",
                                                 "keyspace"), expect_output=True)
    if res["rc"] != 0 or "redis_version" not in res["stdout"]:
        raise DockerError("redis-cli INFO failed (rc %s): %s" % (res["rc"], (res["stderr"] or res["stdout"]).strip()[:300]))
    info = parse_redis_info(res["stdout"])
    return dict(container=c.name, info=info, summary=redis_summary(info)), res["stdout"]


def part_resources(ctx):
    running = [c for c in ctx.containers if container_state(c)["status"] == "running"]
    rows = []
    errors = {}

    def one(c):
        return stats_summary(c.name, ctx.client.stats(c, one_shot=not ctx.cpu_sample))

    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, min(8, len(running)))) as pool:
        futures = {pool.submit(one, c): c.name for c in running}
        for fut in concurrent.futures.as_completed(futures):
            try:
                rows.append(fut.result())
            except DockerError as exc:
                errors[futures[fut]] = str(exc)
    rows.sort(key=lambda r: r["name"])
    lines = ["%-45s %8s %14s %14s %8s %6s" % ("NAME", "CPU %", "MEM USAGE", "MEM LIMIT", "MEM %", "PIDS")]
    for r in rows:
        lines.append("%-45s %8s %14s %14s %8s %6s" % (r["name"], r["cpu_pct"], r["mem_used"], r["mem_limit"], r["mem_pct"], r["pids"]))
    return dict(containers=rows, errors=errors), "\n".join(lines) + "\n"


def part_disk(ctx, mounts_path="/proc/mounts", statvfs=os.statvfs):
    host_error = None
    try:
        with open(mounts_path, "r", encoding="utf-8") as handle:
            mounts_text = handle.read()
        host = host_filesystems(mounts_text, statvfs=statvfs)
    except OSError as exc:
        host = []
        host_error = str(exc)
    volumes = []
    seen = set()
    for c in ctx.containers:
        st = container_state(c)
        mounts = [m for m in ((c.attrs or {}).get("Mounts") or []) if m.get("Type") == "volume"]
        todo = [m for m in mounts if m.get("Name") not in seen]
        if not todo:
            continue
        rows = {}
        if st["status"] == "running":
            try:
                res = ctx.client.exec_in(c, ["df", "-P", "-k"] + [m["Destination"] for m in todo], expect_output=True)
                rows = {row["mount"]: row for row in parse_df(res["stdout"])}
            except DockerError:
                rows = {}
        for m in todo:
            row = rows.get(m["Destination"])
            if row is None and m.get("Source") and os.path.isdir(m["Source"]):
                try:
                    row = dict(statvfs_usage(m["Source"], statvfs=statvfs), filesystem=m.get("Driver"))
                except OSError:
                    row = None
            if row is None:
                continue
            seen.add(m.get("Name"))
            volumes.append(dict(volume=m.get("Name"), container=c.name, destination=m["Destination"],
                                filesystem=row.get("filesystem"), size_kb=row.get("size_kb"), used_kb=row.get("used_kb"),
                                avail_kb=row.get("avail_kb"), used_pct=row.get("used_pct")))
    lines = ["%-30s %-10s %12s %12s %12s %6s %s" % ("Filesystem", "Type", "1K-blocks", "Used", "Available", "Use%", "Mounted on")]
    for r in host:
        lines.append("%-30s %-10s %12s %12s %12s %5s%% %s" % (r["filesystem"], r["fstype"], r["size_kb"], r["used_kb"],
                                                              r["avail_kb"], r["used_pct"], r["mount"]))
    lines.append("\n# volumes of the stack")
    for r in volumes:
        values = (r["volume"], r["size_kb"], r["used_kb"], r["avail_kb"], r["used_pct"], r["container"], r["destination"])
        lines.append("%-40s %12s %12s %12s %5s%% %s:%s" % values)
    return dict(host=host, volumes=volumes, host_error=host_error), "\n".join(lines) + "\n"


def part_changes(ctx):
    window = ctx.changes_window_s
    since = ctx.now - window
    recent = []
    rows = []
    for c in ctx.containers:
        st = container_state(c)
        attrs = c.attrs or {}
        img = ctx.image(st["image"]) or {}
        row = dict(name=st["name"], service=st["service"], created=attrs.get("Created"), started_at=st["started_at"],
                   restart_count=st["restart_count"], image=st["image"], image_created=img.get("created"))
        rows.append(row)
        for key, what in (("image_created", "image rebuilt"), ("created", "container recreated"), ("started_at", "container (re)started")):
            value = row.get(key)
            try:
                epoch = _time.epoch(value) if value and not str(value).startswith("0001") else None
            except ValueError:
                epoch = None
            if epoch is not None and epoch >= since:
                recent.append(dict(what=what, name=st["name"], service=st["service"], at=value))
        if st["restart_count"]:
            recent.append(dict(what="restarted by the engine %d times" % st["restart_count"], name=st["name"],
                               service=st["service"], at=st["started_at"]))
    files = []
    for path in ctx.compose_files():
        try:
            mtime = os.stat(path).st_mtime
        except OSError as exc:
            files.append(dict(path=path, error=str(exc)))
            continue
        files.append(dict(path=path, mtime=_time.format_ts(mtime), recent=mtime >= since))
        if mtime >= since:
            recent.append(dict(what="compose file modified", name=path, service=None, at=_time.format_ts(mtime)))
    git = _recent_commits(ctx, window)
    for commit in (git or {}).get("commits") or []:
        recent.append(dict(what="commit %s %s" % (commit["commit"][:10], commit["subject"]), name=ctx.stack["project_dir"],
                           service=None, at=commit["date"]))
    result = dict(window_s=window, since=_time.format_ts(since), containers=rows, compose_files=files, git=git, recent=recent)
    raw = "# changes in the last %d s (since %s)\n" % (window, _time.format_ts(since))
    raw += "\n".join("%-28s %-40s %s" % (r["what"], r["name"], r["at"]) for r in recent) + "\n\n"
    raw += json.dumps(result, indent=2, default=str)
    return result, raw


def _recent_commits(ctx, window):
    """The project directory's git commits of the last ``window`` seconds and its uncommitted files (None: no checkout)."""
    project_dir = ctx.stack.get("project_dir")
    if ctx.run_command is None or not project_dir or not os.path.isdir(project_dir):
        return None
    git_bin = shutil.which("git")
    if not git_bin:
        return dict(error="git is not installed on this host; recent commits not collected")
    rc, out, err = ctx.run_command([git_bin, "-C", project_dir, "log", "-n", "10", "--since=%d seconds ago" % int(window),
                                    "--format=%H%x1f%an%x1f%aI%x1f%s", "--", "."])
    if rc != 0:
        return dict(error=(err or out).strip()[:300] or "not a git checkout")
    commits = [dict(zip(("commit", "author", "date", "subject"), fields))
               for fields in (line.split("\x1f") for line in out.splitlines()) if len(fields) == 4]
    rc, out, _err = ctx.run_command([git_bin, "-C", project_dir, "status", "--porcelain", "--", "."])
    return dict(commits=commits, uncommitted=[line for line in out.splitlines() if line.strip()] if rc == 0 else None)


def part_degraded(ctx):
    """Is a degraded mode left on? The edge's configuration (written by a degraded mode, or the team's own),
    the service's downgrade variable, a running standby."""
    reasons = []
    edge_service = ctx.stack.get("edge")
    edge_mode = None
    edge_status = None
    if edge_service:
        cs = ctx.by_service(edge_service)
        edge_status = container_state(cs[0])["status"] if cs else "missing"
        if cs and ctx.stack.get("edge_config"):
            try:
                edge_mode = _edge.Edge(ctx.client, ctx.stack).mode()["mode"]
            except (_edge.EdgeError, DockerError) as exc:
                reasons.append("edge configuration not readable: %s" % getattr(exc, "msg", exc))
        if edge_mode and edge_mode != "normal":
            reasons.append("edge serves the %s configuration" % edge_mode)
    variable = _stack.downgrade_env(ctx.stack)
    downgrade = None
    for c in ctx.by_service(ctx.service):
        downgrade = _degrade.downgrade_on(c, variable)
        if downgrade:
            reasons.append("%s runs with %s=true" % (c.name, variable))
    standby = ctx.stack.get("standby")
    standby_running = bool(standby and ctx.running(standby) is not None)
    result = dict(edge_mode=edge_mode, edge_status=edge_status, downgrade_mode=downgrade, standby_running=standby_running,
                  degraded=bool(reasons), reasons=reasons)
    return result, json.dumps(result, indent=2) + "\n"


def newest_snapshot(directory, now=None):
    """dict(path, size, mtime, age_s, readable) of the newest ``dump-*.rdb`` in ``directory``, or None."""
    now = time.time() if now is None else now
    path = _degrade.newest_snapshot(directory)
    if path is None:
        return None
    st = os.stat(path)
    try:
        with open(path, "rb") as handle:
            readable = handle.read(5) == b"REDIS"
    except OSError:
        readable = False
    return dict(path=path, size=st.st_size, mtime=_time.format_ts(st.st_mtime), age_s=round(now - st.st_mtime, 1), readable=readable)


def part_fallbacks(ctx, snapshot_max_age=DEFAULT_THRESHOLDS["snapshot_max_age"]):
    # C: the newest Redis snapshot
    snap = newest_snapshot(ctx.snapshot_dir) if ctx.snapshot_dir else None
    if snap is None:
        snapshot = dict(ready=False, dir=ctx.snapshot_dir, reason="no snapshot in %s" % ctx.snapshot_dir)
    else:
        reason = None
        if not snap["readable"]:
            reason = "%s is not a readable RDB file" % snap["path"]
        elif snap["age_s"] > snapshot_max_age:
            reason = "newest snapshot is %d s old (max %d s)" % (snap["age_s"], snapshot_max_age)
        snapshot = dict(snap, ready=reason is None, reason=reason, dir=ctx.snapshot_dir, max_age_s=snapshot_max_age)
    # B: the static top-N file in the service image, when incident_stack names it
    path = ctx.stack.get("static_top_file")
    static = dict(ready=None, present=None, path=path)
    found = ctx.by_service(ctx.service)
    if not path:
        static["reason"] = "not checked: incident_stack.static_top_file is not set"
    elif not found:
        static.update(ready=False, reason="service %s has no container to read the image from" % ctx.service)
    else:
        c = found[0]
        try:
            data = ctx.client.read_file(c, path)
        except DockerError as exc:
            static.update(ready=False, present=False, reason="%s not readable in %s: %s" % (path, c.name, exc))
        else:
            try:
                parsed = json.loads(data.decode("utf-8"))
                items = parsed.get("items") if isinstance(parsed, dict) else parsed
            except (ValueError, UnicodeDecodeError):
                items = None
            count = len(items) if isinstance(items, list) else None
            ready = bool(count) if count is not None else bool(data.strip())
            static.update(present=True, items=count, bytes=len(data), ready=ready,
                          reason=None if ready else "%s is empty" % path)
    # A: the standby service
    name = ctx.stack.get("standby")
    standby = dict(name=name, defined=False, image=None, image_present=False, ready=False)
    if not name:
        standby["reason"] = "incident_stack.standby is not set"
    else:
        files = ctx.compose_files()
        specs = [services[name] for services in compose_services(files) if name in services]
        standby["defined"] = bool(specs)
        images = [spec["image"] for spec in specs if isinstance(spec, dict) and spec.get("image")]
        image = (interpolate(images[-1], compose_environment(ctx.stack.get("project_dir"))) if images
                 else "%s_%s" % (ctx.project, name))
        info = ctx.image(image)
        standby.update(image=image, image_present=info is not None, image_id=(info or {}).get("id"), ready=bool(specs) and info is not None)
        if not specs:
            standby["reason"] = "%s is not defined in %s" % (name, ", ".join(files) or "any compose file")
        elif info is None:
            standby["reason"] = "image %s is not present on the engine" % image
        else:
            standby["reason"] = None
    result = dict(snapshot=snapshot, static_top=static, standby=standby)
    return result, json.dumps(result, indent=2, default=str) + "\n"


def part_http(ctx):
    """Probe /health and every sample user's recommendations, all at once, ``probe_count`` rounds."""
    urls = _stack.urls(ctx.stack)
    targets = [urls["health"]] + list(urls["recommendation_urls"])
    for url in targets:
        _http.validate_url(url)
    jobs = [(url, n + 1) for n in range(ctx.probe_count) for url in targets]

    def one(job):
        result = _http.probe(job[0], ctx.probe_timeout)
        result["round"] = job[1]
        result.pop("body_json", None)
        return result

    with concurrent.futures.ThreadPoolExecutor(max_workers=min(16, len(jobs))) as pool:
        probes = list(pool.map(one, jobs))
    ok = sum(1 for pr in probes if pr["ok"])
    ratio = round(ok / float(len(probes)), 4)
    health = [pr for pr in probes if pr["url"] == urls["health"]]
    recs = [pr for pr in probes if pr["url"] != urls["health"]]
    result = dict(urls=targets, probes=probes, success_ratio=ratio, healthy=ok == len(probes),
                  health_status=health[-1]["status"] if health else None, health_ok=all(pr["ok"] for pr in health),
                  recommendations_ok=all(pr["ok"] for pr in recs), latency_ms=_http.latency_stats(probes),
                  errors=sorted({pr["error"] for pr in probes if pr["error"]}))
    lines = ["%-70s %6s %10s %s" % ("URL", "STATUS", "LATENCY", "ERROR")]
    lines += ["%-70s %6s %10s %s" % (pr["url"], pr["status"], pr["latency_ms"], pr["error"] or "") for pr in probes]
    return result, "\n".join(lines) + "\n"


PART_FUNCS = dict(http=part_http, status=part_status, logs=part_logs, database=part_database, redis=part_redis, resources=part_resources,
                  disk=part_disk, errors=part_errors, changes=part_changes, degraded=part_degraded)


def _run_part(ctx, func, *args):
    started = time.monotonic()
    try:
        facts, raw = func(ctx, *args)
    except (DockerError, OSError, ValueError, KeyError, TypeError) as exc:
        msg = getattr(exc, "msg", None) or str(exc) or exc.__class__.__name__
        return dict(ok=False, error=ctx.text(msg), elapsed=round(time.monotonic() - started, 3)), "ERROR: %s\n" % ctx.text(msg)
    facts = ctx.redact(facts)
    facts.update(ok=True, error=None, elapsed=round(time.monotonic() - started, 3))
    return facts, ctx.text(raw)


def collect(ctx, parts=PARTS, snapshot=None, snapshot_max_age=DEFAULT_THRESHOLDS["snapshot_max_age"], keep_snapshot=None,
            thresholds=None):
    """Collect ``parts`` concurrently, with the callable ``snapshot`` alongside; then, before the
    fallbacks (which look at the newest snapshot kept), ``keep_snapshot(snapshot_result, findings)``
    with the findings of every part but the fallbacks (at ``thresholds``) decides whether it is kept;
    ``(facts_by_part, raw_text_by_part, snapshot_result)``."""
    parts = [p for p in PARTS if p in parts]
    facts = {}
    raw = {}
    snap_result = None
    concurrent_parts = [p for p in parts if p != "fallbacks"]
    workers = len(concurrent_parts) + (1 if snapshot else 0)
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        futures = {pool.submit(_run_part, ctx, PART_FUNCS[name]): name for name in concurrent_parts}
        snap_future = pool.submit(snapshot) if snapshot else None
        for fut in concurrent.futures.as_completed(list(futures)):
            facts[futures[fut]], raw[futures[fut]] = fut.result()
        if snap_future is not None:
            snap_result = snap_future.result()
    if snap_result is not None and keep_snapshot is not None:
        findings = evaluate(build_summary(facts, ctx.stack), {k: v.get("ok") for k, v in facts.items()}, thresholds)
        snap_result = keep_snapshot(snap_result, findings)
    if "fallbacks" in parts:
        facts["fallbacks"], raw["fallbacks"] = _run_part(ctx, part_fallbacks, snapshot_max_age)
    return {p: facts[p] for p in parts}, raw, snap_result


# --------------------------------------------------------------------------- redis snapshot

#: The checks that say the cache (Redis) is unwell: its data then makes no snapshot to restore. Not
#: ``redis_evictions``: Redis counts evicted keys since it started, so one past burst would stop every
#: later snapshot; the keys it keeps are still good ones.
CACHE_CHECKS = ("redis_memory", "part_redis")


def cache_healthy(findings):
    """``(healthy, reason)``: whether this run's verdict lets its Redis data become the snapshot degraded
    option C restores (the newest kept): not when it is critical (users are failed, maybe by the cache),
    not when Redis could not be read or is at its memory threshold (:data:`CACHE_CHECKS`). ``reason``
    says why not (None when healthy)."""
    critical = [f["reason"] for f in findings if f.get("level") == "critical"]
    if critical:
        return False, "the verdict is critical (%s)" % "; ".join(critical)
    unwell = [f["reason"] for f in findings if f.get("check") in CACHE_CHECKS]
    if unwell:
        return False, "the cache is unwell (%s)" % "; ".join(unwell)
    return True, None


def take_redis_snapshot(ctx, timeout=60.0, interval=0.2):
    """BGSAVE and read the RDB out, in memory (``_redis``: nothing is written here, see
    :func:`keep_redis_snapshot`); never raises for an unwell Redis:
    dict(ok, error, data, size, sha256, lastsave, keys, elapsed)."""
    started = time.monotonic()
    result = dict(ok=False, error=None, data=None, size=None, sha256=None, lastsave=None, keys=None)
    try:
        where = _redis.settings(ctx.stack)
        c = ctx.running(where["service"])
        if c is None:
            raise DockerError("service %s is not running" % where["service"])
        server = _redis.Redis(ctx.client, c, where["port"])
        saved = server.save(timeout=timeout, interval=interval)
        directory, filename = server.rdb_location()
        data = ctx.client.read_file(c, directory.rstrip("/") + "/" + filename, max_bytes=1024 * 1024 * 1024)
        if not data.startswith(_redis.RDB_MAGIC):
            raise DockerError("%s/%s is not an RDB file" % (directory, filename))
        result.update(ok=True, data=data, size=len(data), sha256=hashlib.sha256(data).hexdigest(),
                      lastsave=_time.format_ts(saved["lastsave"]), keys=saved["keys"])
    except (DockerError, OSError, ValueError) as exc:
        result["error"] = ctx.text(getattr(exc, "msg", None) or str(exc))
    result["elapsed"] = round(time.monotonic() - started, 3)
    return result


def keep_redis_snapshot(snap, findings, dest_dir, keep=5):
    """Write the snapshot ``snap`` (:func:`take_redis_snapshot`) to ``dest_dir/dump-<LASTSAVE UTC>.rdb``
    (0600) and keep the ``keep`` newest, only when :func:`cache_healthy` says so: the newest kept is the
    one degraded option C restores, never the cache of an incident. Returns ``snap`` without its data,
    with kept, reason, path, removed, dir."""
    out = {k: v for k, v in snap.items() if k != "data"}
    out.update(kept=False, reason=None, path=None, removed=[], dir=dest_dir)
    if not snap.get("ok"):
        out["reason"] = "no snapshot: %s" % snap.get("error")
        return out
    healthy, why = cache_healthy(findings)
    if not healthy:
        out["reason"] = "not kept: %s" % why
        return out
    try:
        _files.private_dir(dest_dir)
        path = os.path.join(dest_dir, "dump-%s.rdb" % _time.stamp(snap["lastsave"]))
        _files.write_atomic(path, snap["data"], sync=False)
        out.update(kept=True, path=path, removed=rotate(dest_dir, keep))
    except OSError as exc:
        out.update(ok=False, error=str(exc), reason="not kept: %s" % exc)
    return out


def rotate(directory, keep, pattern="dump-*.rdb"):
    """Delete all but the ``keep`` newest files matching ``pattern`` (names sort by time)."""
    paths = sorted(glob.glob(os.path.join(directory, pattern)))
    removed = paths[:-keep] if keep > 0 else paths
    for path in removed:
        os.unlink(path)
    return removed


# --------------------------------------------------------------------------- bundle

def _write_private(path, data):
    """A new file (never an existing one) of the bundle, 0600; returns its SHA-256."""
    data = data.encode("utf-8") if isinstance(data, str) else data
    with _files.create_new(path) as handle:
        handle.write(data)
    return hashlib.sha256(data).hexdigest()


def safe_label(label):
    text = re.sub(r"[^A-Za-z0-9_.-]+", "-", str(label or "diag")).strip("-.")
    return text[:40] or "diag"


def write_bundle(base_dir, label, facts, raw, meta, secrets=(), now=None):
    """Write the evidence bundle; returns dict(dir, archive, sha256, files, size).

    ``<base_dir>/<UTC yyyymmddTHHMMSSZ>-<label>/`` (0700) holds the raw text of each part
    (``01-service-status.txt`` ...), ``facts.json``, ``index.json`` and ``SHA256SUMS`` (0600);
    ``<that dir>.tar.gz`` (0600) next to it. Everything is redacted once more on the way out.
    """
    now = time.time() if now is None else now
    _files.private_dir(base_dir)
    name = "%s-%s" % (_time.stamp(now), safe_label(label))
    directory = os.path.join(base_dir, name)
    suffix = 1
    while os.path.exists(directory) or os.path.exists(directory + ".tar.gz"):
        suffix += 1
        directory = os.path.join(base_dir, "%s-%d" % (name, suffix))
    os.mkdir(directory, 0o700)
    os.chmod(directory, 0o700)
    sums = {}
    for part, text in sorted(raw.items()):
        fname = RAW_FILES.get(part, "%s.txt" % part)
        sums[fname] = _write_private(os.path.join(directory, fname), _redact.redact_text(text or "", secrets))
    sums["facts.json"] = _write_private(os.path.join(directory, "facts.json"),
                                        json.dumps(_redact.redact_data(facts, secrets), indent=2, sort_keys=True, default=str))
    index = dict(meta, created_at=_time.format_ts(now), label=label, name=os.path.basename(directory),
                 parts={p: dict(ok=bool((facts.get(p) or {}).get("ok")), error=(facts.get(p) or {}).get("error"),
                                file=RAW_FILES.get(p)) for p in facts},
                 runbook_items={num: dict(item=title, part=part, file=RAW_FILES[part],
                                          ok=bool((facts.get(part) or {}).get("ok"))) for num, title, part in RUNBOOK_ITEMS},
                 files={f: dict(sha256=sums[f], size=os.path.getsize(os.path.join(directory, f))) for f in sums})
    sums["index.json"] = _write_private(os.path.join(directory, "index.json"),
                                        json.dumps(_redact.redact_data(index, secrets), indent=2, sort_keys=True, default=str))
    _write_private(os.path.join(directory, "SHA256SUMS"), "".join("%s  %s\n" % (sums[f], f) for f in sorted(sums)))
    archive = directory + ".tar.gz"
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        tar.add(directory, arcname=os.path.basename(directory))
    archive_sha = _write_private(archive, buf.getvalue())
    return dict(dir=directory, archive=archive, sha256=archive_sha, files=sorted(list(sums) + ["SHA256SUMS"]), size=len(buf.getvalue()))
