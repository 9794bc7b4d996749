"""The embedded HTTP server: waitress (see docs/adr/0003-http-server.md for why).

Bounded by settings, not by clients: a fixed number of request threads, a connection limit past
which it stops accepting, idle connections closed after a few seconds, and bodies over the limit
refused with 413 before they are read.
"""

import threading
from collections.abc import Callable, Iterable
from typing import Any

from waitress.server import create_server

from slackbot.errors import ConfigError
from slackbot.slack.http import MAX_BODY

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class HttpServer:
    def __init__(
        self, app: WSGIApp, host: str, port: int, threads: int, connection_limit: int, idle_timeout: int
    ) -> None:
        try:
            self._server = create_server(
                app,
                host=host,
                port=port,
                threads=threads,
                connection_limit=connection_limit,
                channel_timeout=idle_timeout,  # seconds a connection may sit without a request
                cleanup_interval=max(1, idle_timeout // 5),
                max_request_body_size=MAX_BODY + 1,  # waitress refuses at >= this value
                max_request_header_size=16 * 1024,
                backlog=128,
                asyncore_use_poll=True,  # select() can't watch fds above 1024
                expose_tracebacks=False,
                clear_untrusted_proxy_headers=True,
                ident="envbot",
            )
        except OSError as error:
            raise ConfigError(
                f"cannot listen on {host}:{port} ({error.strerror}); set PORT (or --port) or HOST"
            ) from None
        self._thread: threading.Thread | None = None
        self._stop_lock = threading.Lock()
        self._stopped = False

    @property
    def port(self) -> int:
        return int(self._server.effective_port)  # type: ignore[union-attr]

    def start(self) -> None:
        self._thread = threading.Thread(target=self._server.run, name="envbot-http", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop accepting, close every connection, and end the request threads (once)."""
        with self._stop_lock:
            if self._stopped:
                return
            self._stopped = True
        server = self._server

        def close_everything() -> None:
            for channel in list(server._map.values()):  # type: ignore[union-attr]
                channel.close()

        woken = False
        if self._thread is not None and self._thread.is_alive():
            try:  # closing is done on the server's own I/O thread, which the trigger wakes
                server.trigger.pull_trigger(close_everything)  # type: ignore[union-attr]
                woken = True
            except OSError:
                # The wake-up pipe is already closed (its close is guarded, so closing the remaining
                # channels from here cannot close a recycled file descriptor).
                pass
        if not woken:
            close_everything()
        if self._thread is not None:
            self._thread.join(timeout)
        server.task_dispatcher.shutdown(timeout=int(timeout))
