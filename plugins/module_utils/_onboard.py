# -*- coding: utf-8 -*-
# Copyright (c) sre.incident contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Onboarding: read a running compose project through the engine, propose its ``incident_stack``.

Three layers, so the guessing can be tested on captured data without an engine:

``gather`` (engine)
    Reads the project into a *view* (plain data per container, the compose files, ``nginx -T``, the
    users of recent requests), then checks its first guesses without changing anything; what it
    reads and checks is listed in the module's documentation. Nothing secret leaves it: values only
    of variables not secret by name, URLs without user information, Redis values as their shape,
    of log lines only user ids.
``infer`` (pure)
    The view -> the proposed ``incident_stack``, a note per key saying where its value came
    from, and the list of what could not be inferred.
``render`` (pure)
    The YAML text written for the team to review: a comment above every key, ``# TODO:`` lines
    for what is missing. No timestamp inside, so an unchanged project writes an unchanged file.
"""

from __future__ import annotations

import json
import os
import re
import textwrap
from urllib.parse import unquote, urlsplit

from ansible_collections.sre.incident.plugins.module_utils import _files
from ansible_collections.sre.incident.plugins.module_utils._compose import (
    LABEL_CONFIG_FILES, LABEL_NUMBER, LABEL_PROJECT, LABEL_SERVICE, LABEL_WORKING_DIR, UNCHECKED_READY_SECONDS,
    compose_environment, config_files, healthcheck_declared, interpolate)
from ansible_collections.sre.incident.plugins.module_utils._errors import IncidentError

try:
    import yaml
except ImportError:  # pragma: no cover - PyYAML comes with ansible-core
    yaml = None

DEFAULT_RECOMMENDATIONS_PATH = "/api/recommendations/{user}"
DEFAULT_CLEAR_CACHE_PATH = "/api/recommendations/clear-cache"
DEFAULT_HEALTH_PATH = "/health"
PLACEHOLDER_USERS = ["user-1", "user-2", "user-3", "user-4", "user-5"]
SAMPLE_USERS = 5
LOG_TAIL = 3000
PROJECT_RE = re.compile(r"^[a-z0-9][a-z0-9_-]*$")

LABEL_DEPENDS_ON = "com.docker.compose.depends_on"
LABEL_VERSION = "com.docker.compose.version"

SECRET_NAME = re.compile(r"PASS|PWD|SECRET|TOKEN|KEY|CREDENTIAL|AUTH|CERT|SALT|PRIVATE|COOKIE|SESSION", re.I)
PUBLIC_NAME = re.compile(r"(DB|DATABASE|DBNAME|NAME|USER|USERNAME|HOST|HOSTNAME|PORT|URL|URI|DSN|ADDR|ADDRESS|"
                         r"MODE|FILE|PATH|DIR|INSTANCE|ENV)$", re.I)
DOWNGRADE_NAME = re.compile(r"DOWNGRADE|DEGRADE|STATIC_MODE|FALLBACK_MODE", re.I)
STATIC_FILE_NAME = re.compile(r"TOP.*(FILE|PATH)|STATIC.*(FILE|PATH)", re.I)

KIND_PATTERNS = {
    "nginx": re.compile(r"(^|/)nginx(:|\s|$)"),
    "postgres": re.compile(r"(^|/)(postgres|postmaster)(:|\s|$)"),
    "redis": re.compile(r"(^|/)redis-server(\s|$)"),
}
KIND_PORTS = {"postgres": 5432, "redis": 6379}


class OnboardError(IncidentError):
    """The project cannot be onboarded (no such project, engine unreachable, bad output path)."""


# --------------------------------------------------------------------------- small parsers

def public_env(env_list):
    """``KEY=value`` list -> (sorted names, {name: value} for names that are not secrets); URLs lose
    their user information (and so a password)."""
    names, public = [], {}
    for item in env_list or []:
        name, _sep, value = str(item).partition("=")
        if not name:
            continue
        names.append(name)
        if SECRET_NAME.search(name) or not PUBLIC_NAME.search(name):
            continue
        if "://" in value:
            value = strip_userinfo(value)
            if value is None:
                continue
        public[name] = value
    return sorted(set(names)), public


def strip_userinfo(url):
    """``scheme://user:pw@host:port/path?q`` -> ``scheme://host:port/path``; None if unparsable."""
    parts = url_parts(url)
    if not parts or not parts["host"]:
        return None
    return "%s://%s%s%s" % (parts["scheme"], parts["host"], ":%d" % parts["port"] if parts["port"] else "", parts["path"] or "")


def url_parts(url):
    """dict(scheme, host, port, path) of a URL without credentials; None if unparsable."""
    try:
        parts = urlsplit(url)
        return dict(scheme=parts.scheme, host=parts.hostname, port=parts.port, path=parts.path)
    except ValueError:
        return None


def listening_ports(proc_net_tcp):
    """TCP ports in state LISTEN from ``/proc/net/tcp`` and ``/proc/net/tcp6`` text, sorted."""
    ports = set()
    for line in (proc_net_tcp or "").splitlines():
        fields = line.split()
        if len(fields) >= 4 and fields[0] != "sl" and ":" in fields[1] and fields[3] == "0A":
            try:
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
            except ValueError:
                pass
    return sorted(ports)


def process_kinds(commands):
    """Kinds (nginx, postgres, redis) whose process appears in ``commands`` (command lines)."""
    return {kind for cmd in commands or [] for kind, pattern in KIND_PATTERNS.items() if pattern.search(cmd.strip())}


def port_in_argv(argv, kind):
    """The port a postgres / redis-server command line sets (``-p N``, ``-c port=N``, ``--port N``)."""
    argv = [str(a) for a in argv or []]
    for i, arg in enumerate(argv):
        nxt = argv[i + 1] if i + 1 < len(argv) else ""
        if kind == "redis":
            value = nxt if arg == "--port" else ""
        elif arg == "-p":
            value = nxt
        else:
            setting = nxt.replace(" ", "") if arg == "-c" else arg
            value = setting.split("=", 1)[1] if setting.startswith("port=" if arg == "-c" else "--port=") else ""
        if value.isdigit():
            return int(value)
    return None


