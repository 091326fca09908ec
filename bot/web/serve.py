"""Serving the desk over HTTP with waitress (a production WSGI server, pure Python)."""

from __future__ import annotations

import threading

from flask import Flask
from waitress import wasyncore
from waitress.server import create_server


class DeskServer:
    """Serves the desk; port 0 picks a free port (see `.url`)."""

    def __init__(self, app: Flask, host: str = "127.0.0.1", port: int = 8080, threads: int = 4):
        # Forwarded headers reach the app, which believes them only from the configured proxies
        # (bot.web.auth); waitress's own proxy trust takes a single address and would rewrite
        # the peer address the app checks.
        self._server = create_server(
            app,
            host=host,
            port=port,
            threads=threads,
            ident="clerk",
            clear_untrusted_proxy_headers=False,
        )
        self._thread: threading.Thread | None = None
        self._stopping = False

    @property
    def port(self) -> int:
        return int(self._server.effective_port)

    @property
    def url(self) -> str:
        host = str(self._server.effective_host)
        return f"http://{host}:{self.port}"

    def serve_forever(self) -> None:
        self._server.run()

    def start(self) -> DeskServer:
        """Serve in a background thread (tests)."""
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        try:
            self._server.run()
        except (OSError, ValueError):
            if not self._stopping:  # closing the socket under the loop ends it this way
                raise

    def stop(self) -> None:
        self._stopping = True
        self._server.task_dispatcher.shutdown()  # let requests in hand finish first
        wasyncore.close_all(self._server._map)  # the listener and any open connections
        if self._thread:
            self._thread.join(timeout=5)
