# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a log line says about itself: its level, and whether it is an error line (SPEC OUT-6).

The one classifier of the collection (diagnostics, verification, the P2 report's excerpt), so a
line is an error line everywhere or nowhere. A JSON object's level is its first level key (text or
pino / bunyan number); what its message says does not matter, and without a level key it has none
(it is data, such as an access-log line). Any other line: logfmt, nginx's ``[error]``, the
upper-case words, ``panic:``, a lower-case ``error:`` and the lines of a stack trace. A word that
merely contains "error" is no error: ``errors=0``, ``terror``, ``error_count``, ``0 errors found``.
"""

from __future__ import annotations

import json
import re

from ansible_collections.sre.incident.plugins.module_utils._time import epoch

#: The levels that make a line an error line.
ERROR_LEVELS = frozenset(("ERROR", "CRITICAL", "FATAL", "PANIC"))

#: JSON keys naming a line's level, in the order they are looked at.
LEVEL_KEYS = ("level", "severity", "lvl", "log.level", "levelname")

_ALIASES = {
    "ERR": "ERROR", "ERROR": "ERROR", "ERRORS": "ERROR",
    "CRIT": "CRITICAL", "CRITICAL": "CRITICAL", "ALERT": "CRITICAL", "EMERG": "CRITICAL", "EMERGENCY": "CRITICAL",
    "FATAL": "FATAL", "PANIC": "PANIC",
    "WARN": "WARNING", "WARNING": "WARNING",
    "INFO": "INFO", "INFORMATION": "INFO", "NOTICE": "INFO", "LOG": "INFO",
    "DEBUG": "DEBUG", "DBG": "DEBUG", "FINE": "DEBUG", "TRACE": "TRACE",
}

# pino / bunyan numeric levels: the lower bound of each band
_NUMERIC = ((60, "FATAL"), (50, "ERROR"), (40, "WARNING"), (30, "INFO"), (20, "DEBUG"), (0, "TRACE"))

# most severe first: a plain line naming several levels takes the most severe
_RANK = ("PANIC", "FATAL", "CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG", "TRACE")

_LOGFMT_RE = re.compile(r"(?:^|\s)(?:level|lvl|severity)=\"?([A-Za-z]+)")
_NGINX_RE = re.compile(r"\[(emerg|alert|crit|error|warn|notice|info|debug)\]")
_UPPER_RE = re.compile(r"\b(PANIC|FATAL|CRITICAL|ERROR|WARNING|WARN)\b")
_PANIC_RE = re.compile(r"(?:^|\s)panic(?::|ked at\b)")
_LOWER_RE = re.compile(r"\b([Ee]rror|[Ff]atal|[Ww]arning):")
_STACK_RES = (
    re.compile(r"^Traceback \(most recent call last\):"),
    re.compile(r"^\s+File \"[^\"]+\", line \d+"),                      # Python frame
    re.compile(r"^\s+at\s+\S.*(?:\(\S*:\d+(?::\d+)?\)|:\d+:\d+\)?)\s*$"),  # Node frame
    re.compile(r"^\s+at\s+[\w$.<>/]+\((?:[^()]*\.java:\d+|Native Method|Unknown Source)\)\s*$"),  # Java frame
    re.compile(r"^Caused by: \S"),
    re.compile(r"^goroutine \d+ \[[^\]]+\]:\s*$"),
    re.compile(r"^(?:[a-z_][\w]*\.)*[A-Z]\w*(?:Error|Exception)(?::\s|\s*$)"),  # the exception line
)


def normalize(level):
    """A level as written by a program (text or pino number) -> one of :data:`_RANK`, or None."""
    if level is None or isinstance(level, bool):
        return None
    if isinstance(level, (int, float)):
        for bound, name in _NUMERIC:
            if level >= bound:
                return name
        return None
    text = str(level).strip().upper()
    if not text:
        return None
    if text.isdigit():
        return normalize(int(text))
    return _ALIASES.get(text)


def _json_level(data):
    for key in LEVEL_KEYS:
        if data.get(key) is not None:
            return normalize(data[key])
    nested = data.get("log")
    return normalize(nested.get("level")) if isinstance(nested, dict) else None


def line_level(text):
    """The level of one log line (see the module doc), or None."""
    stripped = (text or "").strip()
    if not stripped:
        return None
    if stripped.startswith("{") and stripped.endswith("}"):
        try:
            data = json.loads(stripped)
        except ValueError:
            data = None
        if isinstance(data, dict):
            return _json_level(data)
    match = _LOGFMT_RE.search(stripped)
    if match and normalize(match.group(1)):
        return normalize(match.group(1))
    match = _NGINX_RE.search(stripped)
    if match:
        return normalize(match.group(1))
    words = [normalize(word) for word in _UPPER_RE.findall(stripped)]
    if words:
        return min(words, key=_RANK.index)
    if _PANIC_RE.search(stripped):
        return "PANIC"
    match = _LOWER_RE.search(stripped)
    if match:
        return normalize(match.group(1))
    raw = (text or "").rstrip("\r\n")
    return "ERROR" if any(regex.search(raw) for regex in _STACK_RES) else None


def is_error_level(level):
    """Whether a level returned by :func:`line_level` is an error level."""
    return level in ERROR_LEVELS


def is_error_line(text):
    """Whether one log line (without the engine's timestamp) is an error line."""
    return line_level(text) in ERROR_LEVELS


def coarse_level(level):
    """ERROR for every error level, the level itself otherwise (for excerpts grouped by ERROR / WARNING)."""
    return "ERROR" if level in ERROR_LEVELS else level


#: The runbook's own looser search (``grep -i "error\\|fatal\\|panic"``): reported beside the
#: error count as the figure the runbook's script would have shown, never used to decide.
RUNBOOK_GREP_RE = re.compile(r"(?i)error|fatal|panic")


def runbook_grep_match(text):
    """Whether the runbook's ``grep -i "error\\|fatal\\|panic"`` would print this line."""
    return bool(RUNBOOK_GREP_RE.search(text or ""))


def split_timestamp(line):
    """``(UNIX seconds or None, text)`` of a log line read with the engine's ``timestamps=True``
    (RFC 3339 with nanoseconds before the first space)."""
    head, sep, rest = line.partition(" ")
    if sep and len(head) >= 20 and head[4:5] == "-" and head[10:11] == "T":
        try:
            return epoch(head), rest
        except ValueError:
            pass
    return None, line


def timed_lines(log_text, since=None, until=None):
    """``(UNIX seconds or None, raw line, text)`` of each non-blank line of a log read with timestamps,
    at or after ``since`` and before ``until`` (None: no bound); a line without a timestamp is in range."""
    for raw in (log_text or "").splitlines():
        if not raw.strip():
            continue
        when, text = split_timestamp(raw)
        if when is not None and ((since is not None and when < since) or (until is not None and when >= until)):
            continue
        yield when, raw, text
