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
from slackbot.replies import Reply, slack_date
from slackbot.spec import DeployRequest
from slackbot.usecases.common import Intake, Invocation, Services


def plan(services: Services, invocation: Invocation, command: DeployCommand) -> Intake:
    services.policy.check_env_name(command.env_name, services.orchestrator.namespace)

    def work() -> Reply:
        return _deploy(services, invocation, command.env_name, command.target)

    ack = replies.checking("deploy", command.env_name)
    return services.intake(invocation, "deploy", command.env_name, ack, work, (f"env:{command.env_name}",))


def _deploy(services: Services, invocation: Invocation, name: str, target: Target) -> Reply:
    actor, now = invocation.actor, invocation.received_at
    env = services.history.environment(name)
    _check_deployable(env, name, now)
    assert env is not None and env.service is not None
    services.authorize(actor, name, env.owner)
    services.retention.ensure()
    request = DeployRequest(
        env_name=name, service=env.service, requested_by=actor.user_id, lineage=env.lineage(), target=target
    )
    submission = services.orchestrator.deploy(request)
    services.submitted(invocation, "deploy", name, submission)
    buttons = services.buttons(name, env.service, env.created_at, now)
    return replies.deploy_submitted(env, actor.user_id, target, submission, services.links, buttons)


def _check_deployable(env: Environment | None, name: str, now: datetime) -> None:
    if env is None:
        raise PolicyDenied(f"envbot has no record of `{name}`, so there is nothing to deploy into. See `/env list`.")
    state = env.state(now)
    if state in ("destroyed", "destroying"):
        raise PolicyDenied(f"`{name}` was destroyed; create a new one with `/env create {env.service or '<service>'}`.")
    if state == "expired" and env.expires_at is not None:
        raise PolicyDenied(f"`{name}` expired {slack_date(env.expires_at)}; create a new one with `/env create`.")
    if env.service is None:
        raise PolicyDenied(f"envbot's record of `{name}` names no service, so it can't tell what to deploy.")