def health_path_of(test):
    """The path a healthcheck command requests (curl, wget, a script with a URL); None if none."""
    text = " ".join(str(t) for t in (test or []) if t not in ("CMD", "CMD-SHELL", "NONE"))
    match = re.search(r"https?://[^/\s'\"`]+(/[^\s'\"`?#)]*)", text)
    if match and match.group(1) not in ("", "/"):
        return match.group(1)
    return None


def depends_on_label(value):
    """compose v2's ``com.docker.compose.depends_on`` label (``svc:condition:restart,...``) -> names."""
    names = (part.strip().split(":", 1)[0] for part in (value or "").split(","))
    return list(dict.fromkeys(name for name in names if name))


def merged_services(documents):
    """Parsed compose files (in order) -> {service: dict(depends_on, image, build, profiles)}."""
    merged = {}
    for doc in documents:
        services = (doc or {}).get("services") if isinstance(doc, dict) else None
        if not isinstance(services, dict):
            continue
        for name, svc in services.items():
            svc = svc if isinstance(svc, dict) else {}
            entry = merged.setdefault(name, dict(depends_on=[], image=None, build=None, profiles=[]))
            deps = svc.get("depends_on")
            if isinstance(deps, dict):
                deps = list(deps)
            for dep in deps or []:
                if isinstance(dep, str) and dep not in entry["depends_on"]:
                    entry["depends_on"].append(dep)
            if svc.get("image"):
                entry["image"] = str(svc["image"])
            if svc.get("build"):
                build = svc["build"]
                entry["build"] = json.dumps(build, sort_keys=True) if isinstance(build, dict) else str(build)
            if svc.get("profiles"):
                entry["profiles"] = [str(p) for p in svc["profiles"]]
    return merged


# --------------------------------------------------------------------------- nginx -T

_CONFIG_HEADER = re.compile(r"^# configuration file (.+?):\s*$", re.M)


def split_nginx_dump(text):
    """``nginx -T`` output -> [(path, content)] in the order nginx printed them."""
    headers = list(_CONFIG_HEADER.finditer(text or ""))
    files = []
    for i, match in enumerate(headers):
        end = headers[i + 1].start() if i + 1 < len(headers) else len(text)
        files.append((match.group(1).strip(), text[match.end():end]))
    return files


def _tokens(content):
    """nginx configuration text -> tokens (words, quoted strings unquoted, ``{``, ``}``, ``;``)."""
    tokens = []
    i, n = 0, len(content)
    while i < n:
        ch = content[i]
        if ch.isspace():
            i += 1
        elif ch == "#":
            while i < n and content[i] != "\n":
                i += 1
        elif ch in "{};":
            tokens.append(ch)
            i += 1
        elif ch in "'\"":
            j = i + 1
            while j < n and content[j] != ch:
                j += 2 if content[j] == "\\" else 1
            tokens.append(content[i + 1:j])
            i = j + 1
        else:
            j = i
            while j < n and not content[j].isspace() and content[j] not in "{};":
                j += 1
            tokens.append(content[i:j])
            i = j
    return tokens


def nginx_directives(content):
    """Every directive of one file as dict(name, args, context) with ``context`` the enclosing
    blocks (``["http", "server", "location /"]``)."""
    out, stack, words = [], [], []
    for tok in _tokens(content):
        if tok == ";":
            if words:
                out.append(dict(name=words[0], args=words[1:], context=list(stack)))
            words = []
        elif tok == "{":
            stack.append(" ".join(words))
            words = []
        elif tok == "}":
            if stack:
                stack.pop()
            words = []
        else:
            words.append(tok)
    return out


def nginx_routes(dump):
    """Parse ``nginx -T``: dict(proxies, listens (ports), upstreams ({name: [host:port]}), log_formats, files)."""
    files = split_nginx_dump(dump)
    variables, upstreams, raw_proxies, listens, formats = {}, {}, [], [], []
    for path, content in files:
        for d in nginx_directives(content):
            ctx = d["context"]
            if d["name"] == "set" and len(d["args"]) >= 2:
                variables[d["args"][0]] = d["args"][1]
            elif d["name"] == "server" and ctx and ctx[-1].startswith("upstream ") and d["args"]:
                upstreams.setdefault(ctx[-1].split(None, 1)[1].strip(), []).append(d["args"][0])
            elif d["name"] == "proxy_pass" and d["args"]:
                location = next((c for c in reversed(ctx) if c.startswith("location")), "")
                raw_proxies.append((path, location.replace("location", "", 1).strip(), d["args"][0]))
            elif d["name"] == "listen" and d["args"]:
                match = re.search(r"(\d+)$", d["args"][0].split(":")[-1])
                if match:
                    listens.append(int(match.group(1)))
            elif d["name"] == "log_format" and d["args"]:
                formats.append(d["args"][0])
    proxies = []
    for path, location, target in raw_proxies:
        resolved = re.sub(r"\$\{?(\w+)\}?", lambda m: variables.get("$" + m.group(1), m.group(0)), target)
        if "://" not in resolved:
            resolved = "http://" + resolved
        parts = url_parts(resolved) or {}
        host, port = parts.get("host"), parts.get("port")
        if host in upstreams:
            host, _sep, up_port = upstreams[host][0].partition(":")
            port = int(up_port) if up_port.isdigit() else port
        if port is None and parts.get("scheme"):
            port = 443 if parts["scheme"] == "https" else 80
        proxies.append(dict(file=path, location=location, target=target, resolved=resolved,
                            host=host, port=port, path=parts.get("path") or ""))
    return dict(proxies=proxies, listens=sorted(set(listens)), upstreams=upstreams, log_formats=formats,
                files=[p for p, _c in files])


# --------------------------------------------------------------------------- users from logs

