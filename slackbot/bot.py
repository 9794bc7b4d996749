"""The transport-free core: text -> command -> policy -> spec -> orchestrator -> reply.

`receive` is fast and does no I/O, so a transport can acknowledge within Slack's 3 seconds with
its `ack` reply. The slow part (reading history, submitting) is `work`, which transports run on
their own bounded executor and whose reply they deliver afterwards.
"""

import logging
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial

from slackbot import replies
from slackbot.audit import AuditLog, AuditRecord, Decision, Outcome
from slackbot.clock import Clock, utc_now
from slackbot.commands import CreateCommand, DestroyCommand, HelpCommand, parse, redact
from slackbot.environments import Environment, environments
from slackbot.errors import EnvbotError, PolicyDenied, UsageError
from slackbot.groups import GroupDirectory, GroupLookupError, NoGroups
from slackbot.locks import KeyedLocks
from slackbot.names import RandomSuffix, derive_env_name, random_suffix
from slackbot.orchestrator import EnvironmentOrchestrator
from slackbot.policy import Policy
from slackbot.replies import Reply
from slackbot.spec import Actor, DestroyRequest, EnvironmentSpec

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Intake:
    """What to answer at once, and the slow work (if any) whose reply follows."""

    ack: Reply
    work: Callable[[], Reply] | None = None


@dataclass(frozen=True)
class _Request:
    text: str
    actor: Actor
    received_at: datetime
    started: float = field(default_factory=time.monotonic)


