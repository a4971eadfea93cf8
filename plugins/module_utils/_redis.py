# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Redis of a stack, reached through the engine: ``redis-cli`` of the image by exec (``-p`` the port
it listens on inside its container), the RDB file through the engine's archive API. Nothing is
copied into the container.
"""

from __future__ import annotations

import hashlib
import os
import tarfile
import tempfile
import time

from ansible_collections.sre.incident.plugins.module_utils._stack import _check_port as check_port
from ansible_collections.sre.incident.plugins.module_utils._compose import DockerError
from ansible_collections.sre.incident.plugins.module_utils._wait import poll_until

#: The first bytes of an RDB file.
RDB_MAGIC = b"REDIS"
CHUNK = 1024 * 1024


class RedisError(DockerError):
    """A redis-cli call failed or Redis refused what was asked."""

    kind = "redis_error"


def settings(stack):
    """The Redis of ``incident_stack`` with its defaults: dict(service, port). ValueError names a bad value."""
    rd = stack.get("redis") or {}
    if not isinstance(rd, dict):
        raise ValueError("incident_stack.redis must be a mapping, got %r" % (rd,))
    port = 6379 if rd.get("port") in (None, "") else rd["port"]
    number = check_port(port, "redis.port")
    return dict(service=rd.get("service") or "redis", port=number)


def info_fields(text):
    """``INFO`` output -> {field: value} (text values; sections and comments dropped)."""
    out = {}
    for line in (text or "").splitlines():
        line = line.strip()
        if not line or line.startswith("#") or ":" not in line:
            continue
        key, _sep, value = line.partition(":")
        out[key] = value
    return out


def keyspace_keys(fields):
    """Sum of ``keys=`` over the ``dbN`` lines of ``INFO keyspace`` fields."""
    total = 0
    for key, value in fields.items():
        if key.startswith("db") and key[2:].isdigit():
            for part in value.split(","):
                name, _sep, number = part.partition("=")
                if name == "keys" and number.isdigit():
                    total += int(number)
    return total


class Redis:
    """One Redis server in ``container`` (a docker SDK handle), listening on ``port``."""

    def __init__(self, client, container, port=6379):
        self.client = client
        self.container = container
        self.port = int(port)

    def cli(self, *args, read_only=False):
        """The output (stripped) of ``redis-cli -p PORT ARGS``; RedisError on a failure or an error reply.
        ``read_only``: its output may be asked for again (ComposeClient.exec_in ``expect_output``)."""
        argv = ["redis-cli", "-p", str(self.port)] + [str(a) for a in args]
        res = self.client.exec_in(self.container, argv, expect_output=read_only)
        out = (res["stdout"] or "").strip()
        if res["rc"] != 0 or out.startswith("ERR") or out.startswith("(error)") or "Could not connect" in out:
            raise RedisError("redis-cli %s in %s failed (rc %s): %s" % (
                " ".join(argv[3:]), self.container.name, res["rc"], (out or res["stderr"]).strip()[:300]))
        return out

    def info(self, section):
        return info_fields(self.cli("INFO", section, read_only=True))

    def config_get(self, key):
        lines = [line.strip() for line in self.cli("CONFIG", "GET", key, read_only=True).splitlines() if line.strip()]
        return lines[1] if len(lines) >= 2 else None

    def lastsave(self):
        text = self.cli("LASTSAVE", read_only=True).split()
        return int(text[-1]) if text and text[-1].isdigit() else None

    def rdb_location(self):
        """(directory, file name) of the RDB file, as the running server says."""
        return (self.config_get("dir") or "/data").rstrip("/") or "/", self.config_get("dbfilename") or "dump.rdb"

    def save(self, timeout=120.0, interval=0.2):
        """``BGSAVE`` and wait until it is written: dict(lastsave (UNIX s), keys, elapsed); RedisError when
        Redis refuses, the save fails or ``timeout`` passes. A save already running may miss later
        writes: it is waited for, then ours is asked for again."""
        started = time.monotonic()
        deadline = started + float(timeout)
        before = self.lastsave()
        if before is not None and int(time.time()) <= before:
            # LASTSAVE counts whole seconds: let the clock pass into the next one, so ours moves it
            poll_until(lambda: int(time.time()) > before, 2.0, interval=0.05)

        def idle():
            return self.info("persistence").get("rdb_bgsave_in_progress") == "0"

        while True:
            try:
                self.cli("BGSAVE")
                break
            except RedisError as exc:
                if "in progress" not in str(exc).lower():
                    raise
            ok, _value, _elapsed = poll_until(idle, max(0.0, deadline - time.monotonic()), interval=interval)
            if not ok:
                raise RedisError("a save already running in %s did not end within %s s" % (self.container.name, timeout))

        def done():
            fields = self.info("persistence")
            if fields.get("rdb_bgsave_in_progress") != "0":
                return None
            now = self.lastsave()
            return (now, fields) if now is not None and (before is None or now > before) else None

        ok, value, _elapsed = poll_until(done, max(0.0, deadline - time.monotonic()), interval=interval)
        if not ok:
            raise RedisError("BGSAVE in %s not written within %s s" % (self.container.name, timeout))
        lastsave, fields = value
        if fields.get("rdb_last_bgsave_status") != "ok":
            raise RedisError("BGSAVE in %s failed: rdb_last_bgsave_status %s" % (
                self.container.name, fields.get("rdb_last_bgsave_status")))
        keys = keyspace_keys(self.info("keyspace"))
        return dict(lastsave=lastsave, keys=keys, elapsed=round(time.monotonic() - started, 3))


def read_rdb(client, container, directory, filename, sink):
    """Stream the RDB ``directory/filename`` out of ``container`` (running or stopped) into ``sink(bytes)``:
    dict(bytes, sha256, uid, gid, mode). RedisError when it is no RDB file."""
    path = directory.rstrip("/") + "/" + filename
    reader, _stat = client.archive_reader(container, path)
    digest = hashlib.sha256()
    size = 0
    with tarfile.open(fileobj=reader, mode="r|") as tar:
        member = next((m for m in tar if m.isfile()), None)
        if member is None:
            raise RedisError("%s in %s is not a regular file" % (path, container.name))
        handle = tar.extractfile(member)
        for chunk in iter(lambda: handle.read(CHUNK), b""):
            if size == 0 and not chunk.startswith(RDB_MAGIC):
                raise RedisError("%s in %s is not an RDB file" % (path, container.name))
            sink(chunk)
            digest.update(chunk)
            size += len(chunk)
    if size == 0:
        raise RedisError("%s in %s is empty" % (path, container.name))
    return dict(bytes=size, sha256=digest.hexdigest(), uid=member.uid, gid=member.gid, mode=member.mode & 0o7777)


def copy_rdb_out(client, container, directory, filename, dest_path):
    """:func:`read_rdb` into the file ``dest_path`` (mode 0600, synced)."""
    fd = os.open(dest_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        result = read_rdb(client, container, directory, filename, out.write)
        out.flush()
        os.fsync(out.fileno())
    return result


def put_rdb(client, container, directory, filename, src_path, uid, gid, mode=0o644):
    """Put the RDB file ``src_path`` into ``directory/filename`` of ``container`` (stopped, so
    Redis neither overwrites it on shutdown nor holds the old one), with the owner and mode it
    had; then read it back through the engine. Returns dict(bytes, sha256) of what is there now."""
    with tempfile.TemporaryFile() as tmp:
        with tarfile.open(fileobj=tmp, mode="w") as tar:
            info = tarfile.TarInfo(filename)
            info.size = os.path.getsize(src_path)
            info.uid, info.gid, info.mode = int(uid), int(gid), int(mode)
            info.mtime = int(time.time())
            with open(src_path, "rb") as src:
                tar.addfile(info, src)
        tmp.seek(0)
        client.archive_in(container, directory, tmp)
    back = read_rdb(client, container, directory, filename, lambda chunk: None)
    return dict(bytes=back["bytes"], sha256=back["sha256"])
