# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Backups that restore (SPEC P0-4 rung 3, OUT-5): a stack's data volumes taken (:func:`take`) and
put back (:func:`restore`), as documented in the ``sre.incident.backup`` and ``backup_restore``
modules. :func:`verify` is the gate before any volume is removed (``compose_project``) and before
any restore: every volume covered, every file there with its size and SHA-256.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import time

from ansible_collections.sre.incident.plugins.module_utils import _files, _pg, _redis, _stack, _time
from ansible_collections.sre.incident.plugins.module_utils._compose import (
    LABEL_PROJECT,
    DockerError,
    _attrs,
    container_state,
)
from ansible_collections.sre.incident.plugins.module_utils._errors import IncidentError
from ansible_collections.sre.incident.plugins.module_utils._wait import poll_until

FORMAT = "sre.incident/backup/1"
MANIFEST = "manifest.json"
CHUNK = 1024 * 1024
KINDS = ("database", "redis", "volume")
_SAFE_NAME = re.compile(r"[^A-Za-z0-9_.-]+")


class BackupError(IncidentError):
    """A backup could not be taken, verified or restored; ``msg`` says what, naming the file or step."""


def validate(stack):
    """``stack``, checked before anything is asked of the engine; ValueError names a bad value."""
    _stack.validate(stack)
    _pg.settings(stack)
    _redis.settings(stack)
    return stack


def _safe(name):
    return _SAFE_NAME.sub("_", str(name)).strip("._") or "x"


def _file_chunks(path):
    with open(path, "rb") as handle:
        yield from iter(lambda: handle.read(CHUNK), b"")


def sha256_file(path):
    digest = hashlib.sha256()
    size = 0
    for chunk in _file_chunks(path):
        digest.update(chunk)
        size += len(chunk)
    return digest.hexdigest(), size


class _HashingWriter:
    """A private (0600) file written chunk by chunk, hashed and counted on the way."""

    def __init__(self, path):
        self.handle = _files.create_new(path)
        self.digest = hashlib.sha256()
        self.size = 0
        self.head = b""

    def write(self, chunk):
        if len(self.head) < 16:
            self.head += chunk[:16 - len(self.head)]
        self.handle.write(chunk)
        self.digest.update(chunk)
        self.size += len(chunk)

    def close(self):
        self.handle.flush()
        os.fsync(self.handle.fileno())
        self.handle.close()
        return self.digest.hexdigest(), self.size


# --------------------------------------------------------------------------- what covers each volume (pure)

def _under(path, mount):
    path = (path or "").rstrip("/") or "/"
    mount = (mount or "").rstrip("/") or "/"
    return path == mount or path.startswith(mount if mount == "/" else mount + "/")


def cover(volumes, mounts, data_directory=None, db_containers=(), redis_dir=None, redis_containers=()):
    """How each volume is backed up: {volume: {"by": "database" | "redis" | "tar" | "tmpfs",
    "containers": [names that use it], "running": [names that run]}}.

    ``volumes``: {name: {"tmpfs": bool}}; ``mounts``: see :func:`_mounts`; ``data_directory`` /
    ``redis_dir``: where the database and Redis keep their data inside ``db_containers`` /
    ``redis_containers`` (names).
    """
    out = {}
    for name in sorted(volumes):
        users = [m for m in mounts if m["volume"] == name]
        entry = dict(by="tar", containers=sorted({m["container"] for m in users}),
                     running=sorted({m["container"] for m in users if m["running"]}))
        if (volumes[name] or {}).get("tmpfs"):
            entry["by"] = "tmpfs"
        elif data_directory and any(m["container"] in db_containers and _under(data_directory, m["destination"])
                                    for m in users):
            entry["by"] = "database"
        elif redis_dir and any(m["container"] in redis_containers and _under(redis_dir, m["destination"])
                               for m in users):
            entry["by"] = "redis"
        out[name] = entry
    return out


# --------------------------------------------------------------------------- reading the stack

def _volumes(client, project):
    found = client._wrap("listing volumes of project %r" % (project,), client.client.volumes.list,
                         filters={"label": "%s=%s" % (LABEL_PROJECT, project)})
    out = {}
    for vol in found:
        attrs = vol.attrs or {}
        options = attrs.get("Options") or {}
        out[vol.name] = dict(tmpfs=options.get("type") == "tmpfs" or options.get("device") == "tmpfs",
                             driver=attrs.get("Driver"))
    return out


