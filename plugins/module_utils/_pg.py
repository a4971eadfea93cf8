# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""PostgreSQL of a stack, reached through the engine's exec in the database's own container.

``psql``, ``pg_dump`` and ``pg_restore`` are the image's own, run as ``exec_user`` over the Unix
socket (``-p``: its file is named after the port). The dump leaves as the exec's output stream,
the restore enters as its input stream: no file is written inside the container.
"""

from __future__ import annotations

from ansible_collections.sre.incident.plugins.module_utils._stack import _check_port as check_port
from ansible_collections.sre.incident.plugins.module_utils._compose import DockerError

#: The first bytes of a pg_dump custom-format archive.
CUSTOM_FORMAT_MAGIC = b"PGDMP"


class PostgresError(DockerError):
    """A psql / pg_dump / pg_restore run failed."""

    kind = "postgres_error"


def settings(stack):
    """The database of ``incident_stack`` with its defaults: dict(service, name, user, port, exec_user)."""
    db = stack.get("database") or {}
    if not isinstance(db, dict):
        raise ValueError("incident_stack.database must be a mapping, got %r" % (db,))
    return dict(service=db.get("service") or "postgres", name=db.get("name") or "postgres",
                user=db.get("user") or "postgres",
                port=check_port(5432 if db.get("port") in (None, "") else db["port"], "database.port"),
                exec_user=db.get("exec_user") or "postgres")


class Postgres:
    """One database of a PostgreSQL server in ``container`` (a docker SDK handle)."""

    def __init__(self, client, container, name, user="postgres", port=5432, exec_user="postgres"):
        self.client = client
        self.container = container
        self.name = name
        self.user = user
        self.port = int(port)
        self.exec_user = exec_user

    def _conn(self):
        return ["--no-password", "-U", self.user, "-p", str(self.port), "-d", self.name]

    def query(self, sql):
        """The output (stripped) of one SQL statement that returns a row, with ``psql -At``."""
        argv = ["psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1"] + self._conn() + ["-c", sql]
        res = self.client.exec_in(self.container, argv, user=self.exec_user, environment={"PGCONNECT_TIMEOUT": "10"},
                                  expect_output=True)
        if res["rc"] != 0:
            raise PostgresError("psql in %s failed (rc %s): %s" % (
                self.container.name, res["rc"], (res["stderr"] or res["stdout"]).strip()[-500:]))
        return res["stdout"].strip()

    def dump(self, sink):
        """``pg_dump --format=custom`` of the database into ``sink(bytes)``: one consistent snapshot
        (pg_dump reads in one repeatable-read transaction). Returns dict(cmd, rc, bytes, stderr)."""
        argv = ["pg_dump", "--format=custom"] + self._conn()
        res = self.client.exec_stream_out(self.container, argv, sink, user=self.exec_user,
                                          environment={"PGCONNECT_TIMEOUT": "10"})
        if res["rc"] != 0:
            raise PostgresError("pg_dump of %s in %s failed (rc %s): %s" % (
                self.name, self.container.name, res["rc"], res["stderr"].strip()[-500:]))
        return res

    def restore(self, chunks, lock_timeout_s=60):
        """``pg_restore`` of a custom-format dump (``chunks``: its bytes), whole or not at all; waits at
        most ``lock_timeout_s`` for a lock the service's sessions hold. Returns dict(cmd, rc, bytes, stdout, stderr)."""
        argv = ["pg_restore", "--clean", "--if-exists", "--single-transaction", "--exit-on-error"] + self._conn()
        env = {"PGCONNECT_TIMEOUT": "10", "PGOPTIONS": "-c lock_timeout=%ds" % int(lock_timeout_s)}
        res = self.client.exec_stream_in(self.container, argv, chunks, user=self.exec_user, environment=env)
        if res["rc"] != 0:
            raise PostgresError("pg_restore into %s in %s failed (rc %s), nothing was restored: %s" % (
                self.name, self.container.name, res["rc"], (res["stderr"] or res["stdout"]).strip()[-800:]))
        return res
