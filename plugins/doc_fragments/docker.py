# -*- coding: utf-8 -*-
# Copyright (c) sre.incident contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    """Docker engine connection (argument spec: _compose.DOCKER_COMMON_ARGS, via IncidentModule(docker=True))."""

    DOCUMENTATION = r"""
options:
  docker_host:
    description:
      - The Docker engine's URL, for example V(unix:///var/run/docker.sock) or V(tcp://192.0.2.10:2376).
      - If not given, E(DOCKER_HOST) is used, so an AWX credential type can inject it. TLS settings come from
        E(DOCKER_TLS_VERIFY) and E(DOCKER_CERT_PATH), as with the docker CLI.
    type: str
    default: unix:///var/run/docker.sock
  docker_timeout:
    description:
      - Seconds to wait for each answer of the engine's API; stop and restart requests get the container's stop
        timeout on top. If not given, E(DOCKER_TIMEOUT) is used.
    type: int
    default: 60
attributes:
  action_group:
    description: Use C(group/sre.incident.docker) (or C(group/sre.incident.record)) in C(module_defaults) to set
      O(docker_host) and O(docker_timeout) once for every module that talks to the engine.
    support: full
    membership:
      - sre.incident.docker
      - sre.incident.record
requirements:
  - docker (the Python SDK for the Docker engine API) >= 7.0, on the managed host, when the module talks to the engine
notes:
  - When the engine is needed and cannot be reached, the module fails with C(engine_unreachable=true), so a playbook
    can tell an engine problem from a container problem (unless the module reports the engine's silence as a finding).
"""
