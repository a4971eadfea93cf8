# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""sre.incident.p2_report main(): render only, write with check mode and diff, token hidden."""

from __future__ import annotations

import functools

import pytest

from ansible_collections.sre.incident.plugins.module_utils import _report
from ansible_collections.sre.incident.plugins.modules import p2_report

from .harness import mask_no_log, patch_exits, run_module  # noqa: F401  pylint: disable=unused-import


run = functools.partial(run_module, p2_report)


EVIDENCE = {"collected_at": "2026-11-27T01:30:00Z", "app_version": "1.0.0", "logs": ['{"level":"WARNING","msg":"x"}'],
            "log_counts": {"WARNING": 1}, "log_total": 1, "log_window_minutes": 15, "service": "recommendation-service"}


def test_render_only():
    r = run(dict(title="Empty results", evidence=EVIDENCE))
    assert r["changed"] is False and r["path"] is None
    assert "# Empty results" in r["markdown"] and '{"level":"WARNING","msg":"x"}' in r["markdown"]


def test_write_check_then_real_then_again(tmp_path):
    args = dict(title="Empty results", evidence=EVIDENCE, dest_dir=str(tmp_path), date="2026-11-27")
    r = run(args, check_mode=True, diff=True)
    assert r["changed"] is True and r["diff"]["before"] == "" and not list(tmp_path.iterdir())
    r = run(args)
    assert r["changed"] is True and (tmp_path / "2026-11-27-empty-results.md").exists()
    r = run(args, check_mode=True)
    assert r["changed"] is False
    assert run(args)["changed"] is False


def test_tracker_token_is_no_log(tmp_path, monkeypatch, mask_no_log):  # exit_json masks no_log values, like the real one
    def post(tracker, title, body, labels=(), timeout=10):
        return dict(url="http://t/1 (token %s)" % tracker["token"], number=1, status=201, api_url="http://t")
    monkeypatch.setattr(_report, "post_issue", post)
    monkeypatch.setattr(_report.run, "__defaults__", (False, None, None, post, None))

    assert p2_report.ARGUMENT_SPEC["tracker"]["options"]["token"]["no_log"] is True
    r = run(dict(title="x", evidence=EVIDENCE, dest_dir=str(tmp_path), date="2026-11-27",
                 tracker=dict(kind="github", url="http://t/repos/o/r", token="VERY-SECRET-TOKEN")))
    assert r["posted"] is True
    assert "VERY-SECRET-TOKEN" not in repr(r)


@pytest.mark.parametrize("args, named", [
    (dict(dest_dir="/tmp/x"), "title"),
    (dict(title="x", tracker=dict(kind="jira", url="http://t", token="s")), "jira"),
    (dict(title="x", collect=True), "stack"),
    (dict(title="x", date="27.11.2026", dest_dir="/tmp/x"), "27.11.2026"),
])
def test_bad_input(args, named):
    r = run(args)
    assert r["failed"] is True and named in r["msg"]