def _mounts(containers):
    out = []
    for c in containers:
        st = container_state(c)
        for mount in _attrs(c).get("Mounts") or []:
            if mount.get("Type") == "volume" and mount.get("Name"):
                out.append(dict(volume=mount["Name"], container=st["name"], service=st["service"],
                                destination=mount.get("Destination"), running=st["running"]))
    return out


def _first_running(containers, service):
    for c in containers:
        st = container_state(c)
        if st["service"] == service and st["running"]:
            return c
    return None


def survey(client, stack):
    """What a backup of ``stack`` would take: dict(project, database, redis (None without a container of
    that service), volumes (see :func:`cover`), problems (why a backup cannot be taken now), containers).

    A database or Redis that has a container but does not run is a problem: its volume is never
    copied behind its back.
    """
    project = stack["name"]
    db = _pg.settings(stack)
    rd = _redis.settings(stack)
    containers = client.find_containers(project)
    problems = []
    database = redis = None
    pg_all = [c for c in containers if container_state(c)["service"] == db["service"]]
    if pg_all:
        database = dict(db, container=None, data_directory=None, server_version=None)
        pg_c = _first_running(pg_all, db["service"])
        if pg_c is None:
            problems.append("the database service %s is not running: no dump can be taken" % db["service"])
        else:
            database["container"] = pg_c.name
            try:
                pg = _pg.Postgres(client, pg_c, db["name"], db["user"], db["port"], db["exec_user"])
                database["data_directory"] = pg.query("SHOW data_directory")
                database["server_version"] = pg.query("SHOW server_version")
            except DockerError as exc:
                problems.append("the database %s in %s does not answer: %s" % (db["name"], pg_c.name, exc))
    rd_all = [c for c in containers if container_state(c)["service"] == rd["service"]]
    if rd_all:
        redis = dict(rd, container=None, dir=None, dbfilename=None, appendonly=None)
        rd_c = _first_running(rd_all, rd["service"])
        if rd_c is None:
            problems.append("the Redis service %s is not running: no RDB can be saved" % rd["service"])
        else:
            redis["container"] = rd_c.name
            try:
                server = _redis.Redis(client, rd_c, rd["port"])
                redis["dir"], redis["dbfilename"] = server.rdb_location()
                redis["appendonly"] = server.config_get("appendonly")
            except DockerError as exc:
                problems.append("Redis in %s does not answer: %s" % (rd_c.name, exc))
    volumes = cover(_volumes(client, project), _mounts(containers), (database or {}).get("data_directory"),
                    [c.name for c in pg_all], (redis or {}).get("dir"), [c.name for c in rd_all])
    return dict(project=project, database=database, redis=redis, volumes=volumes, problems=problems,
                containers=containers)


def describe(found):
    """One line per volume: what would be taken for it (check mode, messages)."""
    lines = []
    db, rd = found["database"] or {}, found["redis"] or {}
    for name, entry in found["volumes"].items():
        if entry["by"] == "database":
            lines.append("%s: pg_dump --format=custom of database %s in %s" % (name, db["name"], db["container"]))
        elif entry["by"] == "redis":
            lines.append("%s: BGSAVE, then the RDB %s/%s copied out of %s" % (name, rd["dir"], rd["dbfilename"],
                                                                              rd["container"]))
        elif entry["by"] == "tmpfs":
            lines.append("%s: a tmpfs volume, nothing to keep once its containers stop" % name)
        else:
            lines.append("%s: a tar of the volume with %s stopped" % (
                name, ", ".join(entry["running"]) if entry["running"] else "no container running"))
    return lines


# --------------------------------------------------------------------------- taking a backup set

def _helper_image(containers):
    for c in containers:
        image = (_attrs(c).get("Config") or {}).get("Image")
        if image:
            return image
    raise BackupError("no image of the project on the engine to create the volume helper from")


@contextlib.contextmanager
def _volume_helper(client, image, volume, purpose, mode):
    """A helper container with ``volume`` at /volume (``mode`` ro or rw), never started, removed afterwards."""
    helper = client._wrap("creating a %s helper for volume %s" % (purpose, volume), client.client.containers.create,
                          image, command=["true"], network_disabled=True,
                          volumes={volume: {"bind": "/volume", "mode": mode}},
                          labels={"sre.incident.role": "volume-" + purpose})
    try:
        yield helper
    finally:
        client._wrap("removing the %s helper" % purpose, helper.remove, force=True)


