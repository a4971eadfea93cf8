# -*- coding: utf-8 -*-
# Copyright (c) sre.incident contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The log cleanup, the quick fix of the P1 case ``disk_low``, for ``sre.incident.log_cleanup``.

Deletes the files of the service's log directory that it does not write to (rotated or stray
files), truncates the active logs only when the volume stays above a target, and removes all but
the newest evidence bundles. Never touches data volumes. Pure except :func:`run_log_cleanup`.
"""

from __future__ import annotations

import fnmatch
import os
import posixpath
import shutil

from ansible_collections.sre.incident.plugins.module_utils._p1cases import _number


DEFAULT_KEEP = ("app-*.log",)


def parse_find(stdout):
    """``find DIR -type f -printf '%s\\t%T@\\t%p\\n'`` -> list of dict(path, size, mtime)."""
    files = []
    for line in (stdout or "").splitlines():
        fields = line.split("\t", 2)
        if len(fields) != 3:
            continue
        try:
            files.append(dict(size=int(fields[0]), mtime=float(fields[1]), path=fields[2]))
        except ValueError:
            continue
    return files


def _inside(path, directory):
    directory = posixpath.normpath(directory)
    path = posixpath.normpath(path)
    return path != directory and path.startswith(directory.rstrip("/") + "/")


def plan_log_cleanup(files, log_dir, keep=DEFAULT_KEEP):
    """dict(remove, keep), largest first, of the files inside ``log_dir``: kept when their name matches
    one of ``keep`` (the logs the service writes now); a path outside ``log_dir`` is never removed."""
    if not log_dir or not posixpath.isabs(log_dir) or posixpath.normpath(log_dir) == "/":
        raise ValueError("log_dir %r must be an absolute directory other than /" % (log_dir,))
    remove, kept = [], []
    for f in files:
        if not _inside(f["path"], log_dir):
            continue
        name = posixpath.basename(f["path"])
        (kept if any(fnmatch.fnmatch(name, pat) for pat in keep) else remove).append(f)
    return dict(remove=sorted(remove, key=lambda f: -f["size"]), keep=sorted(kept, key=lambda f: -f["size"]))


def bundle_groups(names):
    """[(stem, [names])], oldest first (names start with a UTC stamp): ``<stamp>-<label>`` and
    ``<stamp>-<label>.tar.gz`` are one bundle."""
    groups = {}
    for name in names:
        stem = name[:-len(".tar.gz")] if name.endswith(".tar.gz") else name
        if not stem[:8].isdigit():
            continue  # not a bundle written by sre.incident.diagnose
        groups.setdefault(stem, []).append(name)
    return sorted((stem, sorted(members)) for stem, members in groups.items())


def plan_bundle_cleanup(names, keep=3):
    """The bundle names (directories and archives) to remove: all but the newest ``keep`` bundles."""
    keep = int(_number("bundles_keep", keep, allow_none=False))
    groups = bundle_groups(names)
    old = groups[:-keep] if keep else groups
    return [name for stem, members in old for name in members]


def _df(exec_fn, log_dir):
    from ansible_collections.sre.incident.plugins.module_utils._diagnose import parse_df

    res = exec_fn(["df", "-P", "-k", log_dir])
    rows = parse_df(res.get("stdout"))
    if res.get("rc") != 0 or not rows:
        raise ValueError("cannot read the usage of %s in the service container (rc %s): %s" % (
            log_dir, res.get("rc"), (res.get("stderr") or res.get("stdout") or "").strip()[:300]))
    return rows[0]


def _change(exec_fn, argv, files, log_dir):
    res = exec_fn(argv + [f["path"] for f in files])
    if res.get("rc") != 0:
        raise ValueError("%s failed in the service container (rc %s): %s" % (argv[0], res.get("rc"), (res.get("stderr") or "").strip()[:300]))
    return _df(exec_fn, log_dir)


def _size_of(path):
    if os.path.isdir(path) and not os.path.islink(path):
        total = 0
        for root, _dirs, files in os.walk(path):
            for name in files:
                try:
                    total += os.lstat(os.path.join(root, name)).st_size
                except OSError:
                    pass
        return total
    return os.lstat(path).st_size


def run_log_cleanup(params, exec_fn, check_mode=False):
    """The work of ``sre.incident.log_cleanup``; ``exec_fn(argv)`` runs a command in the service's
    container and returns dict(rc, stdout, stderr). ``truncate_above_pct``: truncate the kept logs
    when the volume is still at least this full after removing the rest (``None``: never)."""
    log_dir = params.get("log_dir")
    keep = list(params.get("keep") or DEFAULT_KEEP)
    truncate_above = _number("truncate_above_pct", params.get("truncate_above_pct"))
    if truncate_above is not None and truncate_above > 100:
        raise ValueError("truncate_above_pct %r is impossible: a percentage lies between 0 and 100" % (truncate_above,))
    bundles_dir = params.get("bundles_dir")
    bundles_keep = params.get("bundles_keep", 3)
    before = _df(exec_fn, log_dir)
    listing = exec_fn(["find", log_dir, "-xdev", "-type", "f", "-printf", "%s\t%T@\t%p\n"])
    if listing.get("rc") != 0:
        raise ValueError("cannot list %s in the service container (rc %s): %s" % (
            log_dir, listing.get("rc"), (listing.get("stderr") or "").strip()[:300]))
    plan = plan_log_cleanup(parse_find(listing.get("stdout")), log_dir, keep)
    removed = [dict(path=f["path"], size=f["size"]) for f in plan["remove"]]
    freed = sum(f["size"] for f in plan["remove"])
    truncated = []
    after = before
    if plan["remove"] and not check_mode:
        after = _change(exec_fn, ["rm", "-f", "--"], plan["remove"], log_dir)
    projected_kb = max(0, before["used_kb"] - freed // 1024) if check_mode else after["used_kb"]
    total_kb = before["used_kb"] + before["avail_kb"]
    projected_pct = round(100.0 * projected_kb / total_kb, 1) if total_kb else 0.0
    if truncate_above is not None and projected_pct >= truncate_above:
        big = [f for f in plan["keep"] if f["size"] > 0]
        truncated = [dict(path=f["path"], size=f["size"]) for f in big]
        freed += sum(f["size"] for f in big)
        if big and not check_mode:
            after = _change(exec_fn, ["truncate", "-s", "0", "--"], big, log_dir)
    bundles_removed = []
    if bundles_dir and os.path.isdir(bundles_dir):
        for name in plan_bundle_cleanup(sorted(os.listdir(bundles_dir)), bundles_keep):
            path = os.path.join(bundles_dir, name)
            if os.path.islink(path):
                continue
            size = _size_of(path)
            bundles_removed.append(dict(path=path, size=size))
            freed += size
            if not check_mode:
                if os.path.isdir(path):
                    shutil.rmtree(path)
                else:
                    os.unlink(path)
    changed = bool(removed or truncated or bundles_removed)
    used_after = after["used_pct"] if not check_mode else projected_pct
    return dict(changed=changed, log_dir=log_dir, removed=removed, truncated=truncated, bundles_removed=bundles_removed,
                freed_bytes=freed, used_pct_before=before["used_pct"], used_pct_after=used_after, kept=[f["path"] for f in plan["keep"]],
                diff=dict(before="%s: %s %% used\n" % (log_dir, before["used_pct"]),
                          after="%s: %s %% used\n" % (log_dir, used_after)))
