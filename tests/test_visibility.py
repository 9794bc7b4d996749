"""Issue 18: visibility follows Slack's. Environments from private channels and DMs stay private."""

from pathlib import Path
from typing import Any

from tests.conftest import FakeArgo, HttpBot
from tests.fakes.slack_api import FakeSlack

ALICE, CAROL, MALLORY, ADMIN = "U0ALICE1", "U0CAROL1", "U0MALLORY", "U0ADMIN1"
PUBLIC, PRIVATE_G, PRIVATE_C, DM = "C0PUBLIC1", "G0PRIVATE", "C0SECRET1", "D0ALICE01"
ENVS = {"pub-env": PUBLIC, "grp-env": PRIVATE_G, "sec-env": PRIVATE_C, "dm-env": DM}


def listed(bot: HttpBot, text: str, user: str, channel: str = PUBLIC) -> set[str]:
    _, path = bot.command(text, user=user, channel=channel)
    reply = bot.reply(path)["text"]
    return {name for name in ENVS if f"`{name}`" in reply}


def start(http_bot_factory: Any, fake_slack: FakeSlack, tmp_path: Path) -> HttpBot:
    policy = tmp_path / "policy.yaml"
    policy.write_text(f"admins: [{ADMIN}]\n")
    fake_slack.private_channels = {PRIVATE_G: [ALICE, CAROL, "UBOT"], PRIVATE_C: [ALICE, "UBOT"]}
    bot: HttpBot = http_bot_factory(envbot_policy=policy)
    for name, channel in ENVS.items():
        _, path = bot.command(f"create checkout name={name}", user=ALICE, channel=channel)
        assert bot.reply(path)["response_type"] == "in_channel"
    return bot


def test_private_environments_are_listed_only_to_those_who_may_see_them(
    http_bot_factory: Any, fake_argo: FakeArgo, fake_slack: FakeSlack, tmp_path: Path
) -> None:
    bot = start(http_bot_factory, fake_slack, tmp_path)
    assert listed(bot, "list all", MALLORY) == {"pub-env"}
    assert listed(bot, f"list <@{ALICE}>", MALLORY) == {"pub-env"}
    assert listed(bot, f"list <#{PRIVATE_G}>", MALLORY) == set()
    assert listed(bot, "list all", CAROL) == {"pub-env", "grp-env"}  # a member of that private channel
    assert listed(bot, "list all", ADMIN) == set(ENVS)
    assert listed(bot, "list", ALICE) == set(ENVS)  # the owner

    for name in ("grp-env", "sec-env", "dm-env"):
        _, path = bot.command(f"status {name}", user=MALLORY, channel=PUBLIC)
        answer = bot.reply(path)
        assert f"There is no environment called `{name}`" in answer["text"] and ALICE not in answer["text"]
    for command in ("destroy grp-env", "extend dm-env ttl=1h"):  # a refusal names no private owner either
        _, path = bot.command(command, user=MALLORY, channel=PUBLIC)
        answer = bot.reply(path)["text"]
        assert "There is no environment called" in answer and ALICE not in answer, answer
    assert not [s for s in fake_argo.submits() if "env-destroy-template" in s or "env-extend-template" in s]
    _, path = bot.command("status grp-env", user=CAROL, channel=PUBLIC)
    assert f"Owner <@{ALICE}>" in bot.reply(path)["text"]
    _, path = bot.command("status pub-env", user=MALLORY, channel=PUBLIC)
    assert f"Owner <@{ALICE}>" in bot.reply(path)["text"]


def test_when_slack_cant_say_a_channel_counts_as_private(
    http_bot_factory: Any, fake_argo: FakeArgo, fake_slack: FakeSlack, tmp_path: Path
) -> None:
    bot = start(http_bot_factory, fake_slack, tmp_path)
    fake_slack.fail("/api/conversations.info", 500, times=100)
    assert listed(bot, "list all", MALLORY) == set()
    assert listed(bot, "list all", ADMIN) == set(ENVS)