def _tar_volume(client, volume, image, dest_path):
    """(SHA-256, size) of the volume's tar, streamed by the engine from a read-only helper."""
    with _volume_helper(client, image, volume, "backup", "ro") as helper:
        reader, _stat = client.archive_reader(helper, "/volume")
        out = _HashingWriter(dest_path)
        try:
            for chunk in iter(lambda: reader.read(CHUNK), b""):
                out.write(chunk)
        finally:
            sha, size = out.close()
    return sha, size


def _new_set_dir(dest_root, project, now):
    os.makedirs(dest_root, mode=0o700, exist_ok=True)
    base = os.path.join(dest_root, "%s-%s" % (_safe(project), _time.stamp(now)))
    path, n = base, 1
    while True:
        try:
            os.mkdir(path, 0o700)
            return path
        except FileExistsError:
            n += 1
            path = "%s-%d" % (base, n)


def _volume_by(found, by):
    """The volume backed up ``by`` the database or Redis, or None."""
    return next((v for v, e in found["volumes"].items() if e["by"] == by), None)


def _dump(client, db, by_name, found, set_dir, artefacts):
    fname = "database-%s.dump" % _safe(db["name"])
    out = _HashingWriter(os.path.join(set_dir, fname))
    made = _time.format_seconds()
    try:
        pg = _pg.Postgres(client, by_name[db["container"]], db["name"], db["user"], db["port"], db["exec_user"])
        pg.dump(out.write)
    finally:
        sha, size = out.close()
    if not out.head.startswith(_pg.CUSTOM_FORMAT_MAGIC):
        raise BackupError("pg_dump of %s wrote no custom-format archive (%d bytes)" % (db["name"], size))
    artefacts.append(dict(
        file=fname, kind="database", sha256=sha, bytes=size, made_at=made,
        method="pg_dump --format=custom through the engine's exec in %s, streamed out (one consistent "
               "snapshot of a running database)" % db["container"],
        source=dict(service=db["service"], container=db["container"], volume=_volume_by(found, "database"),
                    database=db["name"], user=db["user"], port=db["port"], data_directory=db["data_directory"],
                    server_version=db["server_version"])))


def _save_redis(client, rd, by_name, found, set_dir, artefacts, timeout):
    c = by_name[rd["container"]]
    saved = _redis.Redis(client, c, rd["port"]).save(timeout=timeout)
    fname = "redis-%s" % _safe(rd["dbfilename"])
    copied = _redis.copy_rdb_out(client, c, rd["dir"], rd["dbfilename"], os.path.join(set_dir, fname))
    artefacts.append(dict(
        file=fname, kind="redis", sha256=copied["sha256"], bytes=copied["bytes"], made_at=_time.format_seconds(saved["lastsave"]),
        method="BGSAVE in %s, waited for (INFO persistence, LASTSAVE), the RDB copied out through the engine's "
               "archive API" % rd["container"],
        source=dict(service=rd["service"], container=rd["container"], volume=_volume_by(found, "redis"),
                    port=rd["port"], dir=rd["dir"], dbfilename=rd["dbfilename"], appendonly=rd["appendonly"],
                    keys=saved["keys"], lastsave=_time.format_seconds(saved["lastsave"]), uid=copied["uid"], gid=copied["gid"],
                    mode=copied["mode"])))


