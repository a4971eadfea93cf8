# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""P2 problem reports (SPEC P2-1): the runbook's template ("P2 問題模板"), filled from evidence.

* :func:`report_view`: what the template ``plugins/plugin_utils/templates/p2_report.md.j2`` shows
  (the runbook's headings live there).
* :func:`select_log_lines`: the WARNING/ERROR lines of the service's log, as ``_logs`` classifies them.
* :func:`collect`: the service's version (``/health``, the container's image), recent log lines and
  reproduction probes; :func:`collect_evidence` runs it on the managed host, :func:`run` the rest on
  the controller (the action plugin renders the template, posts and writes).
* :func:`post_issue`: a GitHub- or GitLab-style issues API. The token only ever goes into a request
  header, never into a returned value or an error message.
"""

from __future__ import annotations

import datetime
import json
import os
import re

from ansible_collections.sre.incident.plugins.module_utils import _compose, _files, _http, _logs, _stack
from ansible_collections.sre.incident.plugins.module_utils._errors import IncidentError
from ansible_collections.sre.incident.plugins.module_utils._redact import redact_text
from ansible_collections.sre.incident.plugins.module_utils._time import format_seconds, parse_since, utc_now

TRACKER_KINDS = ("github", "gitlab")
DEFAULT_LEVELS = ("WARNING", "ERROR")
TRACKER_MARKER = "<!-- sre.incident tracker issue: %s -->"
_MARKER_RE = re.compile(r"<!-- sre\.incident tracker issue: (\S+) -->")

PLACEHOLDER = "_(not known yet: fill in)_"


class ReportError(IncidentError):
    """The report could not be written or posted; ``details`` go into the module's failure."""


# ---------------------------------------------------------------------------------------------
# Rendering
# ---------------------------------------------------------------------------------------------

def file_name(title, date):
    """``<YYYY-MM-DD>-<slug>.md``; ``date`` is a date, datetime or ``YYYY-MM-DD`` string."""
    if isinstance(date, (datetime.date, datetime.datetime)):
        day = date.strftime("%Y-%m-%d")
    else:
        day = str(date)
        datetime.datetime.strptime(day, "%Y-%m-%d")  # ValueError for a malformed date
    return "%s-%s.md" % (day, _files.slug(title or "", "problem"))


def _text(value):
    if value is None or (isinstance(value, (str, list, tuple)) and not value):
        return PLACEHOLDER
    if isinstance(value, (list, tuple)):
        return "\n".join("- %s" % v for v in value)
    return str(value).strip() or PLACEHOLDER


def report_view(report):
    """What the template shows of a report dict (``title`` required), as display text; missing parts get
    a "fill in" placeholder."""
    title = str(report.get("title") or "").strip()
    if not title:
        raise ValueError("a report needs a title")
    meta = [("Severity", report.get("severity") or "P2"), ("Service", report.get("service")),
            ("Host", report.get("host")), ("Reported", report.get("reported_at")), ("Reporter", report.get("reporter"))]
    env = report.get("environment") or {}
    url = report.get("tracker_url")
    view = {key: _text(report.get(key)) for key in ("description", "expected", "actual", "cause", "fix")}
    view.update(
        title=title, meta=[(k, v) for k, v in meta if v], placeholder=PLACEHOLDER,
        steps=[s for s in (report.get("steps") or []) if str(s).strip()],
        environment={name: _text(env.get(name)) for name in ("version", "time", "user", "frequency")},
        # a log line cannot close the fenced block it is shown in
        logs=[line.replace("```", "'''") for line in report.get("logs") or []],
        notes=list(report.get("evidence_notes") or []), tracker_url=url, tracker_marker=TRACKER_MARKER % url if url else None)
    return view


def markdown(report, render):
    """The report's Markdown, ending in exactly one newline."""
    return render("p2_report.md.j2", report_view(report)).rstrip("\n") + "\n"


def tracker_link(content):
    """The tracker issue URL recorded in an existing report, or None."""
    match = _MARKER_RE.search(content or "")
    return match.group(1) if match else None


# ---------------------------------------------------------------------------------------------
# Log excerpts
# ---------------------------------------------------------------------------------------------

def select_log_lines(lines, levels=DEFAULT_LEVELS, limit=20, match=None, secrets=()):
    """The last ``limit`` lines whose level is in ``levels`` (and that contain ``match``), redacted, as
    dict(lines, counts ({level: n} before the limit), total)."""
    wanted = {_logs.coarse_level(_logs.normalize(level)) or str(level).upper() for level in levels or DEFAULT_LEVELS}
    picked, counts = [], {}
    for line in lines:
        level = _logs.coarse_level(_logs.line_level(line))
        if level not in wanted or (match and match not in line):
            continue
        counts[level] = counts.get(level, 0) + 1
        picked.append(redact_text(line.rstrip("\n"), secrets))
    limit = int(limit)
    return dict(lines=picked[-limit:] if limit > 0 else [], counts=counts, total=len(picked))


