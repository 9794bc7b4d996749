"""`/env create`: catalog and TTL rules at once; name, quotas and submit as one step per user."""

from collections.abc import Callable, Collection
from datetime import datetime, timedelta
from functools import partial

from slackbot import replies
from slackbot.commands import CreateCommand
from slackbot.errors import OrchestratorError, PolicyDenied
from slackbot.history import Environment
from slackbot.names import derive_env_name, derived_suffix
from slackbot.orchestrator import CREATE_TEMPLATE, Scope, Submission, WorkflowRecord
from slackbot.replies import Reply
from slackbot.spec import Actor, EnvironmentSpec
from slackbot.usecases import thread
from slackbot.usecases.common import Intake, Invocation, Services
from slackbot.view import Snapshot


def plan(services: Services, invocation: Invocation, command: CreateCommand) -> Intake:
    policy = services.policy
    rules = policy.service(command.service, invocation.actor.channel_id)
    ttl = policy.resolve_ttl(rules, command.ttl)
    # A replayed request derives the same name, so it finds (and answers with) its own environment.
    suffix = partial(derived_suffix, invocation.request) if invocation.request else services.suffix
    env_name = command.name or derive_env_name(command.service, suffix)
    policy.check_env_name(env_name, services.orchestrator.namespace)
    # A person's creates take turns, so their own quota is exact here; a channel's do not: holding the
    # channel through each submit would run a busy channel one create at a time, and the create template
    # enforces both quotas under its locks anyway (docs/adr/0010, 0011).
    keys = [f"user:{invocation.actor.user_id}", f"env:{env_name}"]

    def work() -> Reply:
        return _create(services, invocation, command, env_name, ttl)

    return services.intake(invocation, "create", env_name, replies.checking("create", env_name), work, tuple(keys))


def _create(services: Services, invocation: Invocation, command: CreateCommand, env_name: str, ttl: timedelta) -> Reply:
    actor, service, named = invocation.actor, command.service, command.name is not None
    services.retention.ensure()
    snapshot = services.view.snapshot()
    try:
        existing = _check(services, invocation, env_name, named, _Known(services, snapshot, actor, env_name))
    except PolicyDenied:
        if snapshot is None:
            raise
        # The view may be behind Argo (another replica, a failed create): a refusal is confirmed afresh.
        existing = _check(services, invocation, env_name, named, _Known(services, None, actor, env_name))
    if existing is not None and _is_this_request(existing, invocation):
        return _answer_earlier(services, invocation, existing.create, service, ttl)
    spec_for = partial(_spec, services, invocation, command, env_name, ttl, existing)
    return _submit(services, invocation, command, ttl, spec_for)


def _submit(
    services: Services,
    invocation: Invocation,
    command: CreateCommand,
    ttl: timedelta,
    spec_for: Callable[[str | None], EnvironmentSpec],
) -> Reply:
    """Open the environment's channel message, submit, and answer. The message comes first: its ts goes to
    the workflow (docs/adr/0009). When the request names its workflow (docs/adr/0011) the message is at
    once the announcement a successful submit confirms, so such a create costs one Web API call, not two."""
    actor, now = invocation.actor, invocation.received_at
    expected = invocation.workflow_name(CREATE_TEMPLATE)
    draft = spec_for(None)
    first = (
        _announcement(services, draft, ttl, Submission(workflow_name=expected), now)
        if expected
        else replies.create_requested(draft.env_name, command.service, ttl, actor.user_id, draft.expires_at)
    )
    opened = thread.open_message(services.announcer, actor, first)
    spec = spec_for(opened.ref.ts if opened.ref else None)
    try:
        submission = services.orchestrator.create(spec)
    except OrchestratorError as error:
        not_submitted = replies.create_not_submitted(spec.env_name, error.maybe_submitted)
        thread.update(services.announcer, opened.ref, not_submitted)
        raise
    if submission.earlier is not None:  # another replica, or this one before a restart, submitted it
        thread.discard(services.announcer, opened.ref)  # the first delivery has its own message
        return _answer_earlier(services, invocation, submission.earlier, command.service, ttl)
    services.view.created(spec, submission, now)
    services.submitted(invocation, "create", spec.env_name, submission, ttl=ttl, expires_at=spec.expires_at)
    announcement = _announcement(services, spec, ttl, submission, now)
    return thread.finish(opened, services.announcer, spec.env_name, announcement)


