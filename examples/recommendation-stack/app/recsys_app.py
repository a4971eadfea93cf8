from __future__ import annotations

# recommendation-service: the demo recommendation API of the reference stack.
#
# Python 3 standard library HTTP server (ThreadingHTTPServer) plus Debian's
# python3-psycopg2 and python3-redis. Endpoints:
#
#   GET  /health                          200 {"status":"ok",...} or 503 naming what is down
#   GET  /api/recommendations/<user>?limit=N
#   POST /api/recommendations/clear-cache {"cleared": n}
#   POST /api/admin/refresh-scores        recompute item_scores (SQL refresh_item_scores())
#   GET  /metrics                         Prometheus text format
#
# Logs: one JSON object per line on stdout (ts, level, msg, ...), also appended
# to $RECSYS_LOG_DIR/app-<instance>.log when that directory is writable.
# Every environment variable is listed in CONFIG below and in README.md.

import concurrent.futures
import json
import os
import re
import signal
import sys
import threading
import time
import traceback
import uuid
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable
from urllib.parse import parse_qs, unquote, urlsplit

import psycopg2
import redis

VERSION = "1.0.0"


def _env_bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return default
    return value.strip().lower() in ("1", "true", "yes", "on")


def _env_float(name: str, default: float) -> float:
    try:
        return float(os.environ.get(name, default))
    except ValueError:
        return default


CONFIG: dict[str, Any] = {
    "port": int(os.environ.get("RECSYS_PORT", "3000")),
    "instance": os.environ.get("RECSYS_INSTANCE", "primary"),
    # Either DATABASE_URL or the separate POSTGRES_* variables.
    "database_url": os.environ.get("DATABASE_URL", ""),
    "pg_host": os.environ.get("POSTGRES_HOST", "postgres"),
    "pg_port": int(os.environ.get("POSTGRES_PORT", "5432")),
    "pg_db": os.environ.get("POSTGRES_DB", "recommendation_db"),
    "pg_user": os.environ.get("POSTGRES_USER", "recsys"),
    "redis_url": os.environ.get("REDIS_URL", "redis://redis:6379/0"),
    "downgrade_mode": _env_bool("DOWNGRADE_MODE"),
    "static_top_file": os.environ.get("STATIC_TOP_FILE", "/srv/recsys/static_top.json"),
    "cache_ttl_s": int(os.environ.get("RECSYS_CACHE_TTL_S", "300")),
    "db_connect_timeout_s": int(os.environ.get("RECSYS_DB_CONNECT_TIMEOUT_S", "2")),
    "dep_check_timeout_s": _env_float("RECSYS_DEP_CHECK_TIMEOUT_S", 1.0),
    "log_dir": os.environ.get("RECSYS_LOG_DIR", "/var/log/recsys"),
}
# Kept out of CONFIG so that logging CONFIG can never leak it.
_PG_PASSWORD = os.environ.get("POSTGRES_PASSWORD", "")

CACHE_PREFIX = "recs:"
DEFAULT_LIMIT, MAX_LIMIT = 10, 100
USER_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@:-]{0,63}$")
START_TIME = time.time()


# --------------------------------------------------------------------------
# Structured logging

_log_lock = threading.Lock()
_log_file_failing = False


def log(level: str, msg: str, **fields: Any) -> None:
    """Write one JSON log line to stdout and (best effort) to the log file."""
    global _log_file_failing
    record = {
        "ts": datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "level": level,
        "msg": msg,
        "service": "recommendation-service",
        "instance": CONFIG["instance"],
    }
    record.update(fields)
    line = json.dumps(record, default=str, separators=(",", ":")) + "\n"
    with _log_lock:
        sys.stdout.write(line)
        sys.stdout.flush()
        if not CONFIG["log_dir"]:
            return
        path = os.path.join(CONFIG["log_dir"], f"app-{CONFIG['instance']}.log")
        try:
            # Open per line: a deleted or truncated log file frees its space at
            # once (no file handle keeps a removed file alive).
            with open(path, "a", encoding="utf-8") as fh:
                fh.write(line)
            if _log_file_failing:
                _log_file_failing = False
                sys.stdout.write(_plain_line("INFO", "log file writable again", path=path))
        except OSError as exc:
            METRICS.inc_simple("recsys_log_write_errors_total")
            if not _log_file_failing:  # report the transition once, not every line
                _log_file_failing = True
                sys.stdout.write(_plain_line("ERROR", "cannot write log file", path=path, error=str(exc)))
        sys.stdout.flush()


