# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Drill faults (SPEC DR-1, DR-2, DR-4): inject one real fault into a staging stack, and roll it back.

Each fault has three operations on a :class:`Target` (the compose project on the managed host's
engine): ``observe`` (is it injected now? read-only), ``inject`` and ``rollback``. ``changed``
comes from observing before and after, never from a command's exit code. Rolling back a fault
that is not injected is a no-op, so a drill can always call it.

| fault | inject | rollback |
|---|---|---|
| app_crash | SIGKILL the service's container | start it, wait until ready |
| app_hang | pause the service's container | unpause it |
| redis_down / postgres_down | stop the dependency | start it, wait until healthy |
| cache_wipe | save item_scores into sre_drill.item_scores_saved, empty item_scores, delete recs:* keys |
|  | rollback: put the saved rows back exactly, drop the copy, delete recs:* keys |
| latency | Redis key recsys:delay_ms = delay_ms | delete the key |
| db_connections_exhausted | a helper in the service's own container (a leak: the app's database user) holds every |
|  | connection slot the app may use but ``spare_connections``; rollback: terminate them (it exits) |
| disk_fill | fill the bounded log volume of the service's container with one file | delete the file |

Refusal (DR-4): :func:`refuse_production` runs before anything is touched; a managed host is
production when the ``environment`` given is ``production`` or the marker file
``/etc/sre-incident/production`` exists on it.
"""

from __future__ import annotations

import os
import re

from ansible_collections.sre.incident.plugins.module_utils import _compose, _stack
from ansible_collections.sre.incident.plugins.module_utils._errors import IncidentError
from ansible_collections.sre.incident.plugins.module_utils._wait import poll_until

STATES = ("present", "injected", "rolled_back")
PRODUCTION_MARKER = "/etc/sre-incident/production"
# Faults the P0 playbook answers (the service is down for everyone) and the P1 cases of the runbook.
FAULTS = {
    "app_crash": dict(severity="P0", text="the service's container killed (SIGKILL)"),
    "app_hang": dict(severity="P0", text="the service's container paused (frozen, answers nothing)"),
    "redis_down": dict(severity="P0", text="Redis stopped"),
    "postgres_down": dict(severity="P0", text="PostgreSQL stopped"),
    "db_connections_exhausted": dict(severity="P1", text="all but a few of the application's PostgreSQL connection slots held "
                                                         "(leaked) inside the service's container"),
    "cache_wipe": dict(severity="P1", text="item_scores emptied and the recommendation cache deleted: empty results"),
    "latency": dict(severity="P1", text="added latency on every recommendation (Redis key recsys:delay_ms)"),
    "disk_fill": dict(severity="P1", text="the service's bounded log volume filled to 100 %"),
}
DELAY_KEY = "recsys:delay_ms"
CACHE_PATTERN = "recs:*"
SAVED_TABLE = "sre_drill.item_scores_saved"
HOLDER_NAME = "sre-incident-drill-hold"
FILL_FILE = "sre-incident-drill-fill"
DEFAULT_TABLES = ("items", "users", "interactions", "item_scores")
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
# Deletes the keys matching ARGV[1] and returns how many (SCAN, so Redis is not blocked on big caches).
_DEL_SCRIPT = ("local n, cur = 0, '0' repeat local r = redis.call('SCAN', cur, 'MATCH', ARGV[1], 'COUNT', 500) "
               "cur = r[1] for _, k in ipairs(r[2]) do redis.call('DEL', k) n = n + 1 end until cur == '0' return n")


class FaultError(IncidentError):
    """A fault could not be observed, injected or rolled back; ``details`` go into the failure."""


class Refused(FaultError):
    """The managed host is production: nothing was touched."""

    refused = True


def refuse_production(environment, marker=PRODUCTION_MARKER, exists=None):
    """Raise Refused when the host is production (the ``environment`` value or the marker file)."""
    exists = exists or os.path.exists
    if str(environment or "").strip().lower() == "production":
        raise Refused("refusing to inject or roll back a fault: this host is marked production (environment=production). "
                      "Drills run on staging only; nothing was touched.", reason="environment")
    if marker and exists(marker):
        raise Refused("refusing to inject or roll back a fault: the marker file %s on this host says it is production. "
                      "Drills run on staging only; nothing was touched." % marker, reason="marker", marker=marker)


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
    settings = dict(
        name=name, state=state, project=stack["name"],
        service=stack.get("service") or "recommendation-service",
        postgres=db.get("service") or "postgres", db_name=db.get("name") or "recommendation_db",
        db_user=db.get("user") or "postgres", db_port=_stack.port_args(stack, "database"),
        redis=(stack.get("redis") or {}).get("service") or "redis", redis_port=_stack.port_args(stack, "redis"),
        delay_ms=int(params.get("delay_ms") if params.get("delay_ms") is not None else 800),
        spare=int(params.get("spare_connections") if params.get("spare_connections") is not None else 5),
        log_dir=params.get("log_dir") or "/var/log/recsys",
        max_fill_mb=int(params.get("max_fill_mb") if params.get("max_fill_mb") is not None else 256),
        hold_seconds=int(params.get("hold_seconds") or 1800),
        timeout=float(params.get("timeout") or 60),
        tables=list(params.get("checksum_tables") or DEFAULT_TABLES),
    )
    if not 1 <= settings["delay_ms"] <= 60000:
        raise ValueError("delay_ms must be between 1 and 60000, got %r" % settings["delay_ms"])
    if settings["spare"] < 0:
        raise ValueError("spare_connections must be >= 0, got %r" % settings["spare"])
    if not settings["log_dir"].startswith("/") or any(ch.isspace() for ch in settings["log_dir"]):
        raise ValueError("log_dir must be an absolute path without spaces, got %r" % settings["log_dir"])
    for key in ("db_name", "db_user"):
        if not _IDENT.match(settings[key]):
            raise ValueError("incident_stack.database %s %r is not a plain identifier" % (key, settings[key]))
    for table in settings["tables"]:
        if not _IDENT.match(table):
            raise ValueError("checksum table %r is not a plain identifier" % (table,))
    return settings


class Target:
    """The compose project on the managed host's engine, through _compose (the one Docker client)."""

    def __init__(self, client, project):
        self.client = client
        self.project = project

    def container(self, service):
        found = self.client.find_containers(self.project, service=service)
        return found[0] if found else None

    def status(self, service):
        """Plain container state, or None when the service has no container."""
        found = self.container(service)
        return _compose.container_state(found) if found is not None else None

    def act(self, service, action):
        found = self.container(service)
        if found is None:
            raise FaultError("service %r of compose project %r has no container" % (service, self.project))
        return self.client.apply(found, action)

    def wait_ready(self, service, timeout):
        found = self.container(service)
        ok, state, elapsed = self.client.wait_ready(found, timeout)
        return ok, state, elapsed

    def exec(self, service, argv):
        return _compose.exec_in_service(self.client, self.project, service, argv)

    def exec_detached(self, service, argv):
        return _compose.exec_detached_in_service(self.client, self.project, service, argv)


