# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The action plugin of sre.incident.report: render only, write with check mode and diff, the
evidence collected by the module on the managed host with the collection options only, token hidden."""

from __future__ import annotations

from unittest.mock import MagicMock

import pytest

from ansible_collections.sre.incident.plugins.action.report import ActionModule
from ansible_collections.sre.incident.plugins.module_utils import _report

EVIDENCE = {"collected_at": "2026-11-27T01:30:00Z", "app_version": "1.0.0", "logs": ['{"level":"WARNING","msg":"x"}'],
            "log_counts": {"WARNING": 1}, "log_total": 1, "log_since": "2026-11-27T01:15:00Z", "service": "recommendation-service"}


def action(args, check_mode=False, diff=False, module_result=None):
    task = MagicMock()
    task.args = args
    task.check_mode = check_mode
    task.diff = diff
    task.async_val = 0
    plugin = ActionModule(task, MagicMock(), MagicMock(), loader=None, templar=None, shared_loader_obj=None)
    plugin.calls = []

    def execute_module(module_name=None, module_args=None, task_vars=None):
        plugin.calls.append((module_name, module_args))
        return module_result
    plugin._execute_module = execute_module
    plugin._remove_tmp_path = lambda path: None
    return plugin


def run(args, **kwargs):
    return action(args, **kwargs).run(task_vars={})


def test_render_only():
    r = run(dict(title="Empty results", evidence=EVIDENCE))
    assert r["changed"] is False and r["path"] is None
    assert "# Empty results" in r["markdown"] and '{"level":"WARNING","msg":"x"}' in r["markdown"]


def test_write_check_then_real_then_again(tmp_path):
    args = dict(title="Empty results", evidence=EVIDENCE, dest_dir=str(tmp_path), date="2026-11-27")
    r = run(args, check_mode=True, diff=True)
    assert r["changed"] is True and r["diff"]["before"] == "" and not list(tmp_path.iterdir())
    r = run(args)
    assert r["changed"] is True and (tmp_path / "2026-11-27-empty-results.md").read_text() == r["markdown"]
    assert "diff" not in r
    r = run(args, check_mode=True, diff=True)
    assert r["changed"] is False and "diff" not in r
    assert run(args)["changed"] is False


def test_collects_on_the_host_with_the_collection_options_only(tmp_path):
    stack = {"name": "recsys", "service": "recommendation-service"}
    plugin = action(dict(title="Empty results", collect=True, stack=stack, log_lines=5, dest_dir=str(tmp_path),
                         date="2026-11-27", tracker=dict(kind="github", url="http://t/repos/o/r", token="SECRET")),
                    check_mode=True, module_result={"changed": False, "evidence": EVIDENCE, "warnings": ["no SDK"]})
    r = plugin.run(task_vars={})
    assert plugin.calls == [("sre.incident.report", {"collect": True, "stack": stack, "log_lines": 5})]
    assert r["evidence"] == EVIDENCE and r["warnings"] == ["no SDK"] and "app 1.0.0 (from /health)" in r["markdown"]
    assert r["changed"] is True and r["would_post"] is True and not list(tmp_path.iterdir())


def test_a_failed_collection_fails_the_task_and_writes_nothing(tmp_path):
    r = action(dict(title="x", collect=True, stack={"name": "s"}, dest_dir=str(tmp_path)),
               module_result={"failed": True, "msg": "engine unreachable"}).run(task_vars={})
    assert r["failed"] is True and r["msg"] == "engine unreachable" and not list(tmp_path.iterdir())


def test_tracker_token_is_in_no_returned_value(tmp_path, monkeypatch):
    def post(tracker, title, body, labels=(), timeout=10):
        return dict(url="http://t/1 (token %s)" % tracker["token"], number=1, status=201, api_url="http://t")
    monkeypatch.setattr(_report, "post_issue", post)
    monkeypatch.setattr(_report.run, "__defaults__", (False, None, post))

    assert _report.argument_spec()["tracker"]["options"]["token"]["no_log"] is True
    r = run(dict(title="x", evidence=EVIDENCE, dest_dir=str(tmp_path), date="2026-11-27",
                 tracker=dict(kind="github", url="http://t/repos/o/r", token="VERY-SECRET-TOKEN")), diff=True)
    assert r["posted"] is True
    assert "VERY-SECRET-TOKEN" not in repr(r)


@pytest.mark.parametrize("args, named", [
    (dict(dest_dir="/tmp/x"), "title"),
    (dict(title="x", tracker=dict(kind="jira", url="http://t", token="s")), "jira"),
    (dict(title="x", collect=True), "stack"),
    (dict(title="x", date="27.11.2026", dest_dir="/tmp/x"), "27.11.2026"),
    (dict(title="x", colour="red"), "colour"),
])
def test_bad_input_is_named_before_anything_runs(args, named):
    plugin = action(args)
    r = plugin.run(task_vars={})
    assert r["failed"] is True and named in r["msg"] and plugin.calls == []