def _plain_line(level: str, msg: str, **fields: Any) -> str:
    record = {
        "ts": datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "level": level,
        "msg": msg,
        "service": "recommendation-service",
        "instance": CONFIG["instance"],
        **fields,
    }
    return json.dumps(record, default=str, separators=(",", ":")) + "\n"


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


# --------------------------------------------------------------------------
# Metrics (Prometheus text format, written by hand)

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: dict[tuple[str, str], int] = {}
        self.errors: dict[str, int] = {}
        self.hist: dict[str, list[int]] = {}  # per path: counts per bucket (+Inf last)
        self.hist_sum: dict[str, float] = {}
        self.simple: dict[str, int] = {}  # counters with an optional label string in the key

    def observe(self, path: str, status: int, seconds: float) -> None:
        with self._lock:
            key = (path, str(status))
            self.requests[key] = self.requests.get(key, 0) + 1
            self.errors.setdefault(path, 0)
            if status >= 500:
                self.errors[path] += 1
            counts = self.hist.setdefault(path, [0] * (len(BUCKETS) + 1))
            for i, bound in enumerate(BUCKETS):
                if seconds <= bound:
                    counts[i] += 1
            counts[-1] += 1
            self.hist_sum[path] = self.hist_sum.get(path, 0.0) + seconds

    def inc_simple(self, name: str, labels: str = "") -> None:
        with self._lock:
            key = f"{name}{{{labels}}}" if labels else name
            self.simple[key] = self.simple.get(key, 0) + 1

    def render(self) -> str:
        out: list[str] = []
        with self._lock:
            out += ["# HELP http_requests_total HTTP requests by route and status code.",
                    "# TYPE http_requests_total counter"]
            for (path, status), n in sorted(self.requests.items()):
                out.append(f'http_requests_total{{path="{path}",status="{status}"}} {n}')
            out += ["# HELP http_request_errors_total HTTP requests answered with a 5xx status.",
                    "# TYPE http_request_errors_total counter"]
            for path, n in sorted(self.errors.items()):
                out.append(f'http_request_errors_total{{path="{path}"}} {n}')
            out += ["# HELP http_request_duration_seconds HTTP request latency.",
                    "# TYPE http_request_duration_seconds histogram"]
            for path, counts in sorted(self.hist.items()):
                for bound, n in zip(BUCKETS, counts):
                    out.append(f'http_request_duration_seconds_bucket{{path="{path}",le="{bound}"}} {n}')
                out.append(f'http_request_duration_seconds_bucket{{path="{path}",le="+Inf"}} {counts[-1]}')
                out.append(f'http_request_duration_seconds_sum{{path="{path}"}} {self.hist_sum[path]:.6f}')
                out.append(f'http_request_duration_seconds_count{{path="{path}"}} {counts[-1]}')
            typed: set[str] = set()
            for key, n in sorted(self.simple.items()):
                name = key.split("{", 1)[0]
                if name not in typed:
                    typed.add(name)
                    out.append(f"# TYPE {name} counter")
                out.append(f"{key} {n}")
        out += [
            "# TYPE recsys_downgrade_mode gauge",
            f"recsys_downgrade_mode {1 if CONFIG['downgrade_mode'] else 0}",
            "# TYPE recsys_build_info gauge",
            f'recsys_build_info{{version="{VERSION}",instance="{CONFIG["instance"]}"}} 1',
            "# TYPE process_start_time_seconds gauge",
            f"process_start_time_seconds {START_TIME:.3f}",
        ]
        return "\n".join(out) + "\n"


METRICS = Metrics()


# --------------------------------------------------------------------------
# Dependencies

def db_connect(timeout_s: int | None = None) -> Any:
    """A new PostgreSQL connection (one per request, no pool).

    Deliberately simple: when max_connections is exhausted, requests fail at
    once with "too many clients" (or time out), which makes the runbook's
    connection-exhaustion case observable.
    """
    timeout = max(1, int(timeout_s or CONFIG["db_connect_timeout_s"]))
    common = dict(connect_timeout=timeout,
                  application_name=f"recsys-{CONFIG['instance']}",
                  options="-c statement_timeout=5000")
    if CONFIG["database_url"]:
        return psycopg2.connect(CONFIG["database_url"], **common)
    return psycopg2.connect(host=CONFIG["pg_host"], port=CONFIG["pg_port"], dbname=CONFIG["pg_db"],
                            user=CONFIG["pg_user"], password=_PG_PASSWORD, **common)


