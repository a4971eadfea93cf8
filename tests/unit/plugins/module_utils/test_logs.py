# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one log classifier (SPEC OUT-6): what an error line is, pinned on JSON and plain lines."""
from __future__ import annotations

import pytest

from ansible_collections.sre.incident.plugins.module_utils import _diagnose, _logs, _report, _verify


ERROR_LINES = [
    # JSON, each level key, any case
    ('{"ts":"2026-12-06T10:00:00Z","level":"ERROR","msg":"database error while computing recommendations"}', "ERROR"),
    ('{"time":1733479200000,"level":"error","msg":"query failed"}', "ERROR"),            # the shop stack's service
    ('{"severity":"ERROR","message":"x"}', "ERROR"),
    ('{"lvl":"crit","msg":"x"}', "CRITICAL"),
    ('{"log.level":"error","message":"ECS flat key"}', "ERROR"),
    ('{"log":{"level":"fatal"},"message":"ECS nested"}', "FATAL"),
    ('{"levelname":"CRITICAL","msg":"python json logger"}', "CRITICAL"),
    ('{"level":50,"time":1,"msg":"pino error"}', "ERROR"),
    ('{"level":60,"time":1,"msg":"pino fatal"}', "FATAL"),
    ('{"level":"PANIC"}', "PANIC"),
    # plain lines
    ("2026-12-06 10:00:00 ERROR recsys: database unavailable", "ERROR"),
    ("2026-11-27 01:00:00.123 UTC [12] FATAL:  sorry, too many clients already", "FATAL"),
    ("2026-11-27 01:00:00.123 UTC [12] ERROR:  relation \"items\" does not exist", "ERROR"),
    ("CRITICAL:root:disk full", "CRITICAL"),
    ("WARN retried, then ERROR: gave up", "ERROR"),
    ("panic: runtime error: index out of range [3] with length 3", "PANIC"),
    ("thread 'main' panicked at src/main.rs:10:5", "PANIC"),
    ("Traceback (most recent call last):", "ERROR"),
    ('  File "/srv/recsys/recsys_app.py", line 12, in <module>', "ERROR"),
    ("ValueError: invalid literal for int() with base 10: 'x'", "ERROR"),
    ("    at Object.<anonymous> (/srv/shop/server.js:14:11)", "ERROR"),
    ("    at process.processTicksAndRejections (node:internal/process/task_queues:95:5)", "ERROR"),
    ("\tat com.example.Shop.main(Shop.java:42)", "ERROR"),
    ("Caused by: java.io.IOException: broken pipe", "ERROR"),
    ("java.lang.IllegalStateException: closed", "ERROR"),
    ("goroutine 1 [running]:", "ERROR"),
    ("error: connect ECONNREFUSED 127.0.0.1:5433", "ERROR"),
    ("Error: connect ECONNREFUSED 127.0.0.1:5433", "ERROR"),
    ("fatal: not a git repository", "FATAL"),
    ("time=2026-12-06T10:00:00Z level=error msg=\"cache miss storm\"", "ERROR"),
    ("2026/12/06 10:00:00 [error] 7#7: *1 connect() failed (111: Connection refused) while connecting to upstream",
     "ERROR"),
    ("2026/12/06 10:00:00 [crit] 7#7: *1 open() failed", "CRITICAL"),
]