# ---------------------------------------------------------------------------------------------
# Evidence
# ---------------------------------------------------------------------------------------------

def _describe_probe(method, probe):
    body = probe.get("body_json")
    shown = json.dumps(body, separators=(",", ":"))[:240] if body is not None else None
    if probe.get("status") is None:
        return "%s %s: no answer (%s)" % (method, probe["url"], probe.get("error"))
    text = "%s %s answered %s in %s ms" % (method, probe["url"], probe["status"], probe.get("latency_ms"))
    return text + (": %s" % shown if shown else "")


def collect(stack, client=None, since="15m", tail=2000, levels=DEFAULT_LEVELS, limit=20, match=None,
            reproduce_urls=(), timeout=5.0, now=None, probe=None, compose=None, connect=None):
    """Live evidence for a report: version, log excerpt, reproduction probes.

    ``client``: a ``_compose.ComposeClient`` (None: no engine, no logs or image), or ``connect()``
    returning one, called once the input is checked. Never raises because the service is unwell;
    missing pieces are listed in ``notes``.
    """
    compose, probe = compose or _compose, probe or _http.probe
    try:
        urls = _stack.urls(stack)
    except _stack.StackError as exc:
        raise ValueError(str(exc)) from None
    for url in reproduce_urls or ():
        _http.validate_url(url)
    now = now or utc_now()
    since = parse_since(since, now.timestamp(), "log_since")
    if client is None and connect is not None:
        client = connect()
    notes = []
    evidence = dict(collected_at=format_seconds(now), service=stack["service"], project=stack["name"],
                    log_since=format_seconds(since), app_version=None, image=None, logs=[], log_counts={},
                    log_total=0, reproduce=[], health=None, notes=notes)
    health = probe(urls["health"], timeout)
    body = health.get("body_json") if isinstance(health.get("body_json"), dict) else {}
    evidence["health"] = dict(status=health.get("status"), error=health.get("error"),
                              body={k: body.get(k) for k in ("status", "down", "postgres", "redis", "version") if k in body})
    evidence["app_version"] = body.get("version")
    if evidence["app_version"] is None:
        notes.append("the service's /health did not name a version (%s)" % (health.get("error") or "no version field"))
    for url in reproduce_urls or ():
        answer = probe(url, timeout)
        evidence["reproduce"].append(dict(url=url, status=answer.get("status"), latency_ms=answer.get("latency_ms"),
                                          error=answer.get("error"), text=_describe_probe("GET", answer)))
    if client is None:
        notes.append("no Docker engine: no log excerpt, no image")
        return evidence
    try:
        evidence["image"] = compose.service_image(client, stack["name"], stack["service"])
    except compose.DockerError as exc:
        notes.append("image of %s not read: %s" % (stack["service"], exc.msg))
    try:
        logs = compose.service_logs(client, stack["name"], stack["service"], since=int(since), tail=tail)
    except compose.DockerError as exc:
        notes.append("logs of %s not read: %s" % (stack["service"], exc.msg))
        logs = []
    lines = [line for entry in logs for line in entry["lines"]]
    selected = select_log_lines(lines, levels=levels, limit=limit, match=match)
    evidence.update(logs=selected["lines"], log_counts=selected["counts"], log_total=selected["total"],
                    log_containers=[entry["container"] for entry in logs])
    return evidence


def fill(report, evidence):
    """A report dict with the parts the operator left open filled from ``evidence``."""
    out = dict(report)
    evidence = evidence or {}
    env = dict(out.get("environment") or {})
    if not env.get("version"):
        parts = []
        if evidence.get("app_version"):
            parts.append("app %s (from /health)" % evidence["app_version"])
        image = evidence.get("image") or {}
        if image.get("image_id"):
            parts.append("image %s %s, created %s" % (image.get("image_name") or "", image["image_id"][:19],
                                                      image.get("created") or "unknown"))
        env["version"] = "; ".join(parts) or None
    if not env.get("time"):
        env["time"] = evidence.get("collected_at")
    if not env.get("frequency") and evidence.get("log_total") is not None and "logs" in evidence:
        counts = evidence.get("log_counts") or {}
        env["frequency"] = "%d matching log line(s) since %s (%s)" % (
            evidence.get("log_total", 0), evidence.get("log_since"),
            ", ".join("%s %d" % (k, v) for k, v in sorted(counts.items())) or "none")
    out["environment"] = env
    reproduce = evidence.get("reproduce") or []
    if not out.get("steps") and reproduce:
        out["steps"] = ["`curl -s %s`" % r["url"] for r in reproduce]
    if not out.get("actual") and reproduce:
        out["actual"] = "\n".join("- %s" % r["text"] for r in reproduce)
    if not out.get("logs"):
        out["logs"] = evidence.get("logs") or []
    notes = list(out.get("evidence_notes") or [])
    if evidence.get("collected_at"):
        notes.append("evidence collected %s from %s (service %s); health %s"
                     % (evidence["collected_at"], evidence.get("project"), evidence.get("service"),
                        (evidence.get("health") or {}).get("status")))
    notes += evidence.get("notes") or []
    out["evidence_notes"] = notes
    out.setdefault("service", evidence.get("service"))
    return out


