# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
module: report
short_description: Write the runbook's P2 problem report, filled from live evidence, and post it to a tracker
version_added: 0.2.0
description:
  - Writes the runbook's P2 template (SPEC P2-1) as Markdown, with English headings and the
    runbook's Chinese in parentheses, description (問題描述), reproduction steps (重現步驟),
    expected (期望結果), actual (實際結果), environment (環境信息, version, time, user, frequency),
    log excerpt (日誌片段), suspected root cause (可能的根本原因) and suggested fix (建議的修復方案).
  - With O(collect=true) it gathers live evidence on the managed host, the service's version (the
    C(version) of C(/health), the container's image id and creation time), the recent WARNING and
    ERROR lines of the service's container log and the answers of O(reproduce_urls). What the
    operator leaves open is filled from that evidence.
  - "The report is rendered, posted and written on the B(controller) by the action plugin, from the
    template C(plugins/plugin_utils/templates/p2_report.md.j2); only the evidence is collected on the
    managed host, and only the collection options go there."
  - "With O(tracker) a new report is also posted once as an issue (C(POST <url>/issues)) with
    C(Authorization: Bearer) (GitHub style) or C(PRIVATE-TOKEN) (GitLab style), and the issue link is
    written into the report; a report that has a link is not posted again."
extends_documentation_fragment:
  - sre.incident.attributes
  - sre.incident.docker
attributes:
  action:
    support: full
    description: Runs as an action plugin on the controller (see the description).
  check_mode:
    details: Collects evidence (read only) and reports what would be written.
  diff_mode:
    support: full
    details: Shows the report file before and after.
  idempotent:
    support: full
    details: The same report content is not written twice and a report is posted only once. Live evidence that changed is a change.
  platform:
    platforms: posix
