"""Issue 18: ARGO_ENV_PASSTHROUGH gives argo's login plugins their cloud's variables, never Slack's secrets."""

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from slackbot.argo_cli.passthrough import Passthrough
from tests.conftest import BOT_TOKEN, SIGNING_SECRET, FakeArgo

CLOUDS = {
    "AWS_PROFILE": "dev",
    "AWS_REGION": "eu-west-1",
    "AWS_WEB_IDENTITY_TOKEN_FILE": "/var/run/secrets/eks/token",
    "GOOGLE_APPLICATION_CREDENTIALS": "/var/run/gcp/key.json",
    "CLOUDSDK_CONFIG": "/tmp/gcloud",
    "AZURE_CONFIG_DIR": "/tmp/azure",
    "AAD_SERVICE_PRINCIPAL_CLIENT_ID": "id",
}


def test_argo_gets_the_listed_names_and_prefixes_and_never_slacks_secrets(
    http_bot_factory: Any, fake_argo: FakeArgo, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in CLOUDS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AZURE_CLIENT_SECRET", "not listed")
    monkeypatch.setenv("SLACK_BOT_TOKEN", BOT_TOKEN)
    monkeypatch.setenv("SLACK_SIGNING_SECRET", SIGNING_SECRET)
    monkeypatch.setenv("ENVBOT_AUDIT_FILE", "/dev/null")
    bot = http_bot_factory(
        argo_env_passthrough="AWS_*, GOOGLE_APPLICATION_CREDENTIALS,CLOUDSDK_*,AZURE_CONFIG_DIR,AAD_*"
    )
    _, path = bot.command("create checkout name=cloudy")
    assert bot.reply(path)["response_type"] == "in_channel"
    got = set().union(*fake_argo.envs())
    assert set(CLOUDS) <= got
    assert "AZURE_CLIENT_SECRET" not in got
    assert not {name for name in got if name.startswith(("SLACK_", "ENVBOT_"))}


@pytest.mark.parametrize("value", ["SLACK_*", "SLACK_BOT_TOKEN", "SL*", "S*", "*", "slack_bot_token", "ENVBOT_*",
                                   "AWS_*,SLACK_APP_TOKEN", "AWS PROFILE"])  # fmt: skip
def test_a_passthrough_that_could_reach_slacks_secrets_is_refused(value: str) -> None:
    with pytest.raises(ValueError, match=r"would pass Slack|too broad|not a variable name"):
        Passthrough.parse(value)


def test_even_a_broad_prefix_drops_slack_and_envbot_settings() -> None:
    allowed = Passthrough.parse("AR*")
    assert allowed.allows("ARM_TENANT_ID", frozenset())
    assert not allowed.allows("ARGO_BIN", frozenset({"ARGO_BIN"}))
    assert not Passthrough(prefixes=("S",)).allows("SLACK_SIGNING_SECRET", frozenset())


def test_start_up_names_the_entry_that_may_not_pass(tmp_path: Path) -> None:
    env = {**os.environ, "SLACK_BOT_TOKEN": BOT_TOKEN, "ARGO_ENV_PASSTHROUGH": "AWS_*,SLACK_*"}
    result = subprocess.run([sys.executable, "-m", "slackbot", "console", "help"], env=env, cwd=tmp_path,
                            capture_output=True, text=True, timeout=60)  # fmt: skip
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "ARGO_ENV_PASSTHROUGH" in result.stderr and "'SLACK_*' would pass Slack's secrets" in result.stderr
