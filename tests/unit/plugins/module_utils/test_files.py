# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""_files.py: a file is replaced whole or not at all."""
from __future__ import annotations

import json
import os
import stat

import pytest

from ansible_collections.sre.incident.plugins.module_utils import _files


def _mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def test_replaces_whole_with_the_mode(tmp_path):
    path = tmp_path / "lease.json"
    path.write_text("old")
    os.chmod(path, 0o644)
    _files.write_atomic(str(path), "new ü")
    assert path.read_bytes() == "new ü".encode("utf-8") and _mode(path) == 0o600
    _files.write_atomic(str(path), b"\x00bytes", mode=0o644, sync=False)
    assert path.read_bytes() == b"\x00bytes" and _mode(path) == 0o644
    assert os.listdir(tmp_path) == ["lease.json"]


def test_a_failed_write_leaves_the_old_file_and_no_temporary_file(tmp_path, monkeypatch):
    path = tmp_path / "state.json"
    path.write_text("old")

    def broken(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(_files.os, "replace", broken)
    with pytest.raises(OSError, match="disk full"):
        _files.write_atomic(str(path), "new")
    assert path.read_text() == "old" and os.listdir(tmp_path) == ["state.json"]


def test_json_is_sorted_with_a_final_newline(tmp_path):
    path = tmp_path / "pages.json"
    _files.write_json(str(path), {"b": 1, "a": [1]})
    assert path.read_text() == '{\n  "a": [\n    1\n  ],\n  "b": 1\n}\n'
    _files.write_json(str(path), {"b": 1, "a": 2}, indent=None)
    assert json.loads(path.read_text()) == {"a": 2, "b": 1} and path.read_text() == '{"a": 2, "b": 1}\n'


def test_private_dir(tmp_path):
    path = tmp_path / "a" / "b"
    assert _files.private_dir(str(path)) == str(path) and _mode(path) == 0o700
    os.chmod(path, 0o755)
    _files.private_dir(str(path))
    assert _mode(path) == 0o700


def test_read_text_of_a_missing_file_is_none(tmp_path):
    assert _files.read_text(str(tmp_path / "absent.md")) is None
    _files.write_atomic(str(tmp_path / "a.md"), "推薦\n")
    assert _files.read_text(str(tmp_path / "a.md")) == "推薦\n"


@pytest.mark.parametrize("text, expected", [
    ("Recommendation Service", "recommendation-service"),
    ("Unreadable cache entry (user-173)!", "unreadable-cache-entry-user-173"),
    ("推薦為空", "fallback"),
    ("a" * 59 + " b", "a" * 59),            # cut at 60, no dash left at the end
])
def test_slug(text, expected):
    assert _files.slug(text, "fallback") == expected


def test_create_new_never_opens_an_existing_file_and_keeps_its_mode_whatever_the_umask(tmp_path):
    path = tmp_path / "bundle.tar.gz"
    old = os.umask(0o277)    # would leave the owner without write permission
    try:
        with _files.create_new(str(path)) as handle:
            handle.write(b"one")
    finally:
        os.umask(old)
    assert path.read_bytes() == b"one" and _mode(path) == 0o600
    with pytest.raises(FileExistsError):
        _files.create_new(str(path))
    assert path.read_bytes() == b"one"
