# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""sre.incident.alertmanager: an ansible-rulebook event source for Prometheus Alertmanager webhooks.

Listens for Alertmanager's webhook POSTs (``webhook_configs`` of a receiver) and puts one event
per alert on the queue, deduplicated by the alert's fingerprint and status: Alertmanager repeats
a firing alert every ``repeat_interval`` (and on every group change), and a repeat within
``dedupe_seconds`` is dropped here, so one firing alert starts one run.
"""
from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import time
from typing import Any

from aiohttp import web

DOCUMENTATION = r"""
---
short_description: Receive Prometheus Alertmanager webhooks, one event per alert.
description:
  - Starts an HTTP server that accepts Alertmanager webhook POSTs (any path) and puts each alert
    of the payload's C(alerts) list on the event queue as C(event.alert), with the group's
    C(receiver), C(groupKey), C(commonLabels) and C(externalURL) next to it.
  - A repeat of an alert (same fingerprint and status) within O(dedupe_seconds) is dropped, so a
    firing alert that Alertmanager re-sends starts one run, not one per repeat. A resolved alert
    is a new status and goes through.
  - The fingerprint is Alertmanager's C(fingerprint) field, or a hash of the alert's labels when absent.
  - "Each event carries C(meta.hosts) from the label named O(host_label) when present, which
    limits the rulebook action to that inventory host."
options:
  host:
    description: Address to listen on.
    type: str
    default: 127.0.0.1
  port:
    description: TCP port to listen on.
    type: int
    default: 5001
  token:
    description: When set, a request must carry C(Authorization Bearer <token>).
    type: str
  dedupe_seconds:
    description: Seconds a fingerprint and status are remembered; V(0) turns deduplication off.
    type: int
    default: 3600
  host_label:
    description: Alert label whose value names the inventory host (C(meta.hosts)).
    type: str
    default: instance_host
"""

EXAMPLES = r"""
- name: Alertmanager alerts
  hosts: all
  sources:
    - sre.incident.alertmanager:
        host: 0.0.0.0
        port: 5001
        dedupe_seconds: 3600
"""

LOG = logging.getLogger(__name__)


def fingerprint(alert: dict[str, Any]) -> str:
    """Alertmanager's fingerprint, or a stable hash of the labels."""
    given = alert.get("fingerprint")
    if given:
        return str(given)
    labels = json.dumps(alert.get("labels") or {}, sort_keys=True)
    return hashlib.sha256(labels.encode("utf-8")).hexdigest()[:16]


class Deduper:
    """Remembers (fingerprint, status) for a while; ``seen`` is true for a repeat."""

    def __init__(self, seconds: float, clock=time.monotonic):
        self.seconds = seconds
        self.clock = clock
        self.last: dict[tuple[str, str], float] = {}

    def seen(self, key: tuple[str, str]) -> bool:
        if self.seconds <= 0:
            return False
        now = self.clock()
        self.last = {k: t for k, t in self.last.items() if now - t < self.seconds}
        if key in self.last:
            return True
        self.last[key] = now
        return False


def events_of(payload: dict[str, Any], deduper: Deduper, host_label: str) -> list[dict[str, Any]]:
    """One event per alert of a webhook payload that is not a repeat."""
    events = []
    common = {k: payload.get(k) for k in ("receiver", "groupKey", "commonLabels", "externalURL", "status")}
    for alert in payload.get("alerts") or []:
        if not isinstance(alert, dict):
            continue
        alert = dict(alert, fingerprint=fingerprint(alert), status=alert.get("status") or payload.get("status"))
        if deduper.seen((alert["fingerprint"], str(alert["status"]))):
            LOG.info("dropping repeat of alert %s (%s)", alert["fingerprint"], alert["status"])
            continue
        event: dict[str, Any] = {"alert": alert, "group": common}
        host = (alert.get("labels") or {}).get(host_label)
        if host:
            event["meta"] = {"hosts": str(host)}
        events.append(event)
    return events


def make_app(queue: asyncio.Queue, args: dict[str, Any]) -> web.Application:
    deduper = Deduper(float(args.get("dedupe_seconds", 3600)))
    token = args.get("token")
    host_label = str(args.get("host_label") or "instance_host")

    async def receive(request: web.Request) -> web.Response:
        if token:
            given = request.headers.get("Authorization", "")
            if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
                raise web.HTTPUnauthorized(text="bad or missing bearer token")
        try:
            payload = await request.json()
        except json.JSONDecodeError:
            raise web.HTTPBadRequest(text="the body is not JSON") from None
        if not isinstance(payload, dict):
            raise web.HTTPBadRequest(text="the body is not an Alertmanager webhook payload")
        events = events_of(payload, deduper, host_label)
        for event in events:
            await queue.put(event)
        return web.json_response({"accepted": len(events)})

    app = web.Application()
    app.router.add_post("/{path:.*}", receive)
    return app


async def main(queue: asyncio.Queue, args: dict[str, Any]) -> None:
    """Entry point called by ansible-rulebook."""
    runner = web.AppRunner(make_app(queue, args))
    await runner.setup()
    site = web.TCPSite(runner, str(args.get("host") or "127.0.0.1"), int(args.get("port") or 5001))
    await site.start()
    LOG.info("sre.incident.alertmanager listening on %s:%s", args.get("host"), args.get("port"))
    try:
        await asyncio.Future()
    finally:
        await runner.cleanup()
