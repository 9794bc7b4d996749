"""The create form (modal) and the Home tab: thin handlers around slack/views.py, going through the same
core as typed commands (EnvBot.receive). Slow work (reading history) runs on the scheduler, never in
the handler Slack waits on."""

import logging
import re
import threading
from collections.abc import Callable
from typing import Any

from pydantic import ValidationError
from slack_bolt import Ack, App
from slack_sdk import WebClient
from slack_sdk.errors import SlackClientError

from slackbot.bot import EnvBot
from slackbot.replies import Reply
from slackbot.scheduler import Scheduler
from slackbot.slack.blocks import message
from slackbot.slack.views import (
    CREATE_CALLBACK,
    NEW_ACTION,
    command_text,
    create_modal,
    field_of,
    home_view,
    submitted_values,
)
from slackbot.spec import Actor
from slackbot.usecases import home

log = logging.getLogger(__name__)


class Surfaces:
    def __init__(self, bot: EnvBot, scheduler: Scheduler, client: WebClient) -> None:
        self.bot = bot
        self.scheduler = scheduler
        self.client = client
        self._home_users: set[str] = set()  # who opened the Home tab: it is refreshed after their actions
        self._guard = threading.Lock()

    def register(self, app: App) -> None:
        app.view(CREATE_CALLBACK)(self.submit)
        app.action(NEW_ACTION)(self.new_clicked)
        app.event("app_home_opened")(self.home_opened)

    # --- the create form ------------------------------------------------------------------------

    def open_create(self, trigger_id: str, channel_id: str | None) -> bool:
        """views.open within the trigger's 3 seconds. False (logged) if Slack did not open it."""
        try:
            self.client.views_open(trigger_id=trigger_id, view=create_modal(self.bot.policy, channel_id))
        except (SlackClientError, OSError) as error:
            log.warning("views.open failed: %s", type(error).__name__)
            return False
        return True

    def new_clicked(self, ack: Ack, body: dict[str, Any]) -> None:
        ack()
        trigger = body.get("trigger_id")
        if isinstance(trigger, str):
            self.open_create(trigger, None)

    def submit(self, ack: Ack, body: dict[str, Any], view: dict[str, Any]) -> None:
        user = (body.get("user") or {}).get("id")
        values = submitted_values(view)
        try:
            actor = Actor(user_id=str(user or ""), channel_id=values["channel"])
        except ValidationError:
            ack(response_action="errors", errors={"channel": "Choose a channel to announce the environment in."})
            return
        if not values["service"]:
            ack(response_action="errors", errors={"service": "Choose a service."})
            return
        # One modal, one request: its view id keys the workflow, so a replay or a second replica runs it once.
        view_id = view.get("id") if isinstance(view.get("id"), str) and view.get("id") else None
        request = f"view:{view_id}" if view_id else None
        intake = self.bot.receive(command_text(values), actor, key=f"view:{view.get('id')}", request=request)
        if intake.work is None:
            if intake.ack.problem:  # refused or invalid: shown on the field it is about, the form stays open
                text = _plain(intake.ack.text)
                ack(response_action="errors", errors={field_of(text): text[:150]})
            else:
                ack()
                self._tell(actor, intake.ack)
            return
        ack()  # the form closes; the outcome follows as for a typed command

        def deliver(reply: Reply) -> None:
            self._tell(actor, reply)
            self.refresh(actor.user_id)

        if not self.scheduler.submit(intake.keys, intake.work, deliver):
            self._tell(actor, Reply(text=":warning: envbot is restarting; nothing was submitted. Try again shortly."))

    def _tell(self, actor: Actor, reply: Reply) -> None:
        """A reply with no response_url: ephemeral in the channel, or in the app's DM with the user."""
        body = message(reply)
        try:
            if actor.channel_id and reply.visibility == "ephemeral":
                self.client.chat_postEphemeral(
                    channel=actor.channel_id, user=actor.user_id, text=body["text"], blocks=body["blocks"]
                )
            else:
                self.client.chat_postMessage(
                    channel=actor.channel_id or actor.user_id, text=body["text"], blocks=body["blocks"]
                )
        except (SlackClientError, OSError) as error:
            log.warning("could not tell %s the outcome: %s", actor.user_id, type(error).__name__)

    # --- the Home tab ---------------------------------------------------------------------------

    def home_opened(self, event: dict[str, Any]) -> None:
        user = event.get("user")
        if event.get("tab", "home") == "home" and isinstance(user, str):
            with self._guard:
                self._home_users.add(user)
            self._later(lambda: self.publish(user))

    def refresh(self, user_id: str, notice: str | None = None) -> None:
        """After the user's own action: republish their Home tab if they use it."""
        with self._guard:
            known = user_id in self._home_users
        if known or notice is not None:
            self._later(lambda: self.publish(user_id, notice))

    def answer_in_home(self, user_id: str, reply: Reply) -> None:
        """A click on the Home tab has no response_url: the outcome is shown at the top of the tab."""
        self.refresh(user_id, notice=reply.text)

    def publish(self, user_id: str, notice: str | None = None) -> None:
        now = self.bot.services.clock()
        try:
            rows = home.rows(self.bot.services, user_id, now)
        except Exception:
            log.exception("could not read environments for the Home tab of %s", user_id)
            rows, notice = [], ":warning: I couldn't read your environments just now. Open the tab again shortly."
        try:
            self.client.views_publish(user_id=user_id, view=home_view(rows, now, notice))
        except (SlackClientError, OSError) as error:
            log.warning("views.publish for %s failed: %s", user_id, type(error).__name__)

    def _later(self, task: Callable[[], None]) -> None:
        def work() -> Reply:
            task()
            return Reply(text="")

        self.scheduler.submit((), work, lambda _reply: None)


def _plain(text: str) -> str:
    """A reply's words for a form's inline error: no emoji codes, no usage line (the form is the usage)."""
    text = re.sub(r" (Usage: `[^`]*`\.|More in `/env help`\.)", "", text)
    return " ".join(word for word in text.split(" ") if not (word.startswith(":") and word.endswith(":"))).strip()
