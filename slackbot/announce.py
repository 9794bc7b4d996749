"""The port for an environment's channel message (docs/adr/0009): one message per environment, posted
when it is requested, whose ts the execution plane threads its notices under and updates in place.

The core decides what the message says; a transport (slackbot/slack/announce.py) posts it.
"""

from typing import Protocol

from pydantic import BaseModel, ConfigDict

from slackbot.errors import EnvbotError
from slackbot.names import ChannelId, MessageTs
from slackbot.replies import Reply

# Slack's answers that mean "the bot can't post in this conversation" (not a passing outage).
NOT_A_MEMBER = frozenset({"not_in_channel", "channel_not_found", "is_archived", "restricted_action"})


class MessageRef(BaseModel):
    """Where a message is: its channel and its ts."""

    model_config = ConfigDict(frozen=True)
    channel: ChannelId
    ts: MessageTs


class AnnounceFailed(EnvbotError):
    """Slack did not take the message. `code` is Slack's error (`not_in_channel`, …) or `unreachable`;
    `retry_after` is Slack's Retry-After (seconds) when it rate-limited the call."""

    def __init__(self, code: str, retry_after: float | None = None) -> None:
        super().__init__(f"Slack did not take the message ({code})")
        self.code = code
        self.retry_after = retry_after

    @property
    def not_a_member(self) -> bool:
        return self.code in NOT_A_MEMBER


class Announcer(Protocol):
    def post(self, channel: str, reply: Reply, thread: MessageRef | None = None) -> MessageRef:
        """Post `reply` in `channel` (in `thread`'s thread if given). Raises AnnounceFailed."""
        ...

    def update(self, ref: MessageRef, reply: Reply) -> None:
        """Replace the message at `ref` with `reply`. Raises AnnounceFailed."""
        ...

    def delete(self, ref: MessageRef) -> None: ...
