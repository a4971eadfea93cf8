# Stand-in for ansible-test's pip bootstrap script (get-pip.py), which ansible-test downloads
# from a host these machines cannot reach. ansible-test runs it inside a fresh virtualenv with
# get-pip's arguments ("pip==X --no-setuptools --no-wheel"): install the pip bundled with
# Python (ensurepip), then let that pip install what was asked, from the package index.
from __future__ import annotations

import ensurepip
import os
import runpy
import sys

saved_env = dict(os.environ)
ensurepip.bootstrap(upgrade=True)
# ensurepip switches pip's configuration off (PIP_CONFIG_FILE=/dev/null) in this process:
# put the environment back so the real install honours the machine's pip.conf (CA bundle).
os.environ.clear()
os.environ.update(saved_env)
args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
sys.argv[1:] = ["install", *args]
runpy.run_module("pip", run_name="__main__", alter_sys=True)
