"""Builds the core from settings: one place, shared by Slack, the console and `envbot check`."""

from slackbot.announce import Announcer
from slackbot.argo_cli import ArgoCliOrchestrator, ProcessRunner, Runner
from slackbot.argo_cli.passthrough import Passthrough
from slackbot.audit import AuditLog
from slackbot.bot import EnvBot
from slackbot.channels import ChannelDirectory
from slackbot.clock import Clock, utc_now
from slackbot.groups import GroupDirectory
from slackbot.policy import load_policy
from slackbot.settings import Settings


def build_orchestrator(settings: Settings, runner: Runner | None = None) -> ArgoCliOrchestrator:
    runner = runner or ProcessRunner(
        output_limit=settings.argo_output_limit * 1024 * 1024,
        passthrough=Passthrough.parse(settings.argo_env_passthrough),
    )
    return ArgoCliOrchestrator(
        settings.argo_bin, settings.argo_namespace, settings.argo_timeout, runner, settings.argo_previous_namespace
    )


def build_bot(
    settings: Settings,
    runner: Runner | None = None,
    groups: GroupDirectory | None = None,
    clock: Clock = utc_now,
    audit: AuditLog | None = None,
    channels: ChannelDirectory | None = None,
    announcer: Announcer | None = None,
) -> EnvBot:
    return EnvBot(
        orchestrator=build_orchestrator(settings, runner),
        policy=load_policy(settings.envbot_policy),
        clock=clock,
        groups=groups,
        audit=audit or AuditLog(path=settings.envbot_audit_file),
        argo_ui_url=str(settings.argo_ui_url) if settings.argo_ui_url else None,
        view_refresh=settings.env_view_refresh,
        channels=channels,
        announcer=announcer,
    )
