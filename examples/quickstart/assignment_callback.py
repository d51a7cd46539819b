#!/usr/bin/env python3
"""A tiny assignment-callback server for the TaskRouter quickstart.

Like Twilio's quickstart seed app, it answers every POST to
``/assignment_callback`` with ``200 {}`` (``Content-Type: application/json``):
the reservation then waits until someone accepts or rejects it through the
REST API.  Started with ``--accept`` it answers ``{"instruction": "accept"}``
instead, and TaskRouter (here: Taskyard) accepts the reservation itself.

    python3 assignment_callback.py                  # answers {}
    python3 assignment_callback.py --accept         # answers {"instruction": "accept"}
    python3 assignment_callback.py --port 9000 --auth-token "$TASKYARD_AUTH_TOKEN"

When the ``twilio`` package is installed and an auth token is given
(``--auth-token`` or ``TASKYARD_AUTH_TOKEN``), the ``X-Twilio-Signature`` of
every request is checked with twilio's ``RequestValidator``; a request that
fails the check gets ``403``.  The signed URL is the one the workflow was
configured with: by default ``http://<Host header><path>``, or ``--public-url``
when the server is reached through a proxy.

Only the standard library is needed otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable, Dict, List, Optional
from urllib.parse import parse_qsl

try:  # optional: only used to verify signatures
    from twilio.request_validator import RequestValidator
except ImportError:  # pragma: no cover - depends on the environment
    RequestValidator = None

PATH = "/assignment_callback"


class AssignmentCallbackServer(ThreadingHTTPServer):
    """The callback endpoint.  ``accept`` can be switched while it runs."""

    daemon_threads = True

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 8080,
        *,
        accept: bool = False,
        auth_token: Optional[str] = None,
        public_url: Optional[str] = None,
        log: Callable[[str], None] = print,
    ):
        super().__init__((host, port), _Handler)
        self.accept = accept
        self.validator = RequestValidator(auth_token) if auth_token and RequestValidator else None
        self.public_url = public_url
        self.log = log
        self.callbacks: List[Dict[str, str]] = []  # form parameters of every valid callback
        self._changed = threading.Condition()

    @property
    def url(self) -> str:
        """The URL to configure as the workflow's AssignmentCallbackUrl."""
        host, port = self.server_address[:2]
        return self.public_url or f"http://{host}:{port}{PATH}"

    def answer(self) -> dict:
        return {"instruction": "accept"} if self.accept else {}

    def start(self) -> "AssignmentCallbackServer":
        """Serve from a background thread (for use inside another program)."""
        threading.Thread(target=self.serve_forever, daemon=True).start()
        return self

    def wait_for_callbacks(self, count: int, timeout: float = 10.0) -> List[Dict[str, str]]:
        """Wait until ``count`` callbacks have been received; return them all."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while len(self.callbacks) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"no assignment callback #{count} within {timeout}s")
                self._changed.wait(remaining)
            return list(self.callbacks)

    def _record(self, params: Dict[str, str]) -> None:
        with self._changed:
            self.callbacks.append(params)
            self._changed.notify_all()


class _Handler(BaseHTTPRequestHandler):
    server: AssignmentCallbackServer

    def do_POST(self):
        if self.path.split("?", 1)[0] != PATH:
            return self._send(404, {"message": "not found"})
        length = int(self.headers.get("Content-Length") or 0)
        params = dict(parse_qsl(self.rfile.read(length).decode("utf-8"), keep_blank_values=True))
        if self.server.validator is not None:
            url = self.server.public_url or f"http://{self.headers.get('Host')}{self.path}"
            signature = self.headers.get("X-Twilio-Signature", "")
            if not self.server.validator.validate(url, params, signature):
                self.server.log(f"rejected a callback with a bad X-Twilio-Signature for {url}")
                return self._send(403, {"message": "invalid signature"})
        self.server._record(params)
        answer = self.server.answer()
        self.server.log(
            f"assignment callback: reservation {params.get('ReservationSid')} of task {params.get('TaskSid')} "
            f"for worker {params.get('WorkerSid')} -> {json.dumps(answer)}"
        )
        self._send(200, answer)

    def _send(self, status: int, document: dict) -> None:
        body = json.dumps(document).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):  # the callback line above says enough
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8080, help="port to listen on (default 8080)")
    parser.add_argument("--accept", action="store_true", help='answer {"instruction": "accept"} instead of {}')
    parser.add_argument("--auth-token", default=os.environ.get("TASKYARD_AUTH_TOKEN"),
                        help="verify X-Twilio-Signature with this token (default $TASKYARD_AUTH_TOKEN)")
    parser.add_argument("--public-url", help="the callback URL as configured, if it differs from http://<Host><path>")
    args = parser.parse_args()

    server = AssignmentCallbackServer(args.host, args.port, accept=args.accept, auth_token=args.auth_token,
                                      public_url=args.public_url, log=lambda line: print(line, flush=True))
    checking = "checking X-Twilio-Signature" if server.validator else "not checking signatures"
    print(f"Assignment callback server on {server.url} answering {json.dumps(server.answer())} ({checking})",
          flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
