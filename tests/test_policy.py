"""The policy model: valid and invalid files (each message checked), and the decisions it makes alone."""

import re
from datetime import timedelta
from pathlib import Path

import pytest

from slackbot.errors import ConfigError, PolicyDenied, UsageError
from slackbot.policy import Policy, ServicePolicy, load_policy
from tests.test_cli import envbot


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text(text)
    return path


def test_no_file_means_documented_defaults() -> None:
    policy = load_policy(None)
    assert policy.services is None and policy.admins == () and policy.oncall_groups == ()
    assert (policy.ttl.default, policy.ttl.min, policy.ttl.max) == (
        timedelta(hours=4),
        timedelta(minutes=15),
        timedelta(days=7),
    )
    assert policy.quotas.per_user == 10 and policy.quotas.per_channel is None and policy.channels is None


def test_a_full_file_loads(tmp_path: Path) -> None:
    policy = load_policy(
        write(
            tmp_path,
            """
ttl: {default: 2h, min: 30m, max: 3d}
services:
  checkout: {description: Checkout, default_ttl: 1h, max_ttl: 1d, channels: [C0DEV]}
  search: {}
admins: [U0ADMIN, W0GRIDADMIN]
oncall_groups: [S0ONCALL]
quotas: {per_user: 2, per_channel: 5}
channels: [C0DEV, G0PRIVATE]
reserved_names: [staging]
""",
        )
    )
    assert policy.ttl.max == timedelta(days=3)
    assert policy.services is not None and policy.services["checkout"].max_ttl == timedelta(days=1)
    assert policy.quotas.per_channel == 5 and policy.reserved_names == ("staging",)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("admin: [U1]", "admin: Extra inputs are not permitted"),
        ("ttl: {default: forever}", "ttl.default: 'forever' is not a duration"),
        ("ttl: {min: 2h, default: 1h}", "ttl: min (2h) is longer than default (1h)"),
        ("ttl: {max: 20d}", "ttl: max (20d) is longer than lifetime (14d)"),
        ("ttl: {min: 30s}", "ttl.min: '30s' is not a duration"),
        ("ttl: {default: 240}", "ttl.default: 240 is a bare number; write a duration with units, such as 240m or 4h"),
        ("notices: {warn_before: [1h, often]}", "notices.warn_before.1: 'often' is not a duration"),
        ("admins: [u123]", "admins.0: 'u123' is not a Slack id starting with one of U, W"),
        ("oncall_groups: [U123]", "oncall_groups.0: 'U123' is not a Slack id starting with one of S"),
        ("channels: [general]", "channels.0: 'general' is not a Slack id starting with one of C, G, D"),
        ("quotas: {per_user: 0}", "quotas.per_user: Input should be greater than or equal to 1"),
        ("services: {Checkout: {}}", "services.Checkout.[key]: Service name `Checkout` is not valid"),
        ("services: {checkout: {max_ttl: 30d}}", "services.checkout.max_ttl must lie within ttl.min..ttl.max"),
        ("services: {checkout: {default_ttl: 2d, max_ttl: 1d}}", "services.checkout.default_ttl is longer than"),
        ("services: {checkout: {colour: red}}", "services.checkout.colour: Extra inputs are not permitted"),
        ("reserved_names: [Prod]", "reserved_names.0: Environment name `Prod` is not valid"),
        ("[1, 2]", "line 1: the policy must be a mapping of settings, not list"),
        ("ttl: {default: 4h\n  min: [", "not valid YAML"),
    ],
)
def test_invalid_files_name_the_file_the_field_and_the_problem(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_policy(path)
    assert caught.value.user_message.startswith(f"{path}: ")
    assert message in caught.value.user_message


def test_errors_point_at_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, "# envbot policy\nttl:\n  default: 4h\nquotas:\n  per_user: 3\n  per_channel: 0\n")
    with pytest.raises(ConfigError) as caught:
        load_policy(path)
    assert caught.value.user_message == (
        f"{path}: line 6: quotas.per_channel: Input should be greater than or equal to 1"
    )
    broken = write(tmp_path, "ttl:\n  default: 4h\n   min: 15m\n")
    with pytest.raises(ConfigError, match=r"line 3: not valid YAML \(mapping values are not allowed here\)"):
        load_policy(broken)


