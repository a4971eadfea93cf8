# Copyright (c) sre.incident contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A webhook endpoint for the notify scenario: records every POST as one JSON line.

    python3 webhook_receiver.py PORT OUT_FILE

Listens on 127.0.0.1:PORT. ``POST <any path>`` -> 200, appends ``{"path", "authorization",
"content_type", "body"}`` to OUT_FILE; ``GET /`` -> 200 (readiness).
"""
from __future__ import annotations

import http.server
import json
import sys


class Handler(http.server.BaseHTTPRequestHandler):
    out = None

    def do_GET(self):  # noqa: N802 - http.server naming
        self._answer(200, b"ready\n")

    def do_POST(self):  # noqa: N802 - http.server naming
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length).decode("utf-8", "replace")
        try:
            body = json.loads(raw)
        except ValueError:
            body = raw
        line = dict(path=self.path, authorization=self.headers.get("Authorization"),
                    content_type=self.headers.get("Content-Type"), body=body)
        with open(self.out, "a", encoding="utf-8") as stream:
            stream.write(json.dumps(line, sort_keys=True) + "\n")
        self._answer(200, b'{"ok": true}\n')

    def _answer(self, status, data):
        self.send_response(status)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format, *args):  # pylint: disable=redefined-builtin
        sys.stderr.write("webhook: " + (format % args) + "\n")


def main(port, out):
    Handler.out = out
    http.server.ThreadingHTTPServer(("127.0.0.1", int(port)), Handler).serve_forever()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