# --------------------------------------------------------------------------- helpers

def _check(result, what):
    if result["rc"] != 0:
        raise FaultError("%s failed (rc %s): %s" % (what, result["rc"], (result.get("stderr") or result.get("stdout") or "").strip()[:400]),
                         cmd=result.get("cmd"), rc=result["rc"], stdout=result.get("stdout"), stderr=result.get("stderr"))
    return result["stdout"].strip()


def psql(target, s, sql):
    argv = ["psql", "-U", s["db_user"], "-d", s["db_name"]] + s["db_port"] + ["-v", "ON_ERROR_STOP=1", "-X", "-q", "-tAc", sql]
    return _check(target.exec(s["postgres"], argv), "psql in %s" % s["postgres"])


def redis_cli(target, s, *args):
    out = _check(target.exec(s["redis"], ["redis-cli"] + s["redis_port"] + ["--no-raw"] + list(args)), "redis-cli in %s" % s["redis"])
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


def delete_cache(target, s):
    return _redis_value(redis_cli(target, s, "EVAL", _DEL_SCRIPT, "0", CACHE_PATTERN))


def checksum_sql(tables):
    parts = ["'%s', (SELECT json_build_array(count(*), md5(coalesce(string_agg(x::text, E'\\n' ORDER BY x::text), ''))) FROM %s x)"
             % (t, t) for t in tables]
    return "SELECT json_build_object(%s)" % ", ".join(parts)


