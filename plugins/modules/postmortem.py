#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) sre.incident contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: postmortem
short_description: Write the postmortem report of an incident from its record
version_added: 0.1.0
description:
  - Replays the incident record of M(sre.incident.record) (C(<incident_dir>/<id>/events.jsonl)) and
    writes the runbook's postmortem report (SPEC PM-1, PM-2, P0-10) into the incident's directory, as
    C(postmortem.md) (for a wiki) and C(postmortem.html) (self-contained, readable when printed).
  - "The runbook's sections in order: the summary (severity, service, impact, duration, SLA met or
    missed); the timeline table (time, event, owner) of every event; the root-cause analysis (direct
    and root cause, contributing factors, the timeline picture, why not detected earlier); the lessons;
    the action items (item, description, priority, owner, deadline), with those of the P1 cases (event
    data C(action_item)); both checklists with each item's tick time; the meeting agenda (30-60 min,
    five items); and the postmortem's due date."
  - What the automation knows comes from the record (the rung that fixed it, exit codes and OOM kills
    in event data such as a diagnostics bundle summary, the P1 case, recent changes, failed tasks,
    degraded modes); what it cannot know is left to a human in marked sections.
  - "Human sections sit between C(<!-- sre.incident:human:begin NAME -->) and
    C(<!-- sre.incident:human:end NAME -->) (names C(summary-notes), C(rca-direct-cause),
    C(rca-root-cause), C(rca-contributing-factors), C(rca-why-not-detected), C(lessons-went-well),
    C(lessons-to-improve), C(action-items-extra), C(meeting-notes)). A re-run regenerates everything
    else and carries these blocks over verbatim, in both formats."
  - The Markdown holds the timeline as a Mermaid C(gantt) block. The HTML draws it as an inline SVG
    (stages as bars on a time axis, the deadlines as vertical lines with the ids C(deadline-respond)
    and C(deadline-resolve)) and plots the watch samples (event data C(watch_sample) with
    C(latency_ms) and C(error_rate)) as small line charts.
  - The record is only read. Stage and failure events of the C(postmortem) stage (written by the
    C(sre.incident.timeline) callback meanwhile) are left out of the report.
  - "Runs on the B(controller), where the record lives: an action plugin renders the Jinja2 templates
    (C(plugins/plugin_utils/templates/postmortem.md.j2), C(postmortem.html.j2), C(postmortem.css)) in
    the controller's process; nothing runs on a managed host."
extends_documentation_fragment:
  - sre.incident.attributes
options:
  incident_dir:
    description: Directory holding one sub-directory per incident, on the controller; else E(SRE_INCIDENT_DIR).
    type: path
    default: incidents
  id:
    description: The incident id. An id with no record in O(incident_dir) fails, naming the id and the directory.
    type: str
    required: true
  formats:
    description: Which reports to write.
    type: list
    elements: str
    choices: [md, html]
    default: [md, html]
  owner:
    description:
      - Owner of the generated action items that name none (for example the postmortem itself); defaults
        to the record's incident commander.
    type: str
  now:
    description:
      - The current time, ISO 8601, for the SLA status of a still open incident (for tests). Defaults to now.
    type: str
attributes:
  action:
    support: full
    description: Runs on the controller as an action plugin (this file documents it).
  check_mode:
    details: Nothing is written; C(changed) and the diff show which files would change.
  diff_mode:
    support: full
    details: The full text of each report before and after.
  idempotent:
    support: full
    details: The reports carry no generation time nor the C(postmortem) stage's own events; a re-run on an unchanged record writes nothing.
  platform:
    platforms: posix
notes:
  - A record with unreadable lines (see RV(sre.incident.record#module:corrupt_lines)) fails the module,
    naming the lines; repair the record first.
seealso:
  - module: sre.incident.record
"""

EXAMPLES = r"""
- name: Write the postmortem of an incident
  sre.incident.postmortem:
    incident_dir: /srv/incidents
    id: INC-20261127-013045-p0-recommendation-service-localhost-3f9a
  delegate_to: localhost
  register: postmortem

- name: Only the Markdown, with an owner for the generated action items
  sre.incident.postmortem:
    id: "{{ incident_id }}"
    formats: [md]
    owner: "@tech-lead"
  delegate_to: localhost
"""

RETURN = r"""
id:
  description: The incident id.
  returned: always
  type: str
  sample: INC-20261127-013045-p0-recommendation-service-localhost-3f9a
record_dir:
  description: Absolute path of the incident's directory (where the reports are written).
  returned: always
  type: str
  sample: /srv/incidents/INC-20261127-013045-p0-recommendation-service-localhost-3f9a
events_path:
  description: Absolute path of the event log that was read.
  returned: always
  type: str
  sample: /srv/incidents/INC-20261127-013045-p0-recommendation-service-localhost-3f9a/events.jsonl
paths:
  description: Path of each requested report, by format.
  returned: always
  type: dict
  sample:
    md: /srv/incidents/INC-20261127-013045-p0-recommendation-service-localhost-3f9a/postmortem.md
    html: /srv/incidents/INC-20261127-013045-p0-recommendation-service-localhost-3f9a/postmortem.html
written:
  description: The reports whose content changed and were written (would be written, in check mode).
  returned: always
  type: list
  elements: str
summary:
  description:
    - The summary of the report model.
    - "Keys: C(id service severity status outcome impact commander war_room started_at detected_at
      responded_at resolved_at closed_at recovered_at last_event_at duration_s ongoing
      time_to_respond_s time_to_resolve_s mitigated_at times clock sla deadlines sla_status fixed_by
      rungs_tried degraded_mode event_count last_seq due due_rule action_item_count)."
    - "C(times): C(time_to_detect_s), C(mtta_s), C(mttm_s), C(mttr_s), seconds from C(started_at) (the
      alert's start when an alert started the run); C(clock): where the start came from (SPEC MON-1)."
    - C(fixed_by) is V(null) when no rung is known to have fixed it, else C(rung label number ts).
  returned: always
  type: dict
  sample:
    severity: P0
    duration_s: 14.2
    sla_status: {respond: met, resolve: met}
    fixed_by: {rung: 1, label: rung 1 (restart the service), number: 1, ts: "2026-11-27T01:30:59.120Z"}
    due: "2026-11-28T01:31:02.000Z"
due:
  description:
    - When the postmortem is due, ISO 8601 UTC; V(null) when there is none yet or none at all.
    - "PM-1: P0 within 24 h of the recovery, P1 within 3 days, P2 after the fix, P3 none."
  returned: always
  type: str
  sample: "2026-11-28T01:31:02.000Z"
due_rule:
  description: The rule behind RV(due), in words.
  returned: always
  type: str
  sample: within 24 h of the recovery
"""

from ansible_collections.sre.incident.plugins.module_utils._errors import IncidentError
from ansible_collections.sre.incident.plugins.module_utils._module import IncidentModule
from ansible_collections.sre.incident.plugins.module_utils._postmortem import ARGUMENT_SPEC


def work(module):
    raise IncidentError("sre.incident.postmortem runs on the controller as an action plugin: run it as an Ansible "
                        "task (ansible-playbook or ansible -m sre.incident.postmortem), not as a module on its own")


def main():
    IncidentModule(ARGUMENT_SPEC).run(work)


if __name__ == "__main__":
    main()
