# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Run a module's main() in-process: exit_json and fail_json raise instead of exiting.

A test module opts in by importing ``patch_exits`` (an autouse fixture) and runs the module with
``run_module``::

    from .harness import patch_exits, run_module
    run = functools.partial(run_module, health_check)
    result = run(dict(url="http://127.0.0.1/"), check_mode=True)

Optional pieces, each opted into the same way (import the name):

``run_main``               like ``run_module`` but returns the raised AnsibleExitJson or AnsibleFailJson
``no_incident_dir_env``    autouse fixture: SRE_INCIDENT_DIR unset
``warnings_seen``          fixture: the list of messages the module passed to warn()
``mask_no_log``            fixture: exit_json hides no_log values, as the real one does
``patch_engine``           the Docker engine replaced: _compose.connect and other _compose functions
``patch_run_command``      AnsibleModule.run_command returns a fixed (rc, out, err)
``JSONHandler``, ``serving``  a loopback HTTP server for the probes: subclass JSONHandler (answer
                           with ``self.send_json(status, body)``), ``with serving(Handler) as url``
"""
from __future__ import annotations

import contextlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from ansible.module_utils import basic
from ansible.module_utils.common.parameters import remove_values
from ansible.module_utils.testing import patch_module_args

from ansible_collections.sre.incident.plugins.module_utils import _compose


class AnsibleExitJson(Exception):
    pass


class AnsibleFailJson(Exception):
    pass


def exit_json(self, **kwargs):
    kwargs.setdefault("changed", False)
    raise AnsibleExitJson(kwargs)


def fail_json(self, msg, **kwargs):
    """Like the real fail_json, msg is required."""
    kwargs.update(msg=msg, failed=True)
    raise AnsibleFailJson(kwargs)


@pytest.fixture(autouse=True)
def patch_exits(monkeypatch):
    monkeypatch.setattr(basic.AnsibleModule, "exit_json", exit_json)
    monkeypatch.setattr(basic.AnsibleModule, "fail_json", fail_json)


def run_main(module, args, check_mode=False, diff=False):
    """Run ``module.main()`` with ``args``; return the AnsibleExitJson or AnsibleFailJson it raised.

    ``check_mode`` and ``diff`` set ``_ansible_check_mode`` and ``_ansible_diff`` when true; ``args``
    may carry those keys itself.
    """
    if check_mode:
        args = dict(args, _ansible_check_mode=True)
    if diff:
        args = dict(args, _ansible_diff=True)
    with patch_module_args(args):
        with pytest.raises((AnsibleExitJson, AnsibleFailJson)) as info:
            module.main()
    return info.value


def run_module(module, args, check_mode=False, diff=False):
    """Run ``module.main()`` with ``args``; return the result it exited or failed with (failed=True)."""
    return run_main(module, args, check_mode=check_mode, diff=diff).args[0]


@pytest.fixture(autouse=True)
def no_incident_dir_env(monkeypatch):
    monkeypatch.delenv("SRE_INCIDENT_DIR", raising=False)


@pytest.fixture
def warnings_seen(monkeypatch):
    seen = []
    monkeypatch.setattr(basic.AnsibleModule, "warn", lambda self, msg: seen.append(msg))
    return seen


def exit_json_masked(self, **kwargs):
    kwargs.setdefault("changed", False)
    raise AnsibleExitJson(remove_values(kwargs, self.no_log_values))


@pytest.fixture
def mask_no_log(monkeypatch):
    monkeypatch.setattr(basic.AnsibleModule, "exit_json", exit_json_masked)


def dummy_connect(host, timeout):
    return object()


def patch_engine(monkeypatch, connect=dummy_connect, **fakes):
    """Replace ``_compose.connect`` (default: a dummy client) and each ``_compose`` function named in
    ``fakes``, e.g. ``patch_engine(monkeypatch, exec_in_service=fake_exec)``."""
    monkeypatch.setattr(_compose, "connect", connect)
    for name, fake in fakes.items():
        monkeypatch.setattr(_compose, name, fake)


def patch_run_command(monkeypatch, rc=0, out="", err=""):
    """AnsibleModule.run_command runs nothing and returns ``(rc, out, err)``."""
    monkeypatch.setattr(basic.AnsibleModule, "run_command", lambda self, argv, **kwargs: (rc, out, err))


class JSONHandler(BaseHTTPRequestHandler):
    """Base of the tests' loopback HTTP servers: quiet, and ``send_json`` answers."""

    def log_message(self, *args):
        pass

    def send_json(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@contextlib.contextmanager
def serving(handler):
    """A ThreadingHTTPServer on a free loopback port with ``handler``; yields its base URL."""
    srv = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        yield "http://127.0.0.1:%d" % srv.server_address[1]
    finally:
        srv.shutdown()
        srv.server_close()