def data_checksum(target, s):
    """dict(tables={name: {rows, md5}}, md5): row counts and md5 of every row, ordered (DR-3)."""
    import hashlib
    import json

    raw = json.loads(psql(target, s, checksum_sql(s["tables"])))
    tables = {name: dict(rows=int(value[0]), md5=value[1]) for name, value in raw.items()}
    whole = hashlib.md5("|".join("%s:%s:%s" % (n, tables[n]["rows"], tables[n]["md5"]) for n in sorted(tables)).encode()).hexdigest()
    return dict(tables=tables, md5=whole)


def holder_argv(s, count):
    """The leak: ``count`` connections opened with the service's own settings (its environment), from inside its
    container; it keeps what it got when the server refuses more, and exits when they are terminated (or the
    container stops) or after hold_seconds."""
    code = ("import os, psycopg2, time\n"
            "env = os.environ\n"
            "kw = dict(application_name=%r, connect_timeout=5)\n"
            "if env.get('DATABASE_URL'):\n"
            "    args = (env['DATABASE_URL'],)\n"
            "else:\n"
            "    args = ()\n"
            "    kw.update(host=env.get('POSTGRES_HOST', 'postgres'), port=int(env.get('POSTGRES_PORT', '5432')),\n"
            "              dbname=env.get('POSTGRES_DB', %r), user=env.get('POSTGRES_USER', 'recsys'),\n"
            "              password=env.get('POSTGRES_PASSWORD', ''))\n"
            "cs = []\n"
            "for i in range(%d):\n"
            "    try:\n"
            "        cs.append(psycopg2.connect(*args, **kw))\n"
            "    except psycopg2.Error:\n"
            "        break\n"
            "end = time.monotonic() + %d\n"
            "while cs and time.monotonic() < end:\n"
            "    try:\n"
            "        cs[0].cursor().execute('SELECT 1')\n"
            "    except psycopg2.Error:\n"
            "        break\n"
            "    time.sleep(1)\n") % (HOLDER_NAME, s["db_name"], count, s["hold_seconds"])
    return ["python3", "-c", code, HOLDER_NAME]


def _held(target, s):
    return int(psql(target, s, "SELECT count(*) FROM pg_stat_activity WHERE application_name = '%s'" % HOLDER_NAME) or 0)


def _fill_path(s):
    return "%s/%s" % (s["log_dir"].rstrip("/"), FILL_FILE)


def _df(target, s):
    """(size_kb, used_kb, used_percent) of the file system of log_dir in the service's container."""
    out = _check(target.exec(s["service"], ["df", "-Pk", s["log_dir"]]), "df in %s" % s["service"])
    fields = out.splitlines()[-1].split()
    return int(fields[1]), int(fields[2]), int(fields[4].rstrip("%"))


# --------------------------------------------------------------------------- observe

