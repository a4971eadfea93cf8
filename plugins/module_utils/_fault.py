# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Drill faults (SPEC DR-1, DR-2, DR-4, GEN-5): inject one real fault into a staging stack, and roll it back.

Faults use only what every stack has (GEN-5): the Docker engine, the managed host's ``nsenter``, ``tc``,
``ip`` and ``iptables``, and stock tools in the containers (``sh``, ``dd``, ``df``, ``psql``, ``redis-cli``);
nothing in the application (no hook, no key it reads, no endpoint).

Each fault has ``observe`` (read-only), ``inject`` and ``rollback`` on a :class:`Target`. ``changed`` comes
from observing before and after, never from an exit code; rolling back a fault not injected is a no-op.
What each fault does is documented once, in the ``name`` option of ``plugins/modules/fault.py``.
:func:`refuse_production` (DR-4) runs before anything is touched.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import statistics
from urllib.parse import urlsplit

from ansible_collections.sre.incident.plugins.module_utils import _compose, _files, _http, _stack
from ansible_collections.sre.incident.plugins.module_utils._errors import IncidentError
from ansible_collections.sre.incident.plugins.module_utils._wait import poll_until

STATES = ("present", "injected", "rolled_back")
PRODUCTION_MARKER = "/etc/sre-incident/production"
# ``entry``: how a responder learns of it: ``page`` (down for everyone, the P0 page of p0_recover.yml) or
# ``alert`` (triage.yml measures and classifies it). ``users``: what users of the reference stack see
# (docs/drills.md), documentation only: the drill never tells the responder a severity.
FAULTS = {
    "app_crash": dict(entry="page", text="the service's container killed (SIGKILL)",
                      users="no answer at all"),
    "app_hang": dict(entry="page", text="the service's container paused (frozen, answers nothing)",
                     users="no answer at all (timeouts)"),
    "redis_down": dict(entry="page", text="Redis stopped", users="/health 503; answers from the database"),
    "postgres_down": dict(entry="page", text="PostgreSQL stopped", users="/health 503; uncached answers fail"),
    "latency": dict(entry="alert", text="every answer of the service slowed to about delay_ms (tc from the host)",
                    users="every recommendation about delay_ms slower; /health answers"),
    "cpu_pressure": dict(entry="alert", text="busy loops burning CPU inside the service's container",
                         users="nothing (the container's CPU use is high)"),
    "db_connections_exhausted": dict(entry="alert", text="all but a few of the application's PostgreSQL connection slots "
                                                         "held by idle sessions in the database container",
                                     users="nothing while the spare slots suffice (connections near max_connections)"),
    "cache_wipe": dict(entry="alert", text="the stack's Redis emptied (FLUSHDB)",
                       users="nothing (the service recomputes and refills the cache)"),
    "disk_fill": dict(entry="alert", text="a writable volume of the service's container filled to 100 %",
                      users="nothing when the service does not need to write there"),
}
QDISC_HANDLE = "d7d7"   # the root qdisc of the latency fault; nothing else uses it
HOLDER_NAME = "sre-incident-drill-hold"
BURNER_NAME = "sre-incident-drill-cpu"
FILL_FILE = "sre-incident-drill-fill"
LATENCY_MSS = 200        # the segment size of the service's answers while the latency fault is on (several packets each)
GSO_MAX_SEGS = 65535     # the kernel's default gso_max_segs of an interface
CLAMP_COMMENT = "sre-incident-drill-latency"
LATENCY_BUCKETS = 256    # client connections are spread over this many rate-capped classes (by client port)
SLOW_CLASS = "%s:2" % QDISC_HANDLE
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
_IFNAME = re.compile(r"^[A-Za-z0-9_.:-]{1,15}$")


class FaultError(IncidentError):
    """A fault could not be observed, injected or rolled back; ``details`` go into the failure."""


class Refused(FaultError):
    """The managed host is production: nothing was touched."""

    refused = True


class NotApplicable(FaultError):
    """The stack has nothing this fault can act on (no writable volume, no Redis ...)."""

    def __init__(self, message, /, **details):
        super().__init__(message, not_applicable=True, **details)


def refuse_production(environment, marker=PRODUCTION_MARKER, exists=None):
    """Raise Refused when the host is production (the ``environment`` value or the marker file)."""
    exists = exists or os.path.exists
    if str(environment or "").strip().lower() == "production":
        raise Refused("refusing to inject or roll back a fault: this host is marked production (environment=production). "
                      "Drills run on staging only; nothing was touched.", reason="environment")
    if marker and exists(marker):
        raise Refused("refusing to inject or roll back a fault: the marker file %s on this host says it is production. "
                      "Drills run on staging only; nothing was touched." % marker, reason="marker", marker=marker)


def _int(params, key, default):
    value = params.get(key)
    return int(default if value is None else value)


def _port(value, what):
    if value in (None, ""):
        return None
    try:
        port = int(value)
    except (TypeError, ValueError):
        raise ValueError("%s %r is not a port number" % (what, value)) from None
    if not 1 <= port <= 65535:
        raise ValueError("%s %r is not a port number (1-65535)" % (what, value))
    return port