REDIS = redis.Redis.from_url(CONFIG["redis_url"], socket_timeout=1.0, socket_connect_timeout=1.0)

# Health probes run in a small pool so that each can be abandoned after the
# check timeout (libpq's own connect timeout cannot go below 2 s, and a paused
# server never answers at all).
_PROBE_POOL = concurrent.futures.ThreadPoolExecutor(max_workers=4, thread_name_prefix="probe")


class Probe:
    """One dependency check; a still-running (hung) check is joined, not duplicated."""

    def __init__(self, name: str, fn: Callable[[], None]) -> None:
        self.name = name
        self._fn = fn
        self._lock = threading.Lock()
        self._future: concurrent.futures.Future | None = None

    def check(self, timeout_s: float) -> tuple[bool, str | None, float]:
        started = time.monotonic()
        with self._lock:
            if self._future is None or self._future.done():
                self._future = _PROBE_POOL.submit(self._fn)
            future = self._future
        try:
            future.result(timeout=timeout_s)
            return True, None, (time.monotonic() - started) * 1000
        except concurrent.futures.TimeoutError:
            return False, f"no answer within {timeout_s:g}s", (time.monotonic() - started) * 1000
        except Exception as exc:  # noqa: BLE001 - any failure means "down"
            return False, first_line(exc), (time.monotonic() - started) * 1000


def _check_postgres() -> None:
    conn = db_connect(timeout_s=1)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT 1")
            cur.fetchone()
    finally:
        conn.close()


def _check_redis() -> None:
    REDIS.ping()


PROBES = [Probe("postgres", _check_postgres), Probe("redis", _check_redis)]