def _spec(
    services: Services,
    invocation: Invocation,
    command: CreateCommand,
    env_name: str,
    ttl: timedelta,
    replaced: Environment | None,
    thread_ts: str | None,
) -> EnvironmentSpec:
    actor, now, service = invocation.actor, invocation.received_at, command.service
    return EnvironmentSpec(
        env_name=env_name,
        service=service,
        expires_at=now + ttl,
        requested_by=actor.user_id,
        slack_channel=actor.channel_id,
        replaces=replaced.create.name if replaced else None,
        notices=services.policy.notices_for(service, now),
        request=invocation.request,
        slack_thread=thread_ts,
        target=command.target,
        access=services.policy.access_for(service, actor.user_id),
    )


def _announcement(
    services: Services, spec: EnvironmentSpec, ttl: timedelta, submission: Submission, now: datetime
) -> Reply:
    workflow = submission.workflow_name
    buttons = services.buttons(spec.env_name, workflow, spec.service, now, now, spec.expires_at)
    return replies.created(spec, ttl, submission, services.links, buttons)


def _answer_earlier(
    services: Services, invocation: Invocation, earlier: WorkflowRecord, service: str, ttl: timedelta
) -> Reply:
    """The same answer the first delivery of this request got, rebuilt from its workflow."""
    services.answered_earlier(invocation, "create", earlier)
    spec = EnvironmentSpec(
        env_name=earlier.env_name,
        service=earlier.service or service,
        expires_at=earlier.expires_at or earlier.created_at + ttl,
        requested_by=earlier.requested_by,
        slack_channel=earlier.channel,
    )
    now = invocation.received_at
    buttons = services.buttons(spec.env_name, earlier.name, earlier.service, earlier.created_at, now, spec.expires_at)
    return replies.created(spec, ttl, Submission(workflow_name=earlier.name), services.links, buttons)


class _Known:
    """Where a create's checks read from: the view (no argo call), or Argo itself (scoped reads)."""

    def __init__(self, services: Services, snapshot: Snapshot | None, actor: Actor, env_name: str) -> None:
        self._history = services.history
        self._snapshot = snapshot
        self._actor = actor
        self._env_name = env_name

    def mine(self) -> dict[str, Environment]:
        if self._snapshot is not None:
            return self._snapshot.owned_by(self._actor.user_id)
        return self._history.environments(Scope(owner=self._actor.user_id))

    def named(self) -> Environment | None:
        if self._snapshot is not None:
            return self._snapshot.named(self._env_name)
        return self._history.environment(self._env_name)

    def here(self, channel: str) -> dict[str, Environment]:
        if self._snapshot is not None:
            return self._snapshot.in_channel(channel)
        return self._history.environments(Scope(channel=channel))


def _check(services: Services, invocation: Invocation, env_name: str, named: bool, known: _Known) -> Environment | None:
    """The friendly checks (name free, quotas); returns the ended environment this create replaces."""
    actor, now = invocation.actor, invocation.received_at
    mine = known.mine()
    # A chosen name may be anyone's; a generated one is fresh unless it is one of the requester's own.
    existing = known.named() if named else mine.get(env_name)
    if existing is not None and _is_this_request(existing, invocation):
        return existing  # a duplicate of a request already submitted: answered as the first was
    _check_name_free(existing, now)
    _check_quota("You have {n} live environments", services.policy.quotas.per_user, mine.values(), now)
    per_channel = services.policy.quotas.per_channel
    if per_channel is not None and actor.channel_id:
        here = known.here(actor.channel_id)
        _check_quota("This channel has {n} live environments", per_channel, here.values(), now)
    return existing


def _is_this_request(existing: Environment, invocation: Invocation) -> bool:
    return existing.create.name == invocation.workflow_name(CREATE_TEMPLATE)


def _check_name_free(existing: Environment | None, now: datetime) -> None:
    if existing is None:
        return
    state = existing.state(now)
    owner = f" (owner <@{existing.owner}>)" if existing.owner else ""
    if state == "live":
        raise PolicyDenied(f"`{existing.name}` already exists{owner}. Pick another name with `name=`.")
    if state == "destroying":
        raise PolicyDenied(f"`{existing.name}` is still being destroyed{owner}; try again shortly.")


def _check_quota(what: str, limit: int, envs: Collection[Environment], now: datetime) -> None:
    if len(envs) < limit:
        return  # fewer environments than the limit, live or not: no need to ask each whether it is live
    live = [env for env in envs if env.is_live(now)]
    if len(live) >= limit:
        listed = ", ".join(f"`{env.name}`" for env in sorted(live, key=lambda env: env.name))
        raise PolicyDenied(
            f"{what.format(n=len(live))} (limit {limit}): {listed}. Free one with `/env destroy <name>` and try again."
        )
