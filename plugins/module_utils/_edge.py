# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The edge: the team's own nginx in front of the service (DESIGN "The edge", SPEC GEN-1..GEN-3),
driven through the engine only; nothing of ours is in its image.

- :func:`users_answered`: what users get at a base URL (the edge's, or the service's own).
- :meth:`Edge.ensure_serving`: an edge that fails while the service answers is started, or checked
  and reloaded (nginx resolves a static ``proxy_pass`` host once, at load: a moved service needs a
  reload), else restarted.
- Degraded modes A and D: :func:`render_standby` / :func:`render_offline` derive a configuration
  from the team's file; :meth:`Edge.apply` writes, checks, reloads, verifies it (rolling back on
  failure) and keeps the original and its SHA-256 in the state directory; :meth:`Edge.restore`
  puts the original back byte for byte.
"""
from __future__ import annotations

import concurrent.futures
import hashlib
import io
import json
import os
import posixpath
import re
import tarfile
import time

from ansible_collections.sre.incident.plugins.module_utils import _compose, _files, _http, _stack, _time
from ansible_collections.sre.incident.plugins.module_utils._errors import IncidentError, InputError
from ansible_collections.sre.incident.plugins.module_utils._wait import poll_until

LETTER = {"standby": "A", "offline": "D"}
HEADER_RE = re.compile(r"^# sre\.incident degraded mode ([AD]) \((standby|offline)\)", re.MULTILINE)
RELOAD_WAIT_S = 10.0
OFFLINE_BODY = ('{"error":"recommendations temporarily unavailable","detail":"the recommendations feature is '
                'switched off while we fix a problem; please try again later","retry_after_s":300}')


class EdgeError(IncidentError):
    """The edge could not be read, changed or brought back; ``details`` are plain data."""


class EdgeConfigError(InputError):
    """A degraded-mode configuration cannot be derived from the team's file (nothing was changed)."""


def sha256(data):
    return hashlib.sha256(data).hexdigest()


# --------------------------------------------------------------------------- what users get

def users_answered(stack, base, probe_timeout=3.0, probe=_http.probe, max_latency_ms=None):
    """``/health`` 200 and enough recommendations for every sample user, asked at ``base``; never raises for a
    down target. Returns dict(ok, base, problems, health_status, recommendations {user: {status, count,
    latency_ms, source, instance, error}})."""
    urls = _stack.urls(stack, base=base)
    minimum = int(stack.get("min_recommendations", 6))
    asked = [urls["health"]] + list(urls["recommendations"].values())
    # all at once: an edge that hangs (an upstream address nobody holds any more) costs one timeout, not one per URL
    with concurrent.futures.ThreadPoolExecutor(max_workers=min(len(asked), 16)) as pool:
        health, *answers = pool.map(lambda url: probe(url, probe_timeout), asked)
    problems = []
    if health["status"] != 200:
        problems.append("/health answered %s" % (health["status"] if health["status"] is not None else health["error"]))
    recs = {}
    for user, res in zip(urls["recommendations"], answers):
        body = res.get("body_json") if isinstance(res.get("body_json"), dict) else {}
        items = body.get("recommendations")
        count = len(items) if isinstance(items, list) else None
        recs[user] = dict(status=res["status"], count=count, latency_ms=res.get("latency_ms"), source=body.get("source"),
                          instance=body.get("instance"), error=body.get("error") if res["status"] is not None else res["error"])
        if res["status"] != 200 or (count or 0) < minimum:
            problems.append("%s: status %s, %s item(s)" % (user, res["status"] if res["status"] is not None else res["error"], count))
        elif max_latency_ms is not None and (res.get("latency_ms") or 0) > max_latency_ms:
            problems.append("%s: %.0f ms, over %.0f ms" % (user, res["latency_ms"], max_latency_ms))
    return dict(ok=not problems, base=urls["base"], problems=problems, health_status=health["status"], recommendations=recs)


# --------------------------------------------------------------------------- nginx configuration text

def _scan(text):
    """(index, char) of the nginx configuration's characters outside comments and quotes."""
    i = 0
    size = len(text)
    quote = None
    while i < size:
        ch = text[i]
        if quote:
            if ch == "\\":
                i += 2
                continue
            if ch == quote:
                quote = None
            i += 1
            continue
        if ch == "#":
            end = text.find("\n", i)
            i = size if end < 0 else end
            continue
        if ch in ("'", '"'):
            quote = ch
            i += 1
            continue
        yield i, ch
        i += 1