# ---------------------------------------------------------------------------------------------
# The backlog file and the tracker
# ---------------------------------------------------------------------------------------------

def write_report(path, content, check_mode=False):
    """Write ``content`` to ``path`` unless it holds exactly that; returns dict(changed, diff)."""
    before = _files.read_text(path)
    changed = before != content
    if changed and not check_mode:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        _files.write_atomic(path, content, mode=0o644)
    return dict(changed=changed, diff=dict(before=before or "", after=content, before_header=path, after_header=path))


def validate_tracker(tracker):
    """Check ``{kind, url, token}``; returns it normalised, ValueError naming a bad part (never the token)."""
    if not isinstance(tracker, dict):
        raise ValueError("tracker must be a mapping {kind, url, token}")
    kind = str(tracker.get("kind") or "").lower()
    if kind not in TRACKER_KINDS:
        raise ValueError("tracker kind %r is unknown: expected one of %s" % (tracker.get("kind"), ", ".join(TRACKER_KINDS)))
    url = tracker.get("url")
    _http.validate_url(url)
    if not tracker.get("token"):
        raise ValueError("tracker token is missing")
    return dict(kind=kind, url=url.rstrip("/"), token=str(tracker["token"]))


def tracker_request(tracker, title, body, labels=()):
    """dict(url, headers, payload, kind) of ``POST <url>/issues`` (a ``url`` ending in ``/issues`` as it is).

    ``url``: the API URL of the GitHub repository (``https://api.github.com/repos/o/r``) or the GitLab
    project (``https://gitlab.example.com/api/v4/projects/42``).
    """
    tracker = validate_tracker(tracker)
    endpoint = tracker["url"] if tracker["url"].endswith("/issues") else tracker["url"] + "/issues"
    headers = {"Content-Type": "application/json", "Accept": "application/json", "User-Agent": "sre.incident-p2_report"}
    if tracker["kind"] == "github":
        headers["Authorization"] = "Bearer %s" % tracker["token"]
        headers["Accept"] = "application/vnd.github+json"
        payload = dict(title=title, body=body, labels=list(labels))
    else:
        headers["PRIVATE-TOKEN"] = tracker["token"]
        payload = dict(title=title, description=body, labels=",".join(labels))
    return dict(url=endpoint, headers=headers, payload=payload, kind=tracker["kind"])


def post_issue(tracker, title, body, labels=(), timeout=10.0, send=None):
    """Create the issue, sent once (a creating POST is not retried); returns dict(status, url, number,
    api_url, kind). ReportError on failure, naming the endpoint and status, never the token."""
    request = tracker_request(tracker, title, body, labels)
    data = json.dumps(request["payload"]).encode("utf-8")
    answer = (send or _http.send)(request["url"], method="POST", data=data, headers=request["headers"],
                                  timeout=float(timeout), max_body=1024 * 1024)
    status, raw = answer["status"], answer["body"]
    if status is None:
        raise ReportError("the tracker did not answer: POST %s: %s" % (request["url"], answer["detail"]),
                          tracker_url=request["url"])
    if status >= 300:
        detail = redact_text(raw[:2000].decode("utf-8", "replace"), [tracker.get("token")])
        raise ReportError("the tracker refused the issue: POST %s answered %s: %s" % (request["url"], status, detail[:300]),
                          tracker_status=status, tracker_url=request["url"])
    try:
        answer = json.loads(raw.decode("utf-8")) if raw else {}
    except ValueError:
        answer = {}
    if not isinstance(answer, dict):
        answer = {}
    return dict(status=status, api_url=request["url"], kind=request["kind"],
                url=answer.get("html_url") or answer.get("web_url") or answer.get("url"),
                number=answer.get("number") if request["kind"] == "github" else answer.get("iid"))


# ---------------------------------------------------------------------------------------------
# The work of sre.incident.report: evidence on the managed host, the report on the controller
# ---------------------------------------------------------------------------------------------

