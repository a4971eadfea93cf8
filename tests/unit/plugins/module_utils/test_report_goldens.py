# -*- coding: utf-8 -*-
# Copyright (c) sre.incident contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The postmortem and the P2 report of fixed inputs are exactly the golden files.

``fixtures/postmortem/records`` holds three fixed records (a closed P0 with an alert clock, a failed
and an open stage, two rungs, OOM evidence, a degraded mode, watch samples over the threshold,
checklists, a P1 case and text with quotes, pipes and markup; an open P1; a closed P2);
``fixtures/postmortem/existing`` an earlier report of the P0 with human text and an orphan block.
``fixtures/report/cases.json`` holds P2 report dicts. The golden files in ``expected/`` were
written by the string-concatenation renderers this collection had before its Jinja2 templates
(plugins/plugin_utils/templates); the Markdown must stay byte for byte the same, the HTML too but
for the spelling of escaped quotes (its look is compared in Chromium by
tests/integration/test_postmortem.py). After an intended change of a report, rewrite the golden
files with ``SRE_UPDATE_GOLDEN=1`` (the test then fails once, so that nothing passes unseen) and
review the diff.
"""

from __future__ import annotations

import difflib
import json
import os
import shutil

import pytest

from ansible_collections.sre.incident.plugins.module_utils import _postmortem as pm
from ansible_collections.sre.incident.plugins.module_utils import _report
from ansible_collections.sre.incident.plugins.plugin_utils._render import render

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures")
POSTMORTEM = os.path.join(FIXTURES, "postmortem")
RECORDS = sorted(os.listdir(os.path.join(POSTMORTEM, "records")))
NOW = "2026-11-27T02:30:00.000Z"


def _read(path):
    with open(path, encoding="utf-8") as handle:
        return handle.read()


def same_entities(text):
    """HTML with quotes spelled as the old renderer spelled them (``&quot;``, ``&#x27;``); Jinja2's
    autoescape writes ``&#34;`` and ``&#39;``, the same characters on the page."""
    return text.replace("&#34;", "&quot;").replace("&#39;", "&#x27;")


def compare(text, golden):
    """Fail with a unified diff unless ``text`` is the golden file (or rewrite it when asked)."""
    if golden.endswith(".html"):
        text = same_entities(text)
    if os.environ.get("SRE_UPDATE_GOLDEN"):
        with open(golden, "w", encoding="utf-8") as handle:
            handle.write(text)
        pytest.fail("golden file rewritten (SRE_UPDATE_GOLDEN): review git diff %s" % golden)
    expected = _read(golden)
    if text != expected:
        diff = "".join(difflib.unified_diff(expected.splitlines(True), text.splitlines(True), golden, "rendered", n=1))
        pytest.fail("%s differs from the golden file:\n%s" % (os.path.basename(golden), diff[:6000]))


def render_postmortem(tmp_path, incident_id):
    """The record copied into ``tmp_path`` (with the earlier report for the P0), then the reports written."""
    record_dir = tmp_path / incident_id
    shutil.copytree(os.path.join(POSTMORTEM, "records", incident_id), record_dir)
    if "-p0-" in incident_id:
        for name in ("postmortem.md", "postmortem.html"):
            shutil.copy(os.path.join(POSTMORTEM, "existing", name), record_dir / name)
    result = pm.run({"incident_dir": str(tmp_path), "id": incident_id}, render, now=NOW)
    assert result["changed"] is True
    return {fmt: _read(path) for fmt, path in result["paths"].items()}


@pytest.mark.parametrize("incident_id", RECORDS)
def test_postmortem_is_the_golden_file(tmp_path, incident_id):
    reports = render_postmortem(tmp_path, incident_id)
    for fmt in ("md", "html"):
        compare(reports[fmt], os.path.join(POSTMORTEM, "expected", "%s.%s" % (incident_id, fmt)))


CASES = json.loads(_read(os.path.join(FIXTURES, "report", "cases.json")))


@pytest.mark.parametrize("name", sorted(CASES))
def test_p2_report_is_the_golden_file(name):
    compare(_report.markdown(CASES[name], render), os.path.join(FIXTURES, "report", "expected", name + ".md"))
