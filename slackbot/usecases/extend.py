"""`/env extend`: a new expiry of now + ttl, within the policy's lifetime, for those who may act."""

from datetime import datetime, timedelta

from slackbot import replies
from slackbot.commands import ExtendCommand
from slackbot.durations import format_duration, format_remaining
from slackbot.errors import PolicyDenied, UsageError
from slackbot.history import Environment
from slackbot.orchestrator import EXTEND_TEMPLATE, Submission, WorkflowRecord
from slackbot.replies import Reply, slack_date
from slackbot.spec import ExtendRequest
from slackbot.usecases import thread
from slackbot.usecases.common import Intake, Invocation, Services, check_same_environment
from slackbot.usecases.visibility import require_visible


def plan(services: Services, invocation: Invocation, command: ExtendCommand) -> Intake:
    policy = services.policy
    policy.check_env_name(command.env_name, services.orchestrator.namespace)
    if command.ttl is not None and not policy.ttl.min <= command.ttl <= policy.ttl.max:
        policy.resolve_ttl(policy.rules_for(None), command.ttl, topic="extend")  # raises with the bounds

    def work() -> Reply:
        return _extend(services, invocation, command.env_name, command.ttl)

    ack = replies.checking("extend", command.env_name)
    return services.intake(invocation, "extend", command.env_name, ack, work, (f"env:{command.env_name}",))


def _extend(services: Services, invocation: Invocation, name: str, requested: timedelta | None) -> Reply:
    actor, now, policy = invocation.actor, invocation.received_at, services.policy
    env = services.history.environment(name)
    check_same_environment(invocation, name, env)
    require_visible(services, invocation, name, env)
    ours = invocation.workflow_name(EXTEND_TEMPLATE)
    earlier = next((e for e in env.extends if e.name == ours), None) if env else None
    if env is not None and earlier is not None:
        return _answer_earlier(services, invocation, env, earlier, requested)
    if env is None:
        raise services.unknown(actor, name)
    _check_extendable(env, name, now)
    services.authorize(actor, name, env.owner)
    ttl = policy.resolve_ttl(policy.rules_for(env.service), requested, topic="extend")
    expires_at = now + ttl
    latest = policy.latest_expiry(env.created_at)
    if expires_at > latest:
        room = latest - now
        longest = (
            f"the most you can ask for now is ttl={format_duration(room)}"
            if room >= policy.ttl.min
            else ("there is no room left to extend it")
        )
        raise UsageError(
            f"`{name}` may live until {slack_date(latest)} at the latest ({format_duration(policy.ttl.lifetime)} "
            f"from its creation); {longest}.",
            topic="extend",
        )
    _check_adds_time(services, env, ttl, now)
    services.retention.ensure()
    request = ExtendRequest(
        env_name=name,
        expires_at=expires_at,
        requested_by=actor.user_id,
        lineage=env.lineage(),
        notices=policy.notices_for(env.service, env.created_at),
        request=invocation.request,
    )
    submission = services.orchestrator.extend(request)
    if submission.earlier is not None:  # another replica, or this one before a restart, submitted it
        return _answer_earlier(services, invocation, env, submission.earlier, requested)
    services.view.extended(request, submission, now)
    services.submitted(invocation, "extend", name, submission, ttl=ttl, expires_at=request.expires_at)
    buttons = services.buttons(name, env.create.name, env.service, env.created_at, now, request.expires_at)
    announcement = replies.extended(env, actor.user_id, request.expires_at, ttl, submission, services.links, buttons)
    return thread.in_thread(services.announcer, env, announcement)


def _check_adds_time(services: Services, env: Environment, ttl: timedelta, now: datetime) -> None:
    """An extend sets the expiry to now + ttl: refuse one that would bring it closer (nothing changes)."""
    current = env.expires_at
    if current is None or now + ttl > current:
        return
    better = services.policy.longer_ttl(env.service, env.created_at, now, current)
    if better is not None:
        example = f"/env extend {env.name} ttl={format_duration(better)}"
        works = f"Ask for more than {format_remaining(current - now)}, e.g. `{example}`."
    else:
        latest = services.policy.latest_expiry(env.created_at)
        works = f"It can't be kept longer: it may live until {slack_date(latest)} at the latest."
    raise PolicyDenied(
        f"`{env.name}` already expires {slack_date(current)} (in {format_remaining(current - now)}); "
        f"ttl={format_duration(ttl)} from now would end it sooner, so nothing was changed. {works}"
    )


def _answer_earlier(
    services: Services, invocation: Invocation, env: Environment, earlier: WorkflowRecord, requested: timedelta | None
) -> Reply:
    """The same answer the first delivery of this request got, rebuilt from its workflow."""
    services.answered_earlier(invocation, "extend", earlier)
    policy, now = services.policy, invocation.received_at
    ttl = policy.resolve_ttl(policy.rules_for(env.service), requested, topic="extend")
    expires_at = earlier.expires_at or now + ttl
    buttons = services.buttons(env.name, env.create.name, env.service, env.created_at, now, expires_at)
    submission = Submission(workflow_name=earlier.name)
    return replies.extended(env, invocation.actor.user_id, expires_at, ttl, submission, services.links, buttons)


def _check_extendable(env: Environment, name: str, now: datetime) -> None:
    state = env.state(now)
    if state in ("destroyed", "destroying"):
        who = f" by <@{env.destroy.requested_by}>" if env.destroy and env.destroy.requested_by else ""
        raise PolicyDenied(f"`{name}` was destroyed{who}; create a new one with `/env create`.")
    if state == "expired" and env.expires_at is not None:
        raise PolicyDenied(f"`{name}` expired {slack_date(env.expires_at)}; create a new one with `/env create`.")
    if state == "failed":
        raise PolicyDenied(f"`{name}` was never created (its create workflow failed); see `/env status {name}`.")
