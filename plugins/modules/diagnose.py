#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) sre.incident contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: diagnose
short_description: Collect the evidence of an incident as structured facts and a redacted bundle
version_added: 0.1.0
description:
  - Collects for O(stack) everything the runbook's C(diagnose_p0.sh) prints (items 1 to 7) and more, through the
    Docker engine and C(exec) into the containers, as structured facts a playbook can branch on.
  - The parts (O(parts)) are collected concurrently and independently; one that cannot be collected (PostgreSQL
    down) has C(ok=false) and an C(error) in RV(parts). The module fails for bad input and when the Docker engine
    cannot be reached, not because the stack it diagnoses is broken.
  - Secrets are redacted from everything returned and written, see RV(redacted).
extends_documentation_fragment:
  - sre.incident.attributes
  - sre.incident.attributes.here
  - sre.incident.docker
attributes:
  check_mode:
    details: Everything is collected (it only reads), but no bundle and no Redis snapshot is written (see RV(bundle), RV(snapshot)).
  diff_mode:
    support: none
  idempotent:
    support: partial
    details:
      - C(changed) only when a bundle or a Redis snapshot was written (new files every run, evidence of that
        moment); with O(bundle=false) and O(redis_snapshot=false) never.
options:
  stack:
    description:
      - "The stack description C(incident_stack). Used keys: C(name) (compose project), C(service), C(dependencies),
        C(edge), C(standby), C(database) (C(service), C(name), C(user)), C(redis) (C(service)), C(project_dir),
        C(compose_files), C(state_dir), C(thresholds)."
    type: dict
    required: true
  parts:
    description:
      - The parts to collect. Default all.
      - "V(http) C(/health) and the recommendations of every sample user, probed concurrently with the probe
        of M(sre.incident.health_check) (status, latency)"
      - "V(status) (runbook item 1) every container of the project (state, health, restart count, exit code,
        OOM-killed flag, started-at, image id and image creation time)"
      - "V(logs) (runbook item 2) the service's last O(log_lines) lines and its error lines since O(errors_since)"
      - "V(database) (runbook item 3) C(pg_stat_database) of the service's database, connections in use
        against C(max_connections), long-running and slow queries"
      - "V(redis) (runbook item 4) C(INFO server memory clients stats persistence keyspace) parsed"
      - "V(resources) (runbook item 5) CPU and memory percentages per container"
      - "V(disk) (runbook item 6) the host's filesystems and the stack's volumes"
      - "V(errors) (runbook item 7) the error lines of every container since O(errors_since)"
      - "V(changes) images rebuilt, containers recreated or restarted in the last O(changes_window) seconds,
        the compose files' modification times and the project directory's last git commits"
      - "V(degraded) whether a degraded mode is left on (edge mode not C(normal), service with C(DOWNGRADE_MODE=true))"
      - "V(fallbacks) whether the degraded modes would work (newest Redis snapshot, static top-N file in the
        service image, standby service defined and its image present)"
    type: list
    elements: str
    choices: [http, status, logs, database, redis, resources, disk, errors, changes, degraded, fallbacks]
  probe_count:
    description: Rounds of probes of the V(http) part (every URL once per round, all at once).
    type: int
    default: 1
  probe_timeout:
    description: Seconds one probe of the V(http) part may take.
    type: float
    default: 2
  cpu_sample:
    description:
      - V(true) measures CPU % of each running container over the engine's sampling interval,
        as C(docker stats) does (about a second or two).
      - V(false) reads memory, pids, network and block I/O at once, without CPU % (RV(parts)
        C(resources) rows have C(cpu_pct=null)); for evidence that must be taken quickly.
    type: bool
    default: true
  log_lines:
    description: Number of last log lines of the service to collect.
    type: int
    default: 200
  errors_since:
    description:
      - Count error lines from this time on. An ISO 8601 time (V(2026-11-27T01:30:00Z)), a duration
        before now - seconds, optionally with a unit (V(3600), V(15m), V(24h), V(1d)); a leading minus
        sign says the same - or a UNIX time written V(@1795744000).
      - Not set counts every line the engine still has for the containers.
    type: str
  changes_window:
    description: The V(changes) part lists changes of the last this many seconds.
    type: int
    default: 86400
  thresholds:
    description:
      - Thresholds RV(findings) and RV(verdict) evaluate the facts against, over the ones in O(stack) C(thresholds). Keys (defaults)
        C(latency_ms) (500), C(cpu_percent) (50), C(memory_percent) (60), C(disk_percent) (85), C(disk_critical_percent) (95),
        C(db_connections_percent) (80), C(db_connections_critical_percent) (95),
        C(redis_memory_percent) (90), C(evicted_keys) (0), C(error_lines) (0),
        C(error_lines_critical) (50), C(snapshot_max_age) (86400 seconds).
    type: dict
    default: {}
  bundle:
    description:
      - Write the evidence bundle, the raw text of each item, the facts, an index and checksums, to a
        directory on the managed host (mode 0700, files 0600) and pack it into a C(.tar.gz) next to it.
    type: bool
    default: true
  bundle_dir:
    description:
      - Where on the managed host each bundle gets its directory C(<UTC yyyymmddTHHMMSSZ>-<label>) and archive
        C(<that>.tar.gz). Default C(<stack.state_dir>/bundles).
    type: path
  label:
    description: A word naming why the bundle was taken, part of its name (V(pre-restart), V(rca), V(scheduled)).
    type: str
    default: diag
  redis_snapshot:
    description:
      - Take a Redis snapshot for degraded option C, during the collection - C(BGSAVE) through C(redis-cli) in the
        redis container, waited for until written, the RDB file read out.
      - It is kept only when the verdict of the other parts says the cache is healthy (no critical finding, Redis
        read and under its memory threshold), before the V(fallbacks) part checks the newest - written to
        C(<redis_snapshot_dir>/dump-<UTC yyyymmddTHHMMSSZ>.rdb) (mode 0600), then only the
        O(redis_snapshot_keep) newest kept. The newest kept is the one option C restores.
      - A snapshot that fails is reported in RV(snapshot), it does not fail the module.
    type: bool
    default: false
  redis_snapshot_dir:
    description:
      - Where snapshots live on the managed host, and where the V(fallbacks) part looks for the newest.
      - Default C(<stack.state_dir>/redis-snapshots).
    type: path
  redis_snapshot_keep:
    description: Snapshots to keep (the newest), at least V(1).
    type: int
    default: 5
  redact_values:
    description: More secret values to hunt for and mask in everything collected (besides the ones found in the containers' environment).
    type: list
    elements: str
    default: []
notes:
  - An error line is what the collection's one log classifier says (docs/logs.md) - a JSON line by its level key
    only (C(level), C(severity), C(lvl), C(log.level); pino's 50 and 60), a plain line by ERROR, FATAL, CRITICAL,
    panic, a lower-case C(error:), nginx's C([error]) or a stack trace. The runbook's looser
    C(grep -i "error\|fatal\|panic") count is returned as C(grep_count).
  - CPU and memory percentages are computed as C(docker stats) does, from one stats sample per running
    container (100 % CPU is one CPU; memory without the page cache, against the container's limit).
seealso:
  - module: sre.incident.health_check
  - module: sre.incident.record
"""

EXAMPLES = r"""
- name: Capture the evidence before the first restart
  sre.incident.diagnose:
    stack: "{{ incident_stack }}"
    label: pre-restart
  register: diag

- name: Stop if the database is out of connections
  ansible.builtin.debug:
    msg: "connections {{ diag.summary.db_connections_used }}/{{ diag.summary.db_max_connections }}"
  when: (diag.summary.db_connections_pct | default(0, true)) > 80

- name: Scheduled run, facts only, errors of the last hour, and the Redis snapshot for option C
  sre.incident.diagnose:
    stack: "{{ incident_stack }}"
    parts: [status, redis, resources, errors, fallbacks]
    errors_since: 1h
    bundle: false
    redis_snapshot: true
    redis_snapshot_keep: 24
"""

RETURN = r"""
parts:
  description:
    - The facts of every collected part, keyed by part name. Every part has C(ok), C(error) and
      C(elapsed) (seconds); the rest depends on the part.
    - "V(status): C(containers) (name, service, status, health, exit_code, oom_killed, restart_count,
      started_at, finished_at, created, image, image_created, image_tags, health_output, ...).
      V(logs): C(container lines error_count grep_count by_level error_lines since).
      V(database): C(stat_database connections_used connections_by_state max_connections long_running
      slow_queries summary). V(redis): C(info) (sections) and C(summary). V(resources): C(containers)
      (name cpu_pct mem_used mem_limit mem_pct net_rx net_tx block_read block_write pids).
      V(disk): C(host) and C(volumes) (size_kb used_kb avail_kb used_pct). V(errors): C(total) and
      C(containers). V(changes): C(recent containers compose_files git). V(degraded): C(edge_mode
      downgrade_mode standby_running degraded reasons). V(fallbacks): C(snapshot static_top standby),
      each with C(ready) and C(reason)."
  returned: always
  type: dict
  sample:
    redis: {ok: true, error: null, elapsed: 0.04, summary: {used_memory_pct: 0.9, evicted_keys: 0, hit_ratio: 0.93}}
    database: {ok: false, error: "service postgres is not running (exited)", elapsed: 0.0}
summary:
  description:
    - A flat dict to branch on. Figures of a part that failed are V(null).
    - "Keys: C(service http_healthy http_success_ratio health_status latency_p95_ms latency_max_ms service_status
      service_health exit_code oom_killed restart_count started_at services dependencies_down error_lines
      error_lines_all log_lines db_connections_used db_max_connections
      db_connections_pct db_long_running db_slow_queries db_xact_rollback redis_used_memory redis_maxmemory
      redis_used_memory_pct redis_evicted_keys redis_connected_clients redis_hit_ratio cpu_pct mem_pct
      cpu_pct_max mem_pct_max disk_used_pct disk_used_pct_by_mount recent_changes edge_mode edge_status
      downgrade_mode degraded_mode_on degraded_reasons snapshot_age_s snapshot_path static_top_present
      standby_defined standby_image_present fallbacks_ready fallbacks_not_ready fallbacks_not_checked fallbacks
      fallback_reasons parts_failed service_down)."
    - C(service_down) is true when the service answers no request or its container does not run (the findings of
      kind C(down), severity V(P0)); C(fallbacks) maps C(snapshot), C(static_top) and C(standby) to V(ready),
      V(not ready) or V(not checked) (the part did not run, or C(incident_stack) does not name what to check)."
    - C(cpu_pct) and C(mem_pct) map container names to percentages; C(disk_used_pct) is the fullest
      filesystem or volume.
  returned: always
  type: dict
  sample:
    service_status: exited
    exit_code: 137
    oom_killed: false
    restart_count: 0
    error_lines: 12
    db_connections_used: 3
    db_max_connections: 50
    redis_used_memory_pct: 0.92
    redis_evicted_keys: 0
    redis_hit_ratio: 0.93
    cpu_pct: {recsys_redis_1: 0.3}
    mem_pct: {recsys_redis_1: 0.4}
    disk_used_pct: 41.0
findings:
  description: The thresholds crossed, each with C(check), C(level) (V(warning) or V(critical)), C(kind)
    (V(down) the service is not running, V(degraded), V(warning)), C(reason), C(value) and C(threshold).
  returned: always
  type: list
  elements: dict
  sample: [{check: service_running, level: critical, kind: down, reason: "the service is exited (exit code 137)",
            value: exited, threshold: running}]
verdict:
  description: V(critical) if a finding is critical, else V(warning) if there is any finding, else V(ok).
  returned: always
  type: str
  sample: ok
severity:
  description:
    - "The severity the findings call for (the classifier C(_severity)): V(P0) when the service is down,
      V(P1) for a critical finding, V(P2) for any other finding, V(none) without findings."
  returned: always
  type: str
  sample: none
runbook_items:
  description: The runbook's C(diagnose_p0.sh) items 1 to 7, each with the part holding it and whether it was produced.
  returned: always
  type: dict
  sample: {"1": {item: service status, part: status, ok: true}}
bundle:
  description:
    - The bundle written (C(dir), C(archive), C(sha256) of the archive, C(files), C(size) of the archive),
      or, when nothing was written, C(written=false) and the C(reason) (check mode, O(bundle=false)).
  returned: always
  type: dict
  sample: {written: true, archive: /var/lib/sre-incident/recsys/bundles/20261127T013045Z-pre-restart.tar.gz,
           files: [01-service-status.txt, SHA256SUMS, facts.json, index.json]}
snapshot:
  description:
    - The Redis snapshot (C(ok), C(error), C(path), C(size), C(sha256), C(lastsave), C(keys), C(removed)),
      or C(taken=false) with the C(reason).
    - "It is taken alongside the other parts, and kept (written, the O(redis_snapshot_keep) newest kept) only
      when this run's verdict says the cache is healthy: no critical finding, Redis read and under its memory
      threshold. The newest snapshot kept is the one degraded option C restores, so the cache of an incident
      never becomes it. C(taken) is true when it was kept; else C(reason) says why not."
  returned: always
  type: dict
  sample: {taken: true, ok: true, path: /var/lib/sre-incident/recsys/redis-snapshots/dump-20261127T013045Z.rdb}
redacted:
  description: How many distinct secret values were hunted for (their values are never returned).
  returned: always
  type: int
  sample: 1
elapsed:
  description: Seconds the collection took.
  returned: always
  type: float
  sample: 1.42
"""

import functools
import os
import time

from ansible_collections.sre.incident.plugins.module_utils import _diagnose as diag
from ansible_collections.sre.incident.plugins.module_utils import _severity, _time
from ansible_collections.sre.incident.plugins.module_utils._module import IncidentModule
from ansible_collections.sre.incident.plugins.module_utils._stack import StackError, validate

ARGUMENT_SPEC = dict(
    stack=dict(type="dict", required=True),
    parts=dict(type="list", elements="str", choices=list(diag.PARTS)),
    log_lines=dict(type="int", default=200),
    probe_count=dict(type="int", default=1),
    probe_timeout=dict(type="float", default=2.0),
    cpu_sample=dict(type="bool", default=True),
    errors_since=dict(type="str"),
    changes_window=dict(type="int", default=86400),
    thresholds=dict(type="dict", default={}),
    bundle=dict(type="bool", default=True),
    bundle_dir=dict(type="path"),
    label=dict(type="str", default="diag"),
    redis_snapshot=dict(type="bool", default=False),
    redis_snapshot_dir=dict(type="path"),
    redis_snapshot_keep=dict(type="int", default=5),
    redact_values=dict(type="list", elements="str", default=[], no_log=True),
)


def _state_path(stack, given, sub):
    """``given``, else ``<stack.state_dir>/<sub>``, else None."""
    return given or (os.path.join(str(stack["state_dir"]), sub) if stack.get("state_dir") else None)


def work(module):
    p = module.params
    stack = p["stack"]
    validate(stack)
    if p["log_lines"] < 0:
        raise diag.DiagnosticsError("log_lines must be >= 0, got %d" % p["log_lines"])
    if p["probe_count"] < 1 or p["probe_timeout"] <= 0:
        raise diag.DiagnosticsError("probe_count must be >= 1 and probe_timeout > 0, got %r and %r" % (p["probe_count"], p["probe_timeout"]))
    if p["redis_snapshot_keep"] < 1:
        raise diag.DiagnosticsError("redis_snapshot_keep must be >= 1, got %d" % p["redis_snapshot_keep"])
    since = _time.parse_since(p["errors_since"], name="errors_since")
    thresholds = {**diag.DEFAULT_THRESHOLDS, **(stack.get("thresholds") or {}), **(p["thresholds"] or {})}
    bad = sorted(k for k, v in thresholds.items() if not isinstance(v, (int, float)) or isinstance(v, bool) or v < 0)
    if bad:
        raise diag.DiagnosticsError("thresholds must be numbers >= 0: %s" % ", ".join("%s=%r" % (k, thresholds[k]) for k in bad))
    parts = p["parts"] or list(diag.PARTS)
    bundle_dir = _state_path(stack, p["bundle_dir"], "bundles") if p["bundle"] else p["bundle_dir"]
    snapshot_dir = _state_path(stack, p["redis_snapshot_dir"], "redis-snapshots")
    for wanted, path, option in ((p["bundle"], bundle_dir, "bundle_dir"), (p["redis_snapshot"], snapshot_dir, "redis_snapshot_dir")):
        if wanted and not path:
            raise StackError("incident_stack.state_dir is not set: set it or give %s" % option)

    started = time.monotonic()
    ctx = diag.Context(module.connect(max_pool_size=32), stack, log_lines=p["log_lines"], since=since,
                       run_command=module.run_command, snapshot_dir=snapshot_dir, extra_secrets=p["redact_values"],
                       changes_window_s=p["changes_window"], probe_count=p["probe_count"],
                       probe_timeout=p["probe_timeout"], cpu_sample=p["cpu_sample"])
    do_snapshot = p["redis_snapshot"] and not module.check_mode
    snap_fn = (lambda: diag.take_redis_snapshot(ctx)) if do_snapshot else None
    # kept only when the run's verdict says the cache is healthy: the newest kept is the one option C restores
    keep_fn = functools.partial(diag.keep_redis_snapshot, dest_dir=snapshot_dir, keep=p["redis_snapshot_keep"])
    facts, raw, snap = diag.collect(ctx, parts, snapshot=snap_fn, snapshot_max_age=thresholds["snapshot_max_age"],
                                    keep_snapshot=keep_fn, thresholds=thresholds)
    summary = diag.build_summary(facts, stack)
    findings = diag.evaluate(summary, {k: v.get("ok") for k, v in facts.items()}, thresholds)
    if snap is not None:
        snapshot = dict(snap, taken=snap["kept"])
    else:
        reason = "check mode: no snapshot taken" if p["redis_snapshot"] else "redis_snapshot=false"
        snapshot = dict(taken=False, reason=reason, dir=snapshot_dir)
    runbook_items = {num: dict(item=title, part=part, ok=bool((facts.get(part) or {}).get("ok")))
                     for num, title, part in diag.RUNBOOK_ITEMS}
    result = dict(parts=facts, summary=summary, findings=findings, verdict=diag.verdict(findings),
                  severity=_severity.of_findings(findings) or "none",
                  runbook_items=runbook_items, snapshot=snapshot, redacted=len(ctx.secrets))
    if p["bundle"] and not module.check_mode:
        meta = dict(stack=stack.get("name"), service=stack.get("service"), host=os.uname()[1],
                    summary=summary, findings=findings, snapshot=snapshot)
        bundle = diag.write_bundle(bundle_dir, p["label"], facts, raw, meta, secrets=ctx.secrets)
        result["bundle"] = dict(bundle, written=True)
    else:
        result["bundle"] = dict(written=False, dir=bundle_dir,
                                reason="check mode: nothing written" if p["bundle"] else "bundle=false")
    result["changed"] = bool(result["bundle"].get("written") or snapshot.get("taken"))
    result["elapsed"] = round(time.monotonic() - started, 3)
    return result


def main(here=None):
    return IncidentModule(ARGUMENT_SPEC, docker=True, here=here).run(work, context="cannot write to the managed host")


if __name__ == "__main__":
    main()
