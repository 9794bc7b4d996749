"""`/env destroy`: for the owner, admins and on-call; the template refuses anything envbot doesn't own."""

from slackbot import replies
from slackbot.commands import DestroyCommand
from slackbot.errors import PolicyDenied
from slackbot.history import Environment
from slackbot.orchestrator import DESTROY_TEMPLATE, Submission, WorkflowRecord
from slackbot.replies import Reply
from slackbot.spec import DestroyRequest, Lineage
from slackbot.usecases import thread
from slackbot.usecases.common import Intake, Invocation, Services, check_same_environment
from slackbot.usecases.visibility import require_visible


def plan(services: Services, invocation: Invocation, command: DestroyCommand) -> Intake:
    services.policy.check_env_name(command.env_name, services.orchestrator.namespace)

    def work() -> Reply:
        return _destroy(services, invocation, command.env_name)

    ack = replies.checking("destroy", command.env_name)
    return services.intake(invocation, "destroy", command.env_name, ack, work, (f"env:{command.env_name}",))


def _destroy(services: Services, invocation: Invocation, name: str) -> Reply:
    actor = invocation.actor
    env = services.history.environment(name)
    check_same_environment(invocation, name, env)
    require_visible(services, invocation, name, env)
    ours = invocation.workflow_name(DESTROY_TEMPLATE)
    earlier = next((d for d in env.destroys if d.name == ours), None) if env else None
    if earlier is not None:
        return _answer_earlier(services, invocation, env, earlier)
    if env is None:
        try:  # admins and on-call may still clean up a namespace envbot has no record of (the template checks)
            services.authorize(actor, name, None)
        except PolicyDenied:
            raise services.unknown(actor, name) from None
    else:
        services.authorize(actor, name, env.owner)
    lineage = Lineage()
    if env is not None:
        state = env.state(invocation.received_at)
        if state in ("destroying", "destroyed") and env.destroy is not None:
            who = f" by <@{env.destroy.requested_by}>" if env.destroy.requested_by else ""
            verb = "is already being destroyed" if state == "destroying" else "was already destroyed"
            raise PolicyDenied(
                f"`{name}` {verb}{who} ({services.links.workflow(env.destroy.name, env.destroy.namespace)})."
            )
        lineage = env.lineage()
    request = DestroyRequest(env_name=name, requested_by=actor.user_id, lineage=lineage, request=invocation.request)
    submission = services.orchestrator.destroy(request)
    if submission.earlier is not None:  # another replica, or this one before a restart, submitted it
        return _answer_earlier(services, invocation, env, submission.earlier)
    services.view.destroyed(request, submission, invocation.received_at)
    services.submitted(invocation, "destroy", name, submission)
    announcement = replies.destroy_submitted(name, actor.user_id, env, submission, services.links)
    return thread.in_thread(services.announcer, env, announcement)


def _answer_earlier(
    services: Services, invocation: Invocation, env: Environment | None, earlier: WorkflowRecord
) -> Reply:
    """The same answer the first delivery of this request got."""
    services.answered_earlier(invocation, "destroy", earlier)
    submission = Submission(workflow_name=earlier.name)
    return replies.destroy_submitted(earlier.env_name, invocation.actor.user_id, env, submission, services.links)
