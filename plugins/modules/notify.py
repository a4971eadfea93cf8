#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) sre.incident contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: notify
short_description: Send an incident notification to Slack, DingTalk or a generic webhook
version_added: 1.0.0
author:
  - SRE incident team (@sre-incident)
description:
  - Renders one message for an incident stage (started, mitigated, resolved, degraded, escalate,
    update) and posts it to every enabled channel (SPEC P0-2). The message names the severity,
    the service, the incident id, the incident commander, the on-call engineer of the moment,
    the war-room link (if any) and the time left on the SLA, such as C(resolve deadline in 27m 10s)
    or C(resolve deadline passed 3m ago).
  - Each channel is tried up to O(retries) times with a short exponential backoff (0.5 s, 1 s,
    capped at 1.5 s) on connection errors, timeouts, HTTP 5xx and 429; other HTTP 4xx answers are
    not retried. Redirects are not followed.
  - A failing channel never stops the run unless O(fail_on_error=true); the per-channel outcome is
    in RV(results). A notification must never block the recovery.
  - Webhook URLs, DingTalk secrets and header values never appear in the module's results or
    error messages; an error text that contains a URL has it replaced by the channel's name.
  - Bad input (an unknown channel type, a channel without a url, a malformed deadline) fails
    before anything is sent, naming the channel by O(channels[].name) or its index, never by URL.
extends_documentation_fragment:
  - sre.incident.attributes
attributes:
  check_mode:
    support: full
    details:
      - In check mode nothing is sent; the module returns the rendered message and the channels
        it would post to, with C(changed=false).
  diff_mode:
    support: none
  idempotent:
    support: none
    details:
      - Sending a message is an outside effect; every run sends again and reports
        C(changed=true) when at least one channel accepted the message.
  platform:
    platforms: posix