def server_blocks(text):
    """(open brace index, close brace index) of every ``server { ... }`` block, outermost first."""
    blocks = []
    stack = []
    word_start = None
    words = []
    for i, ch in _scan(text):
        if ch.isspace() or ch in "{};":
            if word_start is not None:
                words.append(text[word_start:i])
                word_start = None
            if ch == "{":
                stack.append((i, words == ["server"]))
                words = []
            elif ch == "}":
                if not stack:
                    raise EdgeConfigError("unbalanced '}' at character %d of the edge configuration" % i)
                opened, is_server = stack.pop()
                if is_server:
                    blocks.append((opened, i))
                words = []
            elif ch == ";":
                words = []
        elif word_start is None:
            word_start = i
    if stack:
        raise EdgeConfigError("the edge configuration has an unclosed '{' at character %d" % stack[-1][0])
    return sorted(blocks)


def header(letter, mode, saved_dir):
    return ("# sre.incident degraded mode %s (%s), written by the sre.incident collection through the engine.\n"
            "# The team's own configuration is kept in %s on the managed host;\n"
            "# playbooks/restore_normal.yml puts it back byte for byte.\n" % (letter, mode, saved_dir))


def mode_of(text):
    """``standby`` or ``offline`` when ``text`` is a configuration this module wrote, else None."""
    found = HEADER_RE.search(text or "")
    return found.group(2) if found else None


_STATIC_PROXY_RE = re.compile(r"proxy_pass(\s+)(https?)://([A-Za-z][A-Za-z0-9_.-]*)(:\d+)?(\s*);")
_UPSTREAM_RE = re.compile(r"\bupstream\s+([A-Za-z0-9_.-]+)\s*\{")
_IP_RE = re.compile(r"^\d+\.\d+\.\d+\.\d+$")


def resolve_per_request(text):
    """Each static ``proxy_pass http://host:port;`` (a host name, no URI, not an ``upstream``) as a variable
    resolved per request; (text, count). nginx refuses to load a configuration whose static name does not
    resolve, and option D must load while the service is down."""
    upstreams = set(_UPSTREAM_RE.findall(text))
    count = 0

    def repl(match):
        nonlocal count
        space, scheme, host, port, tail = match.groups()
        if host in upstreams or _IP_RE.match(host) or host == "localhost":
            return match.group(0)
        count += 1
        var = "$sre_incident_upstream_%d" % count
        return "set %s %s%s; proxy_pass%s%s://%s%s;" % (var, host, port or "", space, scheme, var, tail)

    return _STATIC_PROXY_RE.sub(repl, text), count


def render_offline(original, stack, saved_dir):
    """The team's configuration with the recommendations feature answering 503 (option D).

    A regex location heads every server block with a ``proxy_pass`` (it wins over the team's prefix
    locations without clashing); a static ``proxy_pass`` host is resolved per request (a ``resolver``:
    ``incident_stack.edge_resolver``, default Docker's 127.0.0.11). Everything else stays.
    """
    path = str(stack["recommendations_path"])
    pattern = "^" + re.escape(path[:path.index("{user}")])   # the feature's prefix, up to the user
    location = ("\n    # sre.incident degraded mode D (offline): the recommendations feature is switched off\n"
                "    location ~ \"%s\" {\n"
                "        default_type application/json;\n"
                "        add_header Retry-After 300 always;\n"
                "        add_header X-Degraded-Mode offline always;\n"
                "        return 503 '%s\\n';\n"
                "    }\n" % (pattern.replace('"', '\\"'), OFFLINE_BODY))
    blocks = [b for b in server_blocks(original) if "proxy_pass" in original[b[0]:b[1]]]
    if not blocks:
        raise EdgeConfigError("the edge configuration has no server block with a proxy_pass: option D does not know "
                              "where users reach the service")
    resolver = str(stack.get("edge_resolver") or "127.0.0.11")
    out = original
    for opened, closed in reversed(blocks):
        inner, rewritten = resolve_per_request(out[opened + 1:closed])
        head = location
        if rewritten and not re.search(r"^\s*resolver\s", inner, re.MULTILINE):
            head += ("    # sre.incident degraded mode D: the upstream's name is resolved per request\n"
                     "    resolver %s valid=5s ipv6=off;\n" % resolver)
        out = out[:opened + 1] + head + inner + out[closed:]
    return header("D", "offline", saved_dir) + out