REPORT_KEYS = ("title", "description", "steps", "expected", "actual", "cause", "fix", "reporter", "severity")
#: The options the module needs on the managed host to collect evidence (the rest stays on the controller).
COLLECT_OPTIONS = ("collect", "stack", "reproduce_urls", "log_since", "log_lines", "log_levels", "log_match")
REQUIRED_IF = [("collect", True, ("stack",))]


def argument_spec():
    """The options of sre.incident.report (module and action plugin), the shared Docker options included."""
    return dict(
        title=dict(type="str"),
        description=dict(type="str"),
        steps=dict(type="list", elements="str"),
        expected=dict(type="str"),
        actual=dict(type="str"),
        environment=dict(type="dict"),
        cause=dict(type="str"),
        fix=dict(type="str"),
        reporter=dict(type="str"),
        severity=dict(type="str", default="P2", choices=["P2", "P3"]),
        host=dict(type="str"),
        logs=dict(type="list", elements="str"),
        labels=dict(type="list", elements="str", default=["P2"]),
        collect=dict(type="bool", default=False),
        stack=dict(type="dict"),
        evidence=dict(type="dict"),
        reproduce_urls=dict(type="list", elements="str", default=[]),
        log_since=dict(type="str", default="15m"),
        log_lines=dict(type="int", default=20),
        log_levels=dict(type="list", elements="str", default=["WARNING", "ERROR"]),
        log_match=dict(type="str"),
        dest_dir=dict(type="path"),
        date=dict(type="str"),
        tracker=dict(type="dict", options=dict(
            kind=dict(type="str", required=True, choices=list(TRACKER_KINDS)),
            url=dict(type="str", required=True),
            token=dict(type="str", required=True, no_log=True),
        )),
        tracker_timeout=dict(type="float", default=10.0),
        **_compose.DOCKER_COMMON_ARGS)


def collect_evidence(params, connect=None, now=None, probe=None):
    """The module's part, on the managed host: the live evidence of O(collect)."""
    if not params.get("stack"):
        raise ValueError("collect=true needs stack (incident_stack)")
    return collect(params["stack"], connect=connect,
                   since=params.get("log_since", "15m"), levels=params.get("log_levels") or DEFAULT_LEVELS,
                   limit=params.get("log_lines", 20), match=params.get("log_match"),
                   reproduce_urls=params.get("reproduce_urls") or (), now=now, probe=probe)


def check(params, now=None):
    """Reject bad input before anything is collected, posted or written; returns the file name."""
    now = now or utc_now()
    if params.get("tracker"):
        validate_tracker(params["tracker"])
    if params.get("dest_dir") and not params.get("title"):
        raise ValueError("writing a report needs a title")
    return file_name(params.get("title") or "problem", params.get("date") or now.strftime("%Y-%m-%d"))


def run(params, render, check_mode=False, now=None, post=post_issue):
    """On the controller: fill from ``params["evidence"]``, render (``render(template_name, view)``),
    post (new reports only) and write; both optional. Returns the module's result."""
    now = now or utc_now()
    name = check(params, now)
    tracker = params.get("tracker") or None
    evidence = dict(params.get("evidence") or {})
    report = {k: params.get(k) for k in REPORT_KEYS if params.get(k) is not None}
    report["environment"] = {k: v for k, v in (params.get("environment") or {}).items() if v not in (None, "")}
    report["host"] = params.get("host")
    report["reported_at"] = format_seconds(now)
    report["logs"] = [redact_text(str(line), [tracker and tracker.get("token")]) for line in params.get("logs") or []]
    report = fill(report, evidence)
    result = dict(changed=False, path=None, file_name=name, evidence=evidence, issue=None, posted=False, markdown=None,
                  diff=dict(before="", after=""))
    if not params.get("dest_dir"):
        result["markdown"] = markdown(dict(report, title=report.get("title") or "(untitled)"), render)
        return result
    path = os.path.join(params["dest_dir"], name)
    existing = _files.read_text(path)
    link = tracker_link(existing)
    would_post = bool(tracker and link is None)
    if would_post and not check_mode:
        body = markdown(report, render)
        issue = post(tracker, report["title"], body, labels=params.get("labels") or ["P2"],
                     timeout=params.get("tracker_timeout", 10.0))
        result.update(issue=issue, posted=True)
        link = issue.get("url") or issue.get("api_url")
    report["tracker_url"] = link
    # a re-run keeps the first report time, so only new evidence changes the file
    first = re.search(r"^- Reported: (\S+)$", existing or "", re.M)
    if first:
        report["reported_at"] = first.group(1)
    content = markdown(report, render)
    written = write_report(path, content, check_mode=check_mode)
    result.update(changed=written["changed"] or result["posted"], path=path, markdown=content, diff=written["diff"],
                  would_post=would_post)
    return result