def users_from_logs(lines, recommendations_path=DEFAULT_RECOMMENDATIONS_PATH):
    """Users of successful recommendation requests in log lines (JSON access or app logs, or the
    common/combined log format): [(user, count)], most frequent first."""
    prefix, _sep, suffix = recommendations_path.partition("{user}")
    pattern = re.compile(re.escape(prefix) + r"([^/?#\s\"]+)" + re.escape(suffix) + r"(?:[?#\s\"]|$)")
    counts = {}
    for line in lines or []:
        line = line.strip()
        if not line:
            continue
        # docker logs with timestamps: drop the leading RFC 3339 stamp
        if re.match(r"^\d{4}-\d\d-\d\dT\S+\s", line):
            line = line.split(None, 1)[1] if " " in line else ""
        status = uri = method = None
        if line.startswith("{"):
            try:
                doc = json.loads(line)
            except ValueError:
                doc = None
            if isinstance(doc, dict):
                uri = next((doc[k] for k in ("uri", "path", "url", "request_uri", "request") if isinstance(doc.get(k), str)), None)
                status = doc.get("status", doc.get("status_code"))
                method = doc.get("method") or doc.get("request_method")
        else:
            match = re.search(r'"[A-Z]+ (\S+) HTTP/[\d.]+" (\d{3})', line)
            if match:
                uri, status = match.group(1), match.group(2)
                method = line.split('"', 1)[1].split(" ", 1)[0]
        if uri is None or str(status) != "200" or (method and str(method).upper() != "GET"):
            continue
        match = pattern.search(uri)
        if match:
            user = unquote(match.group(1))
            counts[user] = counts.get(user, 0) + 1
    return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))


# --------------------------------------------------------------------------- Redis key families

def key_families(keys):
    """Redis keys -> {pattern: [keys]}: keys grouped by their first segment (``:``-separated), the
    pattern being the segments every key of the group shares, cut before the first segment
    holding a digit (user ids, limits), then ``*``."""
    groups = {}
    for key in keys or []:
        groups.setdefault(key.split(":", 1)[0], []).append(key)
    families = {}
    for _first, members in sorted(groups.items()):
        split = [k.split(":") for k in members]
        common = []
        for segs in zip(*split):
            if len(set(segs)) != 1 or any(ch.isdigit() for ch in segs[0]):
                break
            common.append(segs[0])
        if len(common) == len(split[0]):  # a single key, or all equal: keep what names the family
            common = common[:-1]
        if common:
            families[":".join(common) + ":*"] = sorted(members)
    return families


def value_shape(text):
    """A cached value -> its shape without its content: dict(json, kind, lists={field: length})."""
    try:
        doc = json.loads(text)
    except (TypeError, ValueError):
        return dict(json=False)
    if isinstance(doc, list):
        return dict(json=True, kind="list", length=len(doc))
    if isinstance(doc, dict):
        return dict(json=True, kind="object", lists={k: len(v) for k, v in doc.items() if isinstance(v, list)})
    return dict(json=True, kind=type(doc).__name__)


def value_query(shape):
    """The JMESPath a cached value must satisfy, from its shape; None when it cannot say."""
    if not shape or not shape.get("json"):
        return None
    if shape.get("kind") == "list":
        return "length(@) > `0`"
    lists = shape.get("lists") or {}
    named = list(lists) if len(lists) == 1 else [k for k in lists if re.search(r"recommend|items|results", k, re.I)]
    if len(named) == 1:
        return "length(%s) > `0`" % named[0]
    return None


# --------------------------------------------------------------------------- inference (pure)

class Proposal:
    """The proposed incident_stack, a note per key (where its value came from), what is unknown."""

    def __init__(self):
        self.stack = {}
        self.notes = {}
        self.unknown = []
        self.absent = {}  # key -> note, for keys deliberately left out (their default applies)

    def set(self, key, value, note):
        """``key`` may be dotted (``database.port``)."""
        target = self.stack
        parts = key.split(".")
        for part in parts[:-1]:
            target = target.setdefault(part, {})
        target[parts[-1]] = value
        self.notes[key] = note

    def todo(self, key, what, value=None, note=None):
        """Record what could not be inferred; a placeholder ``value`` is written when given."""
        self.unknown.append("%s: %s" % (key, what))
        if value is not None:
            self.set(key, value, (note + "; " if note else "") + "TODO: " + what)
        else:
            self.absent[key] = "TODO: " + what

    def leave_out(self, key, note):
        self.absent[key] = note


def _running(containers):
    return [c for c in containers if c.get("status") == "running"]


def _by_service(containers):
    out = {}
    for c in sorted(containers, key=lambda c: (c.get("service") or "", int(c.get("number") or 0), c.get("name") or "")):
        out.setdefault(c.get("service"), []).append(c)
    return out


def _kinds(container):
    kinds = process_kinds(container.get("processes") or [" ".join(container.get("argv") or [])])
    image = (container.get("image") or "").lower()
    for kind, words in (("nginx", ("nginx",)), ("postgres", ("postgres", "postgis")), ("redis", ("redis",))):
        if any(w in image.rsplit("/", 1)[-1] for w in words):
            kinds.add(kind)
    return kinds


def _found_by(container, kind):
    return "process list" if kind in process_kinds(container.get("processes") or []) else "image"


def _published(container, port):
    """(host_ip, host_port) of a container port published on the host, preferring loopback."""
    found = [p for p in container.get("ports") or [] if p.get("container_port") == port and p.get("host_port")]
    found.sort(key=lambda p: 0 if p.get("host_ip") in ("127.0.0.1", "0.0.0.0", "", "::", None) else 1)
    if not found:
        return None
    host_ip = found[0].get("host_ip")
    return ("127.0.0.1" if host_ip in ("0.0.0.0", "", "::", None) else host_ip), found[0]["host_port"]


def _url(published):
    host, port = published
    return "http://%s:%s" % ("[%s]" % host if ":" in host else host, port)


def _names_to_services(containers, services):
    names = {s: s for s in services}
    for c in containers:
        for aliases in (c.get("networks") or {}).values():
            for alias in aliases or []:
                names.setdefault(alias, c.get("service"))
        if c.get("name"):
            names.setdefault(c["name"], c.get("service"))
    return names


def _location_rank(location):
    loc = location.split()[-1] if location else ""
    if loc in ("/", "^~ /"):
        return 0
    if loc.startswith("/api"):
        return 1
    return 2


def _first_env(env, names):
    for name in names:
        if env.get(name) not in (None, ""):
            return name, env[name]
    return None, None


def _env_url(env, schemes):
    for name, value in sorted(env.items()):
        if "://" in str(value):
            parts = url_parts(value) or {}
            if parts.get("scheme") in schemes:
                return name, parts
    return None, None


