# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The log cleanup: its plan (pure) and its run in a fake container."""

from __future__ import annotations

import os

import pytest

from ansible_collections.sre.incident.plugins.module_utils import _log_cleanup

FIND = "52428800\t1700000000.0\t/var/log/recsys/app-primary.log.1\n2048\t1700000001.0\t/var/log/recsys/app-primary.log\n"


def test_plan_keeps_the_active_log_and_removes_the_rest():
    plan = _log_cleanup.plan_log_cleanup(_log_cleanup.parse_find(FIND), "/var/log/recsys")
    assert [f["path"] for f in plan["remove"]] == ["/var/log/recsys/app-primary.log.1"]
    assert [f["path"] for f in plan["keep"]] == ["/var/log/recsys/app-primary.log"]


def test_plan_never_leaves_the_directory():
    files = [dict(path="/etc/passwd", size=1, mtime=0), dict(path="/var/log/recsys", size=1, mtime=0),
             dict(path="/var/log/recsys-other/x", size=1, mtime=0)]
    assert _log_cleanup.plan_log_cleanup(files, "/var/log/recsys")["remove"] == []


@pytest.mark.parametrize("bad", ["", "relative/dir", "/"])
def test_plan_refuses_bad_dirs(bad):
    with pytest.raises(ValueError, match="log_dir"):
        _log_cleanup.plan_log_cleanup([], bad)


def test_bundle_plan_keeps_the_newest():
    names = ["20261125T010000Z-scheduled", "20261125T010000Z-scheduled.tar.gz", "20261126T010000Z-p1",
             "20261126T010000Z-p1.tar.gz", "20261127T010000Z-p1.tar.gz", "README"]
    assert _log_cleanup.plan_bundle_cleanup(names, keep=2) == ["20261125T010000Z-scheduled", "20261125T010000Z-scheduled.tar.gz"]
    assert _log_cleanup.plan_bundle_cleanup(names, keep=5) == []


class FakeContainer:
    """A log directory in a 64 MiB volume, driven by the argv the cleanup sends."""

    def __init__(self):
        self.files = {"/var/log/recsys/app-primary.log.1": 62 * 1024 * 1024, "/var/log/recsys/app-primary.log": 4096}
        self.calls = []

    def __call__(self, argv):
        self.calls.append(argv)
        if argv[0] == "df":
            used = sum(self.files.values()) // 1024
            total = 64 * 1024
            pct = round(100.0 * used / total)
            return dict(rc=0, stdout="Filesystem 1024-blocks Used Available Capacity Mounted on\n"
                                     "tmpfs %d %d %d %d%% /var/log/recsys\n" % (total, used, total - used, pct), stderr="")
        if argv[0] == "find":
            return dict(rc=0, stdout="".join("%d\t1700000000.0\t%s\n" % (s, p) for p, s in self.files.items()), stderr="")
        if argv[0] == "rm":
            for path in argv[3:]:
                self.files.pop(path, None)
            return dict(rc=0, stdout="", stderr="")
        if argv[0] == "truncate":
            for path in argv[4:]:
                self.files[path] = 0
            return dict(rc=0, stdout="", stderr="")
        raise AssertionError(argv)


def test_cleanup_check_real_check_real(tmp_path):
    bundles = tmp_path / "bundles"
    bundles.mkdir()
    for stamp in ("20261125T010000Z", "20261126T010000Z", "20261127T010000Z"):
        (bundles / (stamp + "-p1")).mkdir()
        (bundles / (stamp + "-p1.tar.gz")).write_bytes(b"x" * 10)
    box = FakeContainer()
    params = dict(log_dir="/var/log/recsys", truncate_above_pct=85, bundles_dir=str(bundles), bundles_keep=2)
    r = _log_cleanup.run_log_cleanup(params, box, check_mode=True)
    assert r["changed"] and r["removed"][0]["path"].endswith("app-primary.log.1") and r["truncated"] == []
    assert len(r["bundles_removed"]) == 2 and len(os.listdir(bundles)) == 6
    assert not any(c[0] in ("rm", "truncate") for c in box.calls)
    assert r["used_pct_before"] >= 96 and r["used_pct_after"] < 5
    r = _log_cleanup.run_log_cleanup(params, box)
    assert r["changed"] and "/var/log/recsys/app-primary.log.1" not in box.files
    assert "/var/log/recsys/app-primary.log" in box.files and r["used_pct_after"] < 5
    assert sorted(os.listdir(bundles)) == ["20261126T010000Z-p1", "20261126T010000Z-p1.tar.gz",
                                           "20261127T010000Z-p1", "20261127T010000Z-p1.tar.gz"]
    assert not _log_cleanup.run_log_cleanup(params, box, check_mode=True)["changed"]
    assert not _log_cleanup.run_log_cleanup(params, box)["changed"]


def test_cleanup_truncates_the_active_log_when_still_full():
    box = FakeContainer()
    box.files = {"/var/log/recsys/app-primary.log": 62 * 1024 * 1024}
    r = _log_cleanup.run_log_cleanup(dict(log_dir="/var/log/recsys", truncate_above_pct=85), box)
    assert r["removed"] == [] and r["truncated"][0]["path"] == "/var/log/recsys/app-primary.log"
    assert box.files["/var/log/recsys/app-primary.log"] == 0 and r["changed"]
    box.files["/var/log/recsys/app-primary.log"] = 62 * 1024 * 1024
    assert not _log_cleanup.run_log_cleanup(dict(log_dir="/var/log/recsys", truncate_above_pct=None), box)["changed"]


def test_cleanup_reports_a_failed_listing():
    def broken(argv):
        if argv[0] == "df":
            return FakeContainer()(argv)
        return dict(rc=1, stdout="", stderr="find: no such directory")
    with pytest.raises(ValueError, match="no such directory"):
        _log_cleanup.run_log_cleanup(dict(log_dir="/var/log/recsys"), broken)
