"""A local console in the spirit of Errbot's text backend: `/env ...` lines in, readable replies out.

Each reply says where Slack would show it (only to you, or in the channel); buttons are listed
with the command that does the same. The exit status is 1 if any command was refused or failed,
so the console can be scripted.
"""

import contextlib
import re
import shlex
import sys
from collections.abc import Iterable, Iterator
from typing import TextIO

from slackbot.argo_cli import DryRunRunner
from slackbot.bot import EnvBot
from slackbot.replies import Reply
from slackbot.spec import Actor

PROMPT = "envbot> "
EXIT_WORDS = frozenset({"exit", "quit", "/exit", "/quit"})
_MRKDWN = [
    (re.compile(r"<!date\^\d+\^[^|>]*\|([^>]*)>"), r"\1"),
    (re.compile(r"<@([A-Z0-9]+)>"), r"@\1"),
    (re.compile(r"<#([A-Z0-9]+)>"), r"#\1"),
    (re.compile(r"<!subteam\^([A-Z0-9]+)>"), r"@\1"),
    (re.compile(r"<(https?://[^|>]+)\|([^>]+)>"), r"\2 (\1)"),
]


def plain_text(reply: Reply, channel: str | None = None) -> str:
    text = reply.text
    for pattern, replacement in _MRKDWN:
        text = pattern.sub(replacement, text)
    where = f"[posted in #{channel or 'the channel'}]" if reply.visibility == "in_channel" else "[only you see this]"
    lines = [f"{where} {text}"]
    if reply.buttons:
        shown = " ".join(f"[{b.label}{' (asks to confirm)' if b.confirm else ''}]" for b in reply.buttons)
        lines.append(f"  buttons: {shown}")
        lines.append("  (a click runs the same as typing, e.g. `/env " + reply.buttons[0].command + "`)")
    return "\n".join(lines)


def command_text(line: str) -> str | None:
    """`/env create x` or `create x` -> `create x`; None for lines to skip (blank, comments)."""
    line = line.strip()
    if not line or line.startswith("#"):
        return None
    if line == "/env" or line.startswith("/env "):
        return line[4:].strip()
    return line


def run(bot: EnvBot, actor: Actor, lines: Iterable[str], out: TextIO, dry_run: DryRunRunner | None) -> int:
    """Run each line; 0 if every command went through, 1 if any was refused or failed."""
    status = 0
    for line in lines:
        if line.strip().lower() in EXIT_WORDS:
            break
        text = command_text(line)
        if text is None:
            continue
        seen = len(dry_run.argvs) if dry_run else 0
        try:
            replies = bot.handle(text, actor)
        except KeyboardInterrupt:
            out.write("interrupted; the command may or may not have reached argo\n")
            status = 1
            continue
        if dry_run:
            for argv in dry_run.argvs[seen:]:
                out.write(f"$ {shlex.join(argv)}\n")
        for reply in replies:
            out.write(plain_text(reply, actor.channel_id) + "\n")
            status |= int(reply.problem)
        out.flush()
    return status


def interactive_lines(out: TextIO) -> Iterator[str]:
    """Lines typed at a terminal, with readline's editing and history. Ctrl-C drops the line; Ctrl-D ends."""
    with contextlib.suppress(ImportError):  # not every Python has it; plain input still works
        import readline  # noqa: F401 - importing it gives input() line editing and history
    while True:
        try:
            yield input(PROMPT)
        except KeyboardInterrupt:
            out.write("^C\n")
        except EOFError:
            out.write("\n")
            return


def input_lines(args: list[str], stdin: TextIO = sys.stdin, out: TextIO = sys.stdout) -> Iterable[str]:
    if args:
        return args
    return interactive_lines(out) if stdin.isatty() else stdin
