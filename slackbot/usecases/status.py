"""`/env status`: one environment's owner, expiry and every workflow, with why a failed one failed."""

from slackbot import replies
from slackbot.commands import StatusCommand
from slackbot.errors import EnvbotError
from slackbot.orchestrator import WorkflowDetail
from slackbot.replies import Reply
from slackbot.usecases.common import Intake, Invocation, Services
from slackbot.usecases.visibility import Viewer

MAX_DETAILS = 3  # `argo get` calls for failed workflows, newest first


def plan(services: Services, invocation: Invocation, command: StatusCommand) -> Intake:
    name = command.env_name

    def work() -> Reply:
        env = services.history.environment(name, view=True)
        # A private environment is answered as if unknown to those who may not see it: its name says nothing.
        if env is None or not Viewer(services, invocation.actor.user_id).may_see(env):
            raise services.unknown(invocation.actor, name)
        details: dict[str, WorkflowDetail] = {}
        for record in [r for r in reversed(env.workflows) if r.failed][:MAX_DETAILS]:
            try:
                details[record.name] = services.orchestrator.workflow(record.name)
            except EnvbotError:
                continue  # the phase is still shown; the step's message is a bonus
        services.record(invocation, "status", "allowed", env=name, outcome="answered", expires_at=env.expires_at)
        return replies.status(env, details, invocation.received_at, services.links)

    return services.intake(invocation, "status", name, replies.looking_up(f"`{name}`"), work)
