# -*- coding: utf-8 -*-
# Copyright (c) sre.incident contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Secret redaction: pure functions, applied to everything diagnostics collect.

Masked: the value of an environment variable whose name looks secret, and that value wherever it
appears in collected text (a password echoed by a log line is still a password); passwords in
URLs; authorization headers, ``password=...`` assignments, JSON members and SQL ``PASSWORD '...'``
literals; webhook URLs and token query parameters.
"""

from __future__ import annotations

import re

MASK = "********"

# Values shorter than this are not hunted for in free text (redacting "1" or "no" everywhere
# would destroy the evidence); the variable itself is still masked.
MIN_SECRET_LEN = 4

_SECRET_WORDS = (
    "PASSWORD", "PASSWD", "PASSPHRASE", "PWD", "SECRET", "TOKEN", "CREDENTIAL", "AUTH",
    "COOKIE", "SESSION", "PRIVATE", "SIGNATURE", "WEBHOOK", "DSN",
    # KEY only as a word of its own (API_KEY, KEY, ACCESS_KEY_ID, apikey), not evicted_keys or keyspace
    r"(?:^|[_\-.])KEY(?:$|[_\-.])", "APIKEY", "ACCESSKEY", "SECRETKEY",
)
SECRET_NAME_RE = re.compile("|".join(_SECRET_WORDS), re.IGNORECASE)

# Names that contain a secret word but are known not to hold a secret.
_NOT_SECRET = frozenset(("PWD", "OLDPWD", "AUTH_METHOD", "PGAUTHMETHOD", "HOST_AUTH_METHOD", "POSTGRES_HOST_AUTH_METHOD",
                         "POSTGRES_INITDB_ARGS"))

_URL_USERINFO_RE = re.compile(r"(?P<scheme>\b[a-zA-Z][a-zA-Z0-9+.\-]*://)(?P<user>[^:/@\s\"']*):(?P<pw>[^@/\s\"']+)@")
_BEARER_RE = re.compile(r"(?i)\b(bearer|basic)(\s+)([A-Za-z0-9\-._~+/]{6,}=*)")
_AUTH_HEADER_RE = re.compile(r"(?i)\b(authorization|x-api-key|x-auth-token|cookie|set-cookie)(\s*[:=]\s*)([^\r\n]+)")
_SLACK_RE = re.compile(r"(?i)(hooks\.slack\.com/(?:services|workflows|triggers)/)[A-Za-z0-9/_\-]+")
_DISCORD_RE = re.compile(r"(?i)(discord(?:app)?\.com/api/webhooks/)[A-Za-z0-9/_\-]+")
_QUERY_TOKEN_RE = re.compile(r"(?i)([?&](?:access_token|token|sign|signature|key|api_key|apikey|secret|password)=)[^&#\s\"']+")
_ASSIGN_RE = re.compile(
    r"(?i)\b([A-Za-z0-9_.\-]*(?:password|passwd|pwd|secret|token|api[_-]?key|private[_-]?key|credential)s?)"
    r"(\s*[=:]\s*)(?![\"'{\[])([^\s,;&\"'}]+)")
# the same, quoted: password: "...", token='...', {'secret': '...'}
_QUOTED_ASSIGN_RE = re.compile(
    r"(?i)\b([A-Za-z0-9_.\-]*(?:password|passwd|pwd|secret|token|api[_-]?key|private[_-]?key|credential)s?)"
    r"([\"']?\s*[=:]\s*)([\"'])(?:(?!\3)[^\\]|\\.)*\3")
_JSON_MEMBER_RE = re.compile(
    r"(?i)(\"[A-Za-z0-9_.\-]*(?:password|passwd|pwd|secret|token|api[_-]?key|private[_-]?key|credential)s?\"\s*:\s*)\"(?:[^\"\\]|\\.)*\"")
_SQL_PASSWORD_RE = re.compile(r"(?i)\b(password\s+)'(?:[^']|'')*'")


def is_secret_name(name):
    """True when an environment variable (or dict key) name looks like it holds a secret."""
    if not isinstance(name, str):
        return False
    upper = name.upper()
    return upper not in _NOT_SECRET and bool(SECRET_NAME_RE.search(upper))


def _env_items(env):
    """``(name, value)`` pairs of an env given as a dict or a list of ``NAME=value`` strings."""
    if isinstance(env, dict):
        return [(str(k), "" if v is None else str(v)) for k, v in env.items()]
    return [(name, value) for name, _sep, value in (str(entry).partition("=") for entry in env or [])]


def secret_values(env):
    """The values of the secret-looking variables of ``env`` (dict or ``NAME=value`` list), and the
    password of any URL-valued one; values shorter than :data:`MIN_SECRET_LEN` are left out."""
    found = set()
    for name, value in _env_items(env):
        if is_secret_name(name) and len(value) >= MIN_SECRET_LEN:
            found.add(value)
        for match in _URL_USERINFO_RE.finditer(value):
            if len(match.group("pw")) >= MIN_SECRET_LEN:
                found.add(match.group("pw"))
    return found


def redact_env(env):
    """A copy of ``env`` (dict or list of ``NAME=value``, same shape back) with secrets masked."""
    if isinstance(env, dict):
        return {k: (MASK if is_secret_name(str(k)) and v not in (None, "") else redact_text(v) if isinstance(v, str) else v)
                for k, v in env.items()}
    return ["%s=%s" % (name, MASK if is_secret_name(name) and value else redact_text(value))
            for name, value in _env_items(env)]


def redact_text(text, values=()):
    """``text`` with every known secret value and every secret-looking pattern masked."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    if not isinstance(text, str) or not text:
        return text
    # Known values first, longest first, so a value containing another is masked whole.
    for value in sorted((v for v in values or () if v and len(v) >= MIN_SECRET_LEN), key=len, reverse=True):
        text = text.replace(value, MASK)
    text = _URL_USERINFO_RE.sub(lambda m: "%s%s:%s@" % (m.group("scheme"), m.group("user"), MASK), text)
    text = _SLACK_RE.sub(r"\g<1>" + MASK, text)
    text = _DISCORD_RE.sub(r"\g<1>" + MASK, text)
    text = _QUERY_TOKEN_RE.sub(r"\g<1>" + MASK, text)
    text = _AUTH_HEADER_RE.sub(r"\g<1>\g<2>" + MASK, text)
    text = _BEARER_RE.sub(r"\g<1>\g<2>" + MASK, text)
    text = _JSON_MEMBER_RE.sub(r'\g<1>"' + MASK + '"', text)
    text = _SQL_PASSWORD_RE.sub(r"\g<1>'" + MASK + "'", text)
    text = _ASSIGN_RE.sub(lambda m: m.group(0) if m.group(3) == MASK else "%s%s%s" % (m.group(1), m.group(2), MASK), text)
    text = _QUOTED_ASSIGN_RE.sub(r"\g<1>\g<2>\g<3>" + MASK + r"\g<3>", text)
    return text


def redact_data(data, values=()):
    """Deep copy of ``data`` with secrets masked: a non-empty string under a secret-looking key whole,
    ``env`` / ``environment`` as an environment, every other string by :func:`redact_text`."""
    if isinstance(data, dict):
        out = {}
        for key, value in data.items():
            if isinstance(key, str) and key.lower() in ("env", "environment") and isinstance(value, (list, dict)):
                out[key] = redact_data(redact_env(value), values)
            elif is_secret_name(str(key)) and isinstance(value, str) and value:
                out[key] = MASK
            else:
                out[key] = redact_data(value, values)
        return out
    if isinstance(data, (list, tuple)):
        return [redact_data(item, values) for item in data]
    if isinstance(data, (str, bytes)):
        return redact_text(data, values)
    return data
