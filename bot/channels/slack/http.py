"""HTTP mode: Bolt behind a small threaded WSGI server answering POST /slack/events.

Nothing is read before it is bounded: a body over MAX_BODY_BYTES (or of unknown length) is
refused before a byte of it is read, and a client that stalls is dropped after SOCKET_TIMEOUT
seconds, so a stranger cannot pin memory or threads before the signature is checked.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from slack_bolt import App
from slack_bolt.adapter.wsgi import SlackRequestHandler

log = logging.getLogger(__name__)
EVENTS_PATH = "/slack/events"
MAX_BODY_BYTES = 1_000_000  # Slack's largest payloads (view submissions) are far smaller
SOCKET_TIMEOUT = 10.0


class _ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    # socketserver's default backlog is 5: a burst of requests (Slack's retries after a restart)
    # overflowed it, and a dropped connection attempt costs the sender a second before it retries
    request_queue_size = 128


class _QuietHandler(WSGIRequestHandler):
    timeout = SOCKET_TIMEOUT  # socketserver applies it to every connection

    def log_message(self, format, *args):  # noqa: A002 - route access logs to logging
        log.debug("%s %s", self.address_string(), format % args)


class SlackHttpServer:
    """Serves a Bolt app; port 0 picks a free port (see `.port`)."""

    def __init__(self, app: App, host: str = "127.0.0.1", port: int = 3000) -> None:
        handler = _bounded(SlackRequestHandler(app, path=EVENTS_PATH))
        self._server = make_server(
            host, port, handler, server_class=_ThreadingWSGIServer, handler_class=_QuietHandler
        )
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        host = str(self._server.server_address[0])
        return f"http://{host}:{self.port}{EVENTS_PATH}"

    def serve_forever(self) -> None:
        self._server.serve_forever()

    def start(self, poll_interval: float = 0.05) -> SlackHttpServer:
        """Serve in a background thread (tests, benchmark)."""
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(poll_interval,), daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread:
            self._thread.join(timeout=5)


def _bounded(app: Callable) -> Callable:
    """The WSGI app behind a length check: 411 without a length, 413 when too long."""

    def bounded(environ: dict, start_response: Callable) -> Iterable[bytes]:
        raw = environ.get("CONTENT_LENGTH") or ""
        if environ.get("REQUEST_METHOD") == "POST":
            if not raw.isdigit():
                start_response("411 Length Required", [("Content-Type", "text/plain")])
                return [b"Content-Length required\n"]
            if int(raw) > MAX_BODY_BYTES:
                start_response("413 Payload Too Large", [("Content-Type", "text/plain")])
                return [b"request too large\n"]
        return app(environ, start_response)

    return bounded