def render_standby(original, stack, saved_dir):
    """The team's configuration with the service's upstream (``service:port``) pointed at the standby (option A)."""
    service = str(stack["service"])
    standby = str(stack.get("standby") or "")
    if not standby:
        raise EdgeConfigError("incident_stack.standby is not set: there is no standby to switch to")
    port = stack.get("service_port")
    if port in (None, ""):
        raise EdgeConfigError("incident_stack.service_port is not set: option A cannot find %s:<port> in the edge "
                              "configuration" % service)
    pattern = re.compile(r"(?<![A-Za-z0-9_.-])%s(?=:%s(?![0-9]))" % (re.escape(service), int(port)))
    out, count = pattern.subn(standby, original)
    if not count:
        raise EdgeConfigError("the edge configuration does not name %s:%s, so option A cannot point it at %s"
                              % (service, port, standby))
    return header("A", "standby", saved_dir) + out


RENDER = {"standby": render_standby, "offline": render_offline}


# --------------------------------------------------------------------------- the edge container

def _tar_one(name, data, info):
    buf = io.BytesIO()
    member = tarfile.TarInfo(name=name)
    member.size = len(data)
    member.mode = int(info.get("mode", 0o644))
    member.uid = int(info.get("uid", 0))
    member.gid = int(info.get("gid", 0))
    member.mtime = int(info.get("mtime") or time.time())
    with tarfile.open(fileobj=buf, mode="w") as tar:
        tar.addfile(member, io.BytesIO(data))
    return buf.getvalue()


