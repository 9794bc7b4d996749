"""The `/env` grammar: command text in, a typed command (or a UsageError) out. No I/O here."""

import difflib
import html
import itertools
import re
import unicodedata
from collections.abc import Callable, Iterable
from datetime import timedelta
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, ValidationError

from slackbot.durations import parse_duration
from slackbot.errors import UsageError
from slackbot.names import check_label

MAX_TEXT = 400
# Slack token shapes (bot, user, app-level, refresh, config); people paste them by mistake.
_TOKEN = re.compile(r"x(?:ox[abpeor]|app)-[A-Za-z0-9-]+", re.IGNORECASE)
# With "escape channels, users and links" on, Slack sends mentions as <@U123|name> and <#C123|name>.
_MENTION = re.compile(r"<(?P<kind>[@#])(?P<id>[A-Z][A-Z0-9]{1,31})(?:\|[^<>]{0,100})?>")
SHELL_CHARACTERS = frozenset(";|&$`<>(){}[]\\'\"*?!#~^%,@")

USAGE = {
    "create": "/env create <service> [version=<tag> | ref=<branch> | pr=<number>] [ttl=<duration>] [name=<env-name>]",
    "deploy": "/env deploy <env-name> [version=<tag> | ref=<branch> | pr=<number>]",
    "list": "/env list [all | @person | #channel]",
    "status": "/env status <env-name>",
    "extend": "/env extend <env-name> [ttl=<duration>]",
    "destroy": "/env destroy <env-name>",
    "help": "/env help",
}

ServiceName = Annotated[str, AfterValidator(lambda v: check_label("Service name", v))]
EnvName = Annotated[str, AfterValidator(lambda v: check_label("Environment name", v))]


class _Command(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class HelpCommand(_Command):
    action: Literal["help"] = "help"


# What to deploy, as data (docs/adr/0008): an image tag, a git ref or a pull request number. The
# execution plane checks the same grammars again (argo/config/envbot-deploy.yaml).
_VERSION = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
_REF = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_./-]{0,199}")
_PR = re.compile(r"[1-9][0-9]{0,8}")


def _check_version(value: str | None) -> str | None:
    if value is not None and not _VERSION.fullmatch(value):
        raise ValueError("version must be an image tag: letters, digits, `_`, `.` and `-` (at most 128)")
    return value


def _check_ref(value: str | None) -> str | None:
    if value is None:
        return value
    bad = ("..", "//", "/.", "@{")
    if not _REF.fullmatch(value) or any(b in value for b in bad) or value.endswith(("/", ".lock")):
        raise ValueError("ref must be a git branch, tag or commit: letters, digits, `_`, `.`, `/` and `-`")
    return value


def _check_pr(value: str | None) -> str | None:
    if value is not None and not _PR.fullmatch(value):
        raise ValueError("pr must be a pull request number such as `123`")
    return value


class Target(_Command):
    """What to deploy: at most one of version, ref and pr; none means the recipe's defaults."""

    version: Annotated[str | None, AfterValidator(_check_version)] = None
    ref: Annotated[str | None, AfterValidator(_check_ref)] = None
    pr: Annotated[str | None, AfterValidator(_check_pr)] = None

    def model_post_init(self, _context: object) -> None:
        if sum(v is not None for v in (self.version, self.ref, self.pr)) > 1:
            raise ValueError("give at most one of `version=`, `ref=` and `pr=`")

    @property
    def text(self) -> str:
        """How replies name it: `1.4.2`, `ref feature-x`, `PR 123`, or the recipe's default."""
        if self.version:
            return self.version
        if self.ref:
            return f"ref {self.ref}"
        return f"PR {self.pr}" if self.pr else "the recipe's default"


class CreateCommand(_Command):
    action: Literal["create"] = "create"
    service: ServiceName
    ttl: timedelta | None = None
    name: EnvName | None = None
    target: Target = Target()


class DeployCommand(_Command):
    action: Literal["deploy"] = "deploy"
    env_name: EnvName
    target: Target = Target()


class DestroyCommand(_Command):
    action: Literal["destroy"] = "destroy"
    env_name: EnvName


class ExtendCommand(_Command):
    action: Literal["extend"] = "extend"
    env_name: EnvName
    ttl: timedelta | None = None


