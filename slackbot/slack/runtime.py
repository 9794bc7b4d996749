"""Runs the Slack app over HTTP (`POST /slack/events`) or Socket Mode, with probes and metrics in both.

Start-up opens the port first; the WorkflowTemplates are verified afterwards, and /readyz says ready
only once they are (then the view of environments starts refreshing). Shutdown drains: on the first
signal /readyz fails at once, Socket Mode hands its connection back (Slack sends to the other
replicas), HTTP keeps serving SHUTDOWN_DRAIN seconds while the Service stops routing here, then the
bot stops taking commands and gives accepted ones SHUTDOWN_GRACE seconds; what is left is told that
nothing was submitted, and running `argo` calls are killed.
"""

import logging
import re
import shutil
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Literal

from slack_bolt import App
from slack_bolt.error import BoltError
from slack_sdk import WebClient
from slack_sdk.errors import SlackClientError

from slackbot.argo_cli import CHILDREN, Runner
from slackbot.audit import AuditLog, check_appendable
from slackbot.clock import Clock, utc_now
from slackbot.errors import ConfigError, OrchestratorError
from slackbot.scheduler import Scheduler
from slackbot.settings import Settings
from slackbot.slack.announce import SlackAnnouncer
from slackbot.slack.api import web_client
from slackbot.slack.channels import SlackChannelDirectory
from slackbot.slack.delivery import Responder
from slackbot.slack.groups import SlackGroupDirectory
from slackbot.slack.http import SlackHttp
from slackbot.slack.listeners import Listeners
from slackbot.slack.server import HttpServer, listeners
from slackbot.slack.socket_mode import EnvbotSocketModeHandler
from slackbot.slack.surfaces import Surfaces
from slackbot.wiring import build_bot

log = logging.getLogger(__name__)

Mode = Literal["http", "socket"]
# Ack functions only parse and queue; HTTP threads wait for them, so this bounds nothing slow.
ACK_POOL_SIZE = 32
HURRY_BUDGET = 1.0  # seconds a second signal leaves for telling running commands' users
VERIFY_RETRY = 5.0  # seconds between attempts to read the WorkflowTemplates at start-up


