"""The transport-free core: text -> command -> policy -> use case -> reply.

`receive` is fast and does no I/O, so a transport can acknowledge within Slack's 3 seconds with
its `ack` reply. The slow part (reading history, submitting) is the Intake's `work`, which
transports run on their own bounded scheduler and whose reply they deliver afterwards.
"""

from slackbot import metrics, replies
from slackbot.announce import Announcer
from slackbot.audit import AuditLog
from slackbot.channels import ChannelDirectory, NoChannels
from slackbot.clock import Clock, utc_now
from slackbot.commands import (
    Command,
    CreateCommand,
    DeployCommand,
    DestroyCommand,
    ExtendCommand,
    HelpCommand,
    ListCommand,
    StatusCommand,
    parse,
)
from slackbot.durations import format_duration
from slackbot.errors import PolicyDenied, UsageError
from slackbot.groups import GroupDirectory, NoGroups
from slackbot.history import HistoryReader
from slackbot.idempotency import request_key
from slackbot.names import RandomSuffix, random_suffix
from slackbot.orchestrator import EnvironmentOrchestrator
from slackbot.policy import Policy
from slackbot.recent import RecentKeys
from slackbot.replies import Links, Reply
from slackbot.retention import RecordRetention
from slackbot.roots import RootKeeper
from slackbot.spec import Actor
from slackbot.usecases import create, deploy, destroy, extend, listing, status
from slackbot.usecases.common import Intake, Invocation, Services, Source
from slackbot.view import EnvironmentView

DUPLICATE_WINDOW = 300.0  # Slack's signature window: a replay older than this fails verification anyway


class EnvBot:
    def __init__(
        self,
        orchestrator: EnvironmentOrchestrator,
        policy: Policy | None = None,
        clock: Clock = utc_now,
        groups: GroupDirectory | None = None,
        audit: AuditLog | None = None,
        suffix: RandomSuffix = random_suffix,
        argo_ui_url: str | None = None,
        view_refresh: float = 0.0,
        channels: ChannelDirectory | None = None,
        announcer: Announcer | None = None,
    ) -> None:
        policy = policy or Policy()
        self.services = Services(
            orchestrator=orchestrator,
            policy=policy,
            clock=clock,
            groups=groups or NoGroups(),
            audit=audit or AuditLog(),
            suffix=suffix,
            history=HistoryReader(orchestrator),
            links=Links(argo_ui_url, orchestrator.namespace),
            retention=RecordRetention(orchestrator, policy),
            view=EnvironmentView(orchestrator, view_refresh),
            channels=channels or NoChannels(),
            announcer=announcer,
        )
        self._seen = RecentKeys(DUPLICATE_WINDOW)
        # Environments' channel messages the plane leaves alone (notices off) are kept by the bot, from
        # the view's refreshes (slackbot/roots.py, docs/adr/0009).
        self.roots: RootKeeper | None = None
        if announcer is not None and self.services.view.enabled:
            self.roots = RootKeeper(announcer, self.services.buttons, clock)
            self.services.view.watch(self.roots.observe)

    @property
    def policy(self) -> Policy:
        return self.services.policy

    def receive(
        self,
        text: str,
        actor: Actor,
        *,
        key: str | None = None,
        source: Source = "command",
        request: str | None = None,
        incarnation: str | None = None,
    ) -> Intake:
        """Decide what to answer now and what to do next. `key` identifies the request (Slack's
        trigger_id, or a button on a message): a second arrival of the same key runs nothing here.
        `request` is Slack's id of the request (its trigger_id): the execution plane runs it at most
        once whichever replica or restart receives it again (docs/adr/0011). `incarnation` is the
        environment a clicked message was about (its create workflow)."""
        invocation = Invocation(
            text=text, actor=actor, received_at=self.services.clock(), source=source,
            request=request_key(request) if request else None, incarnation=incarnation,
        )  # fmt: skip
        if key is not None and not self._seen.first(key):
            metrics.DUPLICATES.inc()
            self.services.record(invocation, None, "duplicate")
            return Intake(replies.DUPLICATE)
        intake = self._route(invocation)
        if key is not None and source == "button":
            # A click that submitted nothing (refused, failed) may be clicked again; a double click may not.
            if intake.work is None:
                self._seen.forget(key)
            else:
                intake = _forget_unless_submitted(intake, key, self._seen)
        return intake

    def handle(self, text: str, actor: Actor) -> list[Reply]:
        """Receive and run to completion in the caller's thread (the console's way)."""
        intake = self.receive(text, actor)
        return [intake.ack] if intake.work is None else [intake.ack, intake.work()]

    def _route(self, invocation: Invocation) -> Intake:
        action = None
        try:
            command: Command = parse(invocation.text)
            action = command.action
            if isinstance(command, HelpCommand):
                self.services.record(invocation, action, "help")
                return Intake(self._help())
            self.policy.check_channel(invocation.actor.channel_id)
            return self._plan(invocation, command)
        except UsageError as error:
            self.services.record(invocation, action, "invalid", reason=error.user_message)
            return Intake(replies.usage_error(error))
        except PolicyDenied as error:
            self.services.record(invocation, action, "refused", reason=error.user_message)
            return Intake(replies.refused(error))

    def _plan(self, invocation: Invocation, command: Command) -> Intake:
        if isinstance(command, CreateCommand):
            return create.plan(self.services, invocation, command)
        if isinstance(command, DeployCommand):
            return deploy.plan(self.services, invocation, command)
        if isinstance(command, DestroyCommand):
            return destroy.plan(self.services, invocation, command)
        if isinstance(command, ExtendCommand):
            return extend.plan(self.services, invocation, command)
        if isinstance(command, ListCommand):
            return listing.plan(self.services, invocation, command)
        if isinstance(command, StatusCommand):
            return status.plan(self.services, invocation, command)
        raise AssertionError(f"unrouted command {command!r}")

    def _help(self) -> Reply:
        ttl = self.policy.ttl
        bounds = (
            f"between {format_duration(ttl.min)} and {format_duration(ttl.max)}, default "
            f"{format_duration(ttl.default)}; extensions up to {format_duration(ttl.lifetime)} after creation"
        )
        if self.policy.services is None:
            return replies.help_text(bounds, None)
        lines = []
        for name, rules in sorted(self.policy.services.items()):
            facts = []
            if rules.default_ttl:
                facts.append(f"default {format_duration(rules.default_ttl)}")
            if rules.max_ttl:
                facts.append(f"max {format_duration(rules.max_ttl)}")
            if rules.channels is not None:
                facts.append("only in " + ", ".join(f"<#{c}>" for c in rules.channels))
            about = f": {rules.description}" if rules.description else ""
            lines.append(f"• `{name}`{about}" + (f" ({'; '.join(facts)})" if facts else ""))
        return replies.help_text(bounds, lines)


def _forget_unless_submitted(intake: Intake, key: str, seen: RecentKeys) -> Intake:
    work = intake.work
    assert work is not None

    def run() -> Reply:
        reply = work()
        if not reply.submitted:
            seen.forget(key)
        return reply

    return Intake(ack=intake.ack, work=run, keys=intake.keys)
