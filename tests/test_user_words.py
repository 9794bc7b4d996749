"""Replies in the user's words (issue 16, item 5): mentions keep their case, state words say what
happened, failed creates stay visible with notices off, status fits one Slack message. Over signed HTTP."""

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from slackbot.replies import Reply
from slackbot.slack.blocks import message
from tests.conftest import FakeArgo, HttpBot
from tests.test_environments import A, B, at, policy, run, workflow_named


@pytest.fixture
def bot(http_bot_factory: Any, fake_argo: FakeArgo, tmp_path: Path) -> HttpBot:
    fake_argo.configure(now=at(), phases={"env-create-template": "Succeeded"})
    started: HttpBot = http_bot_factory(envbot_policy=policy(tmp_path, quotas={"per_user": 50}))
    return started


def test_a_mention_is_acknowledged_with_its_case_intact(bot: HttpBot) -> None:
    ack, path = bot.command("list <@UBOB|bob>", user=A)
    assert ack.json()["text"] == ":mag: Looking up <@UBOB>'s environments…"
    bot.reply(path)


def test_finished_extend_and_destroy_read_as_extended_and_destroyed(bot: HttpBot, fake_argo: FakeArgo) -> None:
    run(bot, "create checkout ttl=1h name=words", user=A)
    run(bot, "extend words ttl=3h", user=A, when=timedelta(minutes=5))
    extend = workflow_named(fake_argo, "env-extend-template", "words")
    fake_argo.set_phase(extend, "Succeeded")
    listing = run(bot, "list", user=A, when=timedelta(minutes=6))
    assert listing["text"].splitlines()[1].endswith(" · extended") and "ready" not in listing["text"]
    status = run(bot, "status words", user=A, when=timedelta(minutes=6))
    assert f"`{extend}` · extended" in status["text"]
    run(bot, "destroy words", user=A, when=timedelta(minutes=7))
    destroy = workflow_named(fake_argo, "env-destroy-template", "words")
    fake_argo.set_phase(destroy, "Succeeded")
    gone = run(bot, "status words", user=A, when=timedelta(minutes=8))
    assert gone["text"].startswith("*`words`*: destroyed") and f"`{destroy}` · destroyed" in gone["text"]


def test_a_failed_create_is_listed_with_notices_off(bot: HttpBot, fake_argo: FakeArgo) -> None:
    fake_argo.configure(**(fake_argo.config() | {"phases": {"env-create-template": "Failed"}}))
    run(bot, "create checkout name=doomed", user=A)
    fake_argo.configure(**(fake_argo.config() | {"phases": {"env-create-template": "Succeeded"}}))
    run(bot, "create checkout name=fine", user=A)
    lines = run(bot, "list", user=A, when=timedelta(minutes=1))["text"].splitlines()
    assert lines[1] == "• :x: `doomed` · checkout · <@U0AAAAA> · <#C0DEV> · create failed: see `/env status doomed`"
    assert lines[2].startswith("• `fine`")
    # A day later it no longer clutters the list.
    later = run(bot, "list", user=A, when=timedelta(days=1, minutes=1))["text"]
    assert "doomed" not in later


def test_status_of_a_long_history_fits_one_message(bot: HttpBot, fake_argo: FakeArgo) -> None:
    run(bot, "create checkout ttl=1h name=busy", user=A)
    create = workflow_named(fake_argo, "env-create-template", "busy")
    fake_argo.seed(
        350,
        "env-extend-template",
        params=lambda i: {"env_name": "busy", "expires_at": at(timedelta(hours=2, minutes=i))},
        labels=lambda i: {
            "app.kubernetes.io/managed-by": "envbot",
            "envbot.dev/env": "busy",
            "envbot.dev/action": "extend",
            "envbot.dev/owner": A,
            "envbot.dev/requested-by": B,
            "envbot.dev/create-workflow": create,
        },
        start=at(timedelta(minutes=1)),
        every=timedelta(seconds=1),
    )
    status = run(bot, "status busy", user=A, when=timedelta(hours=1))
    assert len(status["blocks"]) <= 50 and all(len(b["text"]["text"]) <= 3000 for b in status["blocks"])
    assert "• …331 earlier workflows not shown" in status["text"]
    assert status["text"].count("\n• extend") == 19


def test_any_reply_fits_slacks_block_limit() -> None:
    body = message(Reply(text="\n".join("x" * 2900 for _ in range(80))))
    assert len(body["blocks"]) <= 50
    assert body["blocks"][-1]["text"]["text"].endswith("(cut: too long for one Slack message)_")