def observe(target, s):
    """Is the fault injected now? dict(injected, detail); reads only."""
    name = s["name"]
    if name in ("app_crash", "app_hang", "redis_down", "postgres_down"):
        service = {"redis_down": s["redis"], "postgres_down": s["postgres"]}.get(name, s["service"])
        state = target.status(service)
        status = state["status"] if state else "missing"
        injected = status == "paused" if name == "app_hang" else status not in ("running", "paused", "restarting")
        return dict(injected=injected, detail="%s is %s" % (service, status), status=status)
    if name == "latency":
        value = _redis_value(redis_cli(target, s, "GET", DELAY_KEY))
        return dict(injected=value is not None, detail="%s = %s" % (DELAY_KEY, value), delay_ms=value)
    if name == "cache_wipe":
        saved = psql(target, s, "SELECT to_regclass('%s') IS NOT NULL" % SAVED_TABLE) == "t"
        rows = int(psql(target, s, "SELECT count(*) FROM item_scores"))
        return dict(injected=saved, detail="item_scores has %d rows; saved copy %s" % (rows, "present" if saved else "absent"),
                    item_scores_rows=rows, saved_copy=saved)
    if name == "db_connections_exhausted":
        held = _held(target, s)
        return dict(injected=held > 0, detail="%d connections held by %s" % (held, HOLDER_NAME), held=held)
    # disk_fill
    present = target.exec(s["service"], ["test", "-e", _fill_path(s)])["rc"] == 0
    size_kb, used_kb, percent = _df(target, s)
    return dict(injected=present, detail="%s %s; %s at %d %% of %d KiB" % (_fill_path(s), "present" if present else "absent",
                                                                           s["log_dir"], percent, size_kb),
                used_percent=percent, size_kb=size_kb)


# --------------------------------------------------------------------------- inject / rollback

