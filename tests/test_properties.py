"""Property-based: whatever text arrives, the parser returns a valid command or a user-facing error,
and no invalid value ever reaches the argo argv."""

import re
import string

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from slackbot.argo_cli import ArgoCliOrchestrator, DryRunRunner
from slackbot.bot import EnvBot
from slackbot.commands import CreateCommand, DestroyCommand, HelpCommand, parse
from slackbot.errors import UsageError
from slackbot.names import is_dns_label
from slackbot.policy import Policy
from slackbot.spec import Actor

WORDS = [
    "create",
    "destroy",
    "help",
    "ttl=",
    "name=",
    "checkout",
    "kube-system",
    "default",
    "4h",
    "1d12h",
    "15m",
    "8d",
    "a",
    "-",
    "=",
    ";",
    "$(id)",
    "\n",
    "{{",
    "}}",
    ",",
    "ü",
    "\uff43",
    "\u2014",
    "A",
    "9",
]
tokens = st.lists(st.one_of(st.sampled_from(WORDS), st.text(string.ascii_lowercase + string.digits + "-=", max_size=8)))
texts = st.one_of(st.text(max_size=120), tokens.map(" ".join), tokens.map("".join))

INSTANT = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z")
SLACK_ID = re.compile(r"[A-Z][A-Z0-9]{1,31}")
LABEL_VALUE = re.compile(r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?")
POLICY = Policy()


@given(texts)
@settings(max_examples=400, deadline=None)
def test_parser_returns_a_valid_command_or_a_usage_error(text: str) -> None:
    try:
        command = parse(text)
    except UsageError as error:
        assert error.user_message and "Traceback" not in error.user_message
        return
    if isinstance(command, CreateCommand):
        assert is_dns_label(command.service) and len(command.service) <= 63
        assert command.name is None or is_dns_label(command.name)
        assert command.ttl is None or command.ttl.total_seconds() >= 0
    elif isinstance(command, DestroyCommand):
        assert is_dns_label(command.env_name)
    else:
        assert isinstance(command, HelpCommand)


@given(texts)
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_no_invalid_value_reaches_argo(text: str) -> None:
    runner = DryRunRunner()
    bot = EnvBot(ArgoCliOrchestrator("argo", "argo", 5, runner))
    bot.handle(text, Actor(user_id="U1AAA", channel_id="C1AAA"))
    for argv in runner.argvs:
        assert all(arg.isascii() and arg.isprintable() for arg in argv), argv
        for i, arg in enumerate(argv):
            if argv[i - 1] == "-p":
                key, value = arg.split("=", 1)
                check_parameter(key, value)
            if argv[i - 1] == "-l" and argv[1] == "submit":
                for term in arg.split(","):
                    key, value = term.split("=")
                    assert LABEL_VALUE.fullmatch(value), term
        if argv[1] == "submit":
            params = dict(argv[i + 1].split("=", 1) for i, a in enumerate(argv) if a == "-p")
            assert POLICY.check_env_name(params["env_name"], "argo") is None


def check_parameter(key: str, value: str) -> None:
    if key in ("env_name", "service"):
        assert is_dns_label(value), (key, value)
    elif key == "expires_at":
        assert INSTANT.fullmatch(value), value
    elif key in ("requested_by", "slack_channel"):
        assert SLACK_ID.fullmatch(value), value
    elif key == "latest_expiry":
        assert INSTANT.fullmatch(value), value
    elif key == "warn_before":
        assert re.fullmatch(r"[0-9]{1,7}(,[0-9]{1,7}){0,3}", value), value
    elif key == "extend_choices":
        assert re.fullmatch(r"[0-9dhm]{2,12}(,[0-9dhm]{2,12}){0,3}", value), value
    else:
        raise AssertionError(f"unexpected parameter {key}")
