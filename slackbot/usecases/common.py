"""What every use case shares: the services, the invocation, authorization, audit, and failure handling."""

import difflib
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from typing import Literal

from slackbot import metrics, replies
from slackbot.announce import Announcer
from slackbot.audit import AuditLog, AuditRecord, Decision, Outcome
from slackbot.channels import ChannelDirectory, NoChannels
from slackbot.clock import Clock
from slackbot.commands import redact
from slackbot.durations import format_duration
from slackbot.errors import EnvbotError, OrchestratorError, PolicyDenied
from slackbot.groups import GroupDirectory, GroupLookupError
from slackbot.history import Environment, HistoryReader
from slackbot.idempotency import RequestKey, workflow_name
from slackbot.names import RandomSuffix
from slackbot.orchestrator import EnvironmentOrchestrator, Scope, Submission, WorkflowRecord
from slackbot.policy import Policy, english_list
from slackbot.replies import Button, Links, Reply
from slackbot.retention import RecordRetention
from slackbot.spec import Actor
from slackbot.view import EnvironmentView

log = logging.getLogger(__name__)

Source = Literal["command", "button"]


@dataclass(frozen=True)
class Invocation:
    """One command as received: the text, who sent it and where, and when."""

    text: str
    actor: Actor
    received_at: datetime
    source: Source = "command"
    request: RequestKey | None = None  # the Slack request's idempotency key (docs/adr/0011)
    incarnation: str | None = None  # a click: the create workflow of the environment its message was about

    def workflow_name(self, template: str) -> str | None:
        """The name this request's workflow has (or will have) when the request has a key."""
        return workflow_name(template, self.request) if self.request else None


@dataclass(frozen=True)
class Intake:
    """What to answer at once, the slow work (if any) whose reply follows, and the turns it needs.

    `keys` name what the work must hold alone (a user's quota, an environment): a scheduler runs
    work whose keys are busy later, without tying up a worker while it waits.
    """

    ack: Reply
    work: Callable[[], Reply] | None = None
    keys: tuple[str, ...] = ()


