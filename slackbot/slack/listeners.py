"""Listener registration: thin handlers that translate Slack payloads to the core and back."""

import logging
import time
from collections.abc import Callable
from functools import partial
from typing import Any

from pydantic import ValidationError
from slack_bolt import Ack, App

from slackbot import metrics
from slackbot.bot import EnvBot
from slackbot.replies import RESTARTING, Reply
from slackbot.scheduler import Scheduler
from slackbot.slack.blocks import ACTION_ID, ROW_ACTION_ID, click_from_value, message
from slackbot.slack.delivery import Responder
from slackbot.slack.groups import SlackGroupDirectory
from slackbot.slack.surfaces import Surfaces
from slackbot.spec import Actor

log = logging.getLogger(__name__)

UNKNOWN_CALLER = Reply(text=":warning: Slack sent a user or channel id I can't read, so I did nothing.")
UNKNOWN_BUTTON = Reply(
    text=":warning: That button is not one I know (a message from an older envbot?). Nothing was done; "
    "type the command instead, e.g. `/env status <name>`."
)
UNREADABLE = Reply(text=":warning: I couldn't read that (Slack sent something I don't understand). Nothing was done.")


class Listeners:
    """The Slack-facing handlers. `time_acks` is on where the transport can't time acks itself."""

    def __init__(
        self,
        bot: EnvBot,
        scheduler: Scheduler,
        responder: Responder,
        groups: SlackGroupDirectory | None,
        time_acks: bool,
        surfaces: Surfaces | None = None,
    ) -> None:
        self.bot = bot
        self.scheduler = scheduler
        self.responder = responder
        self.groups = groups
        self.time_acks = time_acks
        self.surfaces = surfaces  # the create form and the Home tab (slack/surfaces.py)

    def register(self, app: App) -> None:
        app.command("/env")(self.env_command)
        app.action(ACTION_ID)(self.button)
        app.action(ROW_ACTION_ID)(self.button)  # a list row's overflow menu: the chosen option's value
        app.event("subteam_members_changed")(self.group_changed)
        app.event("subteam_updated")(self.group_changed)

    def env_command(self, ack: Ack, command: dict[str, Any]) -> None:
        started = time.monotonic()
        url = _string(command.get("response_url"))
        actor = _actor(command.get("user_id"), command.get("channel_id"))
        if actor is None:
            self._ack(ack, UNKNOWN_CALLER, started)
            return
        text, trigger = command.get("text", ""), _string(command.get("trigger_id"))
        if not isinstance(text, str):
            log.warning("a slash command's text was not a string (%s); answered that it couldn't be read",
                        type(text).__name__)  # fmt: skip
            self._ack(ack, UNREADABLE, started)
            return
        # A bare `/env create` opens the create form (within the trigger's 3 seconds); if it can't, the
        # typed command's answer (which service?) follows as usual.
        bare_create = text.strip().lower() == "create" and trigger and self.surfaces is not None
        if bare_create and self.surfaces is not None and self.surfaces.open_create(str(trigger), actor.channel_id):
            self._ack(ack, None, started)
            return
        intake = self.bot.receive(text, actor, key=f"trigger:{trigger}" if trigger else None, request=trigger)
        self._ack(ack, intake.ack, started)
        if intake.work is not None:
            self._schedule(intake.keys, intake.work, lambda reply: self._follow_up(url, actor, reply))

    def button(self, ack: Ack, body: dict[str, Any]) -> None:
        started = time.monotonic()
        self._ack(ack, None, started)
        url = _string(body.get("response_url"))
        actions = body.get("actions")
        action = _object(actions[0] if isinstance(actions, list) and actions else None)
        container = _object(body.get("container"))
        channel = _string(_object(body.get("channel")).get("id")) or _string(container.get("channel_id"))
        actor = _actor(_object(body.get("user")).get("id"), channel)
        # A button carries its value; an overflow menu, the value of the option chosen.
        chosen = _object(action.get("selected_option")).get("value") if action.get("type") == "overflow" else None
        click = click_from_value(chosen or action.get("value"))
        if actor is None or click is None:
            self._answer(url, UNKNOWN_CALLER if actor is None else UNKNOWN_BUTTON)
            return
        # One click of one button on one message by one person runs once, however often it arrives.
        ts, action_id = _string(container.get("message_ts")), _string(action.get("action_id"))
        key = f"click:{actor.user_id}:{channel}:{ts}:{action_id}" + (f":{chosen}" if chosen else "")
        intake = self.bot.receive(
            click.command, actor, key=key, source="button", request=_string(body.get("trigger_id")),
            incarnation=click.incarnation,
        )  # fmt: skip
        in_home = container.get("type") == "view" and self.surfaces is not None
        if intake.work is None:
            if in_home and self.surfaces is not None:
                self.surfaces.answer_in_home(actor.user_id, intake.ack)
            else:
                self._answer(url, intake.ack)
            return
        if in_home and self.surfaces is not None:  # a Home tab click has no response_url: the tab shows it
            self._schedule(intake.keys, intake.work, partial(self.surfaces.answer_in_home, actor.user_id))
            return
        self._schedule(intake.keys, intake.work, lambda reply: self._follow_up(url, actor, reply))

    def group_changed(self, event: dict[str, Any]) -> None:
        group_id = _string(event.get("subteam_id")) or _string(_object(event.get("subteam")).get("id"))
        if self.groups is not None and group_id:
            self.groups.invalidate(group_id)

    def _follow_up(self, url: str | None, actor: Actor, reply: Reply) -> None:
        self.responder.deliver(url, reply)
        if reply.submitted and self.surfaces is not None:  # the user's own action: their Home tab follows
            self.surfaces.refresh(actor.user_id)

    def _answer(self, url: str | None, reply: Reply) -> None:
        """A follow-up with nothing to run first: posted by a worker, so the ack is not held up by it."""
        self._schedule((), lambda: reply, lambda answer: self.responder.deliver(url, answer))

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
    if not isinstance(user_id, str) or not (channel_id is None or isinstance(channel_id, str)):
        return None
    try:
        return Actor(user_id=user_id, channel_id=channel_id or None)
    except ValidationError:
        return None


def _string(value: object) -> str | None:
    """A field Slack sends as a string; anything else counts as missing."""
    return value if isinstance(value, str) else None


def _object(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}