class EnvBot:
    def __init__(
        self,
        orchestrator: EnvironmentOrchestrator,
        policy: Policy | None = None,
        clock: Clock = utc_now,
        groups: GroupDirectory | None = None,
        audit: AuditLog | None = None,
        suffix: RandomSuffix = random_suffix,
    ) -> None:
        self.orchestrator = orchestrator
        self.policy = policy or Policy()
        self.clock = clock
        self.groups = groups or NoGroups()
        self.audit = audit or AuditLog()
        self.suffix = suffix
        self.locks = KeyedLocks()

    def receive(self, text: str, actor: Actor) -> Intake:
        request = _Request(text=text, actor=actor, received_at=self.clock())
        action = None
        try:
            command = parse(text)
            action = command.action
            if isinstance(command, HelpCommand):
                self._audit(request, action, "help")
                return Intake(self._help())
            self.policy.check_channel(actor.channel_id)
            if isinstance(command, CreateCommand):
                return self._plan_create(request, command)
            return self._plan_destroy(request, command)
        except UsageError as error:
            self._audit(request, action, "invalid", reason=error.user_message)
            return Intake(replies.usage_error(error))
        except PolicyDenied as error:
            self._audit(request, action, "refused", reason=error.user_message)
            return Intake(replies.refused(error))

    def handle(self, text: str, actor: Actor) -> list[Reply]:
        """Receive and run to completion in the caller's thread (the console's way)."""
        intake = self.receive(text, actor)
        return [intake.ack] if intake.work is None else [intake.ack, intake.work()]

    def _help(self) -> Reply:
        ttl = self.policy.ttl
        services = sorted(self.policy.services) if self.policy.services is not None else None
        return replies.help_text(ttl.default, ttl.min, ttl.max, services)

    # --- create ---------------------------------------------------------------------------------

    def _plan_create(self, request: _Request, command: CreateCommand) -> Intake:
        service = self.policy.check_service(command.service, request.actor.channel_id)
        ttl = self.policy.resolve_ttl(service, command.ttl)
        env_name = command.name or derive_env_name(command.service, self.suffix)
        self.policy.check_env_name(env_name, self.orchestrator.namespace)
        spec = EnvironmentSpec(
            env_name=env_name,
            service=command.service,
            expires_at=request.received_at + ttl,
            requested_by=request.actor.user_id,
            slack_channel=request.actor.channel_id,
        )
        work = partial(self._guarded, request, "create", env_name, partial(self._create, request, spec))
        return Intake(replies.submitting_create(spec, ttl), work)

    def _create(self, request: _Request, spec: EnvironmentSpec) -> Reply:
        # Checks and submit as one step, or a burst from one user slips past the quota.
        keys = [f"user:{request.actor.user_id}", f"env:{spec.env_name}"]
        if self.policy.quotas.per_channel is not None:
            keys.append(f"channel:{request.actor.channel_id}")
        with self.locks.hold(*keys):
            known = environments(self.orchestrator.history())
            self._check_name_free(known.get(spec.env_name), request.received_at)
            self._check_quotas(request, known.values())
            submission = self.orchestrator.create(spec)
        self._audit(
            request, "create", "allowed", env=spec.env_name, workflow=submission.workflow_name, outcome="submitted"
        )
        return replies.created(spec, submission)

    def _check_name_free(self, existing: Environment | None, now: datetime) -> None:
        if existing is not None and existing.is_live(now):
            owner = f" (owner <@{existing.owner}>)" if existing.owner else ""
            raise PolicyDenied(f"`{existing.name}` already exists{owner}. Pick another name with `name=`.")

    def _check_quotas(self, request: _Request, known: Iterable[Environment]) -> None:
        live = [env for env in known if env.is_live(request.received_at)]
        quotas = self.policy.quotas
        mine = [env for env in live if env.owner == request.actor.user_id]
        if len(mine) >= quotas.per_user:
            raise PolicyDenied(_over_quota(f"You have {len(mine)} live environments", quotas.per_user, mine))
        if quotas.per_channel is not None and request.actor.channel_id:
            here = [env for env in live if env.channel == request.actor.channel_id]
            if len(here) >= quotas.per_channel:
                raise PolicyDenied(
                    _over_quota(f"This channel has {len(here)} live environments", quotas.per_channel, here)
                )

    # --- destroy --------------------------------------------------------------------------------

    def _plan_destroy(self, request: _Request, command: DestroyCommand) -> Intake:
        self.policy.check_env_name(command.env_name, self.orchestrator.namespace)
        destroy = DestroyRequest(env_name=command.env_name, requested_by=request.actor.user_id)
        work = partial(self._guarded, request, "destroy", command.env_name, partial(self._destroy, request, destroy))
        return Intake(replies.submitting_destroy(command.env_name), work)

    def _destroy(self, request: _Request, destroy: DestroyRequest) -> Reply:
        found = environments(self.orchestrator.history(env_names=(destroy.env_name,), action="create"))
        env = found.get(destroy.env_name)
        self._authorize(request.actor, destroy.env_name, env.owner if env else None)
        submission = self.orchestrator.destroy(destroy)
        self._audit(
            request, "destroy", "allowed", env=destroy.env_name, workflow=submission.workflow_name, outcome="submitted"
        )
        return replies.destroy_submitted(destroy, submission, env)

    def _authorize(self, actor: Actor, env_name: str, owner: str | None) -> None:
        """Owners, admins and members of the on-call groups may act on an environment."""
        if actor.user_id == owner or self.policy.is_privileged(actor.user_id):
            return
        lookup_failed = None
        for group in self.policy.oncall_groups:
            try:
                if actor.user_id in self.groups.members(group):
                    return
            except GroupLookupError as error:
                lookup_failed = error
        who = _who_may(owner, self.policy)
        if lookup_failed is not None:
            raise PolicyDenied(f"{lookup_failed.user_message} So for now only {who} may act on `{env_name}`.")
        unknown = "" if owner else f"envbot has no record of creating `{env_name}`. "
        raise PolicyDenied(f"{unknown}Only {who} may act on `{env_name}`.")

    # --- shared ---------------------------------------------------------------------------------

    def _guarded(self, request: _Request, action: str, env_name: str, work: Callable[[], Reply]) -> Reply:
        """Run slow work; turn every failure into a reply, so the follow-up is always delivered."""
        try:
            return work()
        except PolicyDenied as error:
            self._audit(request, action, "refused", reason=error.user_message, env=env_name)
            return replies.refused(error)
        except EnvbotError as error:
            self._audit(request, action, "allowed", reason=error.user_message, env=env_name, outcome="failed")
            return replies.failed(action, env_name, error)
        except Exception:
            reference = secrets.token_hex(4)
            log.exception("unexpected failure handling %s (reference %s)", action, reference)
            self._audit(
                request, action, "allowed", reason=f"internal error {reference}", env=env_name, outcome="failed"
            )
            return replies.internal_error(reference)

    def _audit(
        self,
        request: _Request,
        action: str | None,
        decision: Decision,
        *,
        reason: str | None = None,
        env: str | None = None,
        workflow: str | None = None,
        outcome: Outcome = "none",
    ) -> None:
        self.audit.record(
            AuditRecord(
                time=request.received_at,
                user=request.actor.user_id,
                channel=request.actor.channel_id,
                command=redact(request.text)[:500],
                action=action,
                decision=decision,
                reason=reason,
                env=env,
                workflow=workflow,
                outcome=outcome,
                latency_ms=int((time.monotonic() - request.started) * 1000),
            )
        )


def _over_quota(what: str, limit: int, envs: list[Environment]) -> str:
    listed = ", ".join(f"`{env.name}`" for env in sorted(envs, key=lambda env: env.name))
    return f"{what} (limit {limit}): {listed}. Free one with `/env destroy <name>` and try again."


def _who_may(owner: str | None, policy: Policy) -> str:
    parts = [f"the owner <@{owner}>"] if owner else []
    if policy.admins:
        parts.append("admins (" + ", ".join(f"<@{a}>" for a in policy.admins) + ")")
    if policy.oncall_groups:
        parts.append("members of " + ", ".join(f"<!subteam^{g}>" for g in policy.oncall_groups))
    return ", ".join(parts) if parts else "an admin named in the envbot policy"
