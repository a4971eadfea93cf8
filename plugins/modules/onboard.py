# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
module: onboard
short_description: Read a running compose project and propose its incident_stack
version_added: 0.3.0
description:
  - Reads a running compose project through the Docker engine and writes a proposed C(incident_stack)
    (the stack description every role reads) to O(dest) for review (SPEC GEN-7). A comment above every
    key says where its value came from; what could not be inferred is in C(# TODO:) lines and RV(unknown).
  - "What it reads: the containers' compose labels (project, service, working directory, compose
    files, C(depends_on) with compose v2), the compose files themselves (C(depends_on) with compose
    v1, images of services that are not running), images, process lists, published and listening
    ports, healthchecks, networks and their aliases, volumes, the NAMES of environment variables
    (values only of names that are not secret-like, such as C(PGDATABASE) or C(REDIS_URL) with
    its credentials cut), C(nginx -T) of every container running nginx, and the recent logs of
    the edge and the service (only the user ids of successful recommendation requests are kept)."
  - "How it guesses: the service is the one the nginx in front proxies to (C(proxy_pass), with
    C(set) variables and C(upstream) blocks resolved), its port the port of that C(proxy_pass), the
    edge configuration the file C(nginx -T) names for it; the URLs come from the ports published
    on the host; the dependencies from C(depends_on); PostgreSQL and Redis are found by their
    processes (or images), their ports by their command lines or listening sockets; the database
    name from the service's variables; the health path from the service's healthcheck; sample
    users from real traffic; cache key patterns and the value check from one C(SCAN) batch of
    Redis keys and the shape of one value per key family; a standby is a second service of the
    same image."
  - "It checks its guesses read-only: C(psql ... -c 'SELECT 1') and C(redis-cli PING) inside their
    containers on the guessed ports and, with O(probe_http), C(GET) of the health URL and of one
    user's recommendations (as any user's request would, which may cache that answer)."
  - Nothing else is written; the engine and the stack are only read. Secrets never reach the file or the result.
extends_documentation_fragment:
  - sre.incident.attributes
  - sre.incident.docker
attributes:
  check_mode:
    details: Reads everything and returns the content it would write; writes nothing.
  diff_mode:
    support: full
    details: The file before and after.
  idempotent:
    support: full
    details: The file holds no timestamp, so an unchanged project gives an unchanged file and C(changed=false).
  platform:
    platforms: posix
options:
  project:
    description: The compose project to onboard (label C(com.docker.compose.project) of its containers).
    type: str
    required: true
  dest:
    description:
      - The file to write the proposal to, on the host the module runs on; its directory is created when
        missing. C(playbooks/onboard.yml) defaults it to C(./onboarding/<project>.stack.yml).
    type: path
    required: true
  probe_http:
    description: Check the guessed health and recommendations URLs with one C(GET) each.
    type: bool
    default: true
notes:
  - A project with no container on the engine fails before anything is written, naming the engine's projects.
  - What is inferred and how, what to review, and every C(incident_stack) key with its default
    are in the collection's C(docs/onboarding.md).
"""

EXAMPLES = r"""
- name: Propose an incident_stack for the compose project shop
  sre.incident.onboard:
    project: shop
    dest: ./onboarding/shop.stack.yml
  register: onboard

- name: Say what must be reviewed
  ansible.builtin.debug:
    var: onboard.unknown
"""

RETURN = r"""
dest:
  description: The file written (or that would be written).
  returned: success
  type: str
  sample: /srv/ops/onboarding/shop.stack.yml
stack:
  description: The proposed C(incident_stack), as written.
  returned: success
  type: dict
  sample: {"name": "shop", "service": "recs-api", "service_port": 8000, "edge": "web", "base_url": "http://127.0.0.1:3100"}
notes:
  description: Where each value came from, by key (dotted for nested keys), as in the file's comments.
  returned: success
  type: dict
  sample: {"service": "nginx in shop_web_1 proxies `location /` to recs-api (proxy_pass http://recs-api:8000 in /etc/nginx/conf.d/shop.conf)"}
unknown:
  description: What could not be inferred and must be filled in or reviewed (the file's C(# TODO:) lines).
  returned: success
  type: list
  elements: str
  sample: ["sample_users: no successful recommendation request in the recent logs: name users that exist (placeholders below)"]
content:
  description: The text of the file.
  returned: success
  type: str
  sample: "---\n# Proposed incident_stack for the compose project shop ...\nincident_stack:\n  name: shop\n"
compose_version:
  description: The compose version that created the containers (label C(com.docker.compose.version)).
  returned: success
  type: str
  sample: 1.29.2
msg:
  description: What was (or would be) written and how many keys need a review.
  returned: always
  type: str
  sample: "wrote /srv/ops/onboarding/shop.stack.yml: the proposed incident_stack of shop (27 key(s) inferred, 0 to review: none)"
"""

from ansible_collections.sre.incident.plugins.module_utils import _http, _onboard
from ansible_collections.sre.incident.plugins.module_utils._module import IncidentModule

ARGUMENT_SPEC = dict(
    project=dict(type="str", required=True),
    dest=dict(type="path", required=True),
    probe_http=dict(type="bool", default=True),
)


def work(module):
    p = module.params
    _onboard.validate(p)  # before connecting: a bad project or dest fails without the engine
    return _onboard.run(module.connect(), p, check_mode=module.check_mode, probe=_http.probe if p["probe_http"] else None)


def main():
    IncidentModule(ARGUMENT_SPEC, docker=True).run(work)


if __name__ == "__main__":
    main()
