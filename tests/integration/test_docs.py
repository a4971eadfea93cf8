# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Every plugin and role documents itself: ansible-doc renders each, antsibull-docs lints them all.

The plugins are found on disk (plugins/modules, plugins/filter, plugins/callback, roles), so a
new one is checked without touching this file. No stack is needed.
"""
from __future__ import annotations

import importlib
import json
import os
import subprocess

import pytest

from conftest import ROOT, VENV_BIN

pytestmark = pytest.mark.integration

ENV = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_NOCOLOR="1",
           PATH=f"{VENV_BIN}:{os.environ.get('PATH', '')}")


def plugin_names(kind):
    """FQCNs of the plugins of one kind found in the checkout."""
    folder = ROOT / "plugins" / kind
    stems = sorted(p.stem for p in folder.glob("*.py") if not p.name.startswith("_"))
    if kind == "filter":
        # one file may define several filters; each needs its documentation
        names = []
        for stem in stems:
            mod = importlib.import_module(f"ansible_collections.sre.incident.plugins.filter.{stem}")
            names += sorted(mod.FilterModule().filters())
        stems = names
    return [f"sre.incident.{name}" for name in stems]


def role_names():
    return [f"sre.incident.{p.parent.parent.name}" for p in sorted((ROOT / "roles").glob("*/meta/argument_specs.yml"))]


def ansible_doc(kind, names):
    proc = subprocess.run([str(VENV_BIN / "ansible-doc"), "-t", kind, "--json", *names], cwd=ROOT, env=ENV,
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr
    return json.loads(proc.stdout)


@pytest.mark.parametrize("kind", ["module", "filter", "callback"])
def test_ansible_doc_renders_every_plugin(kind):
    names = plugin_names({"module": "modules"}.get(kind, kind))
    assert names, f"no {kind} plugins found"
    docs = ansible_doc(kind, names)
    for name in names:
        doc = docs.get(name, {}).get("doc")
        assert doc, f"ansible-doc rendered nothing for {kind} {name}"
        assert doc.get("short_description"), f"{name} has no short_description"
        if kind == "module":
            assert docs[name].get("examples"), f"{name} has no EXAMPLES"
            assert docs[name].get("return") is not None, f"{name} has no RETURN"


def test_ansible_doc_renders_every_role_argument_spec():
    names = role_names()
    docs = ansible_doc("role", names)
    for name in names:
        short = name.split(".")[-1]
        assert docs.get(short, docs.get(name)), f"ansible-doc rendered nothing for role {name}"


def test_antsibull_docs_lint_passes():
    proc = subprocess.run([str(VENV_BIN / "antsibull-docs"), "lint-collection-docs", ".", "--plugin-docs"],
                          cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
