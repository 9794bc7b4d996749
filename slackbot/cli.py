"""`envbot serve | console | check`."""

import argparse
import io
import logging
import os
import signal
import sys
from collections.abc import Sequence
from types import FrameType
from typing import TYPE_CHECKING

from slackbot import __version__
from slackbot.errors import ConfigError
from slackbot.settings import Settings, load_settings

if TYPE_CHECKING:
    import threading

    from slackbot.groups import GroupDirectory
    from slackbot.slack.runtime import Runtime

# Each command imports what it needs when it runs: `serve` opens its port before Slack's SDK and the
# core are even loaded (docs/adr/0010).

# slack-sdk's WebClient formats a debug line with the whole request body on every call unless the
# level of its own logger (not an ancestor's) is above DEBUG, so that logger is named too.
LIBRARY_LOGGERS = ("slack_sdk", "slack_sdk.web.base_client", "slack_bolt", "urllib3")


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = load_settings()
        _configure_logging(settings.log_level, quiet=args.run is not _serve)
        return int(args.run(args, settings))
    except ConfigError as error:
        print(f"envbot: {error.user_message}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # `envbot console … | head -1`: the reader left; say nothing more.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def _configure_logging(level: str, quiet: bool) -> None:
    logging.basicConfig(level=level, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # Library chatter stays below envbot's own one-line errors unless DEBUG is asked for.
    for name in LIBRARY_LOGGERS:
        logging.getLogger(name).setLevel(logging.DEBUG if level == "DEBUG" else logging.CRITICAL)
    # waitress says when it hits HTTP_CONNECTION_LIMIT (worth seeing); its queue-depth notes are per request.
    logging.getLogger("waitress").setLevel(logging.WARNING)
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)
    if quiet and level != "DEBUG":
        logging.getLogger().setLevel(logging.WARNING)


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    import threading

    from slackbot.slack.server import listeners

    mode = args.mode or settings.default_mode
    settings.require(mode)
    stopping, signals, runtime = threading.Event(), 0, None
    hurry, second = threading.Event(), list[int]()  # set from the signal handler, which must not start threads itself

    def stop(signum: int, frame: FrameType | None) -> None:
        nonlocal signals
        signals += 1
        if signals > 1:  # a second signal: no more grace, but a last word to everyone whose command was taken
            from slackbot.argo_cli import CHILDREN

            if runtime is not None and signals == 2:
                second.append(128 + signum)  # a thread waiting for this gives the last words, then exits
                hurry.set()
                return
            CHILDREN.kill_all()
            os._exit(128 + signum)
        stopping.set()
        if runtime is not None:
            runtime.request_stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    servers = listeners(settings, args.port)  # open and answering "starting" from here on
    for server in servers:
        if server is not None:
            server.start()
    from slackbot.slack.runtime import Runtime

    runtime = Runtime(settings, mode, servers=servers)
    threading.Thread(target=_hurry, args=(hurry, second, runtime), name="envbot-second-signal", daemon=True).start()
    if stopping.is_set():  # a signal while it was being built
        runtime.request_stop()
    runtime.start()
    runtime.warm_up()
    runtime.wait()
    runtime.stop()
    return runtime.exit_code


def _hurry(second_signal: "threading.Event", code: list[int], runtime: "Runtime") -> None:
    second_signal.wait()
    try:
        runtime.hurry()
    finally:
        os._exit(code[0])


def _console(args: argparse.Namespace, settings: Settings) -> int:
    from pydantic import ValidationError

    from slackbot import console
    from slackbot.argo_cli import DryRunRunner
    from slackbot.audit import AuditLog, check_appendable
    from slackbot.spec import Actor
    from slackbot.wiring import build_bot

    dry_run = DryRunRunner() if args.dry_run else None
    if settings.envbot_audit_file is not None:
        check_appendable(settings.envbot_audit_file)
    # On a terminal, audit records would drown the replies: only when asked for.
    audit = AuditLog(path=settings.envbot_audit_file, stream=sys.stderr if args.audit else io.StringIO())
    bot = build_bot(settings, runner=dry_run, audit=audit, groups=_console_groups(settings))
    try:
        actor = Actor(user_id=args.user, channel_id=args.channel)
    except ValidationError:
        raise ConfigError("--user and --channel take Slack ids such as U123ABC and C123ABC") from None
    try:
        return console.run(bot, actor, console.input_lines(args.lines), sys.stdout, dry_run)
    except KeyboardInterrupt:
        print(file=sys.stderr)
        return 130


def _console_groups(settings: Settings) -> "GroupDirectory | None":
    """Run where the bot runs (its pod, with SLACK_BOT_TOKEN), on-call group members act as on-call;
    without a token nobody is in any group."""
    if not settings.secret("slack_bot_token"):
        return None
    from slackbot.slack.api import web_client  # Slack wiring loads only when there is a token to use
    from slackbot.slack.groups import SlackGroupDirectory

    return SlackGroupDirectory(web_client(settings), settings.group_cache_seconds)


def _check(args: argparse.Namespace, settings: Settings) -> int:
    from slackbot.checks import run_checks  # Slack and argo probes load only when asked for

    return run_checks(settings, sys.stdout)


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a port number") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{port} is not a port number (0-65535; 0 picks a free one)")
    return port


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="envbot", description="Short-lived Kubernetes environments from Slack.")
    parser.add_argument("--version", action="version", version=f"envbot {__version__}")
    commands = parser.add_subparsers(required=True, metavar="{serve,console,check}")

    serve = commands.add_parser("serve", help="run the Slack bot")
    serve.add_argument("--mode", choices=["socket", "http"], help="default: socket when SLACK_APP_TOKEN is set")
    serve.add_argument("--port", type=_port, help="HTTP port (default: $PORT or 3000)")
    serve.set_defaults(run=_serve)

    con = commands.add_parser("console", help="type /env commands locally, no Slack needed")
    con.add_argument("lines", nargs="*", help="commands to run; default: read stdin (interactive on a terminal)")
    con.add_argument("--dry-run", action="store_true", help="print the argo command lines instead of running them")
    con.add_argument("--audit", action="store_true", help="also print audit records on stderr")
    con.add_argument("--user", default="UCONSOLE", help="Slack user id to act as (default UCONSOLE)")
    con.add_argument("--channel", default="CCONSOLE", help="Slack channel id to act in (default CCONSOLE)")
    con.set_defaults(run=_console)

    check = commands.add_parser("check", help="prove settings, policy, Slack and argo work, then exit")
    check.set_defaults(run=_check)
    return parser
