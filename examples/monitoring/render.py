#!/usr/bin/env python3
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Render the configuration of examples/monitoring from targets.yml into one directory.

    render.py TARGETS OUT_DIR --alertmanager 127.0.0.1:19093 --blackbox 127.0.0.1:19115 [--eda-url URL]

Writes OUT_DIR/prometheus.yml, OUT_DIR/alertmanager.yml, OUT_DIR/blackbox.yml,
OUT_DIR/rules/incident.rules.yml, OUT_DIR/rules/baselines.rules.yml and the file_sd target lists
OUT_DIR/targets/{health,recommendations,service}.json. The templates (${...} placeholders, Python
string.Template) sit next to this file; a missing or unknown value fails naming it.
"""
from __future__ import annotations

import argparse
import json
import re
import string
import sys
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
TIMINGS = ("scrape_interval", "evaluation_interval", "probe_timeout", "down_for", "latency_for", "users_failing_for",
           "error_rate_for", "group_wait", "group_interval", "repeat_interval")
THRESHOLDS = ("error_rate", "users_failing")
STACK_KEYS = ("name", "inventory_host", "service", "edge", "metrics", "health_path", "recommendations_path",
              "probe_users", "baseline_ms", "eda_url")
DURATION = re.compile(r"^[0-9]+(ms|s|m|h|d)$")
HOST_PORT = re.compile(r"^[A-Za-z0-9.-]+:[0-9]{1,5}$")


class RenderError(ValueError):
    pass


def check(targets):
    if not isinstance(targets, dict):
        raise RenderError("the targets file must be a mapping with timings, thresholds, eda_url and stacks")
    timings = targets.get("timings") or {}
    for key in TIMINGS:
        if not DURATION.match(str(timings.get(key, ""))):
            raise RenderError("timings.%s %r is not a Prometheus duration such as 15s or 1m" % (key, timings.get(key)))
    thresholds = targets.get("thresholds") or {}
    for key in THRESHOLDS:
        value = thresholds.get(key)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
            raise RenderError("thresholds.%s %r is not a fraction between 0 and 1" % (key, value))
    stacks = targets.get("stacks")
    if not isinstance(stacks, list) or not stacks:
        raise RenderError("stacks must be a non-empty list")
    names = set()
    for index, stack in enumerate(stacks):
        unknown = sorted(set(stack) - set(STACK_KEYS))
        if unknown:
            raise RenderError("stacks[%d] has unknown key(s) %s" % (index, ", ".join(unknown)))
        if not re.match(r"^[a-z0-9][a-z0-9_-]*$", str(stack.get("name", ""))) or stack["name"] in names:
            raise RenderError("stacks[%d].name %r is not a unique compose project name" % (index, stack.get("name")))
        names.add(stack["name"])
        for key in ("edge",) + (("metrics",) if stack.get("metrics") else ()):
            if not HOST_PORT.match(str(stack.get(key, ""))):
                raise RenderError("stacks[%d].%s %r is not host:port" % (index, key, stack.get(key)))
        if "{user}" not in str(stack.get("recommendations_path", "")):
            raise RenderError("stacks[%d].recommendations_path %r has no {user}" % (index, stack.get("recommendations_path")))
        if not str(stack.get("health_path", "")).startswith("/"):
            raise RenderError("stacks[%d].health_path %r is not a path" % (index, stack.get("health_path")))
        users = stack.get("probe_users")
        if not isinstance(users, list) or not users:
            raise RenderError("stacks[%d].probe_users must be a non-empty list" % index)
        baseline = stack.get("baseline_ms")
        if isinstance(baseline, bool) or not isinstance(baseline, (int, float)) or baseline <= 0:
            raise RenderError("stacks[%d].baseline_ms %r is not a positive number" % (index, baseline))
    return timings, thresholds, stacks


def labels(stack):
    out = {"stack": stack["name"], "service": stack.get("service") or stack["name"]}
    if stack.get("inventory_host"):
        out["instance_host"] = str(stack["inventory_host"])
    return out


def target_files(stacks):
    health, recs, service = [], [], []
    for stack in stacks:
        base = "http://%s" % stack["edge"]
        health.append({"targets": [base + stack["health_path"]], "labels": labels(stack)})
        recs.append({"targets": [base + stack["recommendations_path"].replace("{user}", str(user))
                                 for user in stack["probe_users"]], "labels": labels(stack)})
        if stack.get("metrics"):
            service.append({"targets": [stack["metrics"]], "labels": labels(stack)})
    return {"health.json": health, "recommendations.json": recs, "service.json": service}


def baselines(stacks):
    return {"groups": [{"name": "sre-incident-baselines", "rules": [
        {"record": "sre:baseline_ms", "expr": "vector(%s)" % stack["baseline_ms"], "labels": {"stack": stack["name"]}}
        for stack in stacks]}]}


def routes(stacks, default_url):
    """Alertmanager routes and receivers, as one-line JSON (valid YAML flow style): a stack with its own
    ``eda_url`` (its own rulebook, started with its own inventory) gets a route of its own; the others go to
    ``default_url``."""
    own = [s for s in stacks if s.get("eda_url")]
    route_list = [{"matchers": ['stack="%s"' % s["name"]], "receiver": "sre-incident-rulebook-%s" % s["name"]} for s in own]
    receivers = [("sre-incident-rulebook", default_url)] + [("sre-incident-rulebook-%s" % s["name"], s["eda_url"])
                                                           for s in own]
    receiver_list = [{"name": name, "webhook_configs": [{"url": url, "send_resolved": True, "max_alerts": 0}]}
                     for name, url in receivers]
    return json.dumps(route_list), json.dumps(receiver_list)


def fill(name, values):
    text = (HERE / name).read_text()
    try:
        return string.Template(text).substitute(values)
    except KeyError as exc:
        raise RenderError("%s needs a value for %s" % (name, exc)) from None


def render(targets_path, out_dir, alertmanager, blackbox, eda_url=None):
    targets = yaml.safe_load(Path(targets_path).read_text())
    timings, thresholds, stacks = check(targets)
    out = Path(out_dir).resolve()
    (out / "rules").mkdir(parents=True, exist_ok=True)
    (out / "targets").mkdir(parents=True, exist_ok=True)
    values = dict(timings, **thresholds)
    values.update(config_dir=str(out), alertmanager=alertmanager, blackbox=blackbox,
                  eda_url=eda_url or targets.get("eda_url") or "http://127.0.0.1:5001/alerts")
    values["routes"], values["receivers"] = routes(stacks, values["eda_url"])
    (out / "prometheus.yml").write_text(fill("prometheus.yml", values))
    (out / "alertmanager.yml").write_text(fill("alertmanager.yml", values))
    (out / "blackbox.yml").write_text((HERE / "blackbox.yml").read_text())
    (out / "rules" / "incident.rules.yml").write_text(fill("rules/incident.rules.yml", values))
    (out / "rules" / "baselines.rules.yml").write_text(yaml.safe_dump(baselines(stacks), sort_keys=False))
    for name, content in target_files(stacks).items():
        (out / "targets" / name).write_text(json.dumps(content, indent=2) + "\n")
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("targets")
    parser.add_argument("out_dir")
    parser.add_argument("--alertmanager", required=True, help="host:port of Alertmanager")
    parser.add_argument("--blackbox", required=True, help="host:port of the blackbox exporter")
    parser.add_argument("--eda-url", help="the rulebook's webhook URL (default: eda_url of the targets file)")
    args = parser.parse_args(argv)
    try:
        out = render(args.targets, args.out_dir, args.alertmanager, args.blackbox, args.eda_url)
    except (RenderError, OSError, yaml.YAMLError) as exc:
        print("render.py: %s" % exc, file=sys.stderr)
        return 2
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
