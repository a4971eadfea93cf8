#!/usr/bin/env python
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A healthcheck-driven restarter: what a team could run instead of the collection, in a few lines.

It follows the engine's event stream for one compose service and
- restarts its container when the engine reports ``health_status: unhealthy`` (the stack's own
  healthcheck failed ``retries`` times in a row);
- starts it again when it dies by itself (a crash): a ``die`` event that no ``kill`` event of
  the engine came before (``docker stop``, ``docker kill`` and a restart all send ``kill``
  first, a process killed or crashing inside the container does not).

It checks nothing else and verifies nothing: no probe of users, no evidence, no record. One line
per event it sees, and per action it takes, on stdout; ``watching`` once it is subscribed.

    .venv/bin/python bench/restarter.py --project recsys --service recommendation-service

bench/bench_recover.py runs it as a contender.
"""
from __future__ import annotations

import argparse
import sys
import time

import docker


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project", required=True, help="compose project")
    parser.add_argument("--service", required=True, help="compose service")
    parser.add_argument("--stop-timeout", type=int, default=2, help="seconds a restart waits before SIGKILL")
    args = parser.parse_args(argv)
    client = docker.from_env(timeout=60)
    labels = ["com.docker.compose.project=%s" % args.project, "com.docker.compose.service=%s" % args.service]
    events = client.events(decode=True, filters={"type": "container", "label": labels,
                                                 "event": ["kill", "die", "health_status", "pause", "unpause"]})
    print("watching %s/%s" % (args.project, args.service), flush=True)
    asked_to_stop = {}   # container id -> time of the engine's last kill event
    for event in events:
        cid, action = event.get("id", ""), event.get("Action") or event.get("status", "")
        print("%.3f event %s %s" % (time.time(), action, cid[:12]), flush=True)
        try:
            if action == "kill":
                asked_to_stop[cid] = time.monotonic()
            elif action == "die" and time.monotonic() - asked_to_stop.get(cid, -1e9) > 30:
                client.containers.get(cid).start()
                print("%.3f started %s (it died by itself)" % (time.time(), cid[:12]), flush=True)
            elif action == "health_status: unhealthy":
                client.containers.get(cid).restart(timeout=args.stop_timeout)
                print("%.3f restarted %s (unhealthy)" % (time.time(), cid[:12]), flush=True)
        except docker.errors.APIError as exc:   # e.g. the container was removed meanwhile
            print("%.3f failed %s: %s" % (time.time(), cid[:12], exc), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
