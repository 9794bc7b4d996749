"""Runs the Slack app over HTTP (`POST /slack/events`, `GET /healthz`) or Socket Mode."""

import logging
import re
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from socketserver import ThreadingMixIn
from typing import Any, Literal
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from slack_bolt import App
from slack_bolt.adapter.socket_mode import SocketModeHandler
from slack_bolt.adapter.wsgi import SlackRequestHandler
from slack_bolt.error import BoltError
from slack_sdk import WebClient
from slack_sdk.errors import SlackClientError
from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler

from slackbot.argo_cli import Runner, run_process
from slackbot.clock import Clock, utc_now
from slackbot.errors import ConfigError
from slackbot.settings import Settings
from slackbot.slack.groups import SlackGroupDirectory
from slackbot.slack.listeners import register
from slackbot.wiring import build_bot
from slackbot.workers import Workers

log = logging.getLogger(__name__)

Mode = Literal["http", "socket"]
# Ack functions only parse and queue, but HTTP threads hold a worker while Bolt waits for them.
ACK_POOL_SIZE = 32


class _SameTokenNotice(logging.Filter):
    """Bolt warns that SLACK_BOT_TOKEN is unused when given a client; ours carries that very token."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "`token` will be unused" not in record.getMessage()


logging.getLogger("slack_bolt.App").addFilter(_SameTokenNotice())


class _ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    # The default backlog of 5 makes a burst's extra connections wait out a 1 s SYN retransmit.
    request_queue_size = 128


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        log.debug("http %s", format % args)


class Runtime:
    """Everything `envbot serve` runs; tests start the same object on port 0."""

    def __init__(
        self,
        settings: Settings,
        mode: Mode,
        port: int | None = None,
        runner: Runner = run_process,
        clock: Clock = utc_now,
    ) -> None:
        settings.require(mode)
        self.settings = settings
        self.mode = mode
        self.client = _web_client(settings)
        self.groups = SlackGroupDirectory(self.client, settings.group_cache_seconds)
        self.workers = Workers(settings.argo_concurrency)
        self.bot = build_bot(settings, runner=runner, groups=self.groups, clock=clock)
        self.app = _bolt_app(settings, self.client, mode)
        register(self.app, self.bot, self.workers, self.groups)
        self.socket: SocketModeHandler | None = None
        if mode == "socket":
            self.socket = SocketModeHandler(
                self.app, app_token=_secret(settings.slack_app_token), web_client=self.client, concurrency=16
            )
        slack_handler = SlackRequestHandler(self.app) if mode == "http" else None
        self._stopping = threading.Event()
        self._stopped = False
        wsgi = _wsgi(slack_handler, self.healthy)
        listen = (settings.host, settings.port if port is None else port)
        try:
            self.server = make_server(*listen, wsgi, server_class=_ThreadingWSGIServer, handler_class=_QuietHandler)
        except OSError as error:
            raise ConfigError(
                f"cannot listen on {listen[0]}:{listen[1]} ({error.strerror}); set PORT or --port"
            ) from None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return self.server.server_address[1]

    def healthy(self) -> bool:
        if self._stopping.is_set():
            return False
        return self.socket is None or self.socket.client.is_connected()

    def start(self) -> None:
        if self.socket is not None:
            self.socket.connect()
        self._thread = threading.Thread(target=self.server.serve_forever, name="envbot-http", daemon=True)
        self._thread.start()
        log.info("envbot serving (%s mode, health on port %s)", self.mode, self.port)

    def stop(self) -> None:
        """Stop taking commands, then let queued work finish and deliver its follow-ups."""
        if self._stopped:
            return
        self._stopped = True
        self._stopping.set()
        if self.socket is not None:
            self.socket.close()
        if self._thread is not None:  # shutdown() waits for serve_forever, so only if it ran
            self.server.shutdown()
        self.server.server_close()
        self.workers.shutdown()
        log.info("envbot stopped")

    def request_stop(self) -> None:
        """Safe from a signal handler: `wait` returns and the caller runs `stop`."""
        self._stopping.set()

    def wait(self) -> None:
        self._stopping.wait()


def _secret(value: Any) -> str:
    return value.get_secret_value() if value is not None else ""


def _web_client(settings: Settings) -> WebClient:
    client = WebClient(token=_secret(settings.slack_bot_token), base_url=str(settings.slack_api_url))
    client.retry_handlers.append(RateLimitErrorRetryHandler(max_retry_count=2))
    return client


def _bolt_app(settings: Settings, client: WebClient, mode: Mode) -> App:
    try:
        return App(
            client=client,
            signing_secret=_secret(settings.slack_signing_secret) if mode == "http" else "unused-in-socket-mode",
            request_verification_enabled=mode == "http",
            listener_executor=ThreadPoolExecutor(max_workers=ACK_POOL_SIZE, thread_name_prefix="envbot-ack"),
        )
    except BoltError as error:  # App() checks the token with auth.test
        code = re.search(r"'error': '(\w+)'", str(error))
        raise ConfigError(
            f"Slack did not accept SLACK_BOT_TOKEN ({code.group(1) if code else 'auth.test failed'})."
        ) from None
    except (SlackClientError, OSError) as error:
        raise ConfigError(
            f"Could not reach Slack at SLACK_API_URL={settings.slack_api_url} to check SLACK_BOT_TOKEN "
            f"({type(error).__name__})."
        ) from None


def _wsgi(slack: SlackRequestHandler | None, healthy: Callable[[], bool]) -> Callable[..., Iterable[bytes]]:
    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        # Bolt honours x-slack-bolt-* headers (meant for its own FaaS self-calls); they are not signed.
        for key in [k for k in environ if k.startswith("HTTP_X_SLACK_BOLT_")]:
            del environ[key]
        if not environ.get("HTTP_X_SLACK_REQUEST_TIMESTAMP", "0").isdigit():
            start_response("401 Unauthorized", [("Content-Type", "application/json")])
            return [b'{"error": "invalid request"}']  # Bolt would answer 500 for a non-numeric timestamp
        if environ.get("PATH_INFO") == "/healthz":
            ok = healthy()
            start_response("200 OK" if ok else "503 Service Unavailable", [("Content-Type", "text/plain")])
            return [b"ok\n" if ok else b"unavailable\n"]
        if slack is not None:
            return slack(environ, start_response)
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"Not Found\n"]

    return app
