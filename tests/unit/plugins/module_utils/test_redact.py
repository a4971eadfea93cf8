# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

import pytest

from ansible_collections.sre.incident.plugins.module_utils import _redact as r

M = r.MASK


@pytest.mark.parametrize("name", ["POSTGRES_PASSWORD", "db_passwd", "API_KEY", "KEY", "aws_access_key_id", "SECRET",
                                  "SLACK_TOKEN", "GITHUB_AUTH", "AWS_CREDENTIALS", "NOTIFY_WEBHOOK", "SENTRY_DSN", "apikey"])
def test_secret_names(name):
    assert r.is_secret_name(name)


@pytest.mark.parametrize("name", ["POSTGRES_HOST", "evicted_keys", "keyspace_hits", "expired_keys", "PWD", "OLDPWD",
                                  "REDIS_URL", "DOWNGRADE_MODE", "POSTGRES_HOST_AUTH_METHOD", "", None])
def test_not_secret_names(name):
    assert not r.is_secret_name(name)


def test_secret_values_from_env_list_and_dict():
    env = ["POSTGRES_PASSWORD=recsys-demo-S3cret", "POSTGRES_HOST=postgres", "TOKEN=abc",
           "DATABASE_URL=postgres://app:url-pass-123@db:5432/x", "EMPTY_SECRET="]
    assert r.secret_values(env) == {"recsys-demo-S3cret", "url-pass-123"}  # "abc" too short to hunt
    assert r.secret_values({"API_KEY": "k-1234567", "HOST": "h"}) == {"k-1234567"}


def test_redact_env_keeps_shape():
    assert r.redact_env(["POSTGRES_PASSWORD=x1234", "HOST=h", "DATABASE_URL=postgres://u:pw12@h/db", "NOVALUE"]) == [
        "POSTGRES_PASSWORD=" + M, "HOST=h", "DATABASE_URL=postgres://u:%s@h/db" % M, "NOVALUE="]
    assert r.redact_env({"SECRET": "s3cr3t", "PORT": 1, "EMPTY_TOKEN": ""}) == {"SECRET": M, "PORT": 1, "EMPTY_TOKEN": ""}


@pytest.mark.parametrize("text, expected", [
    ("connect postgres://postgres:hunter22@db:5432/app failed",
     "connect postgres://postgres:%s@db:5432/app failed" % M),
    ("redis://:redispw@redis:6379/0", "redis://:%s@redis:6379/0" % M),
    ("Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.abc.def", "Authorization: " + M),
    ("got token Bearer abcdef123456 back", "got token Bearer %s back" % M),
    ("post to https://hooks.slack.com/services/T000/B000/XXXXXXXX now", "post to https://hooks.slack.com/services/%s now" % M),
    ("https://oapi.dingtalk.com/robot/send?access_token=0123456789abcdef&x=1",
     "https://oapi.dingtalk.com/robot/send?access_token=%s&x=1" % M),
    ('{"user": "u", "password": "p@ss \\"w\\"", "n": 1}', '{"user": "u", "password": "%s", "n": 1}' % M),
    ("ALTER ROLE recsys PASSWORD 'it''s-secret'", "ALTER ROLE recsys PASSWORD '%s'" % M),
    ("db_password=abc123 host=x", "db_password=%s host=x" % M),
    ("api_key: AKIA1234", "api_key: " + M),
    ("password: 'pw in quotes' and token=\"t-1\"", "password: '%s' and token=\"%s\"" % (M, M)),
    ("nothing secret here: evicted_keys:0", "nothing secret here: evicted_keys:0"),
])
def test_redact_text_patterns(text, expected):
    assert r.redact_text(text) == expected


def test_redact_text_known_values_longest_first():
    text = "pw=abcd1234 and again abcd1234xyz in a log line: abcd1234"
    out = r.redact_text(text, {"abcd1234", "abcd1234xyz"})
    assert "abcd1234" not in out


def test_redact_text_edge_cases():
    assert r.redact_text(None) is None
    assert r.redact_text("") == ""
    assert r.redact_text(b"token=zzzzzz") == "token=" + M
    assert r.redact_text(5) == 5
    assert r.redact_text("short 12 value", {"12"}) == "short 12 value"  # too short to hunt


def test_redact_data_deep():
    data = {"Env": ["POSTGRES_PASSWORD=recsys-demo-S3cret", "A=b"], "summary": {"redis_evicted_keys": 5, "hit": 0.9},
            "password": "plain", "list": ["x recsys-demo-S3cret y", {"token": "t0k3n-value"}], "n": None}
    out = r.redact_data(data, {"recsys-demo-S3cret"})
    assert out["Env"] == ["POSTGRES_PASSWORD=" + M, "A=b"]
    assert out["summary"] == {"redis_evicted_keys": 5, "hit": 0.9}
    assert out["password"] == M
    assert out["list"] == ["x %s y" % M, {"token": M}]
    assert "recsys-demo-S3cret" not in repr(out)
    assert data["password"] == "plain"  # not modified in place
