"""One message per environment (docs/adr/0009), as the use cases see it: open the environment's channel
message before its create is submitted (its ts travels to the workflow), keep it saying what happened
to the request, and put later announcements (extend, destroy) in its thread.

Slack trouble never stops a request: without a message the reply is posted in the channel as before,
and when the bot can't post in the conversation the user is told how to fix that.
"""

import logging
from dataclasses import dataclass

from slackbot import replies
from slackbot.announce import AnnounceFailed, Announcer, MessageRef
from slackbot.history import Environment
from slackbot.replies import Reply
from slackbot.spec import Actor

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Opened:
    """The environment's channel message and what it shows, or why there is none (`note` is for the
    user, if anything)."""

    ref: MessageRef | None
    note: str | None = None
    shown: Reply | None = None


def open_message(announcer: Announcer | None, actor: Actor, reply: Reply) -> Opened:
    channel = actor.channel_id
    if announcer is None or channel is None or channel.startswith("D"):
        return Opened(None)  # threads off, or a DM: the reply itself is the message
    try:
        return Opened(announcer.post(channel, reply), shown=reply)
    except AnnounceFailed as error:
        log.warning("could not post the environment's message in %s: %s", channel, error.code)
        return Opened(None, replies.cannot_post_here(error.code) if error.not_a_member else None)


def update(announcer: Announcer | None, ref: MessageRef | None, reply: Reply) -> bool:
    """Best effort: the message says `reply` now. False (logged) if Slack didn't take it."""
    if announcer is None or ref is None:
        return False
    try:
        announcer.update(ref, reply)
    except AnnounceFailed as error:
        log.warning("could not update the environment's message %s: %s", ref.ts, error.code)
        return False
    return True


def discard(announcer: Announcer | None, ref: MessageRef | None) -> None:
    if announcer is not None and ref is not None:
        announcer.delete(ref)


def in_thread(announcer: Announcer | None, env: Environment | None, reply: Reply) -> Reply:
    """Post an announcement about `env` into its thread; the user gets a one-line pointer. Without a
    thread (an older environment, threads off) or when Slack refuses, the reply goes to the channel."""
    if announcer is None or env is None or env.create.thread is None or env.channel is None:
        return reply
    try:
        announcer.post(env.channel, reply, thread=MessageRef(channel=env.channel, ts=env.create.thread))
    except (AnnounceFailed, ValueError) as error:
        log.warning("could not post in the thread of %s: %s", env.name, error)
        return reply
    return replies.posted_in_thread(env.name, reply)


def finish(opened: Opened, announcer: Announcer | None, env_name: str, reply: Reply) -> Reply:
    """After a create was submitted: the channel message shows the full announcement (with its buttons)
    and the requester gets a pointer to it; without a message, the announcement is the reply. A message
    that already shows it (posted as the expected announcement) is not written again."""
    if opened.ref is not None and (opened.shown == reply or update(announcer, opened.ref, reply)):
        return replies.posted_in_channel(env_name, reply)
    if opened.ref is not None:
        discard(announcer, opened.ref)  # a stale "requested" message would mislead: the reply says it all
    if opened.note is not None:
        return reply.model_copy(update={"text": f"{reply.text}\n{opened.note}"})
    return reply