options:
  channels:
    description:
      - Where to send. Usually an inventory variable, with the URLs and secrets coming from a vault
        or an AWX credential.
      - An empty list sends nothing (with a warning).
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description:
          - Name used in results and error messages. Defaults to C(channels[<index>]).
          - Must be unique.
        type: str
      type:
        description:
          - V(slack) posts C({"text", "blocks"}) to an incoming webhook.
          - V(dingtalk) posts a C(markdown) message to a robot webhook; with O(channels[].secret)
            the request is signed (C(timestamp) and C(sign) query parameters).
          - V(webhook) posts the structured event C({"event", "incident", "oncall", "title", "text", "sent_at"}).
          - Required. Any other value fails before anything is sent, naming the channel.
        type: str
      url:
        description:
          - The webhook URL (C(http) or C(https)). Treated as a secret.
          - Required for an enabled channel; a missing or malformed one fails before anything is
            sent, naming the channel (never the URL).
        type: str
      secret:
        description:
          - DingTalk signing secret (the robot's C(SEC...) value). Only for V(dingtalk).
        type: str
      headers:
        description:
          - Extra HTTP headers, for example C(Authorization) for a V(webhook). Values are treated as secrets.
        type: dict
      enabled:
        description:
          - Set to V(false) to keep a channel defined but silent.
        type: bool
        default: true
      at_mobiles:
        description:
          - DingTalk only, mobile numbers to mention (C(@)) in the message.
        type: list
        elements: str
      at_user_ids:
        description:
          - DingTalk only, user ids to mention in the message.
        type: list
        elements: str
      at_all:
        description:
          - DingTalk only, mention everyone in the group.
        type: bool
        default: false
  stage:
    description:
      - The incident stage the message announces. V(escalate) asks a human to take over and names
        the incident commander and the tech lead from O(oncall).
    type: str
    required: true
    choices: [started, mitigated, resolved, degraded, escalate, update]
  incident:
    description:
      - The incident the message is about.
    type: dict
    default: {}
    suboptions:
      id:
        description: Incident id.
        type: str
      severity:
        description: Severity, V(P0) to V(P3).
        type: str
        choices: [P0, P1, P2, P3]
      service:
        description: The affected service.
        type: str
      commander:
        description:
          - Incident commander. Defaults to C(contacts.incident_commander) of O(oncall).
        type: str
      war_room:
        description: War-room link (a meeting or chat URL), shown as is.
        type: str
      response_deadline:
        description:
          - Respond-by deadline, ISO 8601 (for example V(2026-11-27T10:05:00+08:00)). A value
            without an offset is read as UTC.
        type: str
      resolve_deadline:
        description:
          - Resolve-by deadline, ISO 8601. A value without an offset is read as UTC.
        type: str
      started_at:
        description:
          - When the incident started, ISO 8601. Passed on to V(webhook) channels.
        type: str
  oncall:
    description:
      - Who is on call, normally the output of the P(sre.incident.oncall#filter) filter
        (C(shift), C(handle), C(contacts)).
      - A rotation (a mapping with C(shifts)) is also accepted; it is then evaluated for now.
    type: dict
    default: {}
  text:
    description:
      - Free text appended to the message (what happened, what is being done).
    type: str
  timeout:
    description:
      - Seconds to wait for each HTTP request.
    type: float
    default: 5
  retries:
    description:
      - Attempts per channel, the first one included (V(1) to V(10)).
    type: int
    default: 3
  fail_on_error:
    description:
      - Fail the task when any enabled channel could not be notified.
      - By default a failed notification is reported in RV(results) and RV(failed_count), and the
        play goes on.
    type: bool
    default: false
seealso:
  - plugin: sre.incident.oncall
    plugin_type: filter
notes:
  - Uses only the Python standard library (urllib) on the host the task runs on; the proxy
    environment variables (C(https_proxy), C(no_proxy)) are honoured.
"""

EXAMPLES = r"""
- name: Announce a P0 on every channel
  sre.incident.notify:
    channels:
      - name: slack-incidents
        type: slack
        url: "{{ vault_slack_incidents_webhook }}"
      - name: dingtalk-oncall
        type: dingtalk
        url: "{{ vault_dingtalk_webhook }}"
        secret: "{{ vault_dingtalk_secret }}"
        at_mobiles: ["13800000000"]
      - name: pager
        type: webhook
        url: https://pager.example.com/hooks/incidents
        headers:
          Authorization: "Bearer {{ vault_pager_token }}"
    stage: started
    incident:
      id: INC-20261127-001
      severity: P0
      service: recommendation-service
      commander: "@incident-commander"
      war_room: https://meet.example.com/inc-20261127-001
      response_deadline: "2026-11-27T10:05:00+08:00"
      resolve_deadline: "2026-11-27T10:30:00+08:00"
    oncall: "{{ incident_oncall | sre.incident.oncall }}"
    text: /health returns 503 on all instances; recovery ladder starting.
  register: incident_notify_result

- name: Ask a human to take over when the ladder and the degraded modes failed
  sre.incident.notify:
    channels: "{{ incident_notify_channels }}"
    stage: escalate
    incident: "{{ incident_summary }}"
    oncall: "{{ incident_oncall | sre.incident.oncall }}"
    text: All recovery rungs failed; option D (feature offline) is active.
    fail_on_error: true

- name: Show what would be sent (dry run, nothing is posted)
  sre.incident.notify:
    channels: "{{ incident_notify_channels }}"
    stage: update
    incident: "{{ incident_summary }}"
  check_mode: true
"""

RETURN = r"""
message:
  description: The rendered message, as plain text.
  returned: always
  type: str
  sample: |-
    [P0] Incident started: recommendation-service (INC-20261127-001)
    Severity: P0
    Service: recommendation-service
    Incident: INC-20261127-001
    Commander: @incident-commander
    On-call: @oncall-day (weekday_day)
    War room: https://meet.example.com/inc-20261127-001
    SLA: response deadline in 2m 50s; resolve deadline in 27m 50s
title:
  description: The message's title line.
  returned: always
  type: str
  sample: "[P0] Incident started: recommendation-service (INC-20261127-001)"
channels:
  description: Names of the enabled channels the message was (or, in check mode, would be) sent to.
  returned: always
  type: list
  elements: str
  sample: [slack-incidents, dingtalk-oncall, pager]
results:
  description:
    - One entry per channel, in the order of O(channels). Never contains a URL, a secret or a header value.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: The channel's name.
      type: str
      sample: slack-incidents
    type:
      description: The channel's type.
      type: str
      sample: slack
    enabled:
      description: Whether the channel is enabled.
      type: bool
      sample: true
    ok:
      description:
        - V(true) when the channel accepted the message, V(false) when it could not be notified,
          V(null) when nothing was sent (disabled channel or check mode).
      type: bool
      sample: true
    status:
      description: HTTP status of the last attempt, V(null) when no HTTP answer came back.
      type: int
      sample: 200
    attempts:
      description: Number of attempts made (V(0) when nothing was sent).
      type: int
      sample: 1
    error:
      description: Why the last attempt failed (URLs replaced by the channel name), else V(null).
      type: str
      sample: "HTTP 500 Internal Server Error"
  sample:
    - {name: slack-incidents, type: slack, enabled: true, ok: true, status: 200, attempts: 1, error: null}
    - {name: pager, type: webhook, enabled: true, ok: false, status: null, attempts: 3, error: "connection failed: [Errno 111] Connection refused"}
sent:
  description: Number of channels that accepted the message.
  returned: always
  type: int
  sample: 2
failed_count:
  description:
    - Number of enabled channels that could not be notified (V(0) in check mode).
    - Not called C(failed), because Ansible reads a true C(failed) key as a failed task.
  returned: always
  type: int
  sample: 1
oncall:
  description: The on-call information the message was rendered with.
  returned: always
  type: dict
  sample: {shift: weekday_day, handle: "@oncall-day", contacts: {incident_commander: "@incident-commander"}}
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.sre.incident.plugins.module_utils._notify import (
    STAGES,
    NotifyError,
    notify,
)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            channels=dict(
                type="list",
                elements="dict",
                default=[],
                options=dict(
                    name=dict(type="str"),
                    # type and url are checked by _notify.validate_channels, whose message names
                    # the channel (Ansible's own would only say "found in channels").
                    type=dict(type="str"),
                    url=dict(type="str", no_log=True),
                    secret=dict(type="str", no_log=True),
                    headers=dict(type="dict", no_log=True),
                    enabled=dict(type="bool", default=True),
                    at_mobiles=dict(type="list", elements="str"),
                    at_user_ids=dict(type="list", elements="str"),
                    at_all=dict(type="bool", default=False),
                ),
            ),
            stage=dict(type="str", required=True, choices=list(STAGES)),
            incident=dict(
                type="dict",
                default={},
                options=dict(
                    id=dict(type="str"),
                    severity=dict(type="str", choices=["P0", "P1", "P2", "P3"]),
                    service=dict(type="str"),
                    commander=dict(type="str"),
                    war_room=dict(type="str"),
                    response_deadline=dict(type="str"),
                    resolve_deadline=dict(type="str"),
                    started_at=dict(type="str"),
                ),
            ),
            oncall=dict(type="dict", default={}),
            text=dict(type="str"),
            timeout=dict(type="float", default=5.0),
            retries=dict(type="int", default=3),
            fail_on_error=dict(type="bool", default=False),
        ),
        supports_check_mode=True,
    )
    params = module.params
    try:
        outcome = notify(
            params["channels"],
            params["stage"],
            incident=params["incident"],
            oncall=params["oncall"],
            text=params["text"],
            timeout=params["timeout"],
            attempts=params["retries"],
            check_mode=module.check_mode,
        )
    except NotifyError as exc:
        module.fail_json(msg="sre.incident.notify: %s" % exc)

    if not outcome["channels"]:
        module.warn("sre.incident.notify: no enabled notification channel; nothing was sent")
    result = dict(outcome, changed=outcome["sent"] > 0)
    if params["fail_on_error"] and outcome["failed_count"]:
        failed = [r["name"] for r in outcome["results"] if r["ok"] is False]
        module.fail_json(
            msg="sre.incident.notify: could not notify %s; see results[].error (set fail_on_error=false "
                "to let the play go on)" % ", ".join(failed),
            **result
        )
    module.exit_json(**result)


if __name__ == "__main__":
    main()