def infer(view):
    """The view (see :func:`gather`) -> Proposal. Pure: no engine, no network, no files."""
    p = Proposal()
    project = view["project"]
    containers = view.get("containers") or []
    compose = view.get("compose") or {}
    by_service = _by_service(containers)
    services = sorted(set(by_service) | set(compose))
    running = {c["service"]: c for c in reversed(_running(containers))}
    kinds = {s: set().union(*[_kinds(c) for c in by_service.get(s, [])]) for s in services}

    p.set("name", project, "the compose project (label %s)" % LABEL_PROJECT)
    workdir = view.get("working_dir")
    if workdir:
        p.set("project_dir", workdir, "label %s" % LABEL_WORKING_DIR)
    else:
        p.todo("project_dir", "no container carries %s: give the directory of the compose file" % LABEL_WORKING_DIR)
    files = view.get("config_files") or []
    if files:
        rel = [os.path.relpath(f, workdir) if workdir and os.path.isabs(f) and f.startswith(workdir.rstrip("/") + "/") else f
               for f in files]
        p.set("compose_files", rel, "label %s" % LABEL_CONFIG_FILES)

    # ---- the edge (nginx) and the service it proxies to
    names = _names_to_services(containers, services)
    routes, edge = None, None
    for c in _running(containers):
        if c.get("nginx_dump"):
            r = nginx_routes(c["nginx_dump"])
            proxied = [x for x in r["proxies"] if names.get(x["host"]) not in (None, c["service"])]
            if proxied and (routes is None or len(proxied) > len(routes["proxied"])):
                routes, edge = dict(r, proxied=proxied), c
    service, proxy = None, None
    if routes:
        proxy = min(routes["proxied"], key=lambda x: (_location_rank(x["location"]),
                                                      bool(re.search(r"standby|backup|canary", names[x["host"]])),
                                                      names[x["host"]]))
        service = names[proxy["host"]]
        p.set("service", service, "nginx in %s proxies `location %s` to %s (proxy_pass %s in %s)"
              % (edge["name"], proxy["location"] or "?", proxy["host"], proxy["target"], proxy["file"]))
    else:
        # no nginx in front: the service that depends on a database or cache and publishes a port
        candidates = [s for s in services if s in running and not kinds[s] & {"postgres", "redis", "nginx"}
                      and running[s].get("ports")]
        if len(candidates) == 1:
            service = candidates[0]
            p.set("service", service, "the only running service that publishes a port and is not a database, "
                                      "cache or nginx (no nginx proxies to a service of this project)")
        else:
            p.todo("service", "no nginx of this project proxies to one of its services, and %s could be the service: "
                   "name the one the incident is about" % (", ".join(candidates) or "no running service"))
    svc = running.get(service) if service else None
    svc_any = (by_service.get(service) or [None])[0] if service else None

    # ---- its port inside the container
    port = proxy["port"] if proxy else None
    if port:
        p.set("service_port", port, "the port of that proxy_pass")
    elif svc_any and len(svc_any.get("exposed") or []) == 1:
        port = svc_any["exposed"][0]
        p.set("service_port", port, "the only port %s exposes" % svc_any["name"])
    elif svc and len(svc.get("listening") or []) == 1:
        port = svc["listening"][0]
        p.set("service_port", port, "the only TCP port listening in %s" % svc["name"])
    elif service:
        p.todo("service_port", "%s exposes %s: name the port it serves HTTP on" % (service, (svc_any or {}).get("exposed") or "no port"))

    # ---- dependencies: depends_on (v2 label, else the compose files), else the databases and caches found
    deps, deps_note = [], None
    if svc_any and svc_any.get("depends_on_label") is not None:
        deps, deps_note = list(svc_any["depends_on_label"]), "label %s of %s" % (LABEL_DEPENDS_ON, svc_any["name"])
    elif service and service in compose and compose[service]["depends_on"]:
        deps, deps_note = list(compose[service]["depends_on"]), "depends_on of %s in the compose file" % service
    edge_service = edge["service"] if edge else None
    deps = [d for d in deps if d not in (edge_service, service)]
    if not deps:
        deps = [s for s in services if kinds[s] & {"postgres", "redis"}]
        deps_note = "services running PostgreSQL or Redis (%s declares no depends_on)" % (service or "the service")
    if deps:
        unchecked = [d for d in deps if d in by_service and not any(healthcheck_declared(c.get("healthcheck"))
                                                                    for c in by_service[d])]
        if unchecked:
            deps_note += ("; %s no healthcheck: while it starts, a recovery counts it as ready only once it has run "
                          "for %d s (a healthcheck in the compose file tells it sooner and surer)" % (
                              " and ".join(unchecked) + (" have" if len(unchecked) > 1 else " has"),
                              UNCHECKED_READY_SECONDS))
        p.set("dependencies", deps, deps_note)
    else:
        p.leave_out("dependencies", "none found: no depends_on, no PostgreSQL or Redis in the project")

    # ---- edge
    if edge:
        p.set("edge", edge_service, "%s runs nginx (%s)" % (edge["name"], _found_by(edge, "nginx")))
        p.set("edge_config", proxy["file"], "the file holding that proxy_pass (`nginx -T` headers in %s)" % edge["name"])
    else:
        p.leave_out("edge", "no nginx in this project: nothing is probed through an edge")

    # ---- standby: a second service running (or declared with) the service's image
    standby = None
    if service:
        # an image named in the compose file is read with compose's variables (${PREFIX:-x}/app, .env)
        env = compose_environment(workdir)

        def image_of(name):
            return (by_service.get(name) or [{}])[0].get("image") or interpolate((compose.get(name) or {}).get("image") or "", env)
        image, build = image_of(service), (compose.get(service) or {}).get("build")
        for other in services:
            o_image = image_of(other)
            if other not in (service, edge_service) and (
                    (image and o_image == image) or (build and (compose.get(other) or {}).get("build") == build and not o_image)):
                standby = other
                break
    if standby:
        profiles = (compose.get(standby) or {}).get("profiles")
        p.set("standby", standby, "%s runs the image of %s (%s)%s" % (
            standby, service, image or "same build", ", compose profile %s" % ",".join(profiles) if profiles else ""))
    else:
        p.leave_out("standby", "none: no other service runs the image of %s, so degraded option A does not apply"
                    % (service or "the service"))

    # ---- URLs
    base = _published(svc_any, port) if svc_any and port else None
    edge_pub = None
    if edge:
        for listen in (routes["listens"] or []) + [x.get("container_port") for x in edge.get("ports") or []]:
            edge_pub = _published(edge, listen)
            if edge_pub:
                break
        if edge_pub:
            p.set("edge_url", _url(edge_pub), "%s publishes its port %s on %s:%s" % (edge["name"], listen, edge_pub[0], edge_pub[1]))
        else:
            p.todo("edge_url", "%s publishes no port on the host: give the URL users reach it at" % edge["name"])
    if base:
        p.set("base_url", _url(base), "%s publishes its port %s on %s:%s" % (svc_any["name"], port, base[0], base[1]))
    elif edge_pub:
        p.todo("base_url", "%s publishes no port on the host, so the service itself cannot be probed apart from the edge"
               % (service,), value=_url(edge_pub), note="the edge's URL")
    elif service:
        p.todo("base_url", "%s publishes no port on the host: give a URL that reaches it" % service,
               value="http://127.0.0.1:%s" % (port or 80), note="placeholder")

    checks = view.get("checks") or {}
    http = checks.get("http") or {}

    # ---- paths
    hc = (svc_any or {}).get("healthcheck")
    path = health_path_of(hc)
    health_check = http.get("health") or {}
    if path:
        p.set("health_path", path, "the healthcheck of %s requests it%s" % (service, _http_note(health_check)))
    else:
        p.set("health_path", DEFAULT_HEALTH_PATH, "a guess: the healthcheck of %s names no URL path%s" % (
            service or "the service", _http_note(health_check)))
        if health_check.get("status") is not None and health_check.get("status") >= 400 and health_check.get("status") != 503:
            p.unknown.append("health_path: %s answered %s: give the health endpoint" % (DEFAULT_HEALTH_PATH, health_check["status"]))
    recs = http.get("recommendations") or {}
    p.set("recommendations_path", DEFAULT_RECOMMENDATIONS_PATH, "the runbook's path%s" % (
        _http_note(recs) if recs.get("text") else "; not checked: no sample user to try it with"))
    if recs.get("status") not in (None, 200, 502, 503, 504):
        p.unknown.append("recommendations_path: %s answered %s: give your recommendations path" % (recs.get("url"), recs.get("status")))
    p.set("clear_cache_path", DEFAULT_CLEAR_CACHE_PATH, "the runbook's path (not tried: it would clear the cache)")

    users = [u for u, _n in view.get("users_seen") or []][:SAMPLE_USERS]
    if users:
        p.set("sample_users", users, "the users of the most frequent successful recommendation requests in the "
                                     "recent logs of %s" % ", ".join(view.get("users_from") or ["the stack"]))
    else:
        p.todo("sample_users", "no successful recommendation request in the recent logs: name users that exist "
               "(placeholders below)", value=list(PLACEHOLDER_USERS), note="placeholders")
    p.set("recommendations_limit", 10, "the runbook's `?limit=10`")
    p.set("min_recommendations", 6, "the runbook: more than 5 recommendations")
    p.set("thresholds", dict(latency_ms=500, cpu_percent=50, memory_percent=60),
          "the runbook's checklist: < 500 ms, CPU < 50 %, memory < 60 %")

    for section, kind, label, infer_rest in (("database", "postgres", "PostgreSQL", _infer_database),
                                             ("redis", "redis", "Redis", _infer_redis)):
        found = next((s for s in services if kind in kinds[s]), None)
        if found is None:
            p.leave_out(section, "no %s found in the project" % label)
            continue
        c = running.get(found) or by_service[found][0]
        p.set(section + ".service", found, "%s runs %s (%s)" % (c["name"], label, _found_by(c, kind)))
        infer_rest(p, c, svc_any, checks)

    # ---- degraded option B
    env_names = (svc_any or {}).get("env_names") or []
    flag = next((n for n in env_names if DOWNGRADE_NAME.search(n)), None)
    if flag:
        p.set("downgrade_env", flag, "an environment variable of %s" % (svc_any or {}).get("name"))
    elif service:
        p.todo("downgrade_env", "%s has no variable like DOWNGRADE_MODE: degraded option B cannot switch it" % service)
    env = (svc_any or {}).get("env") or {}
    static_name = next((n for n in sorted(env) if STATIC_FILE_NAME.search(n) and env[n].startswith("/")), None)
    static = checks.get("static_top") or {}
    if static_name:
        p.set("static_top_file", env[static_name], "variable %s of %s" % (static_name, svc_any["name"]))
    elif static.get("path"):
        p.set("static_top_file", static["path"], "found in %s (%s); review" % (
            (svc_any or {}).get("name"), static.get("text") or "a JSON file named like a top list"))
    else:
        p.leave_out("static_top_file", "not found: option B's readiness is reported as not checked")
    logs = [v for v in (svc_any or {}).get("volumes") or [] if re.search(r"(^|/)(log|logs)(/|$)", v.get("destination") or "")]
    if logs:
        p.set("log_dir", logs[0]["destination"], "where %s mounts the volume %s (the P1 disk case cleans logs there)"
              % ((svc_any or {}).get("name"), logs[0].get("name") or logs[0].get("type")))
    elif service:
        p.leave_out("log_dir", "%s mounts no log volume: the P1 disk case looks in /var/log/recsys" % service)
    p.set("state_dir", "/var/lib/sre-incident/%s" % project, "the collection's convention: lease, evidence bundles, "
                                                             "Redis snapshots on the managed host")
    return p