options:
  title:
    description: The problem's title, a clear one-line description; also the file name's slug. Required with O(dest_dir).
    type: str
  description:
    description: Short description of the problem.
    type: str
  steps:
    description: Reproduction steps. Default, one C(curl) per O(reproduce_urls).
    type: list
    elements: str
  expected:
    description: What should happen.
    type: str
  actual:
    description: What happens now. Default, the answers of O(reproduce_urls).
    type: str
  environment:
    description:
      - C(version), C(time), C(user) and C(frequency). Those left open are filled from the evidence
        (time of collection, frequency from the number of matching log lines in the window).
    type: dict
  cause:
    description: Suspected root cause.
    type: str
  fix:
    description: Suggested fix.
    type: str
  reporter:
    description: Who reports the problem.
    type: str
  severity:
    description: Severity shown in the report.
    type: str
    default: P2
    choices: [P2, P3]
  host:
    description: The managed host the problem was seen on, shown in the report.
    type: str
  logs:
    description: Log lines to show, instead of those collected.
    type: list
    elements: str
  labels:
    description: Labels of the tracker issue.
    type: list
    elements: str
    default: [P2]
  collect:
    description: Collect live evidence on this host (needs O(stack)).
    type: bool
    default: false
  stack:
    description: The stack description C(incident_stack).
    type: dict
  evidence:
    description: Evidence collected before (RV(evidence) of a run with O(collect=true)).
    type: dict
  reproduce_urls:
    description: URLs to GET once each as reproduction.
    type: list
    elements: str
    default: []
  log_since:
    description:
      - The log window's start, as for O(sre.incident.diagnose#module:errors_since) - a duration before
        now (V(15m), V(900), V(2h)), an ISO 8601 time or V(@<UNIX time>).
    type: str
    default: 15m
  log_lines:
    description: At most this many log lines (the most recent) go into the report.
    type: int
    default: 20
  log_levels:
    description:
      - Levels of the log lines kept, as the collection's one log classifier reads a line (docs/logs.md);
        V(ERROR) stands for every error level (ERROR, CRITICAL, FATAL, PANIC).
    type: list
    elements: str
    default: [WARNING, ERROR]
  log_match:
    description: Keep only log lines containing this text.
    type: str
  dest_dir:
    description:
      - The folder on the controller to write the report to (the P2 backlog), as C(<date>-<slug of title>.md);
        the first report time is kept on re-runs. The role C(sre.incident.report) defaults it to
        C(~/.local/share/sre-incident/backlog).
      - Without it nothing is written and the module returns RV(evidence) and RV(markdown); a playbook
        collects on the managed host this way and writes in a later task with O(evidence).
    type: path
  date:
    description: Date of the file name, V(YYYY-MM-DD); default today (UTC).
    type: str
  tracker:
    description: An issue tracker to post new reports to.
    type: dict
    suboptions:
      kind:
        description: V(github) or V(gitlab) style API.
        type: str
        choices: [github, gitlab]
        required: true
      url:
        description:
          - GitHub style, the repository API URL such as V(https://api.github.com/repos/owner/repo);
            GitLab style, the project API URL such as V(https://gitlab.example.com/api/v4/projects/42).
          - C(/issues) is appended unless the URL already ends with it.
        type: str
        required: true
      token:
        description: The API token, sent only in a request header, never to the managed host nor shown.
        type: str
        required: true
  tracker_timeout:
    description: Seconds the tracker may take to answer.
    type: float
    default: 10
seealso:
  - module: sre.incident.severity
"""

EXAMPLES = r"""
- name: Collect evidence on the managed host
  sre.incident.report:
    collect: true
    stack: "{{ incident_stack }}"
    reproduce_urls:
      - http://127.0.0.1:3000/api/recommendations/user-1?limit=10
  register: report_evidence

- name: Write the report into the backlog on the controller and open an issue
  sre.incident.report:
    title: Unreadable cache entry for user-173
    expected: Cached recommendations are served from the cache.
    cause: A cache entry was written in an old format.
    fix: Clear the cache; version the cache key format.
    evidence: "{{ report_evidence.evidence }}"
    dest_dir: /srv/ops/backlog
    tracker:
      kind: github
      url: https://api.github.com/repos/example/recsys
      token: "{{ vault_tracker_token }}"
  delegate_to: localhost
"""

RETURN = r"""
path:
  description: The report file, or V(null) without O(dest_dir).
  returned: success
  type: str
  sample: /srv/ops/backlog/2026-11-27-unreadable-cache-entry-for-user-173.md
file_name:
  description: The file name, C(<date>-<slug>.md).
  returned: success
  type: str
  sample: 2026-11-27-unreadable-cache-entry-for-user-173.md
markdown:
  description: The rendered report.
  returned: success
  type: str
  sample: "# Unreadable cache entry for user-173\n..."
evidence:
  description:
    - The evidence used, C(collected_at), C(app_version), C(image) (C(image_id), C(image_name), C(created)),
      C(health), C(logs) (the selected lines), C(log_counts), C(log_total), C(reproduce), C(notes).
  returned: success
  type: dict
  sample: {"app_version": "1.4.0", "logs": ["{\"level\":\"WARNING\",\"msg\":\"unreadable cache entry ignored\"}"]}
posted:
  description: The report was posted to the tracker in this run.
  returned: success
  type: bool
  sample: true
would_post:
  description: With O(dest_dir) and O(tracker), the report has no issue yet, so a real run posts (or posted) it.
  returned: when O(dest_dir) is given
  type: bool
  sample: true
issue:
  description: The tracker issue created, C(url), C(number), C(status), C(api_url), C(kind); V(null) when nothing was posted.
  returned: success
  type: dict
  sample: {"url": "https://github.com/example/recsys/issues/12", "number": 12, "status": 201}
"""

from ansible_collections.sre.incident.plugins.module_utils import _compose, _report
from ansible_collections.sre.incident.plugins.module_utils._module import IncidentModule


def work(module):
    # the managed host's part of the action plugin (plugins/action/report.py): the evidence
    p = module.params

    def connect():
        if not _compose.HAS_DOCKER:
            module.warn("the docker Python SDK is not installed: no log excerpt, no image")
            return None
        return module.connect()

    evidence = _report.collect_evidence(p, connect) if p["collect"] else dict(p["evidence"] or {})
    return dict(changed=False, evidence=evidence)


def main():
    IncidentModule(_report.argument_spec(), docker=True, required_if=_report.REQUIRED_IF).run(work, wrap=(ValueError,))


if __name__ == "__main__":
    main()
