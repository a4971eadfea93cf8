# -*- coding: utf-8 -*-
# Copyright (c) sre.incident contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A container's resource figures read from the kernel of the engine's host, at once.

The engine's one-shot stats wait for its collector's next pass (up to a second). :func:`sample`
reads the files they come from for a container's main process, in the shape of the engine's stats, so one
formula (``_verify.cpu_percent_between``, ``_verify.memory_usage``) serves both; like a one-shot
reading, without ``precpu_stats``. Both cgroup versions, only where the host's ``/proc`` and
``/sys/fs/cgroup`` are this process's own (on the engine's host, as root) and the process's control
group names the container; anywhere else :func:`sample` returns None and the caller asks the engine.
"""
from __future__ import annotations

import os

from ansible_collections.sre.incident.plugins.module_utils._wait import poll_until

#: CPU % is measured over at least this much host time (seconds of wall time), at most CPU_TIMEOUT_S
CPU_WINDOW_S = 0.5
CPU_TIMEOUT_S = 3.0

#: USER_HZ: /proc/stat counts clock ticks of 1/100 s on Linux
_TICK_NS = 10 ** 7


def _read(path):
    with open(path) as handle:
        return handle.read()


def _keyed(text):
    """``key value`` lines (memory.stat, cpu.stat) -> dict of ints."""
    out = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit():
            out[parts[0]] = int(parts[1])
    return out


def cgroups_of(pid, container_id, proc="/proc"):
    """{controller: path} of ``pid`` (``""``: cgroup v2), or None when it is not the container's (gone, or
    another PID namespace)."""
    try:
        text = _read(os.path.join(proc, str(int(pid)), "cgroup"))
    except (OSError, ValueError):
        return None
    groups = {}
    for line in text.splitlines():
        _num, _sep, rest = line.partition(":")
        controllers, _sep, path = rest.partition(":")
        for name in controllers.split(",") if controllers else [""]:
            groups[name] = path
    if not container_id or not any(container_id in path for path in groups.values()):
        return None
    return groups


def _host_cpu(proc):
    """(system_cpu_usage in ns as the engine counts it, online CPUs), from /proc/stat."""
    online = 0
    system = None
    for line in _read(os.path.join(proc, "stat")).splitlines():
        if line.startswith("cpu "):
            system = sum(int(v) for v in line.split()[1:8]) * _TICK_NS
        elif line.startswith("cpu") and line[3:4].isdigit():
            online += 1
    return system, online or None


def _host_memory(proc):
    for line in _read(os.path.join(proc, "meminfo")).splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) * 1024
    return None


def _networks(pid, proc):
    """{interface: {rx_bytes, tx_bytes}} of the process's network namespace, loopback left out."""
    out = {}
    for line in _read(os.path.join(proc, str(int(pid)), "net", "dev")).splitlines()[2:]:
        name, _sep, fields = line.partition(":")
        values = fields.split()
        if name.strip() and name.strip() != "lo" and len(values) >= 9:
            out[name.strip()] = dict(rx_bytes=int(values[0]), tx_bytes=int(values[8]))
    return out


def _v1(groups, root):
    def path(controller, name):
        return os.path.join(root, controller, groups[controller].lstrip("/"), name)

    cpu_ns = int(_read(path("cpuacct", "cpuacct.usage")))
    memory = _keyed(_read(path("memory", "memory.stat")))
    usage = int(_read(path("memory", "memory.usage_in_bytes")))
    limit = int(_read(path("memory", "memory.limit_in_bytes")))
    pids = int(_read(path("pids", "pids.current"))) if "pids" in groups else None
    blkio = []
    if "blkio" in groups:
        for line in _read(path("blkio", "blkio.throttle.io_service_bytes_recursive")).splitlines():
            parts = line.split()
            if len(parts) == 3 and parts[2].isdigit():
                blkio.append(dict(op=parts[1], value=int(parts[2])))
    return cpu_ns, usage, limit, dict(total_inactive_file=memory.get("total_inactive_file")), pids, blkio


