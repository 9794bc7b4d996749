"""Extend only adds time (issue 16): a typed extend or a button that would move the expiry earlier is
refused with the current expiry and what would work, nothing is submitted, and buttons offer only
choices that add time within the lifetime. Over signed HTTP against the fake argo."""

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from freezegun import freeze_time

from tests.conftest import FakeArgo, HttpBot, argv_params, button
from tests.test_environments import T0, A, at, policy, run


@pytest.fixture
def bot(http_bot_factory: Any, fake_argo: FakeArgo, tmp_path: Path) -> HttpBot:
    fake_argo.configure(now=at(), phases={"env-create-template": "Succeeded"})
    started: HttpBot = http_bot_factory(envbot_policy=policy(tmp_path, admins=["U0ADMIN1"]))
    return started


def extends(fake_argo: FakeArgo) -> list[list[str]]:
    return [s for s in fake_argo.submits() if "workflowtemplate/env-extend-template" in s]


def labels(message: dict[str, Any]) -> list[str]:
    return [e["text"]["text"] for b in message.get("blocks") or [] if b["type"] == "actions" for e in b["elements"]]


def test_a_typed_extend_that_would_shorten_is_refused_and_changes_nothing(bot: HttpBot, fake_argo: FakeArgo) -> None:
    run(bot, "create checkout ttl=1d name=qa-alice-2", user=A)
    refused = run(bot, "extend qa-alice-2 ttl=2h", user=A, when=timedelta(hours=1))
    text = refused["text"]
    assert refused["response_type"] == "ephemeral"
    assert "`qa-alice-2` already expires <!date^" in text and "(in 23h)" in text
    assert "ttl=2h from now would end it sooner, so nothing was changed" in text
    assert "Ask for more than 23h, e.g. `/env extend qa-alice-2 ttl=1d`." in text  # the offered choice that adds
    assert extends(fake_argo) == []
    # What would work does work: the expiry moves later.
    done = run(bot, "extend qa-alice-2 ttl=1d", user=A, when=timedelta(hours=1))
    assert done["response_type"] == "in_channel"
    (submitted,) = extends(fake_argo)
    assert argv_params(submitted)["expires_at"] == at(timedelta(hours=25))


def test_a_bare_extend_never_drops_a_long_ttl_to_the_default(bot: HttpBot, fake_argo: FakeArgo) -> None:
    run(bot, "create checkout ttl=7d name=weekly", user=A)
    refused = run(bot, "extend weekly", user=A, when=timedelta(minutes=5))
    assert "ttl=4h from now would end it sooner, so nothing was changed" in refused["text"]
    # No offered choice adds time; the longest allowed (the 7d max) does.
    assert "Ask for more than 6d 23h, e.g. `/env extend weekly ttl=7d`." in refused["text"]
    assert extends(fake_argo) == []


def test_no_room_left_says_so(http_bot_factory: Any, fake_argo: FakeArgo, tmp_path: Path) -> None:
    fake_argo.configure(now=at(), phases={"env-create-template": "Succeeded"})
    bot = http_bot_factory(envbot_policy=policy(tmp_path, ttl={"max": "1d", "lifetime": "1d"}))
    run(bot, "create checkout ttl=1d name=maxed", user=A)
    refused = run(bot, "extend maxed ttl=2h", user=A, when=timedelta(hours=1))
    assert "It can't be kept longer: it may live until <!date^" in refused["text"]
    assert extends(fake_argo) == []


def test_buttons_offer_only_choices_that_add_time(bot: HttpBot, fake_argo: FakeArgo) -> None:
    short = run(bot, "create checkout ttl=1h name=short-one", user=A)
    assert labels(short) == ["Extend +2h", "Extend +1d", "Destroy"]
    long = run(bot, "create checkout ttl=4h name=long-one", user=A)
    assert labels(long) == ["Extend +1d", "Destroy"]  # +2h from now would end a 4h environment sooner
    week = run(bot, "create checkout ttl=7d name=week-one", user=A)
    assert labels(week) == ["Destroy"]


def test_an_old_button_that_would_shorten_is_refused(bot: HttpBot, fake_argo: FakeArgo) -> None:
    message = run(bot, "create checkout ttl=1h name=clicked", user=A)
    run(bot, "extend clicked ttl=1d", user=A, when=timedelta(minutes=10))
    # The first message's "Extend +2h" now would move the 1d expiry 22 hours earlier.
    with freeze_time(T0 + timedelta(minutes=20)):
        ack, path = bot.click(message, "Extend +2h", user=A, channel="C0DEV")
        assert ack.status == 200
        refused = bot.reply(path)
    assert "would end it sooner, so nothing was changed" in refused["text"]
    assert len(extends(fake_argo)) == 1
    assert button(message, "Extend +2h")["value"]  # the button existed: the refusal is about time, not format
