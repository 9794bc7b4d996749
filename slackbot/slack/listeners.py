"""Listener registration: thin handlers that translate Slack payloads to the core and back."""

import logging
import re
import time
from collections.abc import Callable
from typing import Any

from pydantic import ValidationError
from slack_bolt import Ack, App

from slackbot import metrics
from slackbot.bot import EnvBot
from slackbot.replies import RESTARTING, Reply
from slackbot.scheduler import Scheduler
from slackbot.slack.blocks import ACTION_PREFIX, command_from_value, message
from slackbot.slack.delivery import Responder
from slackbot.slack.groups import SlackGroupDirectory
from slackbot.spec import Actor

log = logging.getLogger(__name__)

UNKNOWN_CALLER = Reply(text=":warning: Slack sent a user or channel id I can't read, so I did nothing.")
UNKNOWN_BUTTON = Reply(text=":warning: That button is not one I know (an old message?). Nothing was done.")
_ACTION_ID = re.compile(rf"^{ACTION_PREFIX}:(extend|destroy):\d+$")


class Listeners:
    """The Slack-facing handlers. `time_acks` is on where the transport can't time acks itself."""

    def __init__(
        self,
        bot: EnvBot,
        scheduler: Scheduler,
        responder: Responder,
        groups: SlackGroupDirectory | None,
        time_acks: bool,
    ) -> None:
        self.bot = bot
        self.scheduler = scheduler
        self.responder = responder
        self.groups = groups
        self.time_acks = time_acks

    def register(self, app: App) -> None:
        app.command("/env")(self.env_command)
        app.action(_ACTION_ID)(self.button)
        app.event("subteam_members_changed")(self.group_changed)
        app.event("subteam_updated")(self.group_changed)

    def env_command(self, ack: Ack, command: dict[str, Any]) -> None:
        started = time.monotonic()
        url = command.get("response_url")
        actor = _actor(command.get("user_id"), command.get("channel_id"))
        if actor is None:
            self._ack(ack, UNKNOWN_CALLER, started)
            return
        trigger = command.get("trigger_id")
        text = command.get("text") or ""
        intake = self.bot.receive(text, actor, key=f"trigger:{trigger}" if trigger else None, request=_text(trigger))
        self._ack(ack, intake.ack, started)
        if intake.work is not None:
            self._schedule(intake.keys, intake.work, lambda reply: self.responder.deliver(url, reply))

    def button(self, ack: Ack, body: dict[str, Any]) -> None:
        started = time.monotonic()
        self._ack(ack, None, started)
        url = body.get("response_url")
        action = (body.get("actions") or [{}])[0]
        container = body.get("container") or {}
        channel = (body.get("channel") or {}).get("id") or container.get("channel_id")
        actor = _actor((body.get("user") or {}).get("id"), channel)
        text = command_from_value(action.get("value", ""))
        if actor is None or text is None:
            self.responder.deliver(url, UNKNOWN_CALLER if actor is None else UNKNOWN_BUTTON)
            return
        # One click of one button on one message by one person runs once, however often it arrives.
        key = f"click:{actor.user_id}:{channel}:{container.get('message_ts')}:{action.get('action_id')}"
        intake = self.bot.receive(text, actor, key=key, source="button", request=_text(body.get("trigger_id")))
        if intake.work is None:
            self.responder.deliver(url, intake.ack)
            return
        self._schedule(intake.keys, intake.work, lambda reply: self.responder.deliver(url, reply))

    def group_changed(self, event: dict[str, Any]) -> None:
        group_id = event.get("subteam_id") or (event.get("subteam") or {}).get("id")
        if self.groups is not None and group_id:
            self.groups.invalidate(group_id)

    def _schedule(self, keys: tuple[str, ...], work: Callable[[], Reply], deliver: Callable[[Reply], object]) -> None:
        if not self.scheduler.submit(keys, work, deliver):
            deliver(RESTARTING)

    def _ack(self, ack: Ack, reply: Reply | None, started: float) -> None:
        if reply is None:
            ack()
        else:
            body = message(reply)
            ack(text=body["text"], blocks=body["blocks"], response_type=body["response_type"])
        if self.time_acks:
            metrics.ACK_SECONDS.observe(time.monotonic() - started)


def _actor(user_id: object, channel_id: object) -> Actor | None:
    try:
        return Actor(user_id=str(user_id or ""), channel_id=str(channel_id) if channel_id else None)
    except ValidationError:
        return None


def _text(value: object) -> str | None:
    """A Slack id as text, or None when Slack sent none (the console, old payloads)."""
    return str(value) if value else None