def _v2(groups, root):
    def path(name):
        return os.path.join(root, groups[""].lstrip("/"), name)

    cpu_ns = _keyed(_read(path("cpu.stat")))["usage_usec"] * 1000
    memory = _keyed(_read(path("memory.stat")))
    usage = int(_read(path("memory.current")))
    text = _read(path("memory.max")).strip()
    limit = int(text) if text.isdigit() else None
    pids = int(_read(path("pids.current"))) if os.path.exists(path("pids.current")) else None
    blkio = []
    if os.path.exists(path("io.stat")):
        for line in _read(path("io.stat")).splitlines():
            fields = dict(f.split("=", 1) for f in line.split()[1:] if "=" in f)
            blkio += [dict(op="read", value=int(fields.get("rbytes", 0))), dict(op="write", value=int(fields.get("wbytes", 0)))]
    return cpu_ns, usage, limit, dict(inactive_file=memory.get("inactive_file")), pids, blkio


def sample(pid, container_id, proc="/proc", cgroup_root="/sys/fs/cgroup"):
    """One reading of the container whose main process is ``pid``, shaped as the engine's stats; None
    when this host's files do not show it (see the module's docstring)."""
    if not pid or int(pid) <= 0:
        return None
    groups = cgroups_of(pid, container_id, proc=proc)
    if groups is None:
        return None
    try:
        if "cpuacct" in groups and "memory" in groups:
            cpu_ns, usage, limit, details, pids, blkio = _v1(groups, cgroup_root)
        elif "" in groups:
            cpu_ns, usage, limit, details, pids, blkio = _v2(groups, cgroup_root)
        else:
            return None
        system, online = _host_cpu(proc)
        host_memory = _host_memory(proc)
        networks = _networks(pid, proc)
    except (OSError, ValueError, KeyError, IndexError):
        return None
    if host_memory and (limit is None or limit > host_memory):
        limit = host_memory  # no limit of its own: the engine reports the host's memory
    return dict(
        cpu_stats=dict(cpu_usage=dict(total_usage=cpu_ns), system_cpu_usage=system, online_cpus=online),
        precpu_stats={},
        memory_stats=dict(usage=usage, limit=limit, stats={k: v for k, v in details.items() if v is not None}),
        pids_stats=dict(current=pids),
        blkio_stats=dict(io_service_bytes_recursive=blkio),
        networks=networks,
        read_from="cgroup",
    )


def _window_s(before, after):
    """Seconds of wall time between two readings, from the host's CPU time over its online CPUs (0 when unknown)."""
    system_before = (before.get("cpu_stats") or {}).get("system_cpu_usage")
    system_after = (after.get("cpu_stats") or {}).get("system_cpu_usage")
    if system_before is None or system_after is None:
        return 0.0
    online = (after.get("cpu_stats") or {}).get("online_cpus") or 1
    return (float(system_after) - float(system_before)) / (online * 1e9)


def with_cpu_window(first, read_again, window_s=CPU_WINDOW_S, timeout_s=CPU_TIMEOUT_S, poll=poll_until):
    """A later reading (``read_again()``, polled until it is ``window_s`` of host time after ``first``,
    at most ``timeout_s``) with ``first``'s ``cpu_stats`` as its ``precpu_stats``, for CPU % as from the
    engine's full sample. A ``read_again()`` of None (process gone) keeps the last reading; a ``first``
    without the host's CPU time is returned as it is."""
    if (first.get("cpu_stats") or {}).get("system_cpu_usage") is None:
        return first
    latest = [first]

    def later():
        found = read_again()
        if found is None:
            return True
        latest.append(found)
        return _window_s(first, found) >= window_s

    poll(later, timeout_s, interval=0.1)
    return dict(latest[-1], precpu_stats=first["cpu_stats"])


def sample_with_cpu(pid, container_id, poll=poll_until, **roots):
    """:func:`sample` with CPU % (see :func:`with_cpu_window`); None when this host's files do not show it."""
    first = sample(pid, container_id, **roots)
    if first is None:
        return None
    return with_cpu_window(first, lambda: sample(pid, container_id, **roots), poll=poll)
