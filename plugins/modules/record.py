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
  - Keeps the incident record of the runbook (SPEC SEV-3, P0-10) as an append-only event log,
    one directory per incident, C(<incident_dir>/<id>/events.jsonl), one JSON object per line.
  - The current state of the incident (RV(incident)) is always computed by replaying the events;
    nothing is ever rewritten.
  - Appends are safe when several forks write at once (C(O_APPEND), C(flock), one write per line,
    C(fsync)). A torn or unparseable line is never dropped silently; it is reported in
    RV(corrupt_lines).
  - "The record lives on the B(controller). An action plugin of the same name writes it in the
    controller's own process (no module round trip, a few milliseconds per call), whatever host the
    task runs for, so O(incident_dir) is always a path on the controller. Roles still say
    C(delegate_to: localhost) to make that visible."
  - The module uses the Python standard library only.
extends_documentation_fragment:
  - sre.incident.attributes
options:
  state:
    description:
      - V(opened) creates the incident (the C(opened) event). With O(id) given and already
        recorded, returns the existing incident unchanged.
      - V(event) appends a free event (O(stage), O(text), O(owner), O(data)). If O(severity) is
        given and differs from the current one, a C(reclassified) event is written instead and the
        deadlines follow the new severity.
      - V(stage) records that the runbook stage O(stage) starts (a C(stage) event); the stage lasts
        until the next one starts. Each stage role says so as its first task. Without an incident
        (no O(id), and no C(incident_id) in the play) nothing is recorded, RV(id), RV(record_dir),
        RV(events_path), RV(stats) and RV(sre_incident_record) are V(null). A stage role also runs
        outside incidents (C(diagnose.yml)).
      - V(tick) ticks checklist O(items); an item already ticked is left alone (no new event).
      - V(closed) closes the incident with O(outcome); closing again with the same outcome
        changes nothing, with another outcome appends a new C(closed) event.
      - V(present) only reads the record.
    type: str
    choices: [opened, event, stage, tick, closed, present]
    default: present
  incident_dir:
    description:
      - Directory holding one sub-directory per incident, on the controller.
      - A relative path is relative to the current directory of the C(ansible-playbook) process.
      - Under AWX the controller (execution environment) is thrown away after the job, so point
        this at a lasting place (a mounted volume) and hand the id on with C(set_stats) (see
        RV(stats)).
      - Left out, it is the play's variable C(incident_dir) (the one variable for the record's place),
        else the environment variable E(SRE_INCIDENT_DIR).
    type: path
    default: incidents
  id:
    description:
      - The incident id, a safe file name (letters, digits, C(.), C(_), C(-)).
      - Required for every O(state) except V(opened), where a new id like
        C(INC-20261127-013045-p0-recommendation-service-3f9a) is generated when it is omitted, and
        V(stage) (see there).
      - Left out (except with O(state=opened)), it is the play's variable C(incident_id), when set.
    type: str
  service:
    description: The affected service. Required for O(state=opened).
    type: str
  severity:
    description:
      - The severity. Required for O(state=opened).
      - With O(state=event), a different value reclassifies the incident.
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
      - "SLA overrides in seconds per severity, replacing the runbook's defaults kind by kind,
        for example C({P0: {respond: 300, resolve: 1800}}). A value of V(null) removes that SLA."
      - Defaults (SPEC SEV-3) P0 respond 5 min / resolve 30 min; P1 15 min / 2 h;
        P2 24 h / 1 week; P3 no SLA.
    type: dict
  detected_at:
    description: When the incident was detected (the automation first looked at it), ISO 8601 (UTC if no offset). Defaults to now.
    type: str
  started_at:
    description:
      - When the incident started, ISO 8601, for example an alert's C(startsAt) (SPEC MON-1). The SLA
        deadlines and the P0 checklist run from here. Defaults to C(starts_at) of O(alert), else
        O(detected_at).
      - A time that is not ISO 8601, or more than 60 seconds after the controller's clock, fails,
        naming it, before anything is written. A time up to 60 seconds ahead (clock skew) or later
        than O(detected_at) counts from O(detected_at); C(clock.note) in RV(incident) says so.
    type: str
  alert:
    description:
      - The alert that started the run (O(state=opened)), kept in the record as C(clock.alert), with
        C(name), C(fingerprint), C(source) (for example V(alertmanager)), C(starts_at) and C(labels).
      - With an alert, C(clock.started_from) is V(alert); with only O(started_at), V(given); with
        neither, V(detection).
    type: dict
  responded_at:
    description:
      - With O(state=closed), when the incident was first responded to, if that happened outside the automation.
      - The response time of the record is the B(earliest) of the first tick of C(response_started),
        this value and the first close of the incident (closing is the latest possible response).
    type: str
  done_at:
    description:
      - With O(state=tick), when the items were done, ISO 8601 (UTC if no offset), if that was before
        the tick is written; for example when the channels acknowledged the C(started) notification
        in the background and the run collected it later. Defaults to now.
      - It becomes the item's time in the checklist (and, for C(response_started), the response
        time); the event itself keeps the time it was written. A time after now counts as now, one
        before the incident was opened as its opening.
      - With O(state=stage), when the stage started, if that was before the record existed (the
        detection, C(detected_at)). A time before the incident's detection counts as its detection.
    type: str
  stage:
    description:
      - The runbook stage the event belongs to (the role's name, for example V(recover)).
      - Required for O(state=stage), the stage that starts.
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
      - Free structured data stored with the event.
      - A key C(rung) marks a recovery-ladder rung tried (replayed into C(rungs) and C(last_rung));
        a key C(degraded_mode) marks the degraded mode now active (V(null) or V(none) when back to normal).
    type: dict
  items:
    description:
      - Checklist keys to tick (O(state=tick)).
      - "P0 response checklist: C(detect_confirmed) (t+0), C(response_started) (t+2 min),
        C(quick_diagnosis) (t+5 min), C(first_fix) (t+8 min), C(recovery_verified) (t+20 min),
        C(rca_started) (t+30 min), C(permanent_fix) (t+1-4 h), C(postmortem) (t+24 h)."
      - "Recovery checklist: C(health_200), C(recommendations_returned), C(several_users_ok),
        C(latency_under_500ms), C(no_new_errors), C(resources_normal), C(watch_every_minute),
        C(error_rate_no_rebound), C(notify_management), C(notify_users), C(notify_teams)."
      - An unknown key fails, naming it, before anything is written.
    type: list
    elements: str
  values:
    description: Optional value per ticked item (for example a measured latency), keyed by item.
    type: dict
  outcome:
    description:
      - How the incident ended (O(state=closed)).
      - V(resolved), V(mitigated) and V(false_alarm) count as resolving it for the resolve SLA;
        V(degraded), V(escalated) and V(failed) leave the resolve deadline missed.
    type: str
    choices: [resolved, mitigated, degraded, escalated, false_alarm, failed]
attributes:
  action:
    support: full
    description: Runs on the controller as an action plugin, with the same options and results.
  check_mode:
    details:
      - Nothing is written; C(changed), RV(incident) and the diff show what would be.
      - In check mode a record that does not exist (opened by an earlier task of the same dry run,
        which wrote nothing) does not fail O(state=event), V(tick), V(closed) or V(present); the input is
        still validated, RV(incident) is V(null) and a warning says so.
  diff_mode:
    support: full
    details: Before and after of the status, severity, outcome, ticked items and event count.
  idempotent:
    support: partial
    details:
      - O(state=opened) with an existing O(id), ticking ticked items and closing with the same
        outcome change nothing.
      - O(state=event) and O(state=stage) always append (an event is something that happened again).
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
  register: incident_closed

- name: Show the SLA result
  ansible.builtin.debug:
    msg: "respond {{ incident_closed.incident.sla_status.respond }}, resolve {{ incident_closed.incident.sla_status.resolve }}"
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
    - The replayed state of the incident (after the change; in check mode, as it would be;
      V(null) in check mode when the record does not exist yet).
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