def validate(params):
    """Check the parameters; returns the normalized settings. ValueError names the bad value."""
    name = params.get("name")
    if name not in FAULTS:
        raise ValueError("unknown fault %r: choose one of %s" % (name, ", ".join(sorted(FAULTS))))
    state = params.get("state") or "present"
    if state not in STATES:
        raise ValueError("unknown state %r: choose one of %s" % (state, ", ".join(STATES)))
    stack = params.get("stack") or {}
    if not isinstance(stack, dict) or not stack.get("name"):
        raise ValueError("stack (incident_stack) with at least a name (the compose project) is required")
    db = stack.get("database") or {}
    redis = stack.get("redis") or {}
    settings = dict(
        name=name, state=state, project=stack["name"], stack=stack,
        service=stack.get("service") or "recommendation-service",
        postgres=db.get("service") or "postgres", db_name=db.get("name") or "recommendation_db",
        db_user=db.get("user") or "postgres", db_port=_stack.port_args(stack, "database"),
        redis=redis.get("service") or "redis", redis_port=_stack.port_args(stack, "redis"),
        service_port=_port(stack.get("service_port"), "incident_stack.service_port"),
        state_dir=stack.get("state_dir") or "",
        delay_ms=_int(params, "delay_ms", 800),
        spare=_int(params, "spare_connections", 5),
        cpu_workers=_int(params, "cpu_workers", 1),
        fill_path=params.get("fill_path") or "",
        max_fill_mb=_int(params, "max_fill_mb", 256),
        hold_seconds=int(params.get("hold_seconds") or 1800),
        timeout=float(params.get("timeout") or 60),
        tables=list(params.get("checksum_tables") or []),
    )
    for key, option, low, high in (("delay_ms", "delay_ms", 50, 10000), ("spare", "spare_connections", 0, None),
                                   ("cpu_workers", "cpu_workers", 1, 16), ("max_fill_mb", "max_fill_mb", 1, None),
                                   ("hold_seconds", "hold_seconds", 10, None)):
        if high is None and settings[key] < low:
            raise ValueError("%s must be >= %d, got %r" % (option, low, settings[key]))
        if high is not None and not low <= settings[key] <= high:
            raise ValueError("%s must be between %d and %d, got %r" % (option, low, high, settings[key]))
    fill = settings["fill_path"]
    if fill and (not fill.startswith("/") or any(ch.isspace() for ch in fill) or fill.rstrip("/") == ""):
        raise ValueError("fill_path must be an absolute path other than / without spaces, got %r" % fill)
    for key in ("db_name", "db_user"):
        if not _IDENT.match(settings[key]):
            raise ValueError("incident_stack.database %s %r is not a plain identifier" % (key, settings[key]))
    for table in settings["tables"]:
        if not _IDENT.match(table):
            raise ValueError("checksum table %r is not a plain identifier" % (table,))
    return settings


class Target:
    """The compose project on the managed host's engine (through _compose), and the managed host itself
    (``run``: the module's ``run_command``; ``which``: its ``get_bin_path``)."""

    def __init__(self, client, project, run=None, which=None, probe_many=None):
        self.client = client
        self.project = project
        self._run = run
        self._which = which
        self._probe_many = probe_many

    def container(self, service):
        found = self.client.find_containers(self.project, service=service)
        return found[0] if found else None

    def status(self, service):
        """Plain container state, or None when the service has no container."""
        found = self.container(service)
        return _compose.container_state(found) if found is not None else None

    def attrs(self, service):
        """The engine's inspect data of the service's container (fresh), or None."""
        found = self.container(service)
        if found is None:
            return None
        self.client.refresh(found)
        return found.attrs

    def act(self, service, action):
        found = self.container(service)
        if found is None:
            raise FaultError("service %r of compose project %r has no container" % (service, self.project))
        return self.client.apply(found, action)

    def wait_ready(self, service, timeout):
        return self.client.wait_ready(self.container(service), timeout)

    def exec(self, service, argv, expect_output=False):
        return _compose.exec_in_service(self.client, self.project, service, argv, expect_output=expect_output)

    def exec_detached(self, service, argv):
        return _compose.exec_detached_in_service(self.client, self.project, service, argv)

    def host(self, argv, data=None):
        """Run ``argv`` on the managed host; dict(cmd, rc, stdout, stderr)."""
        if self._run is None:
            raise FaultError("no way to run %s on the managed host" % argv[0])
        rc, out, err = self._run(list(argv), data=data, binary_data=False) if data is not None else self._run(list(argv))
        return dict(cmd=list(argv), rc=rc, stdout=out, stderr=err)

    def which(self, name):
        return self._which(name) if self._which else None

    def probe(self, urls, timeout):
        return (self._probe_many or _http.probe_many)(list(urls), count=1, interval=0, timeout=timeout)


# --------------------------------------------------------------------------- helpers

def _check(result, what):
    if result["rc"] != 0:
        raise FaultError("%s failed (rc %s): %s" % (what, result["rc"], (result.get("stderr") or result.get("stdout") or "").strip()[:400]),
                         cmd=result.get("cmd"), rc=result["rc"], stdout=result.get("stdout"), stderr=result.get("stderr"))
    return result["stdout"].strip()


def psql_argv(s, sql):
    return ["psql", "-X", "-q", "-U", s["db_user"], "-d", s["db_name"]] + s["db_port"] + ["-v", "ON_ERROR_STOP=1", "-tAc", sql]


def psql(target, s, sql):
    """The output of ``sql``, a statement that returns one row or more (every query here does)."""
    return _check(target.exec(s["postgres"], psql_argv(s, sql), expect_output=True), "psql in %s" % s["postgres"])


def redis_argv(s, *args):
    return ["redis-cli"] + s["redis_port"] + ["--no-raw"] + list(args)


def redis_cli(target, s, *args):
    out = _check(target.exec(s["redis"], redis_argv(s, *args)), "redis-cli in %s" % s["redis"])
    if out.startswith("(error)"):
        raise FaultError("redis-cli %s: %s" % (args[0], out))
    return out


def _redis_value(out):
    """Parse redis-cli --no-raw output: (nil) -> None, "text" -> text, (integer) n -> n."""
    out = out.strip()
    if out == "(nil)":
        return None
    if out.startswith("(integer) "):
        return int(out.split(" ", 1)[1])
    if len(out) >= 2 and out[0] == '"' and out[-1] == '"':
        return out[1:-1]
    return out


