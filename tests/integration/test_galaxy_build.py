# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The collection as a user gets it: built with ansible-galaxy, installed offline, run by FQCN.

The run uses a working directory outside the checkout and a config that names only the
installed copy, so the playbook, its roles, modules and the callback ``sre.incident.timeline``
all come from the tarball, not from the checkout's ``.collections`` link.
"""
from __future__ import annotations

import json
import os
import subprocess
import tarfile

import pytest

from conftest import INVENTORY, ROOT, VENV_BIN, read_record

pytestmark = pytest.mark.integration

# Top-level (or nested) names that must never ship in the tarball.
FORBIDDEN = {"tests", ".venv", ".cache", "incidents", "backlog", "bench", "molecule", ".config", ".collections",
             ".git", ".ansible", ".hypothesis", ".pytest_cache", "__pycache__"}
# What a user needs from it.
REQUIRED = {"MANIFEST.json", "FILES.json", "README.md", "meta/runtime.yml", "playbooks/p0_recover.yml",
            "plugins/callback/timeline.py", "plugins/modules/compose_service.py", "roles/recover/meta/argument_specs.yml",
            "plugins/action/postmortem.py", "plugins/plugin_utils/_render.py", "plugins/plugin_utils/templates/postmortem.css",
            "plugins/plugin_utils/templates/postmortem.html.j2", "plugins/plugin_utils/templates/p2_report.md.j2"}


def clean_env(**extra):
    """The caller's environment without any ANSIBLE_* setting that could point at the checkout."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env.update(PATH=f"{VENV_BIN}:{os.environ.get('PATH', '')}", ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0")
    env.update(extra)
    return env


def galaxy(*args, cwd, env):
    return subprocess.run([str(VENV_BIN / "ansible-galaxy"), "collection", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300, check=False)


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """Build the tarball from the checkout, install it into a fresh collections path."""
    tmp = tmp_path_factory.mktemp("galaxy")
    env = clean_env()
    built = galaxy("build", "--output-path", str(tmp / "dist"), str(ROOT), cwd=tmp, env=env)
    assert built.returncode == 0, built.stdout + built.stderr
    tarballs = list((tmp / "dist").glob("sre-incident-*.tar.gz"))
    assert len(tarballs) == 1, tarballs
    # --offline: Galaxy is not reachable here, and the collection has no dependencies to fetch.
    inst = galaxy("install", str(tarballs[0]), "-p", str(tmp / "collections"), "--offline", cwd=tmp, env=env)
    assert inst.returncode == 0, inst.stdout + inst.stderr
    return tmp, tarballs[0]


def test_tarball_holds_no_tests_venvs_or_incident_data(installed):
    with tarfile.open(installed[1]) as tar:
        names = [m.name.lstrip("./") for m in tar.getmembers()]
    leaked = sorted(n for n in names if FORBIDDEN & set(n.split("/")))
    assert not leaked, f"tarball ships {leaked[:20]}"
    assert REQUIRED <= set(names), REQUIRED - set(names)
    manifest = installed[0] / "collections/ansible_collections/sre/incident/MANIFEST.json"
    assert json.loads(manifest.read_text())["collection_info"]["name"] == "incident"


def test_installed_collection_recovers_a_killed_service_by_fqcn(installed, stack):
    tmp = installed[0]
    collections = tmp / "collections"
    work = tmp / "work"
    work.mkdir()
    cfg = work / "ansible.cfg"
    cfg.write_text("[defaults]\n"
                   f"collections_path = {collections}\n"
                   "callbacks_enabled = sre.incident.timeline\n"
                   "gathering = explicit\nhost_key_checking = False\nretry_files_enabled = False\n"
                   "interpreter_python = auto_silent\n")
    incident_dir = tmp / "incidents"
    stack.container().kill()
    assert not stack.service_answers()

    env = clean_env(ANSIBLE_CONFIG=str(cfg), ANSIBLE_COLLECTIONS_PATH=str(collections))
    cmd = [str(VENV_BIN / "ansible-playbook"), "sre.incident.p0_recover", "-i", str(ROOT / INVENTORY),
           "-e", json.dumps({"incident_dir": str(incident_dir)})]
    proc = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True, timeout=600, check=False)
    output = proc.stdout + proc.stderr

    assert proc.returncode == 0, output
    # real recovery, read from the engine and over HTTP
    assert stack.state()["Status"] == "running"
    assert stack.service_answers()
    # the checkout was never on the path: the playbook and the callback came from the install
    assert ".collections" not in output
    assert "sre.incident.timeline" not in output, output   # the installed callback loaded (no warning names it)
    incident_id, events = read_record(incident_dir)
    assert incident_id.startswith("INC-")
    assert [e["stage"] for e in events if e["type"] == "stage"][:1] == ["detect"], "the installed roles recorded no stage"
    closed = [e for e in events if e["type"] == "closed"]
    assert [e["data"]["outcome"] for e in closed] == ["resolved"]

    # the reports come from the installed collection's templates, rendered on the controller
    def run(playbook, extra, *args):
        proc = subprocess.run([str(VENV_BIN / "ansible-playbook"), playbook, "-i", str(ROOT / INVENTORY),
                               "-e", json.dumps(extra), *args], cwd=work, env=env, capture_output=True, text=True,
                              timeout=600, check=False)
        assert proc.returncode == 0 and ".collections" not in proc.stdout + proc.stderr, proc.stdout + proc.stderr
        return proc.stdout

    postmortem = {"incident_id": incident_id, "incident_dir": str(incident_dir)}
    assert "would be written" in run("sre.incident.postmortem", postmortem, "--check")
    assert not (incident_dir / incident_id / "postmortem.html").exists()
    run("sre.incident.postmortem", postmortem)
    page = (incident_dir / incident_id / "postmortem.html").read_text()
    assert '<svg id="timeline-sla"' in page and 'id="deadline-resolve"' in page and "svg .stage_bar{" in page
    assert "# Postmortem: P0 " in (incident_dir / incident_id / "postmortem.md").read_text()
    backlog = tmp / "backlog"
    run("sre.incident.p2_report", {"report_title": "Installed collection report", "report_backlog_dir": str(backlog)})
    reports = list(backlog.glob("*-installed-collection-report.md"))
    assert len(reports) == 1 and "## Log excerpt (日誌片段)" in reports[0].read_text()