def test_missing_and_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the policy file"):
        load_policy(tmp_path / "nope.yaml")
    latin1 = tmp_path / "latin1.yaml"
    latin1.write_bytes("services:\n  caf\xe9: {}\n".encode("latin-1"))
    with pytest.raises(ConfigError, match="not UTF-8 text"):
        load_policy(latin1)


def test_a_bad_policy_stops_start_up_and_fails_check(tmp_path: Path) -> None:
    path = write(tmp_path, "quotas: {per_user: -1}")
    problem = f"{path}: line 1: quotas.per_user: Input should be greater than or equal to 1"
    env = {"ENVBOT_POLICY": str(path), "SLACK_BOT_TOKEN": "xoxb-x", "SLACK_SIGNING_SECRET": "s"}
    for args in (("serve", "--mode", "http"), ("console", "help")):
        result = envbot(*args, env=env, cwd=tmp_path)
        assert result.returncode == 2, args
        assert result.stderr.strip() == f"envbot: {problem}"
    check = envbot(
        "check", env=env | {"SLACK_API_URL": "http://127.0.0.1:9/api/", "ARGO_BIN": "/nonexistent"}, cwd=tmp_path
    )
    assert check.returncode == 1
    assert f"policy: FAILED: {problem}" in check.stdout.splitlines()


CATALOG = Policy.model_validate(
    {
        "services": {"checkout": {"default_ttl": "1h", "max_ttl": "1d"}, "payments": {"channels": ["C0PAY"]}},
        "channels": ["C0DEV", "C0PAY"],
        "reserved_names": ["staging"],
    }
)


def test_catalog_refuses_unknown_services_with_a_suggestion() -> None:
    with pytest.raises(UsageError) as caught:
        CATALOG.service("chekout", "C0DEV")
    assert "`chekout` is not in the service catalog. Did you mean `checkout`?" in caught.value.user_message
    assert "Known services: `checkout`, `payments`." in caught.value.user_message


def test_service_channels_and_bot_channels() -> None:
    with pytest.raises(PolicyDenied, match="can only be requested in <#C0PAY>"):
        CATALOG.service("payments", "C0DEV")
    assert CATALOG.service("payments", "C0PAY") == ServicePolicy(channels=("C0PAY",))
    with pytest.raises(PolicyDenied, match=re.escape("not enabled in this channel. Use it in <#C0DEV> or <#C0PAY>")):
        CATALOG.check_channel("C0RANDOM")
    CATALOG.check_channel("C0DEV")


def test_service_ttl_defaults_and_limits() -> None:
    checkout = CATALOG.service("checkout", "C0DEV")
    assert CATALOG.resolve_ttl(checkout, None) == timedelta(hours=1)
    assert CATALOG.resolve_ttl(checkout, timedelta(hours=20)) == timedelta(hours=20)
    with pytest.raises(UsageError, match="choose between 15m and 1d"):
        CATALOG.resolve_ttl(checkout, timedelta(days=2))
    payments = CATALOG.service("payments", "C0PAY")
    assert CATALOG.resolve_ttl(payments, None) == timedelta(hours=4)


def test_extra_reserved_names() -> None:
    with pytest.raises(UsageError, match="`staging` is a system or reserved namespace"):
        CATALOG.check_env_name("staging", "argo")
    with pytest.raises(UsageError, match="`workflows` is a system or reserved namespace"):
        CATALOG.check_env_name("workflows", "workflows")
    CATALOG.check_env_name("checkout-1", "argo")


def test_help_shows_the_policy_in_force(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "ttl: {default: 2h, max: 1d}\nservices:\n  search: {}\n"
        "  checkout: {description: Checkout API with its Postgres, max_ttl: 12h, channels: [C0DEV, C0QA]}\n",
    )
    result = envbot("console", "help", env={"ENVBOT_POLICY": str(path)}, cwd=tmp_path)
    assert "between 15m and 1d, default 2h" in result.stdout
    lines = result.stdout.splitlines()
    assert "• `checkout`: Checkout API with its Postgres (max 12h; only in #C0DEV, #C0QA)" in lines
    assert "• `search`" in lines
    default = envbot("console", "help", cwd=tmp_path)
    assert "between 15m and 7d, default 4h" in default.stdout and "*Services*" not in default.stdout