def checksum_sql(tables):
    parts = ["'%s', (SELECT json_build_array(count(*), md5(coalesce(string_agg(x::text, E'\\n' ORDER BY x::text), ''))) FROM %s x)"
             % (t, t) for t in tables]
    return "SELECT json_build_object(%s)" % ", ".join(parts)


# one row even for an empty schema (psql's output is always expected; see psql())
TABLES_SQL = ("SELECT 'tables:' || coalesce(string_agg(tablename, ' ' ORDER BY tablename), '') "
              "FROM pg_tables WHERE schemaname = 'public'")


def data_checksum(target, s):
    """dict(tables={name: {rows, md5}}, md5): row counts and md5 of every row, ordered (DR-3), of
    ``checksum_tables`` or, when none are given, of every table of the schema ``public``."""
    tables = s["tables"]
    if not tables:
        listed = psql(target, s, TABLES_SQL).strip()
        if not listed.startswith("tables:"):
            raise FaultError("psql in %s: the list of tables reads %r" % (s["postgres"], listed[:200]))
        tables = [t for t in listed[len("tables:"):].split() if _IDENT.match(t)]
    if not tables:
        return dict(tables={}, md5=hashlib.md5(b"").hexdigest())
    raw = json.loads(psql(target, s, checksum_sql(tables)))
    found = {name: dict(rows=int(value[0]), md5=value[1]) for name, value in raw.items()}
    whole = hashlib.md5("|".join("%s:%s:%s" % (n, found[n]["rows"], found[n]["md5"]) for n in sorted(found)).encode()).hexdigest()
    return dict(tables=found, md5=whole)


# --------------------------------------------------------------------------- latency: tc from the host

def parse_links(text):
    """``ip -o -d link show`` -> [dict(name, mtu, gso_max_segs, peer)], without ``lo``."""
    links = []
    for line in (text or "").splitlines():
        m = re.match(r"^\d+:\s+([^:@\s]+)(?:@if(\d+))?:", line)
        if not m or m.group(1) == "lo":
            continue
        mtu = re.search(r"\bmtu (\d+)", line)
        segs = re.search(r"\bgso_max_segs (\d+)", line)
        links.append(dict(name=m.group(1), peer=int(m.group(2)) if m.group(2) else None,
                          mtu=int(mtu.group(1)) if mtu else None, gso_max_segs=int(segs.group(1)) if segs else None))
    return links


def parse_qdiscs(text):
    """``tc qdisc show`` -> [dict(kind, handle, dev, root)]."""
    found = []
    for line in (text or "").splitlines():
        m = re.match(r"^qdisc (\S+) ([0-9a-f]+): dev (\S+) (root|parent \S+)", line.strip())
        if m:
            found.append(dict(kind=m.group(1), handle=m.group(2), dev=m.group(3), root=m.group(4) == "root"))
    return found


def service_port(s, attrs):
    """The port the service answers on inside its container: ``incident_stack.service_port``, else the
    container port published on the port of ``base_url``, else its only exposed TCP port."""
    if s["service_port"]:
        return s["service_port"]
    base = urlsplit(str(s["stack"].get("base_url") or ""))
    published = ((attrs or {}).get("NetworkSettings") or {}).get("Ports") or {}
    for key, bindings in sorted(published.items()):
        if key.endswith("/tcp") and base.port and any(str(b.get("HostPort")) == str(base.port) for b in bindings or []):
            return int(key.split("/")[0])
    exposed = sorted(int(k.split("/")[0]) for k in (((attrs or {}).get("Config") or {}).get("ExposedPorts") or {}) if k.endswith("/tcp"))
    if len(exposed) == 1:
        return exposed[0]
    raise FaultError("cannot tell which port %s answers on inside its container (exposed: %s): set incident_stack.service_port"
                     % (s["service"], exposed or "none"))


