# -*- coding: utf-8 -*-
# Copyright (c) sre.incident contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    """Shared attribute descriptions and the author (use the fragment and override C(support) per module)."""

    # Standard documentation fragment: every module names its own support level in its
    # attributes block; the descriptions below are shared.
    DOCUMENTATION = r"""
# every module of the collection extends this fragment: its author is said here once
author:
  - SRE incident team (@sre-incident)
options: {}
attributes:
  check_mode:
    description: Can run in check mode and return changed status prediction without modifying target.
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check mode), when in diff mode.
  idempotent:
    description:
      - When run twice in a row outside check mode, with the same arguments, the second invocation indicates no change.
      - This assumes that the system controlled/queried by the module has not changed in a relevant way.
  platform:
    description: Target OS/families that can be operated against.
    support: N/A
"""

    # A module that only reads (probes, checks, measures): extends sre.incident.attributes and
    # sre.incident.attributes.read_only, and writes no attributes block of its own.
    READ_ONLY = r"""
options: {}
attributes:
  check_mode:
    support: full
    details: The module only reads, so it runs in check mode too, and never reports a change.
  diff_mode:
    support: none
  idempotent:
    support: full
  platform:
    platforms: posix
"""
