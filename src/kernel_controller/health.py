"""``/healthz`` and ``/readyz`` on the probe address (plain HTTP, one daemon thread).

``/healthz`` is 200 while every check passes (threads alive, no reconcile stalled) and 500
with the failing checks listed otherwise: the kubelet restarts a controller that is wedged.
``/readyz`` is 200 once the caches have synced. Checks run on the server's request thread and
must be cheap and thread-safe.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

log = logging.getLogger(__name__)

Check = Callable[[], str | None]
"""Returns None when healthy, else a short reason."""


class ProbeServer:
    """Serves the named check groups: ``{"/healthz": {...}, "/readyz": {...}}``."""

    def __init__(self, *, host: str, port: int, groups: Mapping[str, Mapping[str, Check]]) -> None:
        groups = {path: dict(checks) for path, checks in groups.items()}

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                checks = groups.get(self.path.split("?")[0])
                if checks is None:
                    self._reply(HTTPStatus.NOT_FOUND, "not found\n")
                    return
                failures = []
                for name, check in checks.items():
                    try:
                        reason = check()
                    except Exception as err:
                        reason = f"check raised {type(err).__name__}"
                    if reason is not None:
                        failures.append(f"[-]{name} failed: {reason}")
                if failures:
                    self._reply(HTTPStatus.INTERNAL_SERVER_ERROR, "\n".join(failures) + "\n")
                else:
                    self._reply(HTTPStatus.OK, "ok\n")

            def _reply(self, status: HTTPStatus, body: str) -> None:
                data = body.encode()
                self.send_response(status)
                self.send_header("Content-Type", "text/plain; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: object) -> None:
                """Probes are frequent: no access log."""

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="probe-server", daemon=True
        )

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)
