#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) sre.incident contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: record
short_description: Open, extend, tick, close and read the incident record
version_added: 0.1.0
description:
  - Keeps the incident record of the runbook (SPEC SEV-3, P0-10) as an append-only event log, one
    directory per incident, C(<incident_dir>/<id>/events.jsonl), one JSON object per line. The
    incident's state (RV(incident)) is computed by replaying the events; nothing is ever rewritten.
  - Appends are safe when several forks write at once (C(O_APPEND), C(flock), one write per line,
    C(fsync)). A torn or unparseable line is never dropped silently but reported in RV(corrupt_lines).
  - "The record lives on the B(controller): an action plugin of the same name writes it in the
    controller's process (a few milliseconds per call), whatever host the task runs for, so
    O(incident_dir) is a path on the controller. Roles still say C(delegate_to: localhost) to show it."
  - Uses the Python standard library only.
extends_documentation_fragment:
  - sre.incident.attributes
options:
  state:
    description:
      - V(opened) creates the incident (the C(opened) event); with an O(id) already recorded, returns
        that incident unchanged.
      - V(event) appends a free event (O(stage), O(text), O(owner), O(data)); with an O(severity) that
        differs from the current one, a C(reclassified) event instead, the deadlines following it.
      - V(stage) records that the runbook stage O(stage) starts (a C(stage) event), lasting until the
        next one starts; each stage role does so first. Without an incident (no O(id) nor play variable
        C(incident_id)) nothing is recorded and RV(id), RV(record_dir), RV(events_path), RV(stats) and
        RV(sre_incident_record) are V(null), as stage roles also run outside incidents (C(diagnose.yml)).
      - V(tick) ticks checklist O(items); an item already ticked is left alone (no new event).
      - V(closed) closes the incident with O(outcome); closing again with the same outcome changes
        nothing, with another one appends a new C(closed) event.
      - V(present) only reads the record.
    type: str
    choices: [opened, event, stage, tick, closed, present]
    default: present
  incident_dir:
    description:
      - Directory holding one sub-directory per incident, on the controller; a relative path is relative
        to the current directory of C(ansible-playbook).
      - Under AWX the execution environment is thrown away after the job, so point this at a lasting
        place (a mounted volume) and hand the id on with C(set_stats) (see RV(stats)).
      - Left out, it is the play's variable C(incident_dir), else the environment variable E(SRE_INCIDENT_DIR).
    type: path
    default: incidents
  id:
    description:
      - The incident id, a safe file name (letters, digits, C(.), C(_), C(-)).
      - Required except for V(stage) and V(opened), which generates one like
        C(INC-20261127-013045-p0-recommendation-service-3f9a) when omitted.
      - Left out (except with O(state=opened)), it is the play's variable C(incident_id), when set.
    type: str
  service:
    description: The affected service. Required for O(state=opened).
    type: str
  severity:
    description: Required for O(state=opened). With O(state=event), a different value reclassifies.
    type: str
    choices: [P0, P1, P2, P3]
  commander:
    description: The incident commander (O(state=opened)).
    type: str
  war_room:
    description: The war-room link (O(state=opened)).
    type: str
  oncall:
    description: Who was on call when the incident opened, as computed by the on-call logic (O(state=opened)).
    type: dict
  impact:
    description: "The impact scope, for example C({users_affected: all, features: [recommendations]}) (O(state=opened))."
    type: dict
  sla:
    description:
      - "SLA overrides in seconds per severity, replacing the defaults kind by kind, for example
        C({P0: {respond: 300, resolve: 1800}}). V(null) removes that SLA."
      - Defaults (SPEC SEV-3) P0 respond 5 min / resolve 30 min; P1 15 min / 2 h;
        P2 24 h / 1 week; P3 no SLA.
    type: dict
  detected_at:
    description: When the incident was detected (the automation first looked at it), ISO 8601 (UTC if no offset). Defaults to now.
    type: str
  started_at:
    description:
      - When the incident started, ISO 8601, for example an alert's C(startsAt) (SPEC MON-1); the SLA
        deadlines and the P0 checklist run from here. Defaults to C(starts_at) of O(alert), else O(detected_at).
      - Not ISO 8601, or more than 60 seconds after the controller's clock, fails before anything is
        written. Up to 60 seconds ahead (clock skew), or later than O(detected_at), counts from
        O(detected_at), as C(clock.note) in RV(incident) says.
    type: str
  alert:
    description:
      - The alert that started the run (O(state=opened)), kept as C(clock.alert), with C(name),
        C(fingerprint), C(source) (for example V(alertmanager)), C(starts_at) and C(labels).
      - C(clock.started_from) is then V(alert); with only O(started_at), V(given); with neither, V(detection).
    type: dict
  responded_at:
    description:
      - With O(state=closed), when the incident was first responded to outside the automation.
      - The record's response time is the B(earliest) of the first tick of C(response_started), this
        value and the first close of the incident (the latest possible response).
    type: str
  done_at:
    description:
      - With O(state=tick), when the items were done, ISO 8601 (UTC if no offset), if before the tick is
        written (for example the channels acknowledged the C(started) notification in the background and
        the run collected it later). Defaults to now.
      - It becomes the item's time in the checklist (and, for C(response_started), the response time);
        the event keeps the time it was written. A time after now counts as now, one before the opening
        as the opening.
      - With O(state=stage), when the stage started, if before the record existed (the detection,
        C(detected_at)). A time before the detection counts as the detection.
    type: str
  stage:
    description: The runbook stage of the event (the role's name, for example V(recover)). Required for O(state=stage).
    type: str
  text:
    description: What happened, in one line. Required for O(state=event) unless reclassifying.
    type: str
  event_type:
    description:
      - The C(type) of the event written by O(state=event), for example V(event) or V(note).
      - The types C(opened), C(stage), C(tick), C(closed) and C(reclassified) are written by their own states only.
    type: str
    default: event
  owner:
    description: Who did it. Defaults to the controller's E(USER), else V(automation).
    type: str
  host:
    description: The managed host the event concerns. Left out, it is the task's C(inventory_hostname).
    type: str
  data:
    description:
      - Free structured data stored with the event. A key C(rung) marks a recovery-ladder rung tried
        (replayed into C(rungs) and C(last_rung)); a key C(degraded_mode) marks the degraded mode now
        active (V(null) or V(none) when back to normal).
    type: dict
  items:
    description:
      - Checklist keys to tick (O(state=tick)); an unknown key fails before anything is written.
      - "P0 response checklist: C(detect_confirmed) (t+0), C(response_started) (t+2 min),
        C(quick_diagnosis) (t+5 min), C(first_fix) (t+8 min), C(recovery_verified) (t+20 min),
        C(rca_started) (t+30 min), C(permanent_fix) (t+1-4 h), C(postmortem) (t+24 h)."
      - "Recovery checklist: C(health_200), C(recommendations_returned), C(several_users_ok),
        C(latency_under_500ms), C(no_new_errors), C(resources_normal), C(watch_every_minute),
        C(error_rate_no_rebound), C(notify_management), C(notify_users), C(notify_teams)."
    type: list
    elements: str
  values:
    description: Optional value per ticked item (for example a measured latency), keyed by item.
    type: dict
  outcome:
    description:
      - How the incident ended (O(state=closed)). V(resolved), V(mitigated) and V(false_alarm) resolve it
        for the resolve SLA; V(degraded), V(escalated) and V(failed) leave the resolve deadline missed.
    type: str
    choices: [resolved, mitigated, degraded, escalated, false_alarm, failed]
attributes:
  action:
    support: full
    description: Runs on the controller as an action plugin, with the same options and results.
  check_mode:
    details:
      - Nothing is written; C(changed), RV(incident) and the diff show what would be.
      - A record that does not exist (opened by an earlier task of the same dry run) does not fail
        O(state=event), V(tick), V(closed) or V(present); the input is still validated, RV(incident)
        is V(null) and a warning says so.
  diff_mode:
    support: full
    details: Before and after of the status, severity, outcome, ticked items and event count.
  idempotent:
    support: partial
    details:
      - O(state=opened) with an existing O(id), ticking ticked items and closing with the same
        outcome change nothing; O(state=event) and O(state=stage) always append.
  platform:
    platforms: posix
seealso:
  - module: sre.incident.lease
  - plugin: sre.incident.timeline
    plugin_type: callback
"""

EXAMPLES = r"""
- name: Open a P0 incident on the controller
  sre.incident.record:
    state: opened
    incident_dir: "{{ playbook_dir }}/../incidents"
    service: recommendation-service
    severity: P0
    commander: "@incident-commander"
    war_room: https://meet.example.invalid/p0
    impact:
      users_affected: all
      features: [recommendations]
  delegate_to: localhost
  run_once: true
  register: incident_opened

- name: Hand the incident on to later AWX jobs
  ansible.builtin.set_stats:
    data: "{{ incident_opened.stats }}"

- name: Tick the response items of the P0 checklist
  sre.incident.record:
    state: tick
    id: "{{ incident_opened.id }}"
    items: [detect_confirmed, response_started]
    values:
      detect_confirmed: app-side failure, all users
  delegate_to: localhost
  run_once: true

- name: Say that the recovery stage starts (the first task of a stage role; id and place from the play)
  sre.incident.record:
    state: stage
    stage: recover
  delegate_to: localhost

- name: Record the first rung of the recovery ladder
  sre.incident.record:
    state: event
    id: "{{ incident_opened.id }}"
    stage: recover
    text: restart recommendation-service
    host: "{{ inventory_hostname }}"
    data:
      rung: 1
      result: ok
  delegate_to: localhost

- name: Close it
  sre.incident.record:
    state: closed
    id: "{{ incident_opened.id }}"
    outcome: resolved
  delegate_to: localhost
  run_once: true
"""

RETURN = r"""
id:
  description: The incident id.
  returned: always
  type: str
  sample: INC-20261127-013045-p0-recommendation-service-3f9a
record_dir:
  description: Absolute path of the incident's directory on the controller.
  returned: always
  type: str
  sample: /srv/incidents/INC-20261127-013045-p0-recommendation-service-3f9a
events_path:
  description: Absolute path of the event log.
  returned: always
  type: str
  sample: /srv/incidents/INC-20261127-013045-p0-recommendation-service-3f9a/events.jsonl
incident:
  description:
    - The replayed state of the incident after the change (in check mode, as it would be, or V(null)
      when the record does not exist yet).
    - "Keys: C(id service severity started_at detected_at clock commander war_room oncall impact sla
      deadlines opened_at status outcome closed_at responded_at mitigated_at resolved_at times
      sla_status time_left checklists ticked rungs last_rung degraded_mode degraded_history
      severity_history events event_count corrupt_lines)."
    - C(clock) is C(started_from), C(alert_started_at) (the time given), C(alert) (see O(alert) for
      both) and C(note) (see O(started_at)).
    - "C(times) are seconds from C(started_at): C(time_to_detect_s), C(mtta_s) (to C(responded_at), the
      acknowledgement), C(mttm_s) (to C(mitigated_at): recovery verified, a degraded mode on, or closed as
      resolved, mitigated or degraded) and C(mttr_s) (to C(resolved_at)); V(null) until reached."
    - C(sla_status.respond) and C(sla_status.resolve) are V(met), V(missed), V(open) or V(none) (no SLA).
    - C(checklists) maps V(p0_response) and V(recovery) to their items, each with C(key mark text due
      done ts value owner on_time).
  returned: always
  type: dict
  sample:
    id: INC-20261127-013045-p0-recommendation-service-3f9a
    severity: P0
    status: closed
    outcome: resolved
    deadlines: {respond: "2026-11-27T01:35:45.000Z", resolve: "2026-11-27T02:00:45.000Z"}
    sla_status: {respond: met, resolve: met}
    last_rung: 1
    degraded_mode: null
