"""`/env list`: live environments (yours, everyone's, a person's or a channel's), read from Argo.

Creates that failed recently are listed too (marked), so a failure is visible even while the
execution plane's notices are off.
"""

from datetime import datetime, timedelta

from slackbot import replies
from slackbot.commands import ListCommand
from slackbot.history import Environment
from slackbot.orchestrator import Scope
from slackbot.replies import Button, Reply
from slackbot.usecases.common import Intake, Invocation, Services
from slackbot.usecases.visibility import Viewer

FAILED_SHOWN_FOR = timedelta(days=1)


def plan(services: Services, invocation: Invocation, command: ListCommand) -> Intake:
    scope, title, what = _scope(invocation, command)

    def work() -> Reply:
        now = invocation.received_at
        found = services.history.environments(scope, view=True)
        viewer = Viewer(services, invocation.actor.user_id)  # private environments only for those who may see
        shown = viewer.visible(env for env in found.values() if listed(env, now))
        live = sum(env.is_live(now) for env in shown)
        services.record(invocation, "list", "allowed", outcome="answered", reason=f"{live} live")
        return replies.listing(title, shown, now, lambda env: _actions(services, env, now))

    return services.intake(invocation, "list", None, replies.looking_up(what), work)


def _actions(services: Services, env: Environment, now: datetime) -> tuple[Button, ...]:
    """A row's overflow menu: the buttons a message about the environment carries (live ones only)."""
    if not env.is_live(now):
        return ()
    return services.buttons(env.name, env.create.name, env.service, env.created_at, now, env.expires_at)


def listed(env: Environment, now: datetime) -> bool:
    """Live, or a create that failed within the last day."""
    state = env.state(now)
    return state == "live" or (state == "failed" and now - env.created_at <= FAILED_SHOWN_FOR)


def _scope(invocation: Invocation, command: ListCommand) -> tuple[Scope, str, str]:
    """The scope, the list's title, and what the acknowledgement says it looks up (mentions keep their case)."""
    if command.scope == "all":
        return Scope(), "All environments", "all environments"
    if command.scope == "user" and command.user_id != invocation.actor.user_id:
        return (
            Scope(owner=command.user_id),
            f"Environments of <@{command.user_id}>",
            f"<@{command.user_id}>'s environments",
        )
    if command.scope == "channel":
        channel = command.channel_id
        return Scope(channel=channel), f"Environments of <#{channel}>", f"the environments of <#{channel}>"
    return Scope(owner=invocation.actor.user_id), "Your environments", "your environments"
