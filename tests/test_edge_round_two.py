"""Issue 18: old buttons can't hit new environments, and no signed input gets a 500, a traceback or silence."""

import json
import logging
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from tests.conftest import FakeArgo, HttpBot, block_actions
from tests.fakes.slack_api import FakeSlack
from tests.test_edge import raw_post, signed
from tests.test_socket_mode import envelope

ALICE, BOB, ADMIN, CHANNEL = "U0ALICE1", "U0BOB001", "U0ADMIN1", "C0DEV001"


def destroys(fake_argo: FakeArgo) -> list[list[str]]:
    return [s for s in fake_argo.submits() if "workflowtemplate/env-destroy-template" in s]


def test_an_old_destroy_button_after_a_re_create_is_refused(
    http_bot_factory: Any, fake_argo: FakeArgo, tmp_path: Path
) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(f"admins: [{ADMIN}]\n")
    bot: HttpBot = http_bot_factory(envbot_policy=policy)
    fake_argo.configure(phases={"env-create-template": "Succeeded", "env-destroy-template": "Succeeded"})
    _, path = bot.command("create checkout name=alice-env", user=ALICE, channel=CHANNEL)
    alices_message = bot.reply(path)
    _, path = bot.command("destroy alice-env", user=ALICE, channel=CHANNEL)
    assert "requested destroy of environment `alice-env`" in bot.reply(path)["text"]
    _, path = bot.command("create checkout name=alice-env", user=BOB, channel=CHANNEL)
    bobs_message = bot.reply(path)
    assert bobs_message["response_type"] == "in_channel"
    assert len(destroys(fake_argo)) == 1

    for label in ("Destroy", "Extend +1d"):  # the admin clicks Alice's old message
        _, path = bot.click(alices_message, label, user=ADMIN, channel=CHANNEL, ts="1.1")
        refusal = bot.reply(path)
        assert refusal["response_type"] == "ephemeral"
        assert "That message is about an earlier `alice-env`" in refusal["text"]
    assert len(destroys(fake_argo)) == 1
    assert not [s for s in fake_argo.submits() if "workflowtemplate/env-extend-template" in s]

    _, path = bot.click(bobs_message, "Destroy", user=ADMIN, channel=CHANNEL, ts="1.2")  # the current message works
    assert "requested destroy of environment `alice-env` (owner <@U0BOB001>)" in bot.reply(path)["text"]
    assert len(destroys(fake_argo)) == 2


def test_a_button_value_without_an_incarnation_is_refused(http_bot: HttpBot, fake_argo: FakeArgo) -> None:
    _, path = http_bot.command("create checkout name=legacy-env")
    message = http_bot.reply(path)
    for value in ('{"command":"destroy legacy-env"}', "destroy legacy-env", "x|destroy legacy-env\n", "|destroy a"):
        element = next(e for b in message["blocks"] if b["type"] == "actions" for e in b["elements"])
        element["value"] = value
        _, clicked = http_bot.click(message, element["text"]["text"])
        assert "That button is not one I know" in http_bot.reply(clicked)["text"]
    assert destroys(fake_argo) == []


MALFORMED_CLICKS: list[Any] = [
    {"type": "block_actions", "actions": "nope"},
    {"type": "block_actions", "actions": [1], "user": {"id": "U1"}},
    {"type": "block_actions", "actions": [{"action_id": "envbot:destroy:0", "value": 7}], "user": "U0ALICE1"},
    {"type": "block_actions", "user": {"id": 5}, "actions": [{"action_id": "envbot:destroy:0"}]},
    {"type": "block_actions", "user": {"id": "U1"}, "channel": 3, "actions": [{"action_id": "envbot:destroy:0"}]},
    {"type": "block_actions", "authorizations": "x", "actions": []},
    {"type": 5},
    {"type": "block_actions", "container": [], "actions": [{"action_id": "envbot:destroy:0"}]},
    {"type": "event_callback", "event": "subteam_updated"},
    {"type": "event_callback", "event": {"type": ["subteam_updated"]}},
]


def test_signed_malformed_bodies_get_a_4xx_and_one_line(
    http_bot: HttpBot, fake_argo: FakeArgo, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.DEBUG)
    nested = "[" * 5000 + "]" * 5000
    form = "application/x-www-form-urlencoded"
    clicks = [p | {"response_url": http_bot.slack.response_url(f"m{n}")} for n, p in enumerate(MALFORMED_CLICKS)]
    bodies: list[tuple[str, str, str | None]] = [
        (nested, "application/json", None),
        ('{"type": "event_callback", "event": ' + nested + "}", "application/json", None),
        (urlencode({"payload": nested}), form, None),
        (urlencode({"payload": '{"a":' * 40 + "1" + "}" * 40}), form, None),
        *[(urlencode({"payload": json.dumps(p)}), form, f"/response/m{n}") for n, p in enumerate(clicks)],
        (json.dumps({"type": "event_callback", "event_id": 5}), "application/json", None),
    ]
    for body, content_type, response_path in bodies:
        status, answer = raw_post(http_bot, body.encode(), signed(body, content_type))
        assert "Traceback" not in answer
        if 400 <= status < 500:
            continue
        # Or acknowledged, and the person who clicked is told in words (only to them).
        assert status == 200 and response_path is not None, (body[:80], status, answer)
        told = http_bot.reply(response_path)
        assert told["response_type"] == "ephemeral", told
        assert "I can't read" in told["text"] or "That button is not one I know" in told["text"], told
    output = capfd.readouterr()
    assert "Traceback" not in output.out + output.err
    assert not [r for r in caplog.records if r.exc_info]
    assert fake_argo.calls() == []


def test_an_action_id_with_a_trailing_newline_is_not_a_button(http_bot: HttpBot, fake_argo: FakeArgo) -> None:
    _, path = http_bot.command("create checkout name=newline-env")
    message = http_bot.reply(path)
    payload = block_actions(message, "Destroy", "U111AAA", "C111AAA", "1.0", http_bot.slack.response_url("nl"), "nl")
    payload["actions"][0]["action_id"] += "\n"
    body = urlencode({"payload": json.dumps(payload)})
    status, _ = raw_post(http_bot, body.encode(), signed(body))
    assert status == 404  # Bolt: no listener for it
    assert destroys(fake_argo) == []


def test_socket_mode_acknowledges_what_it_cant_read(
    socket_bot: Any, fake_slack: FakeSlack, fake_argo: FakeArgo, caplog: pytest.LogCaptureFixture
) -> None:
    _, server = socket_bot
    numeric = envelope("num-1", "help", fake_slack.response_url("n1"))
    numeric["payload"]["text"] = 12345
    server.send(numeric)
    ack = server.wait_ack("num-1")
    assert "I couldn't read that" in ack["payload"]["text"] and ack["payload"]["response_type"] == "ephemeral"
    for n, payload in enumerate(MALFORMED_CLICKS):
        server.send({"envelope_id": f"bad-{n}", "payload": payload, "type": "interactive"})
        assert server.wait_ack(f"bad-{n}")["envelope_id"] == f"bad-{n}"
    assert not [r for r in caplog.records if r.exc_info]
    assert fake_argo.calls() == []