def _http_note(check):
    if not check.get("text"):
        return ""
    if check.get("status") == 200:
        return "; checked: %s" % check["text"]
    return "; tried: %s (is the service up?)" % check["text"]


def _port(c, kind, svc_any, env_names, url_name, url):
    """(port, note) of the PostgreSQL or Redis of container ``c``: its command line (for PostgreSQL
    also its process list), its listening port, the service's variables, the kind's default port."""
    port = port_in_argv(c.get("argv"), kind)
    note = "the command line of %s" % c["name"] if port else None
    if port is None and kind == "postgres":
        procs = [pr for pr in c.get("processes") or [] if KIND_PATTERNS[kind].search(pr)]
        port = next(filter(None, (port_in_argv(pr.split(), kind) for pr in procs)), None)
        note = "the postgres process of %s" % c["name"] if port else None
    if port is None and c.get("listening"):
        port = KIND_PORTS[kind] if KIND_PORTS[kind] in c["listening"] else c["listening"][0]
        note = "the TCP port listening in %s" % c["name"]
    if port is None:
        name, value = _first_env((svc_any or {}).get("env") or {}, env_names)
        if value and str(value).isdigit():
            port, note = int(value), "variable %s of %s" % (name, svc_any["name"])
        elif url and url.get("port"):
            port, note = url["port"], "the port in variable %s of %s" % (url_name, svc_any["name"])
    if port is None:
        port, note = KIND_PORTS[kind], "%s's default (nothing else found)" % ("PostgreSQL" if kind == "postgres" else "Redis")
    return port, note