appended:
  description: The events written by this call (would be written, in check mode).
  returned: always
  type: list
  elements: dict
corrupt_lines:
  description: Lines of the event log that could not be read, with line number, error and the start of the text.
  returned: always
  type: list
  elements: dict
  sample: [{line: 7, error: "torn last line, no newline: not valid JSON", text: '{"seq": 7, "ts": "2026-'}]
stats:
  description: The hand-off for C(ansible.builtin.set_stats) (AWX workflows).
  returned: always
  type: dict
  sample: {incident_id: INC-20261127-013045-p0-recommendation-service-3f9a, incident_dir: /srv/incidents,
           record_dir: /srv/incidents/INC-20261127-013045-p0-recommendation-service-3f9a, severity: P0}
sre_incident_record:
  description: Where the record is; the C(sre.incident.timeline) callback starts recording when it sees this key.
  returned: always
  type: dict
  sample: {id: INC-20261127-013045-p0-recommendation-service-3f9a, incident_dir: /srv/incidents,
           record_dir: /srv/incidents/INC-20261127-013045-p0-recommendation-service-3f9a,
           events_path: /srv/incidents/INC-20261127-013045-p0-recommendation-service-3f9a/events.jsonl}
"""

from ansible_collections.sre.incident.plugins.module_utils._module import IncidentModule
from ansible_collections.sre.incident.plugins.module_utils._record import ARGUMENT_SPEC, REQUIRED_IF, run_checked


def main():
    IncidentModule(ARGUMENT_SPEC, required_if=REQUIRED_IF).run(
        lambda m: run_checked(m.params, check_mode=m.check_mode, diff=m.diff))


if __name__ == "__main__":
    main()
