"""Small HTTP servers in background threads: /metrics (Prometheus text format), /healthz (haproxy's check)."""

from __future__ import annotations

import http
import logging
import sys
import threading
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from fedmsg_gateway.settings import listen_address

log = logging.getLogger(__name__)

_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_TEXT = "text/plain; charset=utf-8"
# serve_forever() notices shutdown() only between polls: keep it short so that exit stays under 2 s.
_POLL_INTERVAL = 0.1

#: What a route answers: status, Content-Type, body.
Answer = tuple[http.HTTPStatus, str, bytes]


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: tuple[str, int]) -> None:
        # A client that hung up before its answer (a check that gave up while the process was frozen or
        # busy) is the client's business: socketserver would print a traceback into the journal.
        if isinstance(sys.exc_info()[1], ConnectionError):
            log.debug("%s:%d hung up before its answer", *client_address)
            return
        super().handle_error(request, client_address)


class HttpServer:
    """An HTTP server bound at construction (so a port in use fails before READY=1), GET on `routes`.

    `address` is "HOST:PORT" or "*:PORT" (every IPv4 address, as libzmq binds tcp://*:PORT).
    """

    def __init__(self, address: str, routes: Mapping[str, Callable[[], Answer]], name: str) -> None:
        host, port = listen_address(address)

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                route = routes.get(self.path)
                if route is None:
                    self.send_error(404)
                    return
                status, content_type, body = route()
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                # One line per scrape or check would flood the journal; keep them for debugging only.
                log.debug("%s " + format, self.address_string(), *args)

        self._server = _Server((host or "0.0.0.0", port), Handler)  # noqa: S104  ("*:PORT")
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(_POLL_INTERVAL,), name=name, daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        if self._thread.is_alive():
            self._server.shutdown()
        self._server.server_close()


class Exporter(HttpServer):
    """/metrics: `render()`'s Prometheus text."""

    def __init__(self, address: str, render: Callable[[], str]) -> None:
        super().__init__(
            address,
            {"/metrics": lambda: (http.HTTPStatus.OK, _CONTENT_TYPE, render().encode())},
            "metrics-http",
        )


def health_server(address: str, problem: Callable[[], str | None]) -> HttpServer:
    """/healthz: 200 "ok" while `problem()` is None, else 503 with its one-line reason."""

    def answer() -> Answer:
        reason = problem()
        if reason is None:
            return http.HTTPStatus.OK, _TEXT, b"ok\n"
        return http.HTTPStatus.SERVICE_UNAVAILABLE, _TEXT, f"{reason}\n".encode()

    return HttpServer(address, {"/healthz": answer}, "health-http")