def _infer_database(p, c, svc_any, checks):
    """The rest of ``database``, ``c`` the container of its service."""
    env = (svc_any or {}).get("env") or {}
    url_name, url = _env_url(env, ("postgres", "postgresql"))
    p.set("database.port", *_port(c, "postgres", svc_any, ("PGPORT", "POSTGRES_PORT", "DB_PORT", "DATABASE_PORT"), url_name, url))
    name_var, dbname = _first_env(env, ("PGDATABASE", "POSTGRES_DB", "DB_NAME", "DATABASE_NAME", "DB_DATABASE"))
    if dbname:
        note = "variable %s of %s" % (name_var, svc_any["name"])
    elif url and (url.get("path") or "").strip("/"):
        dbname, note = url["path"].strip("/"), "the path of variable %s of %s" % (url_name, svc_any["name"])
    else:
        name_var, dbname = _first_env(c.get("env") or {}, ("POSTGRES_DB", "PGDATABASE"))
        note = "variable %s of %s" % (name_var, c["name"]) if dbname else None
    if dbname:
        p.set("database.name", dbname, note)
    else:
        p.todo("database.name", "no variable names the service's database", value="postgres", note="placeholder")
    app_user = _first_env(env, ("PGUSER", "POSTGRES_USER", "DB_USER", "DATABASE_USER"))[1]
    check = checks.get("database") or {}
    note = "the superuser, through the local socket of %s%s" % (
        c["name"], "; the service itself connects as %s" % app_user if app_user and app_user != "postgres" else "")
    if check.get("ok"):
        p.set("database.user", "postgres", note + "; checked: `%s` answers in %s" % (" ".join(check["argv"]), c["name"]))
    elif check:
        p.todo("database.user", "`%s` failed in %s: %s" % (" ".join(check.get("argv") or []), c["name"], check.get("error")),
               value="postgres", note=note)
    else:
        p.set("database.user", "postgres", note + " (not checked: %s is not running)" % c["name"])


def _infer_redis(p, c, svc_any, checks):
    """The rest of ``redis``, ``c`` the container of its service."""
    port, note = _port(c, "redis", svc_any, ("REDIS_PORT",), *_env_url((svc_any or {}).get("env") or {}, ("redis", "rediss")))
    check = checks.get("redis") or {}
    if check.get("ok"):
        note += "; checked: `%s` answers PONG in %s" % (" ".join(check["argv"]), c["name"])
    elif check:
        p.unknown.append("redis.port: `%s` failed in %s: %s" % (" ".join(check.get("argv") or []), c["name"], check.get("error")))
    p.set("redis.port", port, note)
    sample = checks.get("redis_keys") or {}
    families = {k: v for k, v in (sample.get("families") or {}).items()
                if v.get("type") == "string" and value_query(v.get("shape"))}
    if families:
        p.set("redis.cache_keys", sorted(families), "key families holding JSON values with a list (one SCAN batch "
                                                    "of the keys present)")
        queries = sorted({value_query(v["shape"]) for v in families.values()})
        if len(queries) == 1:
            p.set("redis.cache_value_query", queries[0], "the shape of a cached value (%s)" % ", ".join(sorted(families)))
        else:
            p.todo("redis.cache_value_query", "the key families hold values of different shapes (%s)" % "; ".join(queries))
    elif sample:
        p.todo("redis.cache_keys", "no cached JSON values found in one SCAN of %d keys (is the cache warm?): name the "
               "cache's key patterns (default recs:*, the reference app's)" % sample.get("scanned", 0))
    else:
        p.todo("redis.cache_keys", "Redis was not read (%s): name the cache's key patterns (default recs:*)"
               % ("not running" if c.get("status") != "running" else "no answer"))


# --------------------------------------------------------------------------- the file

ORDER = ("name", "project_dir", "compose_files", "service", "service_port", "dependencies", "edge", "edge_config",
         "standby", "base_url", "edge_url", "health_path", "recommendations_path", "clear_cache_path", "sample_users",
         "recommendations_limit", "min_recommendations", "thresholds",
         ("database", ("service", "name", "user", "port")),
         ("redis", ("service", "port", "cache_keys", "cache_value_query")),
         "downgrade_env", "static_top_file", "log_dir", "state_dir")
SECTION_NOTES = {
    "database": "PostgreSQL: the collection runs psql inside this service's container (diagnostics, drills)",
    "redis": "Redis: the collection runs redis-cli inside this service's container (diagnostics, snapshots, "
             "cache checks)",
}
_PLAIN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@/-]*$")
_NOT_PLAIN = re.compile(r"^(true|false|yes|no|on|off|null|~|[-+]?[\d.]+(e[-+]?\d+)?)$", re.I)


