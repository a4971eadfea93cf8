#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) sre.incident contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: notify
short_description: Send incident notifications to Slack, DingTalk or a generic webhook, beside the response
version_added: 1.0.0
description:
  - Renders one message for a notice of an incident and posts it to every enabled channel (SPEC P0-2),
    waiting for the answers or, with O(mode=start), in the background. The message names the severity,
    service, incident id, commander, on-call engineer of the moment, war-room link (if any) and the time
    left on the SLA, such as C(resolve deadline in 27m 10s) or C(resolve deadline passed 3m ago).
  - Channels are sent to at the same time, so a slow one never delays another, and all of it ends within
    O(budget) seconds. Redirects are not followed.
  - "Order: per channel, the O(mode=start) messages of an incident are posted in the order started, each
    waiting until the earlier ones are delivered or given up on there. After an earlier failure on a
    channel, the next message says earlier messages may be missing there. Across channels there is no order."
  - A failing channel never stops the run unless O(fail_on_error=true).
  - Webhook URLs, DingTalk secrets and header values never appear in results, error messages or outbox
    files; a URL in an error text is replaced by the channel's name.
  - Bad input (an unknown channel type, no url, a malformed deadline, a timeout out of range) fails before
    anything is sent, naming the channel by O(channels[].name) or index, never by URL.
extends_documentation_fragment:
  - sre.incident.attributes
  - sre.incident.attributes.here
attributes:
  check_mode:
    details:
      - Nothing is sent and no sender started; returns the rendered message and the channels it would post
        to, with C(changed=false). O(mode=collect) reads the outbox without waiting and marks nothing.
  diff_mode:
    support: none
  idempotent:
    support: none
    details:
      - Every run sends again. C(changed) is true when a channel accepted the message (O(mode=send)), a
        sender was started (O(mode=start)) or messages were collected (O(mode=collect)).
  platform:
    platforms: posix