def take(client, stack, dest_root, incident_id=None, leave_stopped=False, timeout=300.0, now=None):
    """Take a backup set of ``stack`` into a new directory under ``dest_root``.

    ``leave_stopped``: keep the containers stopped for the volume tars stopped (a rebuild follows).
    Returns dict(dir, manifest_path, manifest, stopped, started, elapsed). BackupError when anything
    is missing or fails: nothing half-made is left, the containers it stopped are started again.
    """
    started_clock = time.monotonic()
    deadline = started_clock + float(timeout)
    found = survey(client, stack)
    if found["problems"]:
        raise BackupError("no backup of %s: %s" % (found["project"], "; ".join(found["problems"])))
    project = found["project"]
    db, rd = found["database"], found["redis"]
    by_name = {c.name: c for c in found["containers"]}
    set_dir = _new_set_dir(dest_root, project, time.time() if now is None else now)
    artefacts = []
    stopped = []
    restarted = []
    try:
        # the database while it runs (one consistent snapshot), then Redis, then the other volumes stopped
        if db is not None:
            _dump(client, db, by_name, found, set_dir, artefacts)
        if rd is not None:
            _save_redis(client, rd, by_name, found, set_dir, artefacts, max(1.0, deadline - time.monotonic()))
        tars = {v: e for v, e in found["volumes"].items() if e["by"] == "tar"}
        if tars:
            image = _helper_image(found["containers"])
            for name, entry in tars.items():
                for cname in entry["running"]:
                    if cname not in stopped:
                        client.stop(by_name[cname])
                        stopped.append(cname)
                fname = "volume-%s.tar" % _safe(name)
                made = _time.format_seconds()
                sha, size = _tar_volume(client, name, image, os.path.join(set_dir, fname))
                artefacts.append(dict(
                    file=fname, kind="volume", sha256=sha, bytes=size, made_at=made,
                    method="tar of the volume streamed by the engine (a helper container, never started, mounting "
                           "it read-only) while every container using it was stopped",
                    source=dict(volume=name, containers=entry["containers"], stopped=entry["running"])))

        covered = {}
        for name, entry in found["volumes"].items():
            if entry["by"] == "tmpfs":
                covered[name] = dict(by="tmpfs", file=None, note="a tmpfs volume: its content ends with its containers")
            else:
                match = [a["file"] for a in artefacts if a["source"].get("volume") == name]
                if not match:
                    raise BackupError("volume %s is not covered by any file of the backup" % name)
                covered[name] = dict(by=entry["by"], file=match[0])
        manifest = dict(format=FORMAT, project=project, incident_id=incident_id or None, created_at=_time.format_seconds(),
                        artefacts=artefacts, volumes=covered)
        path = os.path.join(set_dir, MANIFEST)
        _files.write_json(path, manifest)
        # checksummed as written, and checked again from the disk
        verify(path, project=project, volumes=list(found["volumes"]))
    except BaseException as exc:
        shutil.rmtree(set_dir, ignore_errors=True)
        for cname in stopped:
            try:
                client.start(by_name[cname])
                restarted.append(cname)
            except DockerError:
                pass
        if isinstance(exc, BackupError):
            exc.details.update(stopped=stopped, started_again=restarted)
            raise
        if isinstance(exc, (DockerError, OSError, ValueError)):
            raise BackupError("backup of %s failed, nothing kept: %s" % (project, getattr(exc, "msg", None) or exc),
                              stopped=stopped, started_again=restarted) from None
        raise
    if not leave_stopped:
        for cname in stopped:
            client.start(by_name[cname])
            restarted.append(cname)
    return dict(dir=set_dir, manifest_path=path, manifest=manifest, stopped=stopped, started=restarted,
                elapsed=round(time.monotonic() - started_clock, 3))


# --------------------------------------------------------------------------- verifying a backup set

def load(manifest_path):
    """The manifest at ``manifest_path``; BackupError naming the file when it is missing or malformed."""
    try:
        with open(manifest_path, "r", encoding="utf-8") as handle:
            manifest = json.load(handle)
    except OSError as exc:
        raise BackupError("backup manifest %s cannot be read: %s" % (manifest_path, exc.strerror or exc)) from None
    except ValueError as exc:
        raise BackupError("backup manifest %s is not valid JSON: %s" % (manifest_path, exc)) from None
    found = manifest.get("format") if isinstance(manifest, dict) else None
    if found != FORMAT:
        raise BackupError("%s is not a backup manifest of this collection (format %r, expected %r)"
                          % (manifest_path, found, FORMAT))
    if not isinstance(manifest.get("artefacts"), list) or not isinstance(manifest.get("volumes"), dict):
        raise BackupError("backup manifest %s has no artefacts or volumes list" % manifest_path)
    return manifest


