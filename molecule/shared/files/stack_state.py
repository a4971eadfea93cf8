# Copyright (c) sre.incident contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Print the containers of one compose project as the Docker engine sees them, as JSON.

    python stack_state.py PROJECT

``{service: {id, name, status, health, started_at, finished_at, exit_code, image}}``: the
verify playbooks of the Molecule scenarios compare the roles' results with this, so it reads the
engine directly (docker SDK) and shares no code with the collection.
"""
from __future__ import annotations

import json
import sys

import docker


def main(project):
    client = docker.from_env()
    out = {}
    for container in client.containers.list(all=True, filters={"label": "com.docker.compose.project=%s" % project}):
        attrs = container.attrs
        state = attrs["State"]
        service = attrs["Config"]["Labels"].get("com.docker.compose.service", container.name)
        out[service] = dict(
            id=container.id,
            name=container.name,
            status=state["Status"],
            health=(state.get("Health") or {}).get("Status", "none"),
            started_at=state["StartedAt"],
            finished_at=state["FinishedAt"],
            exit_code=state["ExitCode"],
            image=attrs["Config"]["Image"],
        )
    json.dump(out, sys.stdout, indent=1, sort_keys=True)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main(sys.argv[1])
