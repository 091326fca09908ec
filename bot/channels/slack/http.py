"""HTTP mode: Bolt behind a small threaded WSGI server answering POST /slack/events."""

from __future__ import annotations

import logging
import threading
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from slack_bolt import App
from slack_bolt.adapter.wsgi import SlackRequestHandler

log = logging.getLogger(__name__)
EVENTS_PATH = "/slack/events"


class _ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - route access logs to logging
        log.debug("%s %s", self.address_string(), format % args)


class SlackHttpServer:
    """Serves a Bolt app; port 0 picks a free port (see `.port`)."""

    def __init__(self, app: App, host: str = "127.0.0.1", port: int = 3000) -> None:
        handler = SlackRequestHandler(app, path=EVENTS_PATH)
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
