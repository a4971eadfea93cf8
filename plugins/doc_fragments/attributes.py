# -*- coding: utf-8 -*-
# Copyright (c) sre.incident contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    """Shared attribute descriptions and the author (use the fragment and override C(support) per module)."""

    DOCUMENTATION = r"""
author:
  - SRE incident team (@sre-incident)
options: {}
attributes:
  check_mode:
    description: Can run in check mode and return changed status prediction without modifying target.
    # every module of the collection: a module says only how (its details)
    support: full
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check mode), when in diff mode.
  idempotent:
    description:
      - When run twice in a row outside check mode, with the same arguments, the second invocation indicates no change.
      - This assumes that the system controlled/queried by the module has not changed in a relevant way.
  platform:
    description: Target OS/families that can be operated against.
    support: N/A
    platforms: posix
"""

    # A module that only reads (probes, checks, measures): extends sre.incident.attributes and
    # sre.incident.attributes.read_only, and writes no attributes block of its own.
    READ_ONLY = r"""
options: {}
attributes:
  check_mode:
    details: The module only reads, so it runs in check mode too, and never reports a change.
  diff_mode:
    support: none
  idempotent:
    support: full
"""

    # A module on the hot path of a P0 with an action plugin of its name (plugin_utils/_action.ModuleAction).
    HERE = r"""
options: {}
attributes:
  action:
    support: full
    description: Runs as an action plugin, with the same options and results as the module.
    details:
      - The module runs on the managed host; with the C(local) connection, the controller's own Python as
        C(ansible_python_interpreter) and no C(become), C(async) or C(delegate_to), it runs in the controller's
        process instead, saving the start of another Python (about 0.3 s a task) on the way to the first rung.
"""