options:
  mode:
    description:
      - V(send) returns when every channel answered or O(budget) is spent.
      - V(start) starts a sender process on the host and returns at once, so a chat outage never slows
        the response. Needs O(incident.id).
      - V(collect) sends nothing and needs only O(incident.id); it waits at most O(budget) seconds until every
        message of the incident started earlier on this host and not yet collected has an outcome, returns
        them in RV(messages) and marks them collected.
    type: str
    choices: [send, start, collect]
    default: send
  channels:
    description:
      - Where to send, usually an inventory variable with the URLs and secrets from a vault or an AWX credential.
      - An empty list sends nothing (with a warning).
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: Unique name used in results, error messages and the record. Defaults to C(channels[<index>]).
        type: str
      type:
        description:
          - Required. V(slack) posts C({"text", "blocks"}) to an incoming webhook.
          - V(dingtalk) posts a C(markdown) message to a robot webhook, signed (C(timestamp) and C(sign)
            query parameters) with O(channels[].secret).
          - V(webhook) posts the structured event C({"event", "incident", "oncall", "title", "text", "sent_at"}).
        type: str
      url:
        description: The C(http) or C(https) webhook URL, required when enabled. A secret (it often holds a token).
        type: str
      secret:
        description: DingTalk signing secret (the robot's C(SEC...) value). Only for V(dingtalk).
        type: str
      headers:
        description: Extra HTTP headers, for example C(Authorization) for a V(webhook). Secrets.
        type: dict
      enabled:
        description: V(false) keeps a channel defined but silent.
        type: bool
        default: true
      at_mobiles:
        description: DingTalk only, mobile numbers to mention (C(@)) in the message.
        type: list
        elements: str
      at_user_ids:
        description: DingTalk only, user ids to mention in the message.
        type: list
        elements: str
      at_all:
        description: DingTalk only, mention everyone in the group.
        type: bool
        default: false
  notice:
    description:
      - Which notice the message gives; required with O(mode=send) and O(mode=start).
      - V(escalate) asks a human to take over, naming the incident commander and the tech lead from O(oncall).
    type: str
    aliases: [stage]
    choices: [started, mitigated, resolved, degraded, escalate, update]
  incident:
    description: The incident the message is about.
    type: dict
    default: {}
    suboptions:
      id:
        description:
          - Incident id. With O(mode=start) and O(mode=collect) it also names the incident's outbox
            directory under O(outbox_dir) (letters, digits, C(.), C(_), C(-)).
        type: str
      severity:
        description: Severity.
        type: str
        choices: [P0, P1, P2, P3]
      service:
        description: The affected service.
        type: str
      commander:
        description: Incident commander. Defaults to C(contacts.incident_commander) of O(oncall).
        type: str
      war_room:
        description: War-room link (a meeting or chat URL), shown as is.
        type: str
      response_deadline:
        description: Respond-by deadline, ISO 8601 such as V(2026-11-27T10:05:00+08:00); UTC without an offset.
        type: str
      resolve_deadline:
        description: Resolve-by deadline, ISO 8601; UTC without an offset.
        type: str
      started_at:
        description: When the incident started, ISO 8601. Passed on to V(webhook) channels.
        type: str
  oncall:
    description:
      - Who is on call, normally the output of the P(sre.incident.oncall#filter) filter
        (C(shift), C(handle), C(contacts)), or a rotation (a mapping with C(shifts)) evaluated for now.
    type: dict
    default: {}
  text:
    description: Free text appended to the message (what happened, what is being done).
    type: str
  connect_timeout:
    description: Seconds to wait for the connection of one attempt (TCP, a proxy tunnel, TLS); above 0, at most 60.
    type: float
    default: 2
  read_timeout:
    description: Seconds to wait for the answer once connected, per read; above 0, at most 300.
    type: float
    default: 5
  retries:
    description:
      - Attempts per channel, the first included (V(1) to V(10)), as far as O(budget) allows.
      - Connection errors, timeouts, HTTP 5xx and 429 are retried after a short exponential backoff
        (0.5 s, 1 s, capped at 1.5 s); other HTTP 4xx are not.
    type: int
    default: 3
  budget:
    description:
      - Seconds within which everything about one message ends; timeouts and sleeps are cut to what is
        left, an attempt that would not fit is not started, a channel still busy at the end is given up on.
      - For O(mode=collect), the longest wait for the outstanding messages.
      - Above 0, at most 600.
    type: float
    default: 10
  outbox_dir:
    description:
      - Directory on the host for each incident's outbox (O(mode=start) and O(mode=collect)), one small
        JSON file per message with its outcome per channel. The role C(sre.incident.notify) uses
        C(<incident_stack.state_dir>/outbox).
    type: path
    default: ~/.sre-incident/outbox
  fail_on_error:
    description:
      - Fail when an enabled channel could not be notified (O(mode=send)), or a collected message was
        not delivered to every channel (O(mode=collect)). Ignored by O(mode=start), which does not know yet.
    type: bool
    default: false
seealso:
  - plugin: sre.incident.oncall
    plugin_type: filter
  - module: sre.incident.record
notes:
  - Uses only the Python standard library (urllib) on the host the task runs on; C(https_proxy) and
    C(no_proxy) are honoured.
  - "The O(mode=start) sender is a process of its own on that host, like an C(async) job but keeping the
    task's arguments in memory (an C(async) task writes them into a file on the host). It ends by its
    message's deadline, whether the run is still there or not."
"""

EXAMPLES = r"""
- name: Announce a P0 on every channel, without waiting for the chat servers
  sre.incident.notify:
    mode: start
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
    notice: started
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
    outbox_dir: /var/lib/sre-incident/recsys/outbox

- name: At the end of the run, wait at most 10 s for what is still being sent
  sre.incident.notify:
    mode: collect
    incident:
      id: INC-20261127-001
    budget: 10
    outbox_dir: /var/lib/sre-incident/recsys/outbox
  register: incident_notified

- name: Ask a human to take over, and wait for the answer of every channel
  sre.incident.notify:
    channels: "{{ incident_notify_channels }}"
    notice: escalate
    incident: "{{ incident_summary }}"
    oncall: "{{ incident_oncall | sre.incident.oncall }}"
    text: All recovery rungs failed; option D (feature offline) is active.
    fail_on_error: true
"""

RETURN = r"""
msg:
  description: What happened, in one line (check mode says what would be sent).
  returned: always
  type: str
  sample: "started notification: delivered to 1 of 2 channels; not delivered: chat (connect timed out after 2 s, 3 attempts)"
message:
  description: The rendered message, as plain text.
  returned: when O(mode) is V(send) or V(start)
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
  returned: when O(mode) is V(send) or V(start)
  type: str
  sample: "[P0] Incident started: recommendation-service (INC-20261127-001)"
channels:
  description: Names of the enabled channels the message was (or, in check mode, would be) sent to.
  returned: when O(mode) is V(send) or V(start)
  type: list
  elements: str
  sample: [slack-incidents, dingtalk-oncall, pager]
results:
  description: One entry per channel, in the order of O(channels).
  returned: when O(mode) is V(send) or V(start)
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
        - Whether the channel accepted the message; V(null) when nothing was sent (yet), for a disabled
          channel, in check mode or with O(mode=start).
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
      description: Why the last attempt failed, else V(null).
      type: str
      sample: "connected, but no answer within the read timeout (5 s)"
    finished_at:
      description: When the channel's outcome came (UTC, ISO 8601), V(null) when nothing was sent.
      type: str
      sample: "2026-11-27T02:02:51.204Z"
    budget_spent:
      description: V(true) when the budget, not the number of attempts, ended the tries.
      type: bool
      sample: false
    warning:
      description: The line the message carried on this channel because an earlier message failed there.
      type: str
      returned: when an earlier message of the incident failed on this channel
      sample: "earlier messages may be missing on this channel: the started message could not be delivered here (connect timed out after 2 s)"
  sample:
    - {name: pager, type: webhook, enabled: true, ok: false, status: null, attempts: 3,
       error: "connection failed: [Errno 111] Connection refused", finished_at: "2026-11-27T02:02:52.710Z",
       budget_spent: false}
sent:
  description: Number of channels that accepted the message (V(0) with O(mode=start)).
  returned: when O(mode) is V(send) or V(start)
  type: int
  sample: 2
failed_count:
  description:
    - Number of enabled channels that could not be notified (V(0) in check mode and with O(mode=start)).
    - Not called C(failed), as Ansible reads a true C(failed) key as a failed task.
  returned: when O(mode) is V(send) or V(start)
  type: int
  sample: 1
oncall:
  description: The on-call information the message was rendered with.
  returned: when O(mode) is V(send) or V(start)
  type: dict
  sample: {shift: weekday_day, handle: "@oncall-day", contacts: {incident_commander: "@incident-commander"}}
seq:
  description: The message's number in the incident's outbox.
  returned: when O(mode=start) started a sender
  type: int
  sample: 1
outbox:
  description: The incident's outbox directory on the host.
  returned: when O(mode) is V(start) or V(collect)
  type: str
  sample: /var/lib/sre-incident/recsys/outbox/INC-20261127-001
deadline_at:
  description: When the sender gives up on whatever is not delivered by then (UTC, ISO 8601).
  returned: when O(mode=start) started a sender
  type: str
  sample: "2026-11-27T02:03:00.512Z"
messages:
  description: The messages collected, in the order they were started, each with its outcome per channel.
  returned: when O(mode=collect)
  type: list
  elements: dict
  contains:
    seq:
      description: The message's number in the outbox.
      type: int
    notice:
      description: The notice it gave.
      type: str
    title:
      description: Its title line.
      type: str
    state:
      description:
        - V(delivered) (every channel acknowledged), V(partial), V(failed), V(pending) (still being
          sent when O(budget) ran out), V(lost) (the sender ended without any outcome).
      type: str
    launched_at:
      description: When it was handed to its sender (UTC, ISO 8601).
      type: str
    finished_at:
      description: When its sender was done (UTC), V(null) if it was not.
      type: str
    acknowledged_at:
      description: When the last channel acknowledged it (UTC), only when V(delivered).
      type: str
    results:
      description: One entry per channel, as RV(results).
      type: list
      elements: dict
    sent:
      description: Channels that acknowledged it.
      type: int
    failed_count:
      description: Channels that did not.
      type: int
    summary:
      description: One line for the record, naming every channel that failed and why.
      type: str
  sample:
    - {seq: 1, notice: started, state: partial, launched_at: "2026-11-27T02:02:50.512Z", sent: 1, failed_count: 1,
       summary: "started notification: delivered to 1 of 2 channels; not delivered: pager (connected, but no answer
         within the read timeout (5 s), 2 attempts, budget spent)"}
undelivered:
  description: Every collected message and channel that was not delivered, with why.
  returned: when O(mode=collect)
  type: list
  elements: dict
  sample: [{seq: 1, notice: started, channel: pager, error: "connected, but no answer within the read timeout (5 s)"}]
response:
  description:
    - Whether the first collected C(started) message reached every enabled channel, as the record's
      checklist item C(response_started) ("everyone notified") needs. V(null) when none was collected.
  returned: when O(mode=collect)
  type: dict
  contains:
    acknowledged:
      description: V(true) only when every enabled channel acknowledged it.
      type: bool
    at:
      description: When the last channel acknowledged it (UTC), V(null) unless acknowledged.
      type: str
    channels:
      description: The channels it was sent to.
      type: list
      elements: str
    failed:
      description: The channels that did not acknowledge it, with why.
      type: list
      elements: dict
    text:
      description: One line saying so.
      type: str
  sample: {acknowledged: false, at: null, channels: [slack-incidents, pager],
           failed: [{name: pager, error: "connected, but no answer within the read timeout (5 s)"}]}
waited_s:
  description: How long the collect waited, in seconds.
  returned: when O(mode=collect)
  type: float
  sample: 6.42
"""

from ansible_collections.sre.incident.plugins.module_utils._module import IncidentModule
from ansible_collections.sre.incident.plugins.module_utils._outbox import REQUIRED_IF, argument_spec, run_checked


def main(here=None):
    return IncidentModule(argument_spec(), required_if=REQUIRED_IF, here=here).run(
        lambda m: run_checked(m.params, check_mode=m.check_mode))


if __name__ == "__main__":
    main()