def check(manifest_path, manifest):
    """Every artefact file against the manifest: a list of problems, each naming its file."""
    base = os.path.dirname(os.path.abspath(manifest_path))
    problems = []
    for item in manifest["artefacts"]:
        name = str(item.get("file") or "")
        if not name or os.path.basename(name) != name or name in (".", ".."):
            problems.append("%r: not a file name inside the backup directory" % (name,))
            continue
        if item.get("kind") not in KINDS:
            problems.append("%s: unknown kind %r" % (name, item.get("kind")))
            continue
        path = os.path.join(base, name)
        if not os.path.isfile(path):
            problems.append("%s: missing" % path)
            continue
        sha, size = sha256_file(path)
        if size != item.get("bytes"):
            problems.append("%s: %d bytes, the manifest says %s" % (path, size, item.get("bytes")))
        if sha != item.get("sha256"):
            problems.append("%s: SHA-256 %s, the manifest says %s" % (path, sha, item.get("sha256")))
    return problems


def verify(manifest_path, project=None, volumes=None):
    """The manifest, when every artefact is there with its size and SHA-256 and (given ``volumes``)
    every one of those volumes is covered. Else BackupError naming each bad file or volume."""
    manifest = load(manifest_path)
    if project is not None and manifest.get("project") != project:
        raise BackupError("backup %s is of project %r, not %r" % (manifest_path, manifest.get("project"), project))
    problems = check(manifest_path, manifest)
    files = {a.get("file") for a in manifest["artefacts"]}
    for name in volumes or ():
        entry = manifest["volumes"].get(name)
        if not isinstance(entry, dict):
            problems.append("volume %s: not in the backup" % name)
        elif entry.get("by") != "tmpfs" and entry.get("file") not in files:
            problems.append("volume %s: covered by %r, which the backup does not hold" % (name, entry.get("file")))
    if problems:
        raise BackupError("backup %s cannot be used: %s" % (manifest_path, "; ".join(problems)), problems=problems)
    return manifest


# --------------------------------------------------------------------------- restoring a backup set

def _wait_loaded(server, timeout):
    def loaded():
        try:
            fields = server.info("persistence")
        except DockerError:
            return None
        return fields if fields.get("loading") == "0" else None

    ok, fields, _elapsed = poll_until(loaded, timeout, interval=0.2)
    if not ok:
        raise BackupError("Redis in %s did not finish loading within %s s" % (server.container.name, timeout))
    return fields


def plan_restore(client, stack, manifest_path):
    """The set verified (see :func:`verify`) and the stack checked before anything changes: dict(manifest,
    steps (each naming what it would do), problems (why the stack cannot take it now), containers)."""
    manifest = verify(manifest_path)
    project = stack["name"]
    problems = []
    if manifest["project"] != project:
        problems.append("the backup is of project %r, incident_stack.name is %r" % (manifest["project"], project))
    base = os.path.dirname(os.path.abspath(manifest_path))
    containers = client.find_containers(project)
    existing = set(_volumes(client, project))
    steps = []
    for item in manifest["artefacts"]:
        src = item["source"]
        path = os.path.join(base, item["file"])
        step = dict(kind=item["kind"], file=path, sha256=item["sha256"], bytes=item["bytes"])
        if item["kind"] == "database":
            c = _first_running(containers, src["service"])
            step.update(service=src["service"], database=src["database"], container=c.name if c else None,
                        text="database %s of service %s from %s (pg_restore --clean --if-exists, in one "
                             "transaction)" % (src["database"], src["service"], item["file"]))
            if c is None:
                problems.append("the database service %s has no running container to restore into" % src["service"])
        elif item["kind"] == "redis":
            found = [c for c in containers if container_state(c)["service"] == src["service"]]
            step.update(service=src["service"], container=found[0].name if found else None, dir=src["dir"],
                        dbfilename=src["dbfilename"],
                        text="Redis of service %s from %s (stopped, the RDB put into %s/%s of its data volume, "
                             "started, waited for until loaded)" % (src["service"], item["file"], src["dir"],
                                                                    src["dbfilename"]))
            if not found:
                problems.append("the Redis service %s has no container to restore into" % src["service"])
            elif container_state(found[0])["running"]:
                try:
                    server = _redis.Redis(client, found[0], _redis.settings(stack)["port"])
                    location = server.rdb_location()
                    if location != (src["dir"].rstrip("/") or "/", src["dbfilename"]):
                        problems.append("Redis in %s keeps its RDB at %s/%s now, the backup came from %s/%s" % (
                            found[0].name, location[0], location[1], src["dir"], src["dbfilename"]))
                    if server.config_get("appendonly") == "yes":
                        problems.append("Redis in %s runs with appendonly yes: it would load its AOF, not the "
                                        "RDB" % found[0].name)
                except DockerError as exc:
                    problems.append("Redis in %s does not answer: %s" % (found[0].name, exc))
        else:
            running = sorted({m["container"] for m in _mounts(containers) if m["volume"] == src["volume"] and m["running"]})
            step.update(volume=src["volume"], running=running, text="volume %s from %s (%s stopped meanwhile)" % (
                src["volume"], item["file"], ", ".join(running) or "no container"))
            if src["volume"] not in existing:
                problems.append("volume %s does not exist (bring the stack up first)" % src["volume"])
        steps.append(step)
    return dict(manifest=manifest, steps=steps, problems=problems, containers=containers)