def load_static_top() -> list[dict[str, Any]]:
    try:
        with open(CONFIG["static_top_file"], encoding="utf-8") as fh:
            return list(json.load(fh)["items"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log("ERROR", "cannot load static top-N file", path=CONFIG["static_top_file"], error=str(exc))
        return []


STATIC_TOP = load_static_top()


# --------------------------------------------------------------------------
# Handlers. Each returns (status, body, fields-for-the-access-log).

Result = tuple[int, Any, dict[str, Any]]


def handle_health() -> Result:
    timeout = CONFIG["dep_check_timeout_s"]
    # Submit both checks first so they run concurrently.
    started = time.monotonic()
    results: dict[str, tuple[bool, str | None, float]] = {}
    threads = [threading.Thread(target=lambda p=p: results.__setitem__(p.name, p.check(timeout)))
               for p in PROBES]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    down = [name for name, (ok, _ms, _err) in results.items() if not ok]
    body: dict[str, Any] = {"status": "ok" if not down else "unhealthy"}
    if down:
        body["down"] = sorted(down)
    for name, (ok, _err, _ms) in sorted(results.items()):
        body[name] = "up" if ok else "down"
    body["checks"] = {name: {"ok": ok, "ms": round(ms, 1), **({"error": err} if err else {})}
                      for name, (ok, err, ms) in sorted(results.items())}
    body.update(instance=CONFIG["instance"], version=VERSION,
                downgrade_mode=CONFIG["downgrade_mode"],
                uptime_s=round(time.time() - START_TIME, 1),
                check_ms=round((time.monotonic() - started) * 1000, 1))
    if down:
        log("WARNING", "health check failed", down=sorted(down),
            errors={n: results[n][1] for n in down})
        return 503, body, {}
    return 200, body, {}


def handle_recommendations(user: str, query: dict[str, list[str]]) -> Result:
    if not USER_RE.match(user):
        return 400, {"error": "invalid user id", "user": user}, {}
    raw_limit = query.get("limit", [str(DEFAULT_LIMIT)])[0]
    try:
        limit = int(raw_limit)
    except ValueError:
        return 400, {"error": "limit must be an integer", "limit": raw_limit}, {}
    if limit < 1:
        return 400, {"error": "limit must be at least 1", "limit": limit}, {}
    limit = min(limit, MAX_LIMIT)
    fields: dict[str, Any] = {"user": user, "limit": limit}

    def answer(recs: list[dict[str, Any]], source: str) -> Result:
        fields.update(source=source, count=len(recs))
        return 200, {"user": user, "count": len(recs), "limit": limit, "recommendations": recs,
                     "source": source, "instance": CONFIG["instance"]}, fields

    if CONFIG["downgrade_mode"]:
        # Degrade option B: site-wide top-N baked into the image; no DB/Redis.
        if not STATIC_TOP:
            log("ERROR", "DOWNGRADE_MODE is on but the static top-N list is empty",
                path=CONFIG["static_top_file"])
            return 503, {"error": "static recommendations unavailable", "user": user}, fields
        return answer(STATIC_TOP[:limit], "static")

    cache_key = f"{CACHE_PREFIX}{user}:{limit}"
    redis_ok, cached = True, None
    try:
        cached = REDIS.get(cache_key)
    except redis.RedisError as exc:
        redis_ok = False
        METRICS.inc_simple("recsys_dependency_errors_total", 'dependency="redis"')
        METRICS.inc_simple("recsys_cache_requests_total", 'result="error"')
        log("WARNING", "redis unavailable, computing recommendations from the database",
            user=user, error=first_line(exc))

    if cached is not None:
        try:
            recs = json.loads(cached)
            METRICS.inc_simple("recsys_cache_requests_total", 'result="hit"')
            return answer(recs, "cache")
        except ValueError:
            log("WARNING", "unreadable cache entry ignored", key=cache_key)
    elif redis_ok:
        METRICS.inc_simple("recsys_cache_requests_total", 'result="miss"')

    try:
        conn = db_connect()
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT item_id, title, category, score FROM recommendations_for(%s, %s)",
                            (user, limit))
                rows = cur.fetchall()
        finally:
            conn.close()
    except psycopg2.Error as exc:
        METRICS.inc_simple("recsys_dependency_errors_total", 'dependency="postgres"')
        log("ERROR", "database error while computing recommendations", user=user,
            error=first_line(exc), error_type=type(exc).__name__,
            pgcode=getattr(exc, "pgcode", None))
        return 503, {"error": "recommendations unavailable: database error",
                     "detail": first_line(exc), "user": user}, fields

    recs = [{"item_id": r[0], "title": r[1], "category": r[2], "score": float(r[3])} for r in rows]
    if redis_ok and recs:  # empty answers are not cached
        try:
            REDIS.set(cache_key, json.dumps(recs, separators=(",", ":")), ex=CONFIG["cache_ttl_s"])
        except redis.RedisError as exc:
            log("WARNING", "could not write recommendations to the cache", key=cache_key,
                error=first_line(exc))
    if not recs:
        log("WARNING", "no recommendations for user (is item_scores empty?)", user=user)
    return answer(recs, "database")


def clear_cache() -> int:
    """Delete every recs:* key; return how many were deleted."""
    cleared, batch = 0, []
    for key in REDIS.scan_iter(match=f"{CACHE_PREFIX}*", count=500):
        batch.append(key)
        if len(batch) >= 500:
            cleared += REDIS.delete(*batch)
            batch = []
    if batch:
        cleared += REDIS.delete(*batch)
    return cleared


def handle_clear_cache() -> Result:
    try:
        n = clear_cache()
    except redis.RedisError as exc:
        log("ERROR", "clear-cache failed: redis unavailable", error=first_line(exc))
        return 503, {"error": "cache unavailable", "detail": first_line(exc)}, {}
    log("INFO", "recommendation cache cleared", cleared=n)
    return 200, {"cleared": n}, {"cleared": n}


def handle_refresh_scores() -> Result:
    try:
        conn = db_connect()
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT refresh_item_scores()")
                n = cur.fetchone()[0]
            conn.commit()
        finally:
            conn.close()
    except psycopg2.Error as exc:
        log("ERROR", "refresh_item_scores failed", error=first_line(exc))
        return 503, {"error": "score refresh failed: database error", "detail": first_line(exc)}, {}
    try:
        cleared: int | None = clear_cache()  # cached lists were ranked with the old scores
    except redis.RedisError as exc:
        cleared = None
        log("WARNING", "scores refreshed but the cache could not be cleared", error=first_line(exc))
    log("INFO", "item scores refreshed", refreshed=n, cache_cleared=cleared)
    return 200, {"refreshed": n, "cache_cleared": cleared}, {"refreshed": n}


# --------------------------------------------------------------------------
# HTTP plumbing

QUIET_PATHS = ("/health", "/metrics")  # successful probes are not access-logged


class Handler(BaseHTTPRequestHandler):
    server_version = f"recsys/{VERSION}"
    sys_version = ""

    def do_GET(self) -> None:  # noqa: N802 - http.server naming
        self._dispatch("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._dispatch("POST")

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass  # replaced by the JSON access log in _dispatch

    def _route(self, method: str, path: str, query: dict[str, list[str]]) -> tuple[str, Callable[[], Result]]:
        """Map a request to (metrics label, handler)."""
        if path == "/health":
            return path, (handle_health if method == "GET" else self._not_allowed)
        if path == "/metrics":
            return path, ((lambda: (200, METRICS.render(), {})) if method == "GET" else self._not_allowed)
        if path == "/api/recommendations/clear-cache" and method == "POST":
            return path, handle_clear_cache
        if path == "/api/admin/refresh-scores":
            return path, (handle_refresh_scores if method == "POST" else self._not_allowed)
        if path.startswith("/api/recommendations/"):
            user = unquote(path[len("/api/recommendations/"):])
            if method != "GET":
                return "/api/recommendations/:user", self._not_allowed
            return "/api/recommendations/:user", lambda: handle_recommendations(user, query)
        return "other", lambda: (404, {"error": "not found", "path": path}, {})

    @staticmethod
    def _not_allowed() -> Result:
        return 405, {"error": "method not allowed"}, {}

    def _dispatch(self, method: str) -> None:
        started = time.monotonic()
        request_id = self.headers.get("X-Request-Id") or uuid.uuid4().hex[:16]
        url = urlsplit(self.path)
        label, handler = self._route(method, url.path, parse_qs(url.query))
        fields: dict[str, Any] = {}
        try:
            status, body, fields = handler()
        except Exception as exc:  # noqa: BLE001 - last resort: log the stack trace, answer 500
            log("ERROR", "unhandled exception", path=url.path, error=first_line(exc),
                traceback=traceback.format_exc())
            status, body = 500, {"error": "internal server error"}
        if isinstance(body, str):
            payload, ctype = body.encode(), "text/plain; version=0.0.4; charset=utf-8"
        else:
            payload, ctype = (json.dumps(body, separators=(",", ":")) + "\n").encode(), "application/json"
        try:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(payload)))
            self.send_header("X-Request-Id", request_id)
            self.send_header("X-Recsys-Instance", CONFIG["instance"])
            self.end_headers()
            self.wfile.write(payload)
        except OSError:
            pass  # client went away
        seconds = time.monotonic() - started
        METRICS.observe(label, status, seconds)
        if url.path in QUIET_PATHS and status < 400:
            return
        level = "INFO" if status < 400 else ("WARNING" if status < 500 or url.path == "/health" else "ERROR")
        log(level, "request", method=method, path=url.path, route=label, status=status,
            duration_ms=round(seconds * 1000, 1), request_id=request_id,
            remote=self.client_address[0], **fields)


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128


def main() -> None:
    server = Server(("0.0.0.0", CONFIG["port"]), Handler)

    def on_signal(signum: int, _frame: Any) -> None:
        log("INFO", "signal received, shutting down", signal=signal.Signals(signum).name)
        # shutdown() blocks until serve_forever returns: call it from another thread.
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    log("INFO", "recommendation-service starting", version=VERSION, port=CONFIG["port"],
        instance=CONFIG["instance"], downgrade_mode=CONFIG["downgrade_mode"],
        postgres=("DATABASE_URL" if CONFIG["database_url"] else
                  f"{CONFIG['pg_user']}@{CONFIG['pg_host']}:{CONFIG['pg_port']}/{CONFIG['pg_db']}"),
        redis_url=re.sub(r"//[^@/]*@", "//***@", CONFIG["redis_url"]), static_items=len(STATIC_TOP))
    try:
        server.serve_forever(poll_interval=0.5)
    finally:
        server.server_close()
        log("INFO", "recommendation-service stopped")


if __name__ == "__main__":
    main()