class StatusCommand(_Command):
    action: Literal["status"] = "status"
    env_name: EnvName


ListScope = Literal["mine", "all", "user", "channel"]


class ListCommand(_Command):
    action: Literal["list"] = "list"
    scope: ListScope = "mine"
    user_id: str | None = None
    channel_id: str | None = None


Command = HelpCommand | CreateCommand | DeployCommand | DestroyCommand | ExtendCommand | StatusCommand | ListCommand


def parse(text: str) -> Command:
    """Parse what followed `/env`. Raises UsageError with a message that says how to fix it."""
    words = _clean(text).split()
    if not words or words[0].lower() == "help":
        return HelpCommand()
    verb, args = words[0].lower(), words[1:]
    parser = _PARSERS.get(verb)
    if parser is None:
        raise UsageError(f"I don't know the command `{_shown(words[0])}`.{_did_you_mean(verb, _PARSERS)}")
    positional, options = _split(verb, args)
    return parser(positional, options)


def redact(text: str) -> str:
    """The command text with anything token-shaped blanked, for logs and audit records."""
    return _TOKEN.sub("[redacted]", text)


def _clean(text: str) -> str:
    if _TOKEN.search(text):
        raise UsageError("That looks like a Slack token, so I ran nothing. If it is real, revoke it now.")
    if len(text) > MAX_TEXT:
        raise UsageError(f"That command is {len(text)} characters long; the limit is {MAX_TEXT}.")
    # Mentions are Slack's own markup (typed `<` arrives escaped as &lt;), so they are read first.
    text = _MENTION.sub(lambda m: f" {'user' if m['kind'] == '@' else 'channel'}:{m['id']} ", text)
    # Slack escapes &, < and > in command text; undo that before judging characters.
    text = html.unescape(text)
    for char in text:
        if not char.isascii():
            raise UsageError(_non_ascii_message(char))
        if char in SHELL_CHARACTERS:
            raise UsageError(_special_character_message(char))
        if not char.isprintable() and char not in " \t\n\r":
            raise UsageError(f"The command contains the control character {ord(char):#04x}; retype it.")
    return text


def _special_character_message(char: str) -> str:
    if char in "@#":
        return (
            f"`{char}` is not allowed here. To name a person or channel, pick them from Slack's "
            "autocomplete so Slack sends a real mention."
        )
    return f"`{char}` is not allowed in a command. Names use only a-z, 0-9 and `-`, and options are written key=value."


def _non_ascii_message(char: str) -> str:
    name = unicodedata.name(char, "unnamed")
    hint = ""
    if unicodedata.category(char) == "Pd":
        hint = " Slack may have turned `--` into a dash; write options as key=value."
    elif unicodedata.category(char) in ("Pi", "Pf"):
        hint = " Slack may have curled a quote; envbot needs no quotes."
    return f"The command contains `{char}` ({name}, U+{ord(char):04X}); type it with plain ASCII.{hint}"


def _split(verb: str, args: list[str]) -> tuple[list[str], dict[str, str]]:
    known = _KEYS[verb]
    positional: list[str] = []
    options: dict[str, str] = {}
    for arg in args:
        if "=" not in arg:
            positional.append(arg)
            continue
        key, value = arg.split("=", 1)
        key = key.lower()
        if key not in known:
            listed = ", ".join(f"`{k}=`" for k in sorted(known)) or "none"
            raise UsageError(
                f"`{key}=` is not an option of `{verb}`.{_did_you_mean(key, known)} Known options: {listed}.",
                topic=verb,
            )
        if key in options:
            raise UsageError(f"`{key}=` is given twice; give it once.", topic=verb)
        if not value:
            raise UsageError(f"`{key}=` needs a value, for example `{key}={_EXAMPLES[key]}`.", topic=verb)
        options[key] = value
    return positional, options


def _one_positional(verb: str, what: str, positional: list[str]) -> str:
    if not positional:
        raise UsageError(f"Tell me which {what}.", topic=verb)
    if len(positional) > 1:
        extra = " ".join(f"`{p}`" for p in positional[1:])
        raise UsageError(
            f"Unexpected {extra}: `{verb}` takes one {what}; options are key=value.{_option_hint(verb, positional)}",
            topic=verb,
        )
    return positional[0]


