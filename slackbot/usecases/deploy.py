"""`/env deploy`: another version of a live environment's service, for those who may act on it.

It goes the way of extend: the environment's history decides whether there is something to deploy
into, the owner, admins and on-call may do it, and the workflow records the lineage it acts on.
A create that failed at its deploy step can be mended this way (the namespace is there); the
execution plane refuses a namespace that is not this install's live environment.
"""

from datetime import datetime

from slackbot import replies
from slackbot.commands import DeployCommand, Target
from slackbot.errors import PolicyDenied
from slackbot.history import Environment
from slackbot.orchestrator import DEPLOY_TEMPLATE, Submission, WorkflowRecord
from slackbot.replies import Reply, slack_date
from slackbot.spec import DeployRequest
from slackbot.usecases.common import Intake, Invocation, Services, check_same_environment


def plan(services: Services, invocation: Invocation, command: DeployCommand) -> Intake:
    services.policy.check_env_name(command.env_name, services.orchestrator.namespace)

    def work() -> Reply:
        return _deploy(services, invocation, command.env_name, command.target)

    ack = replies.checking("deploy", command.env_name)
    return services.intake(invocation, "deploy", command.env_name, ack, work, (f"env:{command.env_name}",))


def _deploy(services: Services, invocation: Invocation, name: str, target: Target) -> Reply:
    actor, now = invocation.actor, invocation.received_at
    env = services.history.environment(name)
    check_same_environment(invocation, name, env)
    if env is None:
        raise services.unknown(actor, name)
    ours = invocation.workflow_name(DEPLOY_TEMPLATE)
    earlier = next((d for d in env.deploys if d.name == ours), None)
    if earlier is not None:
        return _answer_earlier(services, invocation, env, earlier, target)
    _check_deployable(env, name, now)
    assert env.service is not None
    services.authorize(actor, name, env.owner)
    services.retention.ensure()
    request = DeployRequest(
        env_name=name,
        service=env.service,
        requested_by=actor.user_id,
        lineage=env.lineage(),
        target=target,
        request=invocation.request,
    )
    submission = services.orchestrator.deploy(request)
    if submission.earlier is not None:  # another replica, or this one before a restart, submitted it
        return _answer_earlier(services, invocation, env, submission.earlier, target)
    services.view.deployed(request, submission, now)
    services.submitted(invocation, "deploy", name, submission)
    return _reply(services, invocation, env, target, submission)


def _answer_earlier(
    services: Services, invocation: Invocation, env: Environment, earlier: WorkflowRecord, target: Target
) -> Reply:
    """The same answer the first delivery of this request got, rebuilt from its workflow."""
    services.answered_earlier(invocation, "deploy", earlier)
    return _reply(services, invocation, env, target, Submission(workflow_name=earlier.name))


def _reply(
    services: Services, invocation: Invocation, env: Environment, target: Target, submission: Submission
) -> Reply:
    now = invocation.received_at
    buttons = services.buttons(env.name, env.create.name, env.service, env.created_at, now, env.expires_at)
    return replies.deploy_submitted(env, invocation.actor.user_id, target, submission, services.links, buttons)


def _check_deployable(env: Environment, name: str, now: datetime) -> None:
    state = env.state(now)
    if state in ("destroyed", "destroying"):
        raise PolicyDenied(f"`{name}` was destroyed; create a new one with `/env create {env.service or '<service>'}`.")
    if state == "expired" and env.expires_at is not None:
        raise PolicyDenied(f"`{name}` expired {slack_date(env.expires_at)}; create a new one with `/env create`.")
    if env.service is None:
        raise PolicyDenied(f"envbot's record of `{name}` names no service, so it can't tell what to deploy.")
