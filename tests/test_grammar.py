"""Unit tests for the command grammar, names, TTL parsing and expires_at under a frozen clock."""

from datetime import UTC, datetime, timedelta

import pytest
from freezegun import freeze_time

from slackbot.argo_cli import ArgoCliOrchestrator, DryRunRunner
from slackbot.bot import EnvBot
from slackbot.commands import (
    CreateCommand,
    DeployCommand,
    DestroyCommand,
    ExtendCommand,
    HelpCommand,
    ListCommand,
    StatusCommand,
    Target,
    parse,
)
from slackbot.durations import format_duration, parse_duration
from slackbot.errors import UsageError
from slackbot.names import derive_env_name, is_dns_label, reserved_reason
from slackbot.spec import Actor, EnvironmentSpec


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30m", timedelta(minutes=30)),
        ("4h", timedelta(hours=4)),
        ("90m", timedelta(minutes=90)),
        ("2h30m", timedelta(hours=2, minutes=30)),
        ("1d", timedelta(days=1)),
        ("1d12h", timedelta(days=1, hours=12)),
        ("4H", timedelta(hours=4)),
    ],
)
def test_durations(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "4", "h", "4x", "30m4h", "1.5h", "-4h", "4h 30m", "1w"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError, match="is not a duration"):
        parse_duration(text)


@pytest.mark.parametrize("text", ["0m", "0h", "0d", "00m", "0d0h0m"])
def test_zero_is_never_a_duration(text: str) -> None:
    with pytest.raises(ValueError, match="is zero"):
        parse_duration(text)
    with pytest.raises(UsageError, match=f"ttl: `{text}` is zero"):
        parse(f"create checkout ttl={text}")


def test_duration_round_trip() -> None:
    assert format_duration(parse_duration("90m")) == "1h30m"
    assert format_duration(timedelta(days=1, hours=12)) == "1d12h"


def test_parse_create_with_options() -> None:
    assert parse("create checkout ttl=2h30m name=co-demo") == CreateCommand(
        service="checkout", ttl=timedelta(hours=2, minutes=30), name="co-demo"
    )
    assert parse("  CREATE   checkout  ") == CreateCommand(service="checkout")


def test_parse_list_status_and_extend() -> None:
    assert parse("list") == ListCommand()
    assert parse("LIST all") == ListCommand(scope="all")
    assert parse("list <@U123ABC|alice>") == ListCommand(scope="user", user_id="U123ABC")
    assert parse("list <@W0GRID>") == ListCommand(scope="user", user_id="W0GRID")
    assert parse("list <#C0DEV|dev-team>") == ListCommand(scope="channel", channel_id="C0DEV")
    assert parse("status co-demo") == StatusCommand(env_name="co-demo")
    assert parse("extend co-demo") == ExtendCommand(env_name="co-demo")
    assert parse("extend co-demo ttl=1d") == ExtendCommand(env_name="co-demo", ttl=timedelta(days=1))


def test_parse_destroy_and_help() -> None:
    assert parse("destroy co-demo") == DestroyCommand(env_name="co-demo")
    assert parse("") == HelpCommand()
    assert parse("help") == HelpCommand()
    assert parse("help create") == HelpCommand()


@pytest.mark.parametrize(
    ("text", "message", "topic"),
    [
        ("rollback checkout", "I don't know the command `rollback`", None),
        ("destory checkout", "Did you mean `destroy`?", None),
        ("create", "Tell me which service", "create"),
        ("create a b", "Unexpected `b`", "create"),
        ("create checkout ttl=", "`ttl=` needs a value", "create"),
        ("create checkout ttl=1h ttl=2h", "given twice", "create"),
        ("create checkout size=xl", "Known options: `name=`, `pr=`, `ref=`, `ttl=`, `version=`", "create"),
        # What to deploy is data: a tag, a git ref or a number, one of them (docs/adr/0008).
        ("create checkout version=1.4;2", "`;` is not allowed", None),
        ("create checkout version=-rc1", "version must be an image tag", "create"),
        ("create checkout version=" + "1" * 129, "version must be an image tag", "create"),
        ("create checkout ref=feature..x", "ref must be a git branch", "create"),
        ("create checkout ref=feature/", "ref must be a git branch", "create"),
        ("create checkout ref=x.lock", "ref must be a git branch", "create"),
        ("create checkout pr=0", "pr must be a pull request number", "create"),
        ("create checkout pr=12a", "pr must be a pull request number", "create"),
        ("create checkout version=1 ref=main", "at most one of `version=`, `ref=` and `pr=`", "create"),
        ("deploy", "Tell me which environment", "deploy"),
        ("deploy co-demo ttl=1h", "`ttl=` is not an option of `deploy`", "deploy"),
        ("deploy co-demo version=1.0:latest", "version must be an image tag", "deploy"),
        ("create checkout ttk=1h", "Did you mean `ttl`?", "create"),
        ("create 9lives", "is not valid", "create"),
        ("create checkout-", "is not valid", "create"),
        ("create " + "a" * 64, "at most 63 characters", "create"),
        ("create check_out", "is not valid", "create"),
        ("create checkout name=Demo", "Did you mean `demo`?", "create"),
        ("destroy a b", "takes one environment", "destroy"),
        ("destroy x ttl=1h", "not an option of `destroy`", "destroy"),
        ("create checkout | sh", "`|` is not allowed", None),
        ("create `id`", "is not allowed", None),
        ("create checkout &amp;&amp; reboot", "`&` is not allowed", None),
        ("create {{workflow.name}}", "`{` is not allowed", None),
        ("create check\x00out", "control character", None),
        ("create checkout ttl=4h\u00a0", "U+00A0", None),
        ("create checkout \u201cname=x\u201d", "curled a quote", None),
        ("x" * 401, "the limit is 400", None),
        ("create checkout ttl 4h", "Did you mean `ttl=4h`?", "create"),
        ("extend co-demo TTL 2h", "Did you mean `ttl=2h`?", "extend"),
        ("extend", "Tell me which environment", "extend"),
        ("status a b", "takes one environment", "status"),
        ("list everyone", "`everyone` is not something I can list by", "list"),
        ("list @alice", "pick them from Slack's autocomplete", None),
        ("list <@u1|x>", "`<` is not allowed", None),
        ("list a b", "Unexpected `b`", "list"),
        ("extend co-demo name=x", "`name=` is not an option of `extend`", "extend"),
    ],
)
def test_usage_errors(text: str, message: str, topic: str | None) -> None:
    with pytest.raises(UsageError) as caught:
        parse(text)
    assert message in caught.value.user_message
    assert caught.value.topic == topic