def _scalar(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    if value is None:
        return "null"
    text = str(value)
    if _PLAIN.match(text) and not _NOT_PLAIN.match(text):
        return text
    return json.dumps(text)


def _value(value, indent):
    if isinstance(value, list):
        return " [" + ", ".join(_scalar(v) for v in value) + "]"
    if isinstance(value, dict):
        return "".join("\n%s%s: %s" % (" " * (indent + 2), k, _scalar(v)) for k, v in value.items())
    return " " + _scalar(value)


def _comment(text, indent):
    lines = textwrap.wrap(" ".join(text.split()), 96 - indent, break_long_words=False, break_on_hyphens=False)
    return "".join("%s# %s\n" % (" " * indent, line) for line in lines)


def render(proposal, project):
    """The proposed file: YAML with ``incident_stack`` at the top, a comment above every key."""
    out = ["---\n",
           _comment("Proposed incident_stack for the compose project %s, read from the running project by "
                    "sre.incident.onboard (playbooks/onboard.yml). Review every value and fill the TODOs, then put "
                    "it in your inventory (group_vars/<group>/stack.yml) or pass it with -e @<this file>. Keys "
                    "left out take the collection's defaults (docs/onboarding.md)." % project, 0)]
    if proposal.unknown:
        out.append("#\n# Could not infer (%d):\n" % len(proposal.unknown))
        out.extend(_comment("TODO: " + item, 0) for item in proposal.unknown)
    out.append("incident_stack:\n")
    for entry in ORDER:
        section, keys = entry if isinstance(entry, tuple) else (entry, None)
        if keys and section in proposal.stack:
            out.append(_comment(SECTION_NOTES[section], 2) + "  %s:\n" % section)
            out.extend(_key(proposal, proposal.stack[section], key, "%s.%s" % (section, key), 4) for key in keys)
        else:
            out.append(_key(proposal, proposal.stack, section, section, 2))
    return "".join(out)


def _key(proposal, mapping, key, dotted, indent):
    """The lines of ``key`` of ``mapping`` under its note, or its note alone when it is left out."""
    if key in mapping:
        return _comment(proposal.notes.get(dotted, ""), indent) + "%s%s:%s\n" % (" " * indent, key, _value(mapping[key], indent))
    if dotted in proposal.absent:
        return _comment("%s: %s" % (key, proposal.absent[dotted]), indent)
    return ""


# --------------------------------------------------------------------------- the engine

def _container_view(c):
    attrs = c.attrs or {}
    config = attrs.get("Config") or {}
    labels = config.get("Labels") or {}
    state = attrs.get("State") or {}
    host = attrs.get("HostConfig") or {}
    names, env = public_env(config.get("Env"))
    ports = []
    for key, bindings in sorted(((attrs.get("NetworkSettings") or {}).get("Ports") or {}).items()):
        number, _sep, proto = key.partition("/")
        for b in bindings or []:
            ports.append(dict(container_port=int(number), proto=proto or "tcp", host_ip=b.get("HostIp"),
                              host_port=int(b["HostPort"]) if str(b.get("HostPort") or "").isdigit() else None))
    exposed = sorted(int(k.split("/")[0]) for k in (config.get("ExposedPorts") or {}) if k.split("/")[0].isdigit())
    networks = {name: sorted(set((n or {}).get("Aliases") or []))
                for name, n in ((attrs.get("NetworkSettings") or {}).get("Networks") or {}).items()}
    volumes = [dict(type=m.get("Type"), name=m.get("Name"), destination=m.get("Destination"), rw=m.get("RW"))
               for m in attrs.get("Mounts") or []]
    deps = labels.get(LABEL_DEPENDS_ON)
    return dict(
        name=c.name, service=labels.get(LABEL_SERVICE), number=labels.get(LABEL_NUMBER) or "1",
        status=state.get("Status"), image=config.get("Image"), image_id=attrs.get("Image"),
        depends_on_label=depends_on_label(deps) if deps is not None else None,
        argv=[attrs.get("Path") or ""] + list(attrs.get("Args") or []),
        env_names=names, env=env, ports=ports, exposed=exposed,
        healthcheck=(config.get("Healthcheck") or {}).get("Test"), networks=networks, volumes=volumes,
        restart=(host.get("RestartPolicy") or {}).get("Name"), working_dir=config.get("WorkingDir") or "/",
        labels={k: v for k, v in labels.items() if k.startswith("com.docker.compose.")},
        processes=None, listening=None, nginx_dump=None, nginx_error=None)


def _exec(client, container, argv, environment=None):
    try:
        return client.exec_in(container, argv, environment=environment)
    except Exception as exc:  # a DockerError: the container stopped, or the command is not there
        return dict(cmd=argv, rc=None, stdout="", stderr=str(exc))


def _error(res, ok):
    return None if ok else (res["stderr"] or res["stdout"]).strip()[:300] or None


def _read_compose(files):
    if yaml is None:
        return None, "PyYAML is not available"
    docs, errors = [], []
    for path in files:
        try:
            with open(path, "r", encoding="utf-8") as handle:
                docs.append(yaml.safe_load(handle) or {})
        except (OSError, yaml.YAMLError) as exc:
            errors.append("%s: %s" % (path, exc))
    if not docs:
        return None, "; ".join(errors) or "no compose file recorded"
    return merged_services(docs), "; ".join(errors) or None


def gather(client, project, probe=None):
    """Read ``project`` through ``client`` (a _compose.ComposeClient) into a view (see the module docstring);
    ``probe``: ``_http.probe``, or None to skip HTTP checks. OnboardError when the project has no container."""
    found = client.find_containers(project)
    if not found:
        known = client.projects()
        raise OnboardError("no compose project %r on the engine: it has no container there (projects on this engine: %s)"
                           % (project, ", ".join(known) or "none"))
    handles = {c.name: c for c in found}
    containers = [_container_view(c) for c in found]
    for view_c in containers:
        if view_c["status"] != "running":
            continue
        c = handles[view_c["name"]]
        try:
            top = client.top(c)
            titles = top.get("Titles") or []
            col = titles.index("CMD") if "CMD" in titles else (titles.index("COMMAND") if "COMMAND" in titles else len(titles) - 1)
            view_c["processes"] = [row[col] for row in top.get("Processes") or [] if len(row) > col]
        except Exception:  # pylint: disable=broad-except  # the process list is a hint only
            view_c["processes"] = None
        res = _exec(client, c, ["cat", "/proc/net/tcp", "/proc/net/tcp6"])
        view_c["listening"] = listening_ports(res["stdout"]) if res["rc"] is not None and res["stdout"] else None
        if "nginx" in _kinds(view_c):
            res = _exec(client, c, ["nginx", "-T"])
            if res["rc"] == 0 and "# configuration file" in res["stdout"]:
                view_c["nginx_dump"] = res["stdout"]
            else:
                view_c["nginx_error"] = (res["stderr"] or res["stdout"]).strip()[:300]
    labels = containers[0]["labels"]
    workdir = next((c["labels"].get(LABEL_WORKING_DIR) for c in containers if c["labels"].get(LABEL_WORKING_DIR)), None)
    files = config_files(found)
    compose, compose_error = _read_compose(files)
    view = dict(project=project, compose_version=labels.get(LABEL_VERSION), working_dir=workdir, config_files=files,
                compose=compose, compose_error=compose_error, containers=containers, checks={})
    _check(client, handles, view, probe)
    return view


def _check(client, handles, view, probe):
    """Try the first guesses for real (read-only) and record the outcome in ``view``."""
    stack = infer(view).stack
    by_name = {c["service"]: c for c in reversed(_running(view["containers"]))}
    checks = view["checks"]

    # users of real traffic: the edge's and the service's recent logs
    lines, sources = [], []
    for service in (stack.get("edge"), stack.get("service")):
        c = by_name.get(service)
        if c is None:
            continue
        try:
            lines.extend(client.logs(handles[c["name"]], tail=LOG_TAIL, timestamps=False).splitlines())
            sources.append(c["name"])
        except Exception:  # pylint: disable=broad-except  # a log driver that cannot be read
            continue
    view["users_seen"] = [list(x) for x in users_from_logs(lines)]
    view["users_from"] = sources

    # HTTP first: a recommendation request of a real user also warms the cache sampled below
    if probe is not None and stack.get("base_url"):
        health = stack["base_url"] + stack.get("health_path", DEFAULT_HEALTH_PATH)
        r = probe(health, 5.0)
        checks.setdefault("http", {})["health"] = dict(url=health, status=r.get("status"), text="GET %s answered %s" % (
            health, r.get("status") or r.get("error")))
        users = [u for u, _n in view["users_seen"]]
        if users:
            url = "%s%s?limit=10" % (stack["base_url"], DEFAULT_RECOMMENDATIONS_PATH.replace("{user}", users[0]))
            r = probe(url, 5.0)
            body = r.get("body_json")
            recs = body if isinstance(body, list) else (body or {}).get("recommendations") if isinstance(body, dict) else None
            checks["http"]["recommendations"] = dict(url=url, status=r.get("status"), text="GET %s answered %s%s" % (
                url, r.get("status") or r.get("error"), " with %d recommendations" % len(recs) if isinstance(recs, list) else ""))

    db = stack.get("database") or {}
    c = by_name.get(db.get("service"))
    if c is not None:
        argv = ["psql", "-X", "-At", "-U", "postgres", "-p", str(db["port"]), "-d", str(db.get("name") or "postgres"),
                "-c", "SELECT 1"]
        res = _exec(client, handles[c["name"]], argv, environment={"PGCONNECT_TIMEOUT": "5"})
        ok = res["rc"] == 0 and res["stdout"].strip() == "1"
        checks["database"] = dict(argv=argv, ok=ok, error=_error(res, ok))
    kv = stack.get("redis") or {}
    c = by_name.get(kv.get("service"))
    if c is not None:
        handle = handles[c["name"]]
        cli = ["redis-cli", "-p", str(kv["port"])]
        res = _exec(client, handle, cli + ["PING"])
        ok = "PONG" in res["stdout"]
        checks["redis"] = dict(argv=cli + ["PING"], ok=ok, error=_error(res, ok))
        if ok:
            res = _exec(client, handle, cli + ["SCAN", "0", "COUNT", "1000"])
            keys = [k for k in res["stdout"].splitlines()[1:] if k.strip()]
            families = {}
            for pattern, members in key_families(keys).items():
                kind = _exec(client, handle, cli + ["TYPE", members[0]])["stdout"].strip()
                shape = value_shape(_exec(client, handle, cli + ["GET", members[0]])["stdout"]) if kind == "string" else None
                families[pattern] = dict(count=len(members), type=kind, shape=shape)
            checks["redis_keys"] = dict(scanned=len(keys), families=families)

    service = by_name.get(stack.get("service"))
    if service is not None and "static_top_file" not in stack:
        handle = handles[service["name"]]
        res = _exec(client, handle, ["find", service["working_dir"], "-maxdepth", "3", "-type", "f",
                                     "-name", "*top*.json", "-not", "-path", "*/node_modules/*"])
        for path in sorted(res["stdout"].split()) if res["rc"] == 0 else []:
            try:
                doc = json.loads(client.read_file(handle, path, max_bytes=8 * 1024 * 1024).decode("utf-8"))
            except Exception:  # pylint: disable=broad-except  # not JSON, unreadable: not the file
                continue
            items = doc.get("items") if isinstance(doc, dict) else doc
            if isinstance(items, list) and items:
                checks["static_top"] = dict(path=path, text="a JSON file with %d items" % len(items))
                break


# --------------------------------------------------------------------------- the module's work

def validate(params):
    """Check project and dest before anything is read; returns the absolute dest. OnboardError names the bad value."""
    project = params.get("project")
    if not project or not PROJECT_RE.match(str(project)):
        raise OnboardError("project %r is not a compose project name (lowercase letters, digits, '-', '_')" % (project,))
    dest = params.get("dest")
    if not dest:
        raise OnboardError("dest (the file to write) is required")
    dest = os.path.abspath(os.path.expanduser(dest))
    if os.path.isdir(dest):
        raise OnboardError("dest %s is a directory: give the path of a file" % dest)
    return dest


def run(client, params, check_mode=False, probe=None):
    """Onboard ``params['project']`` into ``params['dest']``; returns the module's result."""
    dest = validate(params)
    view = gather(client, params.get("project"), probe=probe)
    proposal = infer(view)
    content = render(proposal, view["project"])
    before = None
    if os.path.exists(dest):
        with open(dest, "r", encoding="utf-8", errors="replace") as handle:
            before = handle.read()
    changed = before != content
    if changed and not check_mode:
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        _files.write_atomic(dest, content, mode=0o644)
    verb = ("would write" if check_mode else "wrote") if changed else "left unchanged"
    msg = "%s %s: the proposed incident_stack of %s (%d key(s) inferred, %d to review: %s)" % (
        verb, dest, view["project"], len(proposal.notes), len(proposal.unknown),
        "; ".join(u.split(":", 1)[0] for u in proposal.unknown) or "none")
    return dict(changed=changed, dest=dest, stack=proposal.stack, notes=proposal.notes, unknown=proposal.unknown,
                content=content, msg=msg, compose_version=view.get("compose_version"),
                diff=dict(before=before or "", after=content, before_header=dest if before is not None else "(absent)",
                          after_header=dest))
