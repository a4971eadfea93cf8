# -*- coding: utf-8 -*-
# Copyright (c) sre.incident contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Files the collection keeps (leases, markers, state, saved configurations): written whole or not
at all. A reader, or a run that crashes half-way, sees the old file or the new one, never half of
either: :func:`write_atomic` renames a temporary file of its own over the target.
"""

from __future__ import annotations

import json
import os
import re
import tempfile


def write_atomic(path, data, mode=0o600, sync=True):
    """Replace ``path`` (its directory must exist) with ``data`` (bytes, or text as UTF-8) in one step.
    ``sync=False`` skips the flush to disk (for files only worth their content while the machine is up)."""
    if isinstance(data, str):
        data = data.encode("utf-8")
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            if sync:
                handle.flush()
                os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def create_new(path, mode=0o600):
    """A binary file opened for writing that did not exist before (FileExistsError otherwise), with ``mode``
    whatever the umask: for files that must never overwrite another run's (bundles, backups)."""
    handle = os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode), "wb")
    os.fchmod(handle.fileno(), mode)
    return handle


def slug(text, fallback):
    """``'Unreadable cache entry (user-173)!'`` -> ``'unreadable-cache-entry-user-173'``: lower-case
    letters, digits and single dashes, at most 60 characters, safe in a file name; ``fallback`` when
    nothing is left (a text in another script)."""
    out = re.sub(r"[^a-z0-9]+", "-", str(text).lower()).strip("-")
    return out[:60].rstrip("-") or fallback


def read_text(path):
    """The text (UTF-8) of ``path``, None when there is no such file."""
    try:
        with open(path, "r", encoding="utf-8") as handle:
            return handle.read()
    except FileNotFoundError:
        return None


def write_json(path, value, mode=0o600, sync=True, indent=2):
    """:func:`write_atomic` of ``value`` as JSON (sorted keys, a final newline)."""
    write_atomic(path, json.dumps(value, indent=indent, sort_keys=True) + "\n", mode=mode, sync=sync)


def private_dir(path):
    """``path`` made (with its parents) and kept readable by its owner only (0700)."""
    os.makedirs(path, mode=0o700, exist_ok=True)
    os.chmod(path, 0o700)
    return path