class _SameTokenNotice(logging.Filter):
    """Bolt warns that SLACK_BOT_TOKEN is unused when given a client; ours carries that very token."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "`token` will be unused" not in record.getMessage()


logging.getLogger("slack_bolt.App").addFilter(_SameTokenNotice())


class Runtime:
    """Everything `envbot serve` runs; tests start the same object on port 0."""

    def __init__(
        self,
        settings: Settings,
        mode: Mode,
        port: int | None = None,
        runner: Runner | None = None,
        clock: Clock = utc_now,
        audit: AuditLog | None = None,
        servers: tuple[HttpServer, HttpServer | None] | None = None,
    ) -> None:
        """`servers`: listeners already opened (and answering "starting") by `envbot serve`."""
        settings.require(mode)
        if settings.envbot_audit_file is not None:
            check_appendable(settings.envbot_audit_file)
        self.settings = settings
        self.mode = mode
        self.client = web_client(settings)
        self.groups = SlackGroupDirectory(self.client, settings.group_cache_seconds)
        self.scheduler = Scheduler(settings.argo_concurrency)
        self.channels = SlackChannelDirectory(self.client, settings.group_cache_seconds)
        announcer = SlackAnnouncer(self.client) if settings.slack_threads else None
        self.bot = build_bot(
            settings, runner=runner, groups=self.groups, clock=clock, audit=audit, channels=self.channels,
            announcer=announcer,
        )  # fmt: skip
        self.responder = Responder(str(settings.slack_response_url_prefix), settings.slack_timeout)
        self.app = _bolt_app(settings, self.client, mode)
        surfaces = Surfaces(self.bot, self.scheduler, self.client)
        # Bolt tries listeners in the order they were registered (their matchers are disjoint): `/env`,
        # the hot path, comes first, so a command is not first matched against the form and the Home tab.
        Listeners(
            self.bot, self.scheduler, self.responder, self.groups, time_acks=mode == "socket", surfaces=surfaces
        ).register(self.app)
        surfaces.register(self.app)
        self.socket: EnvbotSocketModeHandler | None = None
        if mode == "socket":
            self.socket = EnvbotSocketModeHandler(
                self.app, app_token=settings.secret("slack_app_token"), web_client=self.client, concurrency=16
            )
        self._stopping = threading.Event()
        self._stopped = False
        self.exit_code = 0
        secret = settings.secret("slack_signing_secret") if mode == "http" else ""
        # With OPS_PORT set, the Slack-facing port serves /slack/events and nothing else.
        wsgi = SlackHttp(
            self.app if mode == "http" else None, secret, self.live, self.ready, probes=settings.ops_port is None
        )
        self.server, self.ops = servers or listeners(settings, port)
        self.server.serve(wsgi)
        if self.ops is not None:
            self.ops.serve(SlackHttp(None, "", self.live, self.ready))

    @property
    def port(self) -> int:
        return self.server.port

    def live(self) -> tuple[bool, str]:
        """Liveness: the process serves requests. Slack or Argo outages never fail it."""
        return True, "ok"

    def ready(self) -> tuple[bool, str]:
        """Readiness: what serving needs right now."""
        if self._stopping.is_set() or not self.scheduler.accepting:
            return False, "stopping"
        if self.socket is not None and not self.socket.client.is_connected():
            return False, "Socket Mode is not connected to Slack"
        if shutil.which(self.settings.argo_bin) is None:  # the path is for operators: `envbot check` shows it
            return False, "argo is not installed where envbot looks for it (run `envbot check`)"
        if not self.bot.services.retention.verified:
            return False, "the WorkflowTemplates have not been verified yet"
        return True, "ok"

    def verify_records(self) -> None:
        """Start-up check that workflow records outlive environments (see retention.py)."""
        try:
            problem = self.bot.services.retention.problem()
        except OrchestratorError as error:
            log.warning("could not check workflow retention at start-up (creates wait for it): %s", error.user_message)
            return
        if problem is not None:
            raise ConfigError(problem)

    def warm_up(self) -> None:
        """After start: verify the WorkflowTemplates (then ready), then keep the view of environments fresh.
        A definite mismatch stops the bot (exit 2); a failed read is retried, unready meanwhile."""
        threading.Thread(target=self._warm_up, name="envbot-warm-up", daemon=True).start()

    def _warm_up(self) -> None:
        retention = self.bot.services.retention
        while not self._stopping.is_set():
            try:
                problem = retention.problem()
            except OrchestratorError as error:
                log.warning("could not verify the WorkflowTemplates (not ready; retrying): %s", error.user_message)
                self._stopping.wait(VERIFY_RETRY)
                continue
            if problem is not None:
                log.error("envbot is misconfigured and stops: %s", problem)
                self.exit_code = 2
                self.request_stop()
                return
            log.info("WorkflowTemplates verified; ready")
            if self.bot.roots is not None:
                self.bot.roots.start()
            self.bot.services.view.start()
            return

    def start(self) -> None:
        if self.socket is not None:
            self.socket.client.connect()  # what SocketModeHandler.connect() does, through the typed client
        self.server.start()
        if self.ops is not None:
            self.ops.start()
        ops = f", and on {self.ops.port}" if self.ops is not None else ""
        log.info("envbot serving (%s mode, probes and metrics on port %s%s)", self.mode, self.port, ops)

    def stop(self) -> None:
        """Stop taking commands; queued ones are told nothing was submitted; running ones get the grace."""
        if self._stopped:
            return
        self._stopped = True
        self._stopping.set()
        if self.socket is not None:
            self.socket.client.close()
        elif self.settings.shutdown_drain > 0:
            log.info("draining: not ready, still serving for %g s", self.settings.shutdown_drain)
            threading.Event().wait(self.settings.shutdown_drain)
        self.bot.services.view.stop()
        if self.bot.roots is not None:
            self.bot.roots.stop()
        running = self.scheduler.stop(self.settings.shutdown_grace)
        if running:
            log.warning("%d command(s) still running after SHUTDOWN_GRACE; stopping their argo calls", running)
            CHILDREN.kill_all()
            self.scheduler.wait_idle(5.0)
        self.server.stop()
        if self.ops is not None:
            self.ops.stop()
        self.responder.close()
        log.info("envbot stopped")

    def hurry(self, budget: float = HURRY_BUDGET) -> None:
        """A second signal: no more grace, but every command taken is told what happened (about `budget` s)."""
        self._stopping.set()
        left = self.scheduler.hurry(budget, CHILDREN.kill_all)
        log.warning("stopped at once on a second signal%s", f"; {left} command(s) were cut short" if left else "")

    def request_stop(self) -> None:
        """Safe from a signal handler: `wait` returns and the caller runs `stop`."""
        self._stopping.set()

    def wait(self) -> None:
        self._stopping.wait()


def _bolt_app(settings: Settings, client: WebClient, mode: Mode) -> App:
    try:
        return App(
            client=client,
            signing_secret=settings.secret("slack_signing_secret") if mode == "http" else "unused-in-socket-mode",
            request_verification_enabled=mode == "http",
            # The ack function runs on the request's own thread and its answer goes straight back: it only
            # parses and queues (EnvBot.receive), so Bolt's thread hand-off and 10 ms ack poll are pure cost.
            process_before_response=True,
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
