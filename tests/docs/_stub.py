"""A Stripe-like `/v1/charges` stub on 127.0.0.1, served from a thread.

A thread (not the test's event loop) so that synchronous clients such as Starlette's
`TestClient` and subprocesses can use it as well as async tests.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, NamedTuple
from urllib.parse import parse_qs


class StubRequest(NamedTuple):
    method: str
    path: str
    headers: dict[str, str]
    form: dict[str, str]


class StubVendor:
    """Charges succeed (`source=tok_chargeDeclined` gets a 402), a repeated `Idempotency-Key`
    gets the first answer, and `fail_next` lists statuses to answer first (503, say)."""

    def __init__(self) -> None:
        self.requests: list[StubRequest] = []
        self.fail_next: list[int] = []
        self._seen: dict[str, tuple[int, bytes]] = {}
        self._charges = 0
        self._lock = threading.Lock()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length).decode()
                form = {k: v[0] for k, v in parse_qs(raw).items()}
                status, body = stub._answer(
                    StubRequest("POST", self.path, dict(self.headers.items()), form)
                )
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # keep test output clean

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    def _answer(self, request: StubRequest) -> tuple[int, bytes]:
        with self._lock:
            self.requests.append(request)
            if request.path != "/v1/charges":
                return 404, b'{"error": {"type": "invalid_request_error"}}'
            if self.fail_next:
                return self.fail_next.pop(0), b'{"error": {"type": "api_error"}}'
            key = request.headers.get("Idempotency-Key")
            if key is not None and key in self._seen:
                return self._seen[key]
            if request.form.get("source") == "tok_chargeDeclined":
                error = {"error": {"type": "card_error", "code": "card_declined"}}
                answer = (402, json.dumps(error).encode())
            else:
                self._charges += 1
                charge = {
                    "id": f"ch_{self._charges}",
                    "object": "charge",
                    "amount": int(request.form["amount"]),
                    "currency": request.form.get("currency", "usd"),
                    "status": "succeeded",
                }
                answer = (200, json.dumps(charge).encode())
            if key is not None:
                self._seen[key] = answer
            return answer

    @property
    def charge_posts(self) -> list[StubRequest]:
        """The POSTs to /v1/charges that reached the stub."""
        with self._lock:
            return [r for r in self.requests if r.path == "/v1/charges"]

    def __enter__(self) -> StubVendor:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()