def wire_bytes(body_bytes, mss=LATENCY_MSS):
    """The bytes on the wire of one answer of ``body_bytes`` (about 250 bytes of HTTP headers, and 66 bytes of
    TCP, IP and Ethernet headers per packet)."""
    payload = int(body_bytes) + 250
    packets = -(-payload // mss)
    return payload + packets * 66


def rate_for(delay_ms, body_bytes, mss=LATENCY_MSS):
    """The per-connection rate (bytes/s) that makes an answer of ``body_bytes`` take about ``delay_ms``:
    all but the first packet (the bucket holds one) wait for the rate."""
    slow = max(wire_bytes(body_bytes, mss) - _burst(mss), mss)
    return max(100, int(round(slow / (delay_ms / 1000.0))))


def _burst(mss):
    return mss + 140


def tc_batch(port, mode, dev, delay_ms=None, rate=None, mss=LATENCY_MSS, buckets=LATENCY_BUCKETS):
    """The ``tc -batch`` lines of the latency fault on ``dev``: an htb root (handle QDISC_HANDLE) whose
    default class is unlimited and whose filter sends the packets from ``port`` (the service's answers)
    to the slow part: a netem leaf (``mode`` netem) or one rate-capped class per client port bucket (``mode`` rate)."""
    if not _IFNAME.match(dev):
        raise ValueError("bad interface name %r" % (dev,))
    h = QDISC_HANDLE
    lines = ["qdisc add dev %s root handle %s: htb default 1" % (dev, h),
             "class add dev %s parent %s: classid %s:1 htb rate 10gbit quantum 60000" % (dev, h, h)]
    if mode == "netem":
        lines += ["class add dev %s parent %s: classid %s htb rate 10gbit quantum 60000" % (dev, h, SLOW_CLASS),
                  "qdisc add dev %s parent %s handle d7d8: netem delay %dms" % (dev, SLOW_CLASS, int(delay_ms)),
                  "filter add dev %s parent %s: prio 1 protocol ip u32 match ip sport %d 0xffff flowid %s" % (dev, h, port, SLOW_CLASS)]
        return lines
    lines += rate_batch("add", dev, rate, mss, buckets)
    lines.append("filter add dev %s parent %s: prio 1 handle 2: protocol ip u32 divisor %d" % (dev, h, buckets))
    for i in range(buckets):
        lines.append("filter add dev %s parent %s: prio 1 protocol ip u32 ht 2:%x: match u32 0 0 flowid %s:%x" % (dev, h, i, h, 0x100 + i))
    # the 32-bit word at offset 20 of the IP header is the TCP source and destination ports: hash on the client's port
    lines.append("filter add dev %s parent %s: prio 1 protocol ip u32 ht 800:: match ip sport %d 0xffff hashkey mask 0x%08x at 20 link 2:"
                 % (dev, h, port, buckets - 1))
    return lines


def rate_batch(verb, dev, rate, mss=LATENCY_MSS, buckets=LATENCY_BUCKETS):
    """``class add`` (or ``change``) lines of the rate-capped classes, one per client port bucket."""
    burst = _burst(mss)
    return ["class %s dev %s parent %s: classid %s:%x htb rate %dbps ceil %dbps burst %d cburst %d quantum %d"
            % (verb, dev, QDISC_HANDLE, QDISC_HANDLE, 0x100 + i, rate, rate, burst, burst, mss + 66) for i in range(buckets)]


def clamp_rule(port, mss=LATENCY_MSS):
    """The iptables rule (mangle PREROUTING, after ``-A``/``-D``/``-C``) that makes the service's side of every new
    connection to ``port`` send segments of ``mss`` bytes: the clients' SYNs announce that MSS. Only those
    connections; the service's own connections to its database and cache keep theirs."""
    return ["PREROUTING", "-p", "tcp", "--dport", str(port), "--tcp-flags", "SYN,RST", "SYN",
            "-m", "comment", "--comment", CLAMP_COMMENT, "-j", "TCPMSS", "--set-mss", str(mss)]


def parse_clamps(text):
    """The ports of our MSS clamp rules in ``iptables -t mangle -S PREROUTING`` output."""
    return sorted({int(m.group(1)) for m in re.finditer(r"--dport (\d+)\b[^\n]*%s" % re.escape(CLAMP_COMMENT), text or "")})


def _latency_tools(target):
    missing = [tool for tool in ("nsenter", "tc", "ip", "iptables") if not target.which(tool)]
    if missing:
        raise FaultError("the latency fault needs %s on the managed host (packages util-linux, iproute2 and iptables), missing: %s"
                         % ("nsenter, tc, ip and iptables", ", ".join(missing)), missing=missing)


def _netns(target, s):
    """argv prefix entering the network namespace of the service's running container."""
    attrs = target.attrs(s["service"])
    pid = int(((attrs or {}).get("State") or {}).get("Pid") or 0)
    if not pid:
        return None, attrs
    cid = (attrs or {}).get("Id") or ""
    seen = target.host(["cat", "/proc/%d/cgroup" % pid])
    if seen["rc"] != 0 or (cid and cid[:12] not in seen["stdout"]):
        raise FaultError("the managed host does not see process %d of %s's container in its /proc: run the managed host in the "
                         "engine host's PID namespace (a container needs --pid host and the capabilities SYS_ADMIN, NET_ADMIN, "
                         "SYS_PTRACE)" % (pid, s["service"]), pid=pid)
    return ["nsenter", "-t", str(pid), "-n"], attrs


def _ns(target, prefix, argv, what, data=None):
    return _check(target.host(prefix + argv, data=data), what)


def _tc(target, prefix, s, lines):
    """``lines`` run by ``tc -batch`` in the service's network namespace."""
    return _ns(target, prefix, ["tc", "-batch", "-"], "tc in %s's namespace" % s["service"], data="\n".join(lines) + "\n")


def _latency_state(target, s, prefix):
    """(links, qdiscs, devices with our qdisc, ports with our MSS clamp) in the service's network namespace."""
    links = parse_links(_ns(target, prefix, ["ip", "-o", "-d", "link", "show"], "ip link in the service's namespace"))
    qdiscs = parse_qdiscs(_ns(target, prefix, ["tc", "qdisc", "show"], "tc qdisc show in the service's namespace"))
    ours = sorted({q["dev"] for q in qdiscs if q["root"] and q["handle"] == QDISC_HANDLE})
    clamps = parse_clamps(_ns(target, prefix, ["iptables", "-w", "5", "-t", "mangle", "-S", "PREROUTING"],
                              "iptables in the service's namespace"))
    return links, qdiscs, ours, clamps


def _saved_path(s):
    if not s["state_dir"]:
        return None
    return os.path.join(s["state_dir"], "fault-latency-%s.json" % re.sub(r"[^A-Za-z0-9_.-]", "_", s["service"]))


def _rec_urls(s):
    try:
        return _stack.urls(s["stack"])["recommendation_urls"]
    except (_stack.StackError, KeyError, TypeError):
        return []


def _measure(target, s, timeout):
    """(median latency ms, median body bytes) of one concurrent round of the sample users' recommendations."""
    urls = _rec_urls(s)
    if not urls:
        return None, None
    probes = [p for p in target.probe(urls, timeout)["probes"] if p.get("status") == 200 and p.get("latency_ms") is not None]
    if not probes:
        return None, None
    sizes = [len(json.dumps(p.get("body_json"), separators=(",", ":"))) for p in probes if p.get("body_json") is not None]
    return statistics.median(p["latency_ms"] for p in probes), (statistics.median(sizes) if sizes else None)


def _latency_observe(target, s):
    _latency_tools(target)
    prefix, _attrs = _netns(target, s)
    if prefix is None:
        return dict(injected=False, detail="%s has no running container (no network namespace to slow)" % s["service"], devices=[])
    links, _qdiscs, ours, clamps = _latency_state(target, s, prefix)
    traces = ["qdisc %s: on %s" % (QDISC_HANDLE, ", ".join(ours))] if ours else []
    traces += ["MSS clamp on port %s" % ", ".join(str(p) for p in clamps)] if clamps else []
    return dict(injected=bool(ours or clamps), devices=ours, clamped_ports=clamps, links=links,
                detail="; ".join(traces) or "no qdisc %s: and no MSS clamp in %s's namespace" % (QDISC_HANDLE, s["service"]))


def _latency_inject(target, s, write_file):
    prefix, attrs = _netns(target, s)
    if prefix is None:
        raise FaultError("%s has no running container to slow down" % s["service"])
    port = service_port(s, attrs)
    links, qdiscs, _ours, _clamps = _latency_state(target, s, prefix)
    if not links:
        raise FaultError("%s's network namespace has no interface but lo" % s["service"])
    taken = [q for q in qdiscs if q["root"] and q["dev"] in {link["name"] for link in links} and q["kind"] not in ("noqueue", "pfifo_fast", "mq")]
    if taken:
        raise FaultError("refusing to replace the root qdisc %s on %s in %s's namespace (it is not ours and could not be put back)"
                         % (taken[0]["kind"], taken[0]["dev"], s["service"]))
    saved = dict(links={link["name"]: dict(gso_max_segs=link["gso_max_segs"]) for link in links})
    path = _saved_path(s)
    if path:
        write_file(path, json.dumps(saved))
    base_ms, body = _measure(target, s, 5.0)
    devices = ", ".join(x["name"] for x in links)
    probe = links[0]["name"]
    # netem where the kernel has it (each answer's packets delayed; a new connection pays it twice: SYN-ACK and answer)
    netem = target.host(prefix + ["tc", "-batch", "-"], data="\n".join(tc_batch(port, "netem", probe, delay_ms=s["delay_ms"] // 2)) + "\n")
    if netem["rc"] == 0:
        mode = "netem"
        for link in links[1:]:
            _tc(target, prefix, s, tc_batch(port, "netem", link["name"], delay_ms=s["delay_ms"] // 2))
        actions = ["netem: every answer from port %d delayed %d ms per packet on %s" % (port, s["delay_ms"] // 2, devices)]
    else:
        target.host(prefix + ["tc", "qdisc", "del", "dev", probe, "root"])   # the part of the batch that was added
        mode = "rate"
        rate = rate_for(s["delay_ms"], body or 900)
        _ns(target, prefix, ["iptables", "-w", "5", "-t", "mangle", "-A"] + clamp_rule(port), "iptables in %s's namespace" % s["service"])
        for link in links:
            _ns(target, prefix, ["ip", "link", "set", "dev", link["name"], "gso_max_segs", "1"], "ip link set in %s's namespace" % s["service"])
            _tc(target, prefix, s, tc_batch(port, "rate", link["name"], rate=rate))
        why = [line for line in (netem["stderr"] + "\n" + netem["stdout"]).splitlines() if "rror" in line or "unknown" in line]
        refused = why[0].strip()[:80] if why else "tc refused it"
        actions = ["no netem in this kernel (%s): each client connection to port %d capped at %d bytes/s (%d classes by client port), "
                   "its segments clamped to %d bytes (the clients' SYNs), gso_max_segs 1 on %s"
                   % (refused, port, rate, LATENCY_BUCKETS, LATENCY_MSS, devices)]
    # one measurement through the service, and one correction when answers are clearly faster than asked (the rate
    # came from an estimate of their size on the wire). A slower measurement is left alone: a loaded machine makes
    # answers slower, never faster, so speeding the rate up on its word could leave the fault too weak.
    measured, _body = _measure(target, s, max(5.0, 4 * s["delay_ms"] / 1000.0))
    if measured is not None and mode == "rate" and measured < 0.75 * s["delay_ms"]:
        extra = max(measured - (base_ms or 0), 10.0)
        rate = max(100, int(round(rate * extra / float(s["delay_ms"]))))
        for link in links:
            _tc(target, prefix, s, rate_batch("change", link["name"], rate))
        actions.append("measured %.0f ms (before: %s ms): rate set to %d bytes/s" % (measured, "%.0f" % base_ms if base_ms else "?", rate))
        measured, _body = _measure(target, s, max(5.0, 4 * s["delay_ms"] / 1000.0))
    actions.append("recommendations now take %s ms (median of one round through %s; %s ms before)"
                   % ("%.0f" % measured if measured is not None else "? (no answer)", s["stack"].get("base_url"),
                      "%.0f" % base_ms if base_ms is not None else "?"))
    return actions, dict(mode=mode, latency_ms=measured, latency_before_ms=base_ms)


def _latency_rollback(target, s, read_file, remove_file):
    prefix, _attrs = _netns(target, s)
    if prefix is None:
        return ["%s has no running container: nothing to undo" % s["service"]]
    links, _qdiscs, ours, clamps = _latency_state(target, s, prefix)
    path = _saved_path(s)
    saved = {}
    if path:
        try:
            saved = json.loads(read_file(path) or "{}").get("links") or {}
        except ValueError:
            saved = {}
    actions = []
    for dev in ours:
        _ns(target, prefix, ["tc", "qdisc", "del", "dev", dev, "root"], "tc qdisc del in %s's namespace" % s["service"])
        actions.append("deleted qdisc %s: on %s" % (QDISC_HANDLE, dev))
    for port in clamps:
        _ns(target, prefix, ["iptables", "-w", "5", "-t", "mangle", "-D"] + clamp_rule(port), "iptables in %s's namespace" % s["service"])
        actions.append("deleted the MSS clamp on port %d" % port)
    for link in links:
        # the value read before the fault; without it (another state_dir), the kernel's default
        want = (saved.get(link["name"]) or {}).get("gso_max_segs") or (GSO_MAX_SEGS if link["gso_max_segs"] == 1 else None)
        if want and link["gso_max_segs"] not in (None, want):
            _ns(target, prefix, ["ip", "link", "set", "dev", link["name"], "gso_max_segs", str(want)],
                "ip link set in %s's namespace" % s["service"])
            actions.append("%s: gso_max_segs %d back" % (link["name"], want))
    after = parse_links(_ns(target, prefix, ["ip", "-o", "-d", "link", "show"], "ip link in the service's namespace"))
    wrong = [x["name"] for x in after if x["name"] in saved and x["gso_max_segs"] != saved[x["name"]].get("gso_max_segs")]
    if wrong:
        raise FaultError("gso_max_segs of %s not back to what it was before the fault" % ", ".join(wrong))
    if path:
        remove_file(path)
    return actions


# --------------------------------------------------------------------------- cpu_pressure: busy loops through exec

def burner_argv(s):
    """One busy loop in the service's container: only ``sh`` (and ``date``, ``nice`` when there), niced so that the
    rest of the machine keeps its share, ending by itself after hold_seconds; the marker is its $0."""
    loop = ("end=$(( $(date +%%s) + %d )); while [ \"$(date +%%s)\" -lt \"$end\" ]; do i=0; "
            "while [ $i -lt 20000 ]; do i=$((i+1)); done; done" % s["hold_seconds"])
    return ["sh", "-c", 'if command -v nice >/dev/null 2>&1; then exec nice -n 19 sh -c "$1" "$2"; else exec sh -c "$1" "$2"; fi',
            "sh", loop, BURNER_NAME]


# lists (or kills, with "kill" as $1) the processes whose command line holds the marker, given in two parts
# so that this script's own command line does not hold it
_FIND_SCRIPT = ('m="$2-$3"; for d in /proc/[0-9]*; do p=${d#/proc/}; [ "$p" = "$$" ] && continue; '
                'c=$(tr "\\000" " " < "$d/cmdline" 2>/dev/null) || continue; case "$c" in *"$m"*) echo "$p"; '
                '[ "$1" = kill ] && kill "$p" 2>/dev/null;; esac; done; true')


def _burners(target, s, kill=False):
    argv = ["sh", "-c", _FIND_SCRIPT, "find", "kill" if kill else "list"] + BURNER_NAME.rsplit("-", 1)
    out = _check(target.exec(s["service"], argv), "the process list of %s" % s["service"])
    return sorted({int(p) for p in out.split() if p.isdigit()})


# --------------------------------------------------------------------------- db connections: psql sessions

def holder_argv(s, count):
    """``count`` sessions held by ``psql`` in the database container (one process each), named HOLDER_NAME,
    each sleeping hold_seconds; they end when terminated or when the server stops."""
    one = " ".join(psql_argv(s, "SELECT pg_sleep(%d)" % s["hold_seconds"])[:-1]) + ' "$1"'
    script = ('i=0; while [ $i -lt %d ]; do PGAPPNAME=%s %s >/dev/null 2>&1 & i=$((i+1)); done; wait'
              % (count, HOLDER_NAME, one))
    return ["sh", "-c", script, "hold", "SELECT pg_sleep(%d)" % s["hold_seconds"]]


def _held(target, s):
    return int(psql(target, s, "SELECT count(*) FROM pg_stat_activity WHERE application_name = '%s'" % HOLDER_NAME) or 0)


# --------------------------------------------------------------------------- disk fill: a writable volume

def writable_mounts(attrs):
    """Writable mounts of a container that may be filled: named volumes and tmpfs (never bind mounts of the host)."""
    found = []
    for m in (attrs or {}).get("Mounts") or []:
        if m.get("RW") and m.get("Type") in ("volume", "tmpfs") and m.get("Destination"):
            found.append(dict(path=m["Destination"], type=m["Type"], name=m.get("Name")))
    for path in sorted(((attrs or {}).get("HostConfig") or {}).get("Tmpfs") or {}):
        found.append(dict(path=path, type="tmpfs", name=None))
    return found


def _fill_mounts(target, s):
    """The writable mounts disk_fill may fill (from the container's settings); NotApplicable when there is none."""
    mounts = writable_mounts(target.attrs(s["service"]))
    if s["fill_path"]:
        mounts = [m for m in mounts if m["path"].rstrip("/") == s["fill_path"].rstrip("/")]
        if not mounts:
            raise NotApplicable("%s is not a writable volume of %s's container" % (s["fill_path"], s["service"]))
    if not mounts:
        raise NotApplicable("%s's container has no writable volume (named volume or tmpfs) to fill" % s["service"])
    return mounts


def _fill_target(target, s):
    """(mount path, size_kb, used_kb, used_pct) of the volume disk_fill fills; NotApplicable when there is none."""
    return min(((m["path"],) + _df(target, s, m["path"]) for m in _fill_mounts(target, s)), key=lambda x: x[1])


def _df(target, s, path):
    """(size_kb, used_kb, used_percent) of the file system of ``path`` in the service's container."""
    out = _check(target.exec(s["service"], ["df", "-Pk", path]), "df in %s" % s["service"])
    fields = out.splitlines()[-1].split()
    return int(fields[1]), int(fields[2]), int(fields[4].rstrip("%"))


# --------------------------------------------------------------------------- observe

def _container_fault_service(s):
    return {"redis_down": s["redis"], "postgres_down": s["postgres"]}.get(s["name"], s["service"])


def observe(target, s):
    """Is the fault injected now? dict(injected, applicable, detail, ...); reads only."""
    name = s["name"]
    if name in ("app_crash", "app_hang", "redis_down", "postgres_down"):
        service = _container_fault_service(s)
        state = target.status(service)
        status = state["status"] if state else "missing"
        injected = status == "paused" if name == "app_hang" else status not in ("running", "paused", "restarting")
        return dict(injected=injected, applicable=True, detail="%s is %s" % (service, status), status=status)
    if name == "latency":
        return dict(_latency_observe(target, s), applicable=True)
    # the other faults are looked at inside a container: one that does not run cannot be looked into
    inside = {"cache_wipe": s["redis"], "db_connections_exhausted": s["postgres"]}.get(name, s["service"])
    status = (target.status(inside) or {}).get("status", "missing")
    if status != "running":
        found = dict(injected=False, applicable=True, status=status,
                     detail="%s is %s: not looked into until it runs" % (inside, status))
        if name == "disk_fill":
            try:
                _fill_mounts(target, s)
            except NotApplicable as exc:
                found.update(applicable=False, detail=exc.msg)
        return found
    if name == "cpu_pressure":
        pids = _burners(target, s)
        return dict(injected=bool(pids), applicable=True, workers=len(pids),
                    detail="%d busy loop(s) named %s in %s" % (len(pids), BURNER_NAME, s["service"]))
    if name == "cache_wipe":
        keys = _redis_value(redis_cli(target, s, "DBSIZE"))
        return dict(injected=keys == 0, applicable=True, keys=keys, detail="%s holds %s key(s)" % (s["redis"], keys))
    if name == "db_connections_exhausted":
        held = _held(target, s)
        return dict(injected=held > 0, applicable=True, held=held, detail="%d connections held by %s" % (held, HOLDER_NAME))
    # disk_fill
    try:
        path, size_kb, _used, percent = _fill_target(target, s)
    except NotApplicable as exc:
        return dict(injected=False, applicable=False, detail=exc.msg)
    fill = "%s/%s" % (path.rstrip("/"), FILL_FILE)
    present = target.exec(s["service"], ["test", "-e", fill])["rc"] == 0
    return dict(injected=present, applicable=True, path=path, file=fill, used_percent=percent, size_kb=size_kb,
                detail="%s %s; %s at %d %% of %d KiB" % (fill, "present" if present else "absent", path, percent, size_kb))


# --------------------------------------------------------------------------- inject / rollback

def inject(target, s, files):
    """Inject the fault (it is not injected now); returns (list of what was done, dict of facts)."""
    name = s["name"]
    if name == "app_crash":
        target.act(s["service"], "kill")
        return ["killed %s (SIGKILL)" % s["service"]], {}
    if name == "app_hang":
        target.act(s["service"], "pause")
        return ["paused %s" % s["service"]], {}
    if name in ("redis_down", "postgres_down"):
        service = _container_fault_service(s)
        target.act(service, "stop")
        return ["stopped %s" % service], {}
    if name == "latency":
        return _latency_inject(target, s, files["write"])
    if name == "cpu_pressure":
        for _i in range(s["cpu_workers"]):
            target.exec_detached(s["service"], burner_argv(s))
        ok, pids, _elapsed = poll_until(lambda: len(_burners(target, s)) >= s["cpu_workers"] or None, s["timeout"], interval=0.25)
        if not ok:
            raise FaultError("the busy loops did not start in %s within %s s" % (s["service"], s["timeout"]))
        return ["started %d busy loop(s) (sh, nice 19, ending by themselves after %d s) in %s"
                % (s["cpu_workers"], s["hold_seconds"], s["service"])], {}
    if name == "cache_wipe":
        keys = _redis_value(redis_cli(target, s, "DBSIZE"))
        redis_cli(target, s, "FLUSHDB")
        return ["FLUSHDB on %s: %s key(s) deleted" % (s["redis"], keys)], {}
    if name == "db_connections_exhausted":
        limit, reserved, used = (int(v) for v in psql(target, s, (
            "SELECT current_setting('max_connections') || ' ' || current_setting('superuser_reserved_connections') || ' ' || "
            "(SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' AND pid <> pg_backend_pid())")).split())
        count = max(1, limit - reserved - s["spare"] - used)
        target.exec_detached(s["postgres"], holder_argv(s, count))
        ok, _held_now, _elapsed = poll_until(lambda: _held(target, s) >= count or None, s["timeout"], interval=0.25)
        if not ok:
            raise FaultError("psql in %s did not open %d sessions within %s s (%d open)"
                             % (s["postgres"], count, s["timeout"], _held(target, s)))
        return ["%d idle sessions (psql in %s as %s) hold connections: %d of max_connections=%d in use, %d left for the application"
                % (count, s["postgres"], s["db_user"], count + used, limit, max(0, limit - reserved - count - used))], {}
    # disk_fill
    path, size_kb, _used, _percent = _fill_target(target, s)
    if size_kb > s["max_fill_mb"] * 1024:
        raise FaultError("refusing to fill %s: its file system has %d MiB, more than max_fill_mb=%d (only a bounded volume is filled)"
                         % (path, size_kb // 1024, s["max_fill_mb"]))
    fill = "%s/%s" % (path.rstrip("/"), FILL_FILE)
    result = target.exec(s["service"], ["dd", "if=/dev/zero", "of=" + fill, "bs=1M", "count=%d" % (size_kb // 1024 + 1)])
    percent = _df(target, s, path)[2]
    if target.exec(s["service"], ["test", "-e", fill])["rc"] != 0:
        _check(result, "dd in %s" % s["service"])
    return ["wrote %s until the volume was full (%d %% used)" % (fill, percent)], {}


def rollback(target, s, files):
    """Undo the fault (it is injected now); returns a list of what was done."""
    name = s["name"]
    if name in ("app_crash", "redis_down", "postgres_down"):
        service = _container_fault_service(s)
        target.act(service, "start")
        ok, state, elapsed = target.wait_ready(service, s["timeout"])
        if not ok:
            raise FaultError("%s started but not ready within %s s (status %s, health %s)"
                             % (service, s["timeout"], state.get("status"), state.get("health")))
        return ["started %s, ready after %.1f s" % (service, elapsed)]
    if name == "app_hang":
        target.act(s["service"], "unpause")
        return ["unpaused %s" % s["service"]]
    if name == "latency":
        return _latency_rollback(target, s, files["read"], files["remove"])
    if name == "cpu_pressure":
        killed = _burners(target, s, kill=True)
        ok, _left, _elapsed = poll_until(lambda: not _burners(target, s), s["timeout"], interval=0.25)
        if not ok:
            raise FaultError("busy loops named %s still run in %s %s s after killing them" % (BURNER_NAME, s["service"], s["timeout"]))
        return ["killed %d busy loop(s) in %s" % (len(killed), s["service"])]
    if name == "cache_wipe":
        # a cache cannot be put back: the service refills it, one request per sample user
        urls = _rec_urls(s)
        answered = [p for p in target.probe(urls, 10.0)["probes"] if p.get("status") == 200] if urls else []
        keys = _redis_value(redis_cli(target, s, "DBSIZE"))
        if not keys:
            raise FaultError("%s is still empty after one request per sample user (%d of %d answered): the flushed keys cannot be "
                             "restored (a cache) and the service did not refill it" % (s["redis"], len(answered), len(urls)))
        return ["the flushed keys cannot be restored (a cache); %d of %d sample users' recommendations requested: the service "
                "refilled %s key(s)" % (len(answered), len(urls), keys)]
    if name == "db_connections_exhausted":
        n = psql(target, s, "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = '%s'" % HOLDER_NAME)
        ok, _value, _elapsed = poll_until(lambda: _held(target, s) == 0, s["timeout"], interval=0.25)
        if not ok:
            raise FaultError("sessions of %s still open %s s after terminating them" % (HOLDER_NAME, s["timeout"]))
        return ["terminated %s held sessions" % n]
    fill = observe(target, s)["file"]
    _check(target.exec(s["service"], ["rm", "-f", fill]), "rm in %s" % s["service"])
    return ["deleted %s" % fill]


def how_to_roll_back(s):
    return dict(module="sre.incident.fault", args=dict(name=s["name"], state="rolled_back"),
                text={"app_crash": "start %s" % s["service"], "app_hang": "unpause %s" % s["service"],
                      "redis_down": "start %s" % s["redis"], "postgres_down": "start %s" % s["postgres"],
                      "latency": "nsenter -t <pid of %s> -n: tc qdisc del dev <each interface> root; iptables -t mangle -D "
                                 "the rule commented %s; gso_max_segs back" % (s["service"], CLAMP_COMMENT),
                      "cpu_pressure": "kill the processes named %s in %s" % (BURNER_NAME, s["service"]),
                      "cache_wipe": "nothing can bring flushed cache keys back: let the service refill %s" % s["redis"],
                      "db_connections_exhausted": "pg_terminate_backend the sessions named %s" % HOLDER_NAME,
                      "disk_fill": "rm -f <volume>/%s in %s" % (FILL_FILE, s["service"])}[s["name"]])


def _local_files():
    def write(path, text):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        _files.write_atomic(path, text)

    def read(path):
        try:
            return _files.read_text(path)
        except OSError:
            return None

    def remove(path):
        try:
            os.unlink(path)
        except OSError:
            pass

    return dict(write=write, read=read, remove=remove)


def run(params, target, check_mode=False, files=None):
    """The work of ``sre.incident.fault``, its result (call :func:`refuse_production` first)."""
    s = validate(params)
    files = files or _local_files()
    before = observe(target, s)
    want = {"injected": True, "rolled_back": False}.get(s["state"])
    if want and not before.get("applicable", True):
        raise NotApplicable("%s is not applicable on this stack: %s" % (s["name"], before["detail"]))
    changed = want is not None and before["injected"] != want
    actions, effect = [], {}
    after = before
    if changed and not check_mode:
        if want:
            actions, effect = inject(target, s, files)
        else:
            actions = rollback(target, s, files)
        after = observe(target, s)
    elif changed:
        actions = ["would %s %s" % ("inject" if want else "roll back", s["name"])]
    injected_after = want if (changed and check_mode) else after["injected"]
    spec = FAULTS[s["name"]]
    result = dict(changed=changed, fault=s["name"], state=s["state"], entry=spec["entry"], description=spec["text"],
                  users=spec["users"], applicable=before.get("applicable", True), injected=injected_after, before=before,
                  after=after, actions=actions, effect=effect, rollback=how_to_roll_back(s), checksum=None)
    if params.get("checksum"):
        result["checksum"] = data_checksum(target, s)
    result["diff"] = dict(before="%s: %s (%s)\n" % (s["name"], "injected" if before["injected"] else "not injected", before["detail"]),
                          after="%s: %s\n" % (s["name"], "injected" if injected_after else "not injected"))
    return result