def restore(client, stack, manifest_path, check_mode=False, timeout=300.0):
    """Restore a backup set into ``stack``: dict(changed, steps (each with ``text`` and, when done, its
    checks), manifest, elapsed). BackupError before any change when :func:`plan_restore` finds a
    problem, or naming what was already restored when a later step fails."""
    started = time.monotonic()
    deadline = started + float(timeout)
    planned = plan_restore(client, stack, manifest_path)
    if planned["problems"]:
        raise BackupError("nothing restored from %s: %s" % (manifest_path, "; ".join(planned["problems"])),
                          steps=[s["text"] for s in planned["steps"]])
    steps = planned["steps"]
    if check_mode:
        for step in steps:
            step["result"] = "would restore " + step["text"]
        return dict(changed=bool(steps), steps=steps, manifest=planned["manifest"])
    by_name = {c.name: c for c in planned["containers"]}
    done = []
    try:
        for step in sorted(steps, key=lambda s: KINDS.index(s["kind"])):
            left = max(1.0, deadline - time.monotonic())
            if step["kind"] == "database":
                db = _pg.settings(stack)
                pg = _pg.Postgres(client, by_name[step["container"]], step["database"], db["user"], db["port"],
                                  db["exec_user"])
                res = pg.restore(_file_chunks(step["file"]))
                step["checks"] = dict(pg_restore_rc=res["rc"], bytes_sent=res["bytes"])
            elif step["kind"] == "redis":
                c = by_name[step["container"]]
                item = next(a for a in planned["manifest"]["artefacts"] if a["kind"] == "redis")
                if container_state(c)["running"]:
                    client.stop(c)
                put = _redis.put_rdb(client, c, step["dir"], step["dbfilename"], step["file"], item["source"]["uid"],
                                     item["source"]["gid"], item["source"].get("mode") or 0o644)
                if put["sha256"] != step["sha256"]:
                    raise BackupError("the RDB put into %s reads back with SHA-256 %s, not %s" % (
                        c.name, put["sha256"], step["sha256"]))
                client.start(c)
                ok, _state, _elapsed = client.wait_ready(c, left)
                if not ok:
                    raise BackupError("Redis in %s did not become ready within %s s after the restore" % (c.name, left))
                server = _redis.Redis(client, c, _redis.settings(stack)["port"])
                fields = _wait_loaded(server, max(1.0, deadline - time.monotonic()))
                step["checks"] = dict(rdb_in_volume_sha256=put["sha256"], keys_loaded=fields.get("rdb_last_load_keys_loaded"),
                                      keys_now=_redis.keyspace_keys(server.info("keyspace")),
                                      keys_at_backup=item["source"].get("keys"))
            else:
                for cname in step["running"]:
                    client.stop(by_name[cname])
                image = _helper_image(planned["containers"])
                with _volume_helper(client, image, step["volume"], "restore", "rw") as helper, \
                        open(step["file"], "rb") as handle:
                    client.archive_in(helper, "/", handle)
                for cname in step["running"]:
                    client.start(by_name[cname])
                step["checks"] = dict(stopped_and_started=list(step["running"]))
            step["result"] = "restored " + step["text"]
            done.append(step["text"])
    except (DockerError, OSError, BackupError) as exc:
        msg = getattr(exc, "msg", None) or str(exc)
        raise BackupError("restore from %s failed: %s (already restored: %s)" % (
            manifest_path, msg, "; ".join(done) or "nothing"), done=done) from None
    return dict(changed=True, steps=steps, manifest=planned["manifest"],
                elapsed=round(time.monotonic() - started, 3))