def _option_hint(verb: str, positional: list[str]) -> str:
    """`ttl 4h` typed as two words: say how to write it."""
    for key, value in itertools.pairwise(positional):
        if key.lower() in _KEYS[verb]:
            return f" Did you mean `{key.lower()}={value}`?"
    return ""


def _parse_create(positional: list[str], options: dict[str, str]) -> CreateCommand:
    service = _name("Service name", _one_positional("create", "service", positional), "create")
    name = _name("Environment name", options["name"], "create") if "name" in options else None
    return CreateCommand(service=service, ttl=_ttl(options, "create"), name=name, target=_target(options, "create"))


def _parse_deploy(positional: list[str], options: dict[str, str]) -> DeployCommand:
    return DeployCommand(env_name=_env_name("deploy", positional), target=_target(options, "deploy"))


def _target(options: dict[str, str], topic: str) -> Target:
    try:
        return Target(version=options.get("version"), ref=options.get("ref"), pr=options.get("pr"))
    except ValidationError as exc:
        reason = str(exc.errors()[0]["msg"]).removeprefix("Value error, ")
        raise UsageError(f"{reason}.", topic=topic) from None
    except ValueError as exc:  # more than one given
        raise UsageError(f"{exc}.", topic=topic) from None


def _parse_destroy(positional: list[str], options: dict[str, str]) -> DestroyCommand:
    return DestroyCommand(env_name=_env_name("destroy", positional))


def _parse_extend(positional: list[str], options: dict[str, str]) -> ExtendCommand:
    return ExtendCommand(env_name=_env_name("extend", positional), ttl=_ttl(options, "extend"))


def _parse_status(positional: list[str], options: dict[str, str]) -> StatusCommand:
    return StatusCommand(env_name=_env_name("status", positional))


def _parse_list(positional: list[str], options: dict[str, str]) -> ListCommand:
    if not positional:
        return ListCommand()
    target = _one_positional("list", "person or channel", positional)
    kind, _, ident = target.partition(":")
    if target.lower() == "all":
        return ListCommand(scope="all")
    if kind == "user" and ident[:1] in "UW":
        return ListCommand(scope="user", user_id=ident)
    if kind == "channel" and ident[:1] in "CGD":
        return ListCommand(scope="channel", channel_id=ident)
    raise UsageError(
        f"`{_shown(target)}` is not something I can list by: use `all`, a person (@-mention) or a channel (#-mention).",
        topic="list",
    )


def _env_name(verb: str, positional: list[str]) -> str:
    return _name("Environment name", _one_positional(verb, "environment", positional), verb)


def _ttl(options: dict[str, str], topic: str) -> timedelta | None:
    if "ttl" not in options:
        return None
    try:
        return parse_duration(options["ttl"])
    except ValueError as exc:
        raise UsageError(f"ttl: {exc}.", topic=topic) from None


def _name(kind: str, value: str, topic: str) -> str:
    try:
        return check_label(kind, value)
    except ValueError as exc:
        lowered = value.lower()
        hint = f" Did you mean `{lowered}`?" if lowered != value and _valid(lowered) else ""
        raise UsageError(f"{exc}.{hint}", topic=topic) from None


def _valid(value: str) -> bool:
    try:
        check_label("", value)
    except ValueError:
        return False
    return True


def _did_you_mean(word: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f" Did you mean `{close[0]}`?" if close else ""


def _shown(word: str) -> str:
    return re.sub(r"[^a-zA-Z0-9_=.:-]", "?", word)[:40]


_Parser = Callable[[list[str], dict[str, str]], Command]
_PARSERS: dict[str, _Parser] = {
    "create": _parse_create,
    "deploy": _parse_deploy,
    "list": _parse_list,
    "status": _parse_status,
    "extend": _parse_extend,
    "destroy": _parse_destroy,
    "help": lambda *_: HelpCommand(),
}
_KEYS: dict[str, frozenset[str]] = {
    "create": frozenset({"ttl", "name", "version", "ref", "pr"}),
    "deploy": frozenset({"version", "ref", "pr"}),
    "extend": frozenset({"ttl"}),
    "list": frozenset(),
    "status": frozenset(),
    "destroy": frozenset(),
    "help": frozenset(),
}
_EXAMPLES = {"ttl": "4h", "name": "checkout-demo", "version": "1.4.2", "ref": "feature-x", "pr": "123"}
