"""Socket Mode: Bolt's handler, with every envelope acknowledged and unreadable ones refused in words.

Bolt sends no acknowledgement at all when its result is not 200 (a listener raised, a field had an
unexpected type), so Slack showed the user a timeout. Here an envelope envbot can't read gets an ack
anyway (for a slash command, one saying so) and one log line, as over HTTP (slack/payloads.py).
"""

import logging
from time import time

from slack_bolt.adapter.socket_mode import SocketModeHandler
from slack_bolt.adapter.socket_mode.internals import run_bolt_app, send_response
from slack_sdk.socket_mode.builtin import SocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse

from slackbot.slack.blocks import message
from slackbot.slack.listeners import UNREADABLE
from slackbot.slack.payloads import unreadable

log = logging.getLogger(__name__)


class EnvbotSocketModeHandler(SocketModeHandler):
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
