"""Posts and updates environments' channel messages with chat.postMessage / chat.update / chat.delete."""

import logging
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError

from slackbot.announce import AnnounceFailed, MessageRef
from slackbot.replies import Reply
from slackbot.slack.api import error_code
from slackbot.slack.blocks import message

log = logging.getLogger(__name__)


class SlackAnnouncer:
    def __init__(self, client: WebClient) -> None:
        self._client = client

    def post(self, channel: str, reply: Reply, thread: MessageRef | None = None) -> MessageRef:
        body = _body(reply)
        try:
            answer = self._client.chat_postMessage(
                channel=channel, text=body["text"], blocks=body["blocks"], unfurl_links=False,
                thread_ts=thread.ts if thread else None,
            )  # fmt: skip
        except SlackApiError as error:
            raise AnnounceFailed(error_code(error)) from None
        except (SlackClientError, OSError) as error:
            log.warning("chat.postMessage unreachable: %s", type(error).__name__)
            raise AnnounceFailed("unreachable") from None
        try:
            return MessageRef(channel=str(answer.get("channel") or channel), ts=str(answer.get("ts")))
        except ValueError:
            raise AnnounceFailed("unreadable_answer") from None

    def update(self, ref: MessageRef, reply: Reply) -> None:
        body = _body(reply)
        try:
            self._client.chat_update(channel=ref.channel, ts=ref.ts, text=body["text"], blocks=body["blocks"])
        except SlackApiError as error:
            raise AnnounceFailed(error_code(error), _retry_after(error)) from None
        except (SlackClientError, OSError) as error:
            log.warning("chat.update unreachable: %s", type(error).__name__)
            raise AnnounceFailed("unreachable") from None

    def delete(self, ref: MessageRef) -> None:
        try:
            self._client.chat_delete(channel=ref.channel, ts=ref.ts)
        except (SlackClientError, OSError) as error:
            log.warning("chat.delete of %s failed: %s", ref.ts, type(error).__name__)


def _retry_after(error: SlackApiError) -> float | None:
    """Slack's Retry-After on a 429 (the client already waited out a short one once)."""
    headers = getattr(error.response, "headers", None) or {}
    for name, value in headers.items():
        text = value[0] if isinstance(value, list) and value else value
        if name.lower() == "retry-after" and isinstance(text, str) and text.strip().isdigit():
            return float(text.strip())
    return None


def _body(reply: Reply) -> dict[str, Any]:
    body = message(reply)
    body.pop("response_type", None)
    return body