def inject(target, s):
    """Inject the fault (it is not injected now); returns a list of what was done."""
    name = s["name"]
    if name == "app_crash":
        target.act(s["service"], "kill")
        return ["killed %s (SIGKILL)" % s["service"]]
    if name == "app_hang":
        target.act(s["service"], "pause")
        return ["paused %s" % s["service"]]
    if name in ("redis_down", "postgres_down"):
        service = s["redis"] if name == "redis_down" else s["postgres"]
        target.act(service, "stop")
        return ["stopped %s" % service]
    if name == "latency":
        redis_cli(target, s, "SET", DELAY_KEY, str(s["delay_ms"]))
        return ["set %s = %d" % (DELAY_KEY, s["delay_ms"])]
    if name == "cache_wipe":
        rows = psql(target, s, "CREATE SCHEMA IF NOT EXISTS sre_drill; CREATE TABLE %s AS SELECT * FROM item_scores; "
                               "DELETE FROM item_scores; SELECT count(*) FROM %s" % (SAVED_TABLE, SAVED_TABLE))
        deleted = delete_cache(target, s)
        return ["saved %s item_scores rows into %s" % (rows.splitlines()[-1], SAVED_TABLE), "emptied item_scores",
                "deleted %s cached recommendation lists (%s)" % (deleted, CACHE_PATTERN)]
    if name == "db_connections_exhausted":
        limit, reserved, used = (int(v) for v in psql(target, s, (
            "SELECT current_setting('max_connections') || ' ' || current_setting('superuser_reserved_connections') || ' ' || "
            "(SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend')")).split())
        count = max(1, limit - reserved - s["spare"] - used)
        target.exec_detached(s["service"], holder_argv(s, count))
        ok, held, elapsed = poll_until(lambda: _held(target, s) >= count or None, s["timeout"], interval=0.25)
        if not ok:
            raise FaultError("the leak in %s did not open %d connections within %s s (%d open)"
                             % (s["service"], count, s["timeout"], _held(target, s)))
        return ["a helper in %s (the application's database user) holds %d connections: %d of max_connections=%d in use, "
                "%d left for the application" % (s["service"], count, count + used, limit, max(0, limit - reserved - count - used))]
    # disk_fill
    size_kb = _df(target, s)[0]
    if size_kb > s["max_fill_mb"] * 1024:
        raise FaultError("refusing to fill %s: its file system has %d MiB, more than max_fill_mb=%d (only a bounded volume is filled)"
                         % (s["log_dir"], size_kb // 1024, s["max_fill_mb"]))
    result = target.exec(s["service"], ["dd", "if=/dev/zero", "of=" + _fill_path(s), "bs=1M", "count=%d" % (size_kb // 1024 + 1)])
    percent = _df(target, s)[2]
    if target.exec(s["service"], ["test", "-e", _fill_path(s)])["rc"] != 0:
        _check(result, "dd in %s" % s["service"])
    return ["wrote %s until the volume was full (%d %% used)" % (_fill_path(s), percent)]


def rollback(target, s):
    """Undo the fault (it is injected now); returns a list of what was done."""
    name = s["name"]
    if name in ("app_crash", "redis_down", "postgres_down"):
        service = {"redis_down": s["redis"], "postgres_down": s["postgres"]}.get(name, s["service"])
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
        redis_cli(target, s, "DEL", DELAY_KEY)
        return ["deleted %s" % DELAY_KEY]
    if name == "cache_wipe":
        rows = psql(target, s, "DELETE FROM item_scores; INSERT INTO item_scores SELECT * FROM %s; DROP TABLE %s; "
                               "DROP SCHEMA IF EXISTS sre_drill; SELECT count(*) FROM item_scores" % (SAVED_TABLE, SAVED_TABLE))
        deleted = delete_cache(target, s)
        return ["restored %s item_scores rows exactly from %s and dropped the copy" % (rows.splitlines()[-1], SAVED_TABLE),
                "deleted %s cached recommendation lists" % deleted]
    if name == "db_connections_exhausted":
        n = psql(target, s, "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = '%s'" % HOLDER_NAME)
        ok, value, elapsed = poll_until(lambda: _held(target, s) == 0, s["timeout"], interval=0.25)
        if not ok:
            raise FaultError("connections of %s still open %s s after terminating them" % (HOLDER_NAME, s["timeout"]))
        return ["terminated %s held connections" % n]
    _check(target.exec(s["service"], ["rm", "-f", _fill_path(s)]), "rm in %s" % s["service"])
    return ["deleted %s" % _fill_path(s)]


def how_to_roll_back(s):
    return dict(module="sre.incident.fault", args=dict(name=s["name"], state="rolled_back"),
                text={"app_crash": "start %s" % s["service"], "app_hang": "unpause %s" % s["service"],
                      "redis_down": "start %s" % s["redis"], "postgres_down": "start %s" % s["postgres"],
                      "latency": "redis-cli DEL %s" % DELAY_KEY,
                      "cache_wipe": "put the rows of %s back into item_scores, drop the copy, delete %s" % (SAVED_TABLE, CACHE_PATTERN),
                      "db_connections_exhausted": "pg_terminate_backend the connections named %s" % HOLDER_NAME,
                      "disk_fill": "rm -f %s" % _fill_path(s)}[s["name"]])


def run(params, target, check_mode=False):
    """The work of ``sre.incident.fault`` (call :func:`refuse_production` first).

    Returns dict(changed, fault, state, severity, description, injected, before, after, actions,
    rollback, checksum, diff).
    """
    s = validate(params)
    before = observe(target, s)
    want = {"injected": True, "rolled_back": False}.get(s["state"])
    changed = want is not None and before["injected"] != want
    actions = []
    after = before
    if changed and not check_mode:
        actions = inject(target, s) if want else rollback(target, s)
        after = observe(target, s)
    elif changed:
        actions = ["would %s %s" % ("inject" if want else "roll back", s["name"])]
    injected_after = want if (changed and check_mode) else after["injected"]
    result = dict(changed=changed, fault=s["name"], state=s["state"], severity=FAULTS[s["name"]]["severity"],
                  description=FAULTS[s["name"]]["text"], injected=injected_after, before=before, after=after,
                  actions=actions, rollback=how_to_roll_back(s), checksum=None)
    if params.get("checksum"):
        result["checksum"] = data_checksum(target, s)
    result["diff"] = dict(before="%s: %s (%s)\n" % (s["name"], "injected" if before["injected"] else "not injected", before["detail"]),
                          after="%s: %s\n" % (s["name"], "injected" if injected_after else "not injected"))
    return result
