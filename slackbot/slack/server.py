"""The embedded HTTP server: waitress, with a total read deadline and per-client connection limits.

See docs/adr/0003-http-server.md and docs/adr/0012-slow-clients.md. Bounded by settings, not by
clients: a fixed number of request threads; a connection limit; bodies over the limit refused with
413 before they are read; and, because waitress's own timeout counts only silence (a client sending
a byte every few seconds was never closed), two additions here:

- **a total deadline for reading a request**, headers and body: from the moment a connection is
  accepted (or, on a kept-alive connection, from a request's first byte), the whole request must
  have arrived within `read_deadline` seconds, or the connection is closed;
- **a per-client-address connection limit**: connections past `per_client` from one address are
  closed as soon as they are accepted, so a few hosts can't take the connection limit from everyone.

Reading is done by waitress's single I/O thread (no thread per connection); only complete requests
reach the request threads, so slow clients cost file descriptors, never threads.
"""

import logging
import resource
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from waitress.adjustments import Adjustments
from waitress.channel import HTTPChannel
from waitress.server import TcpWSGIServer
from waitress.task import ThreadedTaskDispatcher

from slackbot.errors import ConfigError
from slackbot.settings import Settings

log = logging.getLogger(__name__)

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
MAX_BODY = 128 * 1024  # Slack's bodies are a few KiB; interactive payloads carry the message, still small
OPS_CONNECTION_LIMIT = 100
OPS_CONNECTIONS_PER_CLIENT = 8
FDS_KEPT_FREE = 128  # for argo's pipes, Slack calls, logs and the ops port
REFUSAL_LOG_INTERVAL = 10.0  # seconds between log lines about refused connections (a flood is one line)


