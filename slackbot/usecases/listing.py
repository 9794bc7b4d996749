"""`/env list`: live environments (yours, everyone's, a person's or a channel's), read from Argo."""

from slackbot import replies
from slackbot.commands import ListCommand
from slackbot.orchestrator import Scope
from slackbot.replies import Reply
from slackbot.usecases.common import Intake, Invocation, Services


def plan(services: Services, invocation: Invocation, command: ListCommand) -> Intake:
    scope, title = _scope(invocation, command)

    def work() -> Reply:
        now = invocation.received_at
        found = services.history.environments(scope, view=True)
        live = [env for env in found.values() if env.is_live(now)]
        services.record(invocation, "list", "allowed", outcome="answered", reason=f"{len(live)} live")
        return replies.listing(title, live, now)

    return services.intake(invocation, "list", None, replies.looking_up(title.lower()), work)


def _scope(invocation: Invocation, command: ListCommand) -> tuple[Scope, str]:
    if command.scope == "all":
        return Scope(), "All environments"
    if command.scope == "user" and command.user_id != invocation.actor.user_id:
        return Scope(owner=command.user_id), f"Environments of <@{command.user_id}>"
    if command.scope == "channel":
        return Scope(channel=command.channel_id), f"Environments of <#{command.channel_id}>"
    return Scope(owner=invocation.actor.user_id), "Your environments"