NOT_ERROR_LINES = [
    # JSON whose level is not an error level, whatever the message says
    ('{"level":"INFO","msg":"an error page was served","path":"/api/errors"}', "INFO"),
    ('{"level":"info","msg":"error: this text does not decide"}', "INFO"),
    ('{"level":"WARNING","msg":"redis unavailable","error":"Error 111 connecting to redis"}', "WARNING"),
    ('{"level":30,"msg":"pino info mentioning ERROR"}', "INFO"),
    ('{"level":40,"msg":"pino warn"}', "WARNING"),
    # JSON without a level: data, such as the edge's access log
    ('{"ts":1733479200.1,"method":"GET","uri":"/api/error","status":502,"upstream_status":"502"}', None),
    # words that merely contain "error"
    ("processed 120 rows, errors=0", None),
    ("a terror of a day", None),
    ("error_count: 3", None),
    ("ERROR_COUNT=0", None),
    ("0 errors found", None),
    ("Error 111 connecting to redis", None),
    ("level=info msg=\"error: retried\"", "INFO"),
    ("2026/12/06 10:00:00 [notice] 1#1: signal process started", "INFO"),
    ("2026/12/06 10:00:00 [warn] 1#1: an upstream response is buffered", "WARNING"),
    ("2026-11-27 01:02:03 UTC LOG:  checkpoint complete", None),
    ("1:M 06 Dec 2026 10:00:00.000 # WARNING overcommit_memory is set to 0", "WARNING"),
    ("GET /health 200 3 ms", None),
    ("don't panic, everything is fine", None),
    ("", None),
    ("{not json but with an Error}", None),
]


@pytest.mark.parametrize("line, level", ERROR_LINES)
def test_error_lines(line, level):
    assert _logs.line_level(line) == level
    assert _logs.is_error_line(line)


@pytest.mark.parametrize("line, level", NOT_ERROR_LINES)
def test_lines_that_are_not_errors(line, level):
    assert _logs.line_level(line) == level
    assert not _logs.is_error_line(line)


@pytest.mark.parametrize("value, level", [
    (10, "TRACE"), (20, "DEBUG"), (30, "INFO"), (40, "WARNING"), (50, "ERROR"), (60, "FATAL"), ("50", "ERROR"),
    ("Err", "ERROR"), (" warn ", "WARNING"), ("emerg", "CRITICAL"), ("verbose", None), (None, None), (True, None),
])
def test_normalize(value, level):
    assert _logs.normalize(value) == level


def test_coarse_level_and_runbook_grep():
    assert [_logs.coarse_level(x) for x in ("FATAL", "PANIC", "CRITICAL", "ERROR", "WARNING", None)] == \
        ["ERROR", "ERROR", "ERROR", "ERROR", "WARNING", None]
    # the runbook's grep also matches what is no error line; it is reported, never used to decide
    assert _logs.runbook_grep_match("processed 120 rows, errors=0")
    assert not _logs.is_error_line("processed 120 rows, errors=0")


@pytest.mark.parametrize("line", [line for line, _level in ERROR_LINES + NOT_ERROR_LINES])
def test_every_reader_agrees(line):
    """Diagnostics, verification and the P2 report decide with this classifier, so they agree."""
    expected = _logs.is_error_line(line)
    stamped = "2026-12-06T10:00:00.000000000Z " + line
    assert (_diagnose.scan_errors(stamped)["count"] == 1) is expected
    assert (_verify.count_errors(stamped, since=None)["count"] == 1) is expected
    assert (_report.select_log_lines([line], levels=["ERROR"])["total"] == 1) is expected


def test_split_timestamp_nanoseconds():
    epoch, text = _logs.split_timestamp('2026-11-27T01:30:45.123456789Z {"level": "INFO"}')
    assert epoch == pytest.approx(1795743045.123456)
    assert text == '{"level": "INFO"}'
    assert _logs.split_timestamp("no timestamp here") == (None, "no timestamp here")
    assert _logs.split_timestamp("2026-11-27 is a date, not a timestamp") == (None, "2026-11-27 is a date, not a timestamp")


def test_timed_lines_keep_the_range_and_lines_without_a_time():
    log = "\n".join(["1970-01-01T00:00:10.000000000Z old", "", "no time", "1970-01-01T00:00:20.5Z in",
                     "1970-01-01T00:00:30Z after"])
    assert [(when, text) for when, _raw, text in _logs.timed_lines(log, since=20, until=30)] == \
        [(None, "no time"), (20.5, "in")]
    assert len(list(_logs.timed_lines(log))) == 4
