# -*- coding: utf-8 -*-
# Copyright (c) sre.incident contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one renderer of the collection's reports: Jinja2 templates shipped in ``templates/`` here.

The action plugins of ``sre.incident.postmortem`` and ``sre.incident.report`` render them in the
controller's process (AnsiballZ would not ship them to a managed host). Each view is plain data made in
module_utils (``_postmortem.report_view``, ``_report.report_view``); the templates only lay it out.
HTML templates (``*.html.j2``) are autoescaped; Markdown ones escape record text with the ``md``
filter where a table or a marker could be broken. Undefined names fail the render.
"""

from __future__ import annotations

import functools
import os

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from ansible_collections.sre.incident.plugins.module_utils._postmortem import md

TEMPLATES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "templates")


@functools.lru_cache(maxsize=None)
def environment():
    """Made once per process."""
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=lambda name: (name or "").endswith(".html.j2"),
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True,
                      finalize=lambda value: "" if value is None else value)
    env.filters["md"] = md
    return env


def render(name, view):
    """The text of template ``name`` filled from ``view`` (a dict)."""
    return environment().get_template(name).render(view)
