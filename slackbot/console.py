"""A local console in the spirit of Errbot's text backend: `/env ...` lines in, readable replies out."""

import re
import shlex
import sys
from collections.abc import Iterable
from typing import TextIO

from slackbot.argo_cli import DryRunRunner
from slackbot.bot import EnvBot
from slackbot.replies import Reply
from slackbot.spec import Actor

PROMPT = "envbot> "
_MRKDWN = [
    (re.compile(r"<!date\^\d+\^[^|>]*\|([^>]*)>"), r"\1"),
    (re.compile(r"<@([A-Z0-9]+)>"), r"@\1"),
    (re.compile(r"<#([A-Z0-9]+)>"), r"#\1"),
    (re.compile(r"<!subteam\^([A-Z0-9]+)>"), r"@\1"),
]


def plain_text(reply: Reply) -> str:
    text = reply.text
    for pattern, replacement in _MRKDWN:
        text = pattern.sub(replacement, text)
    where = "[visible to the channel]" if reply.visibility == "in_channel" else "[only you]"
    return f"{where} {text}"


def command_text(line: str) -> str | None:
    """`/env create x` or `create x` -> `create x`; None for lines to skip (blank, comments)."""
    line = line.strip()
    if not line or line.startswith("#"):
        return None
    if line == "/env" or line.startswith("/env "):
        return line[4:].strip()
    return line


def run(bot: EnvBot, actor: Actor, lines: Iterable[str], out: TextIO, dry_run: DryRunRunner | None) -> None:
    for line in lines:
        text = command_text(line)
        if text is None:
            continue
        seen = len(dry_run.argvs) if dry_run else 0
        replies = bot.handle(text, actor)
        if dry_run:
            for argv in dry_run.argvs[seen:]:
                out.write(f"$ {shlex.join(argv)}\n")
        for reply in replies:
            out.write(plain_text(reply) + "\n")
        out.flush()


def interactive_lines(stdin: TextIO, out: TextIO) -> Iterable[str]:
    while True:
        out.write(PROMPT)
        out.flush()
        line = stdin.readline()
        if not line or line.strip() in ("exit", "quit"):
            return
        yield line


def input_lines(args: list[str], stdin: TextIO = sys.stdin, out: TextIO = sys.stdout) -> Iterable[str]:
    if args:
        return args
    return interactive_lines(stdin, out) if stdin.isatty() else stdin