def test_names() -> None:
    assert is_dns_label("a") and is_dns_label("checkout-2") and is_dns_label("a" * 63)
    assert not any(is_dns_label(n) for n in ("", "1a", "a-", "A", "a.b", "a" * 64, "a_b"))
    assert reserved_reason("default") and reserved_reason("kube-system") and reserved_reason("kube-anything")
    assert reserved_reason("extra", ["extra"])
    assert reserved_reason("checkout") is None


def test_derived_name_stays_a_label_for_long_services() -> None:
    name = derive_env_name("s" * 63, lambda: "abcde")
    assert len(name) == 63 and is_dns_label(name) and name.endswith("-abcde")
    assert derive_env_name("checkout", lambda: "x7k2p") == "checkout-x7k2p"


def test_spec_rejects_invalid_values() -> None:
    moment = datetime(2026, 11, 28, 15, tzinfo=UTC)
    with pytest.raises(ValueError):
        EnvironmentSpec(env_name="Bad", service="checkout", expires_at=moment)
    with pytest.raises(ValueError):
        EnvironmentSpec(env_name="ok", service="checkout", expires_at=moment.replace(tzinfo=None))
    with pytest.raises(ValueError):
        EnvironmentSpec(env_name="ok", service="checkout", expires_at=moment, requested_by="u1; rm")


@freeze_time("2026-11-28T11:00:00.750Z")
def test_expires_at_is_now_plus_ttl_in_whole_utc_seconds() -> None:
    runner = DryRunRunner()
    bot = EnvBot(ArgoCliOrchestrator("argo", "argo", 5, runner), suffix=lambda: "abcde")
    replies = bot.handle("create checkout ttl=4h", Actor(user_id="U1A", channel_id="C1A"))
    submit = next(argv for argv in runner.argvs if "submit" in argv)
    assert "expires_at=2026-11-28T15:00:00Z" in submit
    assert "env_name=checkout-abcde" in submit
    assert "|2026-11-28 15:00 UTC>" in replies[-1].text


@freeze_time("2026-11-28T23:50:00Z")
def test_default_ttl_crosses_midnight() -> None:
    runner = DryRunRunner()
    bot = EnvBot(ArgoCliOrchestrator("argo", "argo", 5, runner), suffix=lambda: "abcde")
    bot.handle("create checkout", Actor(user_id="U1A"))
    submit = next(argv for argv in runner.argvs if "submit" in argv)
    assert "expires_at=2026-11-29T03:50:00Z" in submit
    assert not any(arg.startswith("slack_channel=") for arg in submit)


@pytest.mark.parametrize(
    ("text", "target"),
    [
        ("create checkout version=1.4.2", Target(version="1.4.2")),
        ("create checkout ref=feature/x-1", Target(ref="feature/x-1")),
        ("create checkout pr=123 ttl=4h", Target(pr="123")),
        ("create checkout", Target()),
    ],
)
def test_create_takes_what_to_deploy(text: str, target: Target) -> None:
    command = parse(text)
    assert isinstance(command, CreateCommand) and command.target == target


def test_deploy_names_the_environment_and_what_to_deploy() -> None:
    assert parse("deploy co-demo version=2.0.1") == DeployCommand(env_name="co-demo", target=Target(version="2.0.1"))
    assert parse("deploy co-demo") == DeployCommand(env_name="co-demo")