class _Channel(HTTPChannel):
    """A connection that knows since when it has been reading the request it has not finished."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.reading_since: float | None = self.creation_time  # the first request is due from the start

    def received(self, data: bytes) -> bool:
        if self.request is None and self.reading_since is None:
            self.reading_since = time.time()
        result: bool = super().received(data)
        if self.request is None:  # every byte so far made complete requests
            self.reading_since = None
        return result


class _GuardedServer(TcpWSGIServer):
    channel_class = _Channel

    def __init__(self, *args: Any, read_deadline: float, per_client: int, **kwargs: Any) -> None:
        self.read_deadline = read_deadline
        self.per_client = per_client
        self.refused = 0  # connections closed at accept for their address's limit (tests and bench read it)
        self.timed_out = 0  # connections closed for missing the read deadline
        self._last_refusal_log = 0.0
        super().__init__(*args, **kwargs)

    def handle_accept(self) -> None:
        try:
            pair = self.accept()
            if pair is None:
                return
            conn, addr = pair
            self.set_socket_options(conn)
        except OSError:
            return  # the client went away before it was accepted
        client = addr[0] if isinstance(addr, tuple) else str(addr)
        held = sum(1 for channel in self._channels() if _client(channel) == client)
        if held >= self.per_client:
            conn.close()
            self.refused += 1
            self._log_refusal(client)
            return
        self.channel_class(self, conn, addr, self.adj, map=vars(self)["_map"])

    def _channels(self) -> list[Any]:
        channels: dict[int, Any] = vars(self)["active_channels"]  # the stubs mistype it
        return list(channels.values())

    def maintenance(self, now: Any) -> None:
        super().maintenance(now)  # closes connections idle for longer than channel_timeout
        cutoff = now - self.read_deadline
        for channel in self._channels():
            since = getattr(channel, "reading_since", None)
            if since is not None and since < cutoff and not channel.requests and not channel.will_close:
                channel.will_close = True  # the I/O loop closes it
                self.timed_out += 1

    def _log_refusal(self, client: str) -> None:
        now = time.monotonic()
        if now - self._last_refusal_log >= REFUSAL_LOG_INTERVAL:
            self._last_refusal_log = now
            log.warning(
                "refusing connections from %s: it already holds %d (the per-client limit); %d refused so far",
                client, self.per_client, self.refused,
            )  # fmt: skip


def _client(channel: Any) -> str | None:
    addr = getattr(channel, "addr", None)
    return addr[0] if isinstance(addr, tuple) else None


class HttpServer:
    def __init__(
        self,
        app: WSGIApp,
        host: str,
        port: int,
        threads: int,
        connection_limit: int,
        idle_timeout: int,
        read_deadline: float = 5.0,
        per_client: int = 64,
    ) -> None:
        try:
            adj = Adjustments(
                host=host,
                port=port,
                threads=threads,
                connection_limit=connection_limit,
                channel_timeout=idle_timeout,  # seconds a kept-alive connection may sit between requests
                cleanup_interval=1,  # how often deadlines and idle connections are checked
                max_request_body_size=MAX_BODY + 1,  # waitress refuses at >= this value
                max_request_header_size=16 * 1024,
                backlog=128,
                asyncore_use_poll=True,  # select() can't watch fds above 1024
                expose_tracebacks=False,
                clear_untrusted_proxy_headers=True,
                ident="envbot",
            )
            dispatcher = ThreadedTaskDispatcher()
            dispatcher.set_thread_count(adj.threads)
            self._app = app
            self._server: Any = _GuardedServer(
                self._dispatch, {}, True, None, dispatcher=dispatcher, adj=adj, sockinfo=adj.listen[0],
                read_deadline=read_deadline, per_client=per_client,
            )  # fmt: skip
        except OSError as error:
            raise ConfigError(
                f"cannot listen on {host}:{port} ({error.strerror}); set PORT (or --port) or HOST"
            ) from None
        self._thread: threading.Thread | None = None
        self._stop_lock = threading.Lock()
        self._stopped = False

    @property
    def port(self) -> int:
        return int(self._server.effective_port)

    def serve(self, app: WSGIApp) -> None:
        """From now on, requests go to `app` (the runtime, once built)."""
        self._app = app

    def _dispatch(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        return self._app(environ, start_response)

    @property
    def refused(self) -> int:
        return int(self._server.refused)

    @property
    def timed_out(self) -> int:
        return int(self._server.timed_out)

    def start(self) -> None:
        if self._thread is not None:
            return  # `envbot serve` started it before the runtime was built
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
            for channel in list(server._map.values()):
                channel.close()

        woken = False
        if self._thread is not None and self._thread.is_alive():
            try:  # closing is done on the server's own I/O thread, which the trigger wakes
                server.trigger.pull_trigger(close_everything)
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


def _connection_limit(wanted: int) -> int:
    """HTTP_CONNECTION_LIMIT, lowered to what the open-files limit allows (accept() would fail past it)."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or wanted <= soft - FDS_KEPT_FREE:
        return wanted
    allowed = max(10, soft - FDS_KEPT_FREE)
    log.warning("HTTP_CONNECTION_LIMIT=%d is above what the open-files limit (%d) allows; using %d",
                wanted, soft, allowed)  # fmt: skip
    return allowed


def listeners(settings: Settings, port: int | None = None) -> tuple[HttpServer, HttpServer | None]:
    """The Slack-facing listener and, with OPS_PORT, the probes' own. They answer "starting" until the
    runtime hands them its applications (`serve`), so the port opens before anything slow happens."""
    server = HttpServer(
        starting, settings.host, settings.port if port is None else port, settings.http_threads,
        _connection_limit(settings.http_connection_limit), settings.http_idle_timeout,
        read_deadline=settings.http_read_deadline, per_client=settings.http_connections_per_client,
    )  # fmt: skip
    ops = None
    if settings.ops_port is not None:
        # Probes and scrapes: a few short connections from the kubelet and Prometheus.
        ops = HttpServer(
            starting, settings.host, settings.ops_port, threads=2, connection_limit=OPS_CONNECTION_LIMIT,
            idle_timeout=settings.http_idle_timeout, read_deadline=settings.http_read_deadline,
            per_client=OPS_CONNECTIONS_PER_CLIENT,
        )  # fmt: skip
    return server, ops


def starting(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    """Before the runtime is built: alive, not ready, nothing else."""
    alive = environ.get("PATH_INFO") == "/healthz"
    start_response("200 OK" if alive else "503 Service Unavailable", [("Content-Type", "text/plain; charset=utf-8")])
    return [b"starting\n"]
