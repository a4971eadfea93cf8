# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""sre.incident.paging, main() in-process."""
from __future__ import annotations

import functools

from ansible_collections.sre.incident.plugins.modules import paging

from .harness import patch_exits, run_module  # noqa: F401  pylint: disable=unused-import

DOWN = {"check": "service_running", "level": "critical", "kind": "down", "reason": "the service is exited (exit code 137)"}
DISK = {"check": "disk_percent", "level": "critical", "kind": "degraded", "reason": "disk / 96 % full"}


def params(path, **more):
    return dict(dict(path=str(path), host="web1", severity="P0", findings=[DOWN, DISK], window=3600, state="checked"), **more)


run = functools.partial(run_module, paging)


def test_the_module_in_check_mode_and_for_real(tmp_path):
    path = tmp_path / "pages.json"
    dry = run(params(path, state="paged"), check_mode=True, diff=True)
    assert dry["changed"] and "diff" in dry and not path.exists()
    real = run(params(path, state="paged"))
    assert real["changed"] and path.exists() and "diff" not in real
    assert run(params(path, state="paged"))["changed"] is False
    bad = run(params(path, window=-5))
    assert bad["failed"] and "window -5.0 is impossible" in bad["msg"]
