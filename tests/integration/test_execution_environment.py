# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The execution environment definition renders with ``ansible-builder create`` (no image build).

Also checks that ansible-builder's introspection finds the collection's own dependency files
(meta/execution-environment.yml -> meta/ee-requirements.txt, meta/ee-bindep.txt).
"""
from __future__ import annotations

import os
import shutil
import subprocess

import pytest
import yaml

from conftest import ROOT, VENV_BIN

pytestmark = pytest.mark.integration

ENV = dict(os.environ, PATH=f"{VENV_BIN}:{os.environ.get('PATH', '')}")
EE_DIR = ROOT / "examples/ee"


def run(*argv, cwd):
    proc = subprocess.run([str(a) for a in argv], cwd=cwd, env=ENV, capture_output=True, text=True,
                          timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def test_introspection_finds_the_collection_dependencies():
    out = run(VENV_BIN / "ansible-builder", "introspect", "--sanitize", ROOT / ".collections", cwd=ROOT)
    deps = yaml.safe_load(out.split("\n", 1)[1])
    python = [line.split()[0] for line in deps["python"]]
    assert {"docker>=7.0", "requests>=2.31", "jmespath>=1.0"} <= set(python)
    assert any(line.startswith("openssh-client ") for line in deps["system"])


def test_ansible_builder_create_renders_the_context(tmp_path):
    src = tmp_path / "ee"
    shutil.copytree(EE_DIR, src)
    run(VENV_BIN / "ansible-galaxy", "collection", "build", "--output-path", src, ROOT, cwd=tmp_path)
    version = yaml.safe_load((ROOT / "galaxy.yml").read_text())["version"]
    # the requirements name the tarball of the current version
    reqs = yaml.safe_load((src / "requirements.yml").read_text())["collections"]
    assert reqs[0]["name"].endswith(f"/sre-incident-{version}.tar.gz")

    context = tmp_path / "context"
    run(VENV_BIN / "ansible-builder", "create", "-f", src / "execution-environment.yml", "-c", context,
        "--output-filename", "Containerfile", cwd=src)

    containerfile = (context / "Containerfile").read_text()
    assert "quay.io/ansible/awx-ee:latest" in containerfile
    assert "COPY _build/collections/ /build/collections/" in containerfile
    assert "ansible-galaxy collection install" in containerfile
    assert "ansible-core>=2.17,<2.22" in containerfile
    assert (context / "_build/collections" / f"sre-incident-{version}.tar.gz").is_file()
    assert yaml.safe_load((context / "_build/requirements.yml").read_text()) == {"collections": reqs}
