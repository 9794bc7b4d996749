"""Listener registration: thin handlers that translate Slack payloads to the core and back."""

import logging
from typing import Any

from pydantic import ValidationError
from slack_bolt import Ack, App, Respond

from slackbot.bot import EnvBot
from slackbot.replies import Reply
from slackbot.slack.groups import SlackGroupDirectory
from slackbot.spec import Actor
from slackbot.workers import Workers

log = logging.getLogger(__name__)

RESTARTING = Reply(text=":warning: envbot is restarting and took nothing; try again in a minute.")
UNKNOWN_CALLER = Reply(text=":warning: Slack sent a user or channel id I can't read, so I did nothing.")


def register(app: App, bot: EnvBot, workers: Workers, groups: SlackGroupDirectory | None) -> None:
    def env_command(ack: Ack, command: dict[str, Any], respond: Respond) -> None:
        try:
            actor = Actor(user_id=command.get("user_id", ""), channel_id=command.get("channel_id") or None)
        except ValidationError:
            ack(**payload(UNKNOWN_CALLER))
            return
        intake = bot.receive(command.get("text") or "", actor)
        ack(**payload(intake.ack))
        if intake.work is not None and workers.submit(intake.work, lambda reply: _respond(respond, reply)) is None:
            _respond(respond, RESTARTING)

    def group_changed(event: dict[str, Any]) -> None:
        group_id = event.get("subteam_id") or (event.get("subteam") or {}).get("id")
        if groups is not None and group_id:
            groups.invalidate(group_id)

    app.command("/env")(env_command)
    app.event("subteam_members_changed")(group_changed)
    app.event("subteam_updated")(group_changed)


def payload(reply: Reply) -> dict[str, str]:
    return {"text": reply.text, "response_type": reply.visibility}


def _respond(respond: Respond, reply: Reply) -> None:
    """Post to the command's response_url; failures are logged, never raised into Bolt."""
    try:
        result = respond(**payload(reply), replace_original=False)
    except Exception as error:
        log.error("could not reach response_url: %s", type(error).__name__)
        return
    if result.status_code != 200:
        log.error("response_url answered %s; the follow-up was not shown", result.status_code)
