"""`/env destroy`: for the owner, admins and on-call; the template refuses anything envbot doesn't own."""

from slackbot import replies
from slackbot.commands import DestroyCommand
from slackbot.errors import PolicyDenied
from slackbot.replies import Reply
from slackbot.spec import DestroyRequest, Lineage
from slackbot.usecases.common import Intake, Invocation, Services


def plan(services: Services, invocation: Invocation, command: DestroyCommand) -> Intake:
    services.policy.check_env_name(command.env_name, services.orchestrator.namespace)

    def work() -> Reply:
        return _destroy(services, invocation, command.env_name)

    ack = replies.checking("destroy", command.env_name)
    return services.intake(invocation, "destroy", command.env_name, ack, work, (f"env:{command.env_name}",))


def _destroy(services: Services, invocation: Invocation, name: str) -> Reply:
    actor = invocation.actor
    env = services.history.environment(name)
    services.authorize(actor, name, env.owner if env else None)
    lineage = Lineage()
    if env is not None:
        state = env.state(invocation.received_at)
        if state in ("destroying", "destroyed") and env.destroy is not None:
            who = f" by <@{env.destroy.requested_by}>" if env.destroy.requested_by else ""
            verb = "is already being destroyed" if state == "destroying" else "was already destroyed"
            raise PolicyDenied(f"`{name}` {verb}{who} ({services.links.workflow(env.destroy.name)}).")
        lineage = env.lineage()
    request = DestroyRequest(env_name=name, requested_by=actor.user_id, lineage=lineage)
    submission = services.orchestrator.destroy(request)
    services.submitted(invocation, "destroy", name, submission)
    return replies.destroy_submitted(name, actor.user_id, env, submission, services.links)
