"""A webhook receiver on loopback that verifies every signature as a real one would (shared by
the channel's tests and the end-to-end effect test)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from alerts.webhook import DELIVERY_HEADER, DELIVERY_SIGNATURE_HEADER, verify


@dataclass
class Receiver:
    """What the server answers (in turn; the last one repeats) and what it saw."""

    url: str
    statuses: list[int] = field(default_factory=lambda: [200])
    bodies: list[bytes] = field(default_factory=list)
    verified: list[bool] = field(default_factory=list)  # as a receiver without delivery ids
    accepted: list[bool] = field(default_factory=list)  # delivery id checked against seen
    headers: list[dict[str, str]] = field(default_factory=list)
    seen: set[str] = field(default_factory=set)


@contextmanager
def webhook_receiver(secret: str) -> Iterator[Receiver]:
    """A threaded HTTP server checking signatures with ``secret``; 401 when one is wrong."""
    state = Receiver(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            timestamp = self.headers.get("X-Tidewatch-Timestamp", "")
            legacy = verify(secret, timestamp, body, self.headers.get("X-Tidewatch-Signature", ""))
            ok = verify(
                secret,
                timestamp,
                body,
                self.headers.get(DELIVERY_SIGNATURE_HEADER, ""),
                delivery=self.headers.get(DELIVERY_HEADER),
                seen=state.seen,
            )
            state.bodies.append(body)
            state.verified.append(legacy)
            state.accepted.append(ok)
            state.headers.append(dict(self.headers))
            status = state.statuses.pop(0) if len(state.statuses) > 1 else state.statuses[0]
            self.send_response(status if ok else 401)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:  # keep test output quiet
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/retrain"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
