"""Socket Mode: slack-sdk's websocket-client based client, bounded, with every envelope acknowledged.

- **Memory.** slack-sdk's built-in client reads 1 KiB at a time and keeps a copy of the message so far
  per read, recursively: one 1 MB envelope took the bot from 50 to 530 MB, a 4 MB one never arrived
  (docs/adr/0012). The websocket-client library reads a frame by its length, so a message costs about
  twice its size. Messages over MAX_MESSAGE are dropped with a log line before they are parsed.
- **Acknowledgements.** Bolt sends none when its result is not 200 (a listener raised, a field had an
  unexpected type), so Slack showed the user a timeout. Here an envelope envbot can't read gets an ack
  anyway (for a slash command, one saying so) and one log line, as over HTTP (slack/payloads.py).
"""

import logging
from time import monotonic, time
from urllib.parse import urlsplit

from slack_bolt import App
from slack_bolt.adapter.socket_mode.base_handler import BaseSocketModeHandler
from slack_bolt.adapter.socket_mode.internals import run_bolt_app, send_response
from slack_sdk import WebClient
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse
from slack_sdk.socket_mode.websocket_client import SocketModeClient

from slackbot.slack.blocks import message
from slackbot.slack.listeners import UNREADABLE
from slackbot.slack.payloads import unreadable

log = logging.getLogger(__name__)

CONNECT_GRACE = 5.0  # seconds after connecting before the session monitor may reconnect
MAX_MESSAGE = 8 * 1024 * 1024  # characters; Slack's envelopes are a few KiB, a big modal's state far below this


class _BoundedClient(SocketModeClient):
    _connected_at = 0.0

    def connect(self) -> None:
        self._connected_at = monotonic()
        super().connect()

    def _monitor_current_session(self) -> None:
        # slack-sdk checks the session the moment connect() returns, before its runner has opened the
        # socket, and so connected twice. A check that soon after connecting waits for the next one.
        if monotonic() - self._connected_at >= CONNECT_GRACE:
            super()._monitor_current_session()  # type: ignore[no-untyped-call]

    def enqueue_message(self, message: str) -> None:
        if len(message) > MAX_MESSAGE:  # never parsed, never queued; Slack retries or shows a timeout
            log.warning("dropped a Socket Mode message of %d characters (the limit is %d)", len(message), MAX_MESSAGE)
            return
        super().enqueue_message(message)


class EnvbotSocketModeHandler(BaseSocketModeHandler):
    client: SocketModeClient

    def __init__(self, app: App, app_token: str, web_client: WebClient, concurrency: int = 10) -> None:
        self.app = app
        self.app_token = app_token
        proxy = urlsplit(web_client.proxy) if web_client.proxy else None
        self.client = _BoundedClient(
            app_token=app_token,
            logger=app.logger,
            web_client=web_client,
            ping_interval=10,
            concurrency=concurrency,
            http_proxy_host=proxy.hostname if proxy else None,
            http_proxy_port=proxy.port if proxy else None,
        )
        self.client.socket_mode_request_listeners.append(self.handle)  # type: ignore[arg-type]

    def handle(self, client: SocketModeClient, req: SocketModeRequest) -> None:  # type: ignore[override]
        started = time()
        payload = req.payload
        problem = unreadable(payload) if isinstance(payload, dict) else "the payload is not an object"
        if problem is None:
            try:
                response = run_bolt_app(self.app, req)
            except Exception as error:  # Bolt read a field we did not check
                problem = f"Bolt could not read it ({type(error).__name__})"
            else:
                if response.status == 200:
                    send_response(client, req, response, started)
                    return
                problem = f"Bolt answered {response.status}"
        log.warning("acknowledged a Socket Mode envelope envbot can't read (%s; type %s)", problem, req.type)
        body = message(UNREADABLE) if req.type == "slash_commands" else None
        client.send_socket_mode_response(SocketModeResponse(envelope_id=req.envelope_id, payload=body))
