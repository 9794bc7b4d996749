"""`envbot serve | console | check`."""

import argparse
import io
import logging
import signal
import sys
from collections.abc import Sequence
from types import FrameType

from pydantic import ValidationError

from slackbot import __version__, console
from slackbot.argo_cli import DryRunRunner, run_process
from slackbot.audit import AuditLog
from slackbot.errors import ConfigError, EnvbotError
from slackbot.policy import load_policy
from slackbot.settings import Settings, load_settings
from slackbot.spec import Actor
from slackbot.wiring import build_bot, build_orchestrator


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = load_settings()
        logging.basicConfig(
            level=settings.log_level, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
        )
        return int(args.run(args, settings))
    except ConfigError as error:
        print(f"envbot: {error.user_message}", file=sys.stderr)
        return 2


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    from slackbot.slack.runtime import Runtime  # imported here so the console starts without Slack wiring

    mode = args.mode or settings.default_mode
    runtime = Runtime(settings, mode, port=args.port)

    def stop(signum: int, frame: FrameType | None) -> None:
        runtime.request_stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    runtime.start()
    runtime.wait()
    runtime.stop()
    return 0


def _console(args: argparse.Namespace, settings: Settings) -> int:
    dry_run = DryRunRunner() if args.dry_run else None
    # On a terminal, audit records and INFO logs would drown the replies: only when asked for.
    audit = AuditLog(path=settings.envbot_audit_file, stream=sys.stderr if args.audit else io.StringIO())
    bot = build_bot(settings, runner=dry_run or run_process, audit=audit)
    if settings.log_level != "DEBUG":
        logging.getLogger().setLevel(logging.WARNING)
    try:
        actor = Actor(user_id=args.user, channel_id=args.channel)
    except ValidationError:
        raise ConfigError("--user and --channel take Slack ids such as U123ABC and C123ABC") from None
    console.run(bot, actor, console.input_lines(args.lines), sys.stdout, dry_run)
    return 0


def _check(args: argparse.Namespace, settings: Settings) -> int:
    policy = load_policy(settings.envbot_policy)
    print(f"settings: ok (argo namespace {settings.argo_namespace}, timeout {settings.argo_timeout:g}s)")
    source = settings.envbot_policy or "built-in defaults"
    catalog = "any service" if policy.services is None else f"{len(policy.services)} services"
    print(f"policy: ok ({source}; {catalog}; quota {policy.quotas.per_user} per user)")
    mode = settings.default_mode
    missing = [name.upper() for name in settings.secrets_for(mode) if not settings.is_set(name)]
    print(f"slack: {mode} mode" + (f", missing {', '.join(missing)}" if missing else ", tokens present"))
    try:
        version = build_orchestrator(settings).version()
    except EnvbotError as error:
        print(f"argo: {error.user_message}")
        return 1
    print(f"argo: ok ({version})")
    return 1 if missing else 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="envbot", description="Short-lived Kubernetes environments from Slack.")
    parser.add_argument("--version", action="version", version=f"envbot {__version__}")
    commands = parser.add_subparsers(required=True, metavar="{serve,console,check}")

    serve = commands.add_parser("serve", help="run the Slack bot")
    serve.add_argument("--mode", choices=["socket", "http"], help="default: socket when SLACK_APP_TOKEN is set")
    serve.add_argument("--port", type=int, help="HTTP port (default: $PORT or 3000)")
    serve.set_defaults(run=_serve)

    con = commands.add_parser("console", help="type /env commands locally, no Slack needed")
    con.add_argument("lines", nargs="*", help="commands to run; default: read stdin (interactive on a terminal)")
    con.add_argument("--dry-run", action="store_true", help="print the argo command lines instead of running them")
    con.add_argument("--audit", action="store_true", help="also print audit records on stderr")
    con.add_argument("--user", default="UCONSOLE", help="Slack user id to act as (default UCONSOLE)")
    con.add_argument("--channel", default="CCONSOLE", help="Slack channel id to act in (default CCONSOLE)")
    con.set_defaults(run=_console)

    check = commands.add_parser("check", help="validate settings, policy and the argo CLI, then exit")
    check.set_defaults(run=_check)
    return parser