class Edge:
    """The edge service of one compose project, driven through the engine (``client``: a ComposeClient)."""

    def __init__(self, client, stack, run_command=None, probe_timeout=3.0, interval=0.3, clock=time.monotonic):
        self.client = client
        self.stack = stack
        self.run_command = run_command
        self.project = stack["name"]
        self.service = stack.get("edge")
        self.path = stack.get("edge_config")
        self.probe_timeout = probe_timeout
        self.interval = interval
        self.clock = clock
        state_dir = stack.get("state_dir")
        self.saved_dir = os.path.join(str(state_dir), "edge") if state_dir else None

    # ---- containers
    def containers(self):
        return self.client.find_containers(self.project, self.service) if self.service else []

    def running(self):
        return next((c for c in self.containers() if _compose.container_state(c)["status"] == "running"), None)

    def state_text(self):
        found = self.containers()
        return _compose.status_text(_compose.container_state(found[0])) if found else _compose.MISSING

    def _running_or_fail(self):
        c = self.running()
        if c is None:
            raise EdgeError("the edge %s of project %s is not running (%s)" % (self.service, self.project, self.state_text()))
        return c

    def nginx(self, *args):
        return self.client.exec_in(self._running_or_fail(), ["nginx"] + list(args))

    def check_config(self):
        """dict(ok, output) of ``nginx -t`` in the edge container."""
        res = self.nginx("-t")
        return dict(ok=res["rc"] == 0, output=(res["stderr"] or res["stdout"]).strip()[-2000:])

    def reload(self):
        """``nginx -t`` then ``nginx -s reload``; EdgeError naming nginx's complaint when the configuration is bad."""
        test = self.check_config()
        if not test["ok"]:
            raise EdgeError("nginx -t rejects the edge configuration: %s" % test["output"], nginx_test=test["output"])
        res = self.nginx("-s", "reload")
        if res["rc"] != 0:
            raise EdgeError("nginx -s reload failed (rc=%s): %s" % (res["rc"], (res["stderr"] or res["stdout"]).strip()[-500:]))
        return dict(nginx_test=test["output"])

    def load(self):
        """Make the edge serve its current file: reload a running nginx, start one that is down (a stock
        nginx whose upstream name does not resolve cannot start, so it is down exactly when a degraded
        mode is needed; the start is then the file's check)."""
        if self.running() is not None:
            self.reload()
        else:
            self._start()

    # ---- the configuration file
    def _config_container(self):
        if not self.path:
            raise EdgeError("incident_stack.edge_config is not set: the path, inside the edge container, of the nginx "
                            "file that routes to the service")
        found = self.containers()
        if not found:
            raise EdgeError("the edge %s of project %s has no container" % (self.service, self.project))
        return found[0]

    def read_config(self):
        """(bytes, dict(mode, uid, gid, mtime)) of the configuration file in the edge container."""
        container = self._config_container()
        stream, _stat = self.client._wrap("reading %s from %s" % (self.path, container.name), container.get_archive, self.path)
        buf = io.BytesIO(b"".join(stream))
        with tarfile.open(fileobj=buf, mode="r:") as tar:
            for member in tar:
                if member.isfile():
                    handle = tar.extractfile(member)
                    data = handle.read() if handle is not None else b""
                    return data, dict(mode=member.mode, uid=member.uid, gid=member.gid, mtime=member.mtime)
        raise EdgeError("%s in the edge container is not a regular file" % self.path)

    def write_config(self, data, info):
        container = self._config_container()
        archive = _tar_one(posixpath.basename(self.path), data, info)
        if not self.client._wrap("writing %s into %s" % (self.path, container.name), container.put_archive,
                                 posixpath.dirname(self.path) or "/", archive):
            raise EdgeError("the engine refused to write %s into %s (a read-only mount?)" % (self.path, container.name))

    # ---- the team's original, kept on the managed host
    def _saved_paths(self):
        if not self.saved_dir:
            raise EdgeError("incident_stack.state_dir is not set: the team's edge configuration must be kept there "
                            "before it is changed")
        base = os.path.join(self.saved_dir, "%s.original" % self.service)
        return base, base + ".json"

    def saved(self):
        """(bytes, meta) of the kept original, or None. EdgeError when the copy does not match its checksum."""
        if not self.saved_dir:
            return None
        data_path, meta_path = self._saved_paths()
        if not os.path.exists(meta_path):
            return None
        with open(meta_path, "r", encoding="utf-8") as handle:
            meta = json.load(handle)
        with open(data_path, "rb") as handle:
            data = handle.read()
        if sha256(data) != meta.get("sha256"):
            raise EdgeError("the kept copy of the edge configuration %s does not match its SHA-256 %s: not using it"
                            % (data_path, meta.get("sha256")), saved=data_path)
        return data, meta

    def keep_original(self, data, info):
        data_path, meta_path = self._saved_paths()
        meta = dict(path=self.path, service=self.service, sha256=sha256(data), size=len(data), saved_at=_time.format_seconds(), **info)
        os.makedirs(os.path.dirname(data_path), mode=0o700, exist_ok=True)
        _files.write_atomic(data_path, data)
        _files.write_json(meta_path, meta)
        return meta

    def drop_saved(self):
        for path in self._saved_paths():
            if os.path.exists(path):
                os.unlink(path)

    # ---- observing
    def mode(self):
        """dict(mode, sha256, saved): ``normal``, ``standby``, ``offline`` or ``unknown`` (a changed file we did not write)."""
        if not self.service or not self.path or not self.containers():
            return dict(mode=None, sha256=None, saved=False)
        data, _info = self.read_config()
        kept = self.saved()
        digest = sha256(data)
        mode = mode_of(data.decode("utf-8", "replace")) or ("normal" if kept is None or digest == kept[1]["sha256"] else "unknown")
        return dict(mode=mode, sha256=digest, saved=kept is not None)

    def serving(self):
        """Users answered through the edge (see :func:`users_answered`)."""
        return users_answered(self.stack, self.stack["edge_url"], probe_timeout=self.probe_timeout)

    def _poll(self, check, timeout):
        last = {}

        def attempt():
            last["res"] = check()
            return last["res"]["ok"]

        ok, _value, waited = poll_until(attempt, max(0.0, timeout), interval=self.interval, clock=self.clock)
        return ok, dict(last.get("res") or {}, waited_s=round(waited, 3))

    # ---- degraded modes A and D
    def apply(self, mode, verify, timeout):
        """Write the ``mode`` configuration, check, reload, verify with ``verify()`` (-> dict(ok, problems, ...)).

        The team's original is kept first (once: a second mode on top keeps the first original). On a
        failed check or verification the previous file is put back and reloaded; EdgeError.
        """
        current, info = self.read_config()
        kept = self.saved()
        if kept is None and mode_of(current.decode("utf-8", "replace")):
            raise EdgeError("the edge configuration %s was written by sre.incident but its original is not kept in %s: "
                            "put the team's file back by hand first" % (self.path, self.saved_dir))
        original = current if kept is None else kept[0]
        try:
            text = RENDER[mode](original.decode("utf-8"), self.stack, self.saved_dir).encode("utf-8")
        except (EdgeConfigError, UnicodeDecodeError) as exc:
            # nothing was changed: the option cannot be derived from this file
            raise EdgeError("option %s cannot be applied to %s: %s" % (LETTER[mode], self.path, exc), precondition=True) from None
        meta = self.keep_original(current, info) if kept is None else kept[1]
        if text == current:
            ok, measured = self._poll(verify, min(timeout, RELOAD_WAIT_S))
        else:
            self.write_config(text, info)
            try:
                self.load()
            except (EdgeError, _compose.DockerError) as exc:
                self.write_config(current, info)
                raise EdgeError("option %s: %s; the previous edge configuration is back" % (LETTER[mode], exc.msg),
                                **exc.details) from None
            ok, measured = self._poll(verify, timeout)
            if not ok:
                self.write_config(current, info)
                try:
                    self.load()
                    back = "the previous edge configuration is back"
                except (EdgeError, _compose.DockerError) as exc:
                    back = "the previous edge configuration is written back, but nginx did not take it: %s" % exc.msg
                raise EdgeError("option %s (%s) written and loaded but not verified: %s; %s"
                                % (LETTER[mode], mode, "; ".join(measured.get("problems") or ["?"]), back), verify=measured)
        return dict(changed=text != current, mode=mode, sha256=sha256(text), original_sha256=meta["sha256"], verify=measured,
                    verified=ok)

    def restore(self):
        """Put the kept original back byte for byte, check, reload, read it back. dict(changed, sha256, restored)."""
        kept = self.saved()
        if kept is None:
            return dict(changed=False, restored=False, sha256=None)
        original, meta = kept
        current, info = self.read_config()
        if current != original:
            info = {key: meta.get(key, value) for key, value in info.items()}
            self.write_config(original, info)
            self.load()
        back, _info = self.read_config()
        if sha256(back) != meta["sha256"]:
            raise EdgeError("the edge configuration read back has SHA-256 %s, not the original's %s"
                            % (sha256(back), meta["sha256"]))
        self.drop_saved()
        return dict(changed=current != original, restored=True, sha256=meta["sha256"])

    # ---- serving again
    def ensure_serving(self, timeout=30.0, check_mode=False):
        """Make the edge answer users again when the service itself answers. See the module doc."""
        result = dict(serving=False, changed=False, actions=[], edge=self.state_text(), reason=None)
        first = self.serving()
        result["before"] = first
        if first["ok"]:
            result.update(serving=True, reason="users are answered through the edge")
            return result
        service = users_answered(self.stack, self.stack["base_url"], probe_timeout=self.probe_timeout)
        result["service"] = service
        if not service["ok"]:
            result["reason"] = ("the service itself does not answer (%s): the edge is not what fails"
                                % "; ".join(service["problems"][:3]))
            return result
        deadline = self.clock() + float(timeout)
        steps = ["start"] if self.running() is None else ["reload", "restart"]
        if check_mode:
            result.update(changed=True, actions=["would " + steps[0]],
                          reason="the edge fails (%s) while the service answers: would %s it"
                          % ("; ".join(first["problems"][:3]), " and, if that does not help, ".join(steps)))
            return result
        act = dict(start=self._start, reload=self.reload, restart=lambda: self.client.restart(self._running_or_fail()))
        for step in steps:
            result["changed"] = True
            try:
                act[step]()
            except (EdgeError, _compose.DockerError) as exc:
                result["actions"].append("%s failed: %s" % (step, exc.msg))
                continue
            result["actions"].append(step)
            left = deadline - self.clock()
            ok, after = self._poll(self.serving, min(left, RELOAD_WAIT_S) if step == "reload" else left)
            result["after"] = after
            if ok:
                result.update(serving=True, edge=self.state_text(),
                              reason="the edge answers users again after a %s" % step)
                return result
        result.update(edge=self.state_text(),
                      reason="the edge still fails after %s: %s" % (", ".join(result["actions"]),
                                                                    "; ".join((result.get("after") or first)["problems"][:3])))
        return result

    def _start(self):
        """Start the edge's container (restart a crash-looping one now, not after the engine's delay), or
        bring it up with compose when it has none."""
        found = self.containers()
        if found:
            if _compose.container_state(found[0])["status"] in _compose.RUNNING_LIKE:
                self.client.restart(found[0])
            else:
                self.client.start(found[0])
            return
        if self.run_command is None:
            raise EdgeError("the edge %s has no container and no compose run is possible here" % self.service)
        _compose.ensure_project(self.client, self.run_command, self.project, self.stack["project_dir"],
                                self.stack.get("compose_files") or ["docker-compose.yml"], "present",
                                services=[self.service], no_deps=True, wait=True, timeout=RELOAD_WAIT_S * 3)
