# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""sre.incident.onboard main(): check mode, write, idempotence, diff, bad input; the engine is
replaced by a view captured from the shop stack (tests/unit/plugins/module_utils/fixtures/onboard)."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import pytest
import yaml

from ansible_collections.sre.incident.plugins.module_utils import _compose, _onboard
from ansible_collections.sre.incident.plugins.modules import onboard

from .harness import patch_engine, patch_exits, run_module  # noqa: F401  pylint: disable=unused-import

VIEW = json.loads((Path(__file__).parents[1] / "module_utils/fixtures/onboard/view-shop.json").read_text())

run = functools.partial(run_module, onboard)


@pytest.fixture(autouse=True)
def fake_engine(monkeypatch):
    seen = []

    def gather(client, project, probe=None):
        seen.append((project, probe))
        if project != "shop":
            raise _onboard.OnboardError("no compose project %r on the engine" % project)
        return json.loads(json.dumps(VIEW))
    patch_engine(monkeypatch)
    monkeypatch.setattr(_onboard, "gather", gather)
    return seen


def test_four_runs(tmp_path, fake_engine):
    dest = tmp_path / "onboarding" / "shop.stack.yml"
    args = dict(project="shop", dest=str(dest))
    r = run(args, check_mode=True, diff=True)
    assert r["changed"] is True and not dest.parent.exists()
    assert r["msg"].startswith("would write") and r["diff"]["before"] == "" and "recs-api" in r["diff"]["after"]
    r = run(args)
    assert r["changed"] is True and r["msg"].startswith("wrote") and "diff" not in r
    assert yaml.safe_load(dest.read_text())["incident_stack"] == r["stack"]
    assert r["unknown"] == [] and r["stack"]["service"] == "recs-api"
    text = dest.read_text()
    r = run(args, check_mode=True)
    assert r["changed"] is False
    r = run(args)
    assert r["changed"] is False and r["msg"].startswith("left unchanged") and dest.read_text() == text
    assert fake_engine[0][1] is not None  # the guesses are probed over HTTP by default


def test_a_changed_file_is_rewritten_with_a_diff(tmp_path):
    dest = tmp_path / "shop.stack.yml"
    dest.write_text("incident_stack: {name: old}\n")
    r = run(dict(project="shop", dest=str(dest)), diff=True)
    assert r["changed"] is True and r["diff"]["before"] == "incident_stack: {name: old}\n"
    assert yaml.safe_load(dest.read_text())["incident_stack"]["name"] == "shop"


def test_probe_http_false(tmp_path, fake_engine):
    run(dict(project="shop", dest=str(tmp_path / "x.yml"), probe_http=False))
    assert fake_engine[-1][1] is None


@pytest.mark.parametrize("args, needle", [
    (dict(project="Not A Project", dest="x.yml"), "Not A Project"),
    (dict(project="nope", dest="x.yml"), "no compose project 'nope'"),
])
def test_bad_input_fails_before_writing(tmp_path, args, needle):
    args = dict(args, dest=str(tmp_path / args["dest"]))
    r = run(args)
    assert r["failed"] and needle in r["msg"] and not (tmp_path / "x.yml").exists()


def test_engine_unreachable(tmp_path, monkeypatch):
    def refuse(docker_host=None, timeout=None, max_pool_size=None):
        raise _compose.EngineUnreachable("Docker engine unreachable at tcp://192.0.2.1:2376: refused",
                                         docker_host=docker_host)
    monkeypatch.setattr(_compose, "connect", refuse)
    r = run(dict(project="shop", dest=str(tmp_path / "x.yml"), docker_host="tcp://192.0.2.1:2376"))
    assert r["failed"] and "unreachable" in r["msg"] and not (tmp_path / "x.yml").exists()