@dataclass(frozen=True)
class Services:
    orchestrator: EnvironmentOrchestrator
    policy: Policy
    clock: Clock
    groups: GroupDirectory
    audit: AuditLog
    suffix: RandomSuffix
    history: HistoryReader
    links: Links
    retention: RecordRetention
    view: EnvironmentView
    channels: ChannelDirectory = field(default_factory=NoChannels)  # who may see what (usecases/visibility.py)
    announcer: Announcer | None = None  # environments' channel messages (usecases/thread.py); None: off

    def intake(
        self,
        invocation: Invocation,
        action: str,
        env: str | None,
        ack: Reply,
        work: Callable[[], Reply],
        keys: tuple[str, ...] = (),
    ) -> Intake:
        guarded = partial(self.guarded, invocation, action, env, work)
        # Every command holds its sender's turn, so one member's flood (of any command) runs one at a time
        # and the scheduler lets others' commands in between (slackbot/scheduler.py).
        mine = f"user:{invocation.actor.user_id}"
        return Intake(ack=ack, work=guarded, keys=keys if mine in keys else (mine, *keys))

    def guarded(self, invocation: Invocation, action: str, env: str | None, work: Callable[[], Reply]) -> Reply:
        """Run slow work; turn every failure into a reply, so the follow-up is always delivered."""
        try:
            reply = work()
        except PolicyDenied as error:
            self.record(invocation, action, "refused", reason=error.user_message, env=env)
            reply = replies.refused(error)
        except OrchestratorError as error:
            reference = secrets.token_hex(4)
            log.warning("%s %s failed (reference %s): %s", action, env or "", reference, error.user_message)
            self.record(
                invocation, action, "allowed", reason=f"{error.user_message} (reference {reference})", env=env,
                outcome="failed",
            )  # fmt: skip
            reply = replies.unavailable(action, env, reference, error.maybe_submitted)
        except EnvbotError as error:
            self.record(invocation, action, "allowed", reason=error.user_message, env=env, outcome="failed")
            reply = replies.failed(action, env, error)
        except Exception:
            reference = secrets.token_hex(4)
            log.exception("unexpected failure handling %s (reference %s)", action, reference)
            self.record(invocation, action, "allowed", reason=f"internal error {reference}", env=env, outcome="failed")
            reply = replies.internal_error(reference)
        metrics.FOLLOWUP_SECONDS.labels(action).observe(self.elapsed(invocation))
        return reply

    def submitted(
        self,
        invocation: Invocation,
        action: str,
        env: str,
        submission: Submission,
        ttl: timedelta | None = None,
        expires_at: datetime | None = None,
    ) -> None:
        self.record(invocation, action, "allowed", env=env, workflow=submission.workflow_name, outcome="submitted",
                    ttl=ttl, expires_at=expires_at)  # fmt: skip

    def answered_earlier(self, invocation: Invocation, action: str, earlier: WorkflowRecord) -> None:
        """A duplicate of a request already submitted: recorded, and answered as the first was."""
        metrics.DUPLICATES.inc()
        self.record(invocation, action, "duplicate", env=earlier.env_name, workflow=earlier.name)

    def buttons(
        self,
        env: str,
        incarnation: str,
        service: str | None,
        created_at: datetime,
        now: datetime,
        expires_at: datetime | None,
    ) -> tuple[Button, ...]:
        """Extend (only the choices that add time within the lifetime) and Destroy, for a message about one
        incarnation of `env` (its create workflow)."""
        choices = self.policy.extend_choices(service, created_at, now, expires_at)
        return replies.buttons_for(env, incarnation, choices)

    def elapsed(self, invocation: Invocation) -> float:
        """Seconds since the command arrived, by the injected clock (so tests can pin it)."""
        return max(0.0, (self.clock() - invocation.received_at).total_seconds())

    def unknown(self, actor: Actor, name: str) -> PolicyDenied:
        """No environment of that name: say so (not a permissions problem), with near matches among the
        user's own environments, so a typo reads like a typo."""
        mine = self.history.environments(Scope(owner=actor.user_id), view=True)
        names = sorted(n for n, env in mine.items() if env.state(self.clock()) in ("live", "failed"))
        close = difflib.get_close_matches(name, names, n=3, cutoff=0.6)
        if close:
            hint = " Did you mean " + english_list([f"`{n}`" for n in close], "or") + "?"
        elif names:
            shown = ", ".join(f"`{n}`" for n in names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
            hint = f" Yours: {shown}."
        else:
            hint = " You have none; `/env list all` shows everyone's."
        return PolicyDenied(f"There is no environment called `{name}`.{hint}")

    def authorize(self, actor: Actor, env_name: str, owner: str | None) -> None:
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
        who = who_may(owner, self.policy)
        if lookup_failed is not None:
            raise PolicyDenied(f"{lookup_failed.user_message} So for now only {who} may act on `{env_name}`.")
        unknown = "" if owner else f"envbot has no record of creating `{env_name}`. "
        raise PolicyDenied(f"{unknown}Only {who} may act on `{env_name}`.")

    def record(
        self,
        invocation: Invocation,
        action: str | None,
        decision: Decision,
        *,
        reason: str | None = None,
        env: str | None = None,
        workflow: str | None = None,
        outcome: Outcome = "none",
        ttl: timedelta | None = None,
        expires_at: datetime | None = None,
    ) -> None:
        metrics.command(action, outcome if outcome != "none" else decision)
        self.audit.record(
            AuditRecord(
                time=invocation.received_at,
                user=invocation.actor.user_id,
                channel=invocation.actor.channel_id,
                command=redact(invocation.text)[:500],
                source=invocation.source,
                action=action,
                decision=decision,
                reason=reason,
                env=env,
                workflow=workflow,
                outcome=outcome,
                ttl=format_duration(ttl) if ttl else None,
                expires_at=expires_at,
                latency_ms=int(self.elapsed(invocation) * 1000),
            )
        )


def check_same_environment(invocation: Invocation, name: str, env: Environment | None) -> None:
    """A click acts only on the environment its message was about: not on one created since under that name."""
    if invocation.incarnation is None or (env is not None and env.create.name == invocation.incarnation):
        return
    raise PolicyDenied(
        f"That message is about an earlier `{name}`, which has been destroyed"
        + (" and created again since" if env is not None else "")
        + f". Nothing was done. See `/env status {name}`."
    )


def who_may(owner: str | None, policy: Policy) -> str:
    parts = [f"the owner <@{owner}>"] if owner else []
    if policy.admins:
        parts.append("admins (" + ", ".join(f"<@{a}>" for a in policy.admins) + ")")
    if policy.oncall_groups:
        parts.append("members of " + english_list([f"<!subteam^{g}>" for g in policy.oncall_groups], "or"))
    return english_list(parts, "or") if parts else "an admin named in the envbot policy"
