"""The create form and the Home tab (issue 16) over signed HTTP and Socket Mode against the Slack
stand-in, which records views.open and views.publish. Every view is validated against slack_sdk's
Block Kit models and Slack's limits."""

import json
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
import yaml
from slack_sdk.models.views import View
from slack_sdk.signature import SignatureVerifier

from tests.conftest import SIGNING_SECRET, FakeArgo, HttpBot, argv_params
from tests.fakes.slack_api import FakeSlack

OWNER, CHANNEL = "U111AAA", "C111AAA"


@pytest.fixture
def bot(http_bot_factory: Any, tmp_path: Path) -> HttpBot:
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        yaml.safe_dump(
            {
                "services": {
                    "checkout": {"description": "Checkout API with its Postgres", "max_ttl": "2d"},
                    "search": {"description": "Search frontend"},
                },
                "reserved_names": ["prod"],
            }
        )
    )
    started: HttpBot = http_bot_factory(envbot_policy=policy)
    return started


def check_view(view: dict[str, Any], limit: int) -> None:
    """Valid for slack_sdk's models, and within Slack's limits."""
    View(**view).validate_json()
    assert len(view["blocks"]) <= limit
    for block in view["blocks"]:
        for text in _texts(block):
            assert len(text) <= 3000
        element = block.get("element") or {}
        assert len(element.get("options", [])) <= 100


def _texts(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["text"]] if isinstance(node.get("text"), str) else []
        return found + [t for value in node.values() for t in _texts(value)]
    if isinstance(node, list):
        return [t for item in node for t in _texts(item)]
    return []


def post_payload(bot: HttpBot, payload: dict[str, Any]) -> Any:
    return bot.post(urlencode({"payload": json.dumps(payload)}))


def post_event(bot: HttpBot, event: dict[str, Any]) -> Any:
    body = json.dumps(
        {
            "token": "t", "team_id": "T111", "api_app_id": "A111", "type": "event_callback",
            "event_id": f"Ev{time.monotonic_ns()}", "event_time": int(time.time()), "event": event,
        }
    )  # fmt: skip
    stamp = str(int(time.time()))
    headers = {
        "Content-Type": "application/json",
        "X-Slack-Request-Timestamp": stamp,
        "X-Slack-Signature": SignatureVerifier(SIGNING_SECRET).generate_signature(timestamp=stamp, body=body),
    }
    return bot.post(body, headers=headers)


def published_with(slack: FakeSlack, words: str) -> dict[str, Any]:
    """The first Home tab published that says `words` (waiting for it, not for time)."""
    count = 1
    while True:
        views = [r.body["view"] for r in slack.wait_for("/api/views.publish", count)]
        found = [v for v in views if words in json.dumps(v)]
        if found:
            return found[0]
        count = len(views) + 1


def submission(values: dict[str, Any], user: str = OWNER, view_id: str = "V0FORM1") -> dict[str, Any]:
    state = {
        "service": {"service": {"type": "static_select", "selected_option": {"value": values.get("service")}}},
        "ttl": {"ttl": {"type": "static_select", "selected_option": {"value": values.get("ttl", "4h")}}},
        "name": {"name": {"type": "plain_text_input", "value": values.get("name")}},
        "version": {"version": {"type": "plain_text_input", "value": values.get("version")}},
        "channel": {"channel": {"type": "conversations_select", "selected_conversation": values.get("channel")}},
    }
    return {
        "type": "view_submission",
        "team": {"id": "T111", "domain": "example"},
        "user": {"id": user, "username": "someone", "team_id": "T111"},
        "api_app_id": "A111",
        "token": "t",
        "trigger_id": f"1337.44.{view_id}",
        "view": {"id": view_id, "type": "modal", "callback_id": "envbot_create", "state": {"values": state}},
    }


def test_a_bare_create_opens_the_form(bot: HttpBot, fake_argo: FakeArgo, fake_slack: FakeSlack) -> None:
    ack, _ = bot.command("create", user=OWNER, channel=CHANNEL)
    assert ack.status == 200 and not ack.body.strip()  # the form is the answer
    (opened,) = fake_slack.requests("/api/views.open")
    assert opened.body["trigger_id"].startswith("1337.42.")
    view = opened.body["view"] if isinstance(opened.body["view"], dict) else json.loads(opened.body["view"])
    check_view(view, 100)
    assert view["callback_id"] == "envbot_create" and view["submit"]["text"] == "Create"
    blocks = {b["block_id"]: b for b in view["blocks"]}
    services = blocks["service"]["element"]["options"]
    assert [o["value"] for o in services] == ["checkout", "search"]
    assert services[0]["description"]["text"] == "Checkout API with its Postgres · max 2d"
    ttls = [o["value"] for o in blocks["ttl"]["element"]["options"]]
    assert ttls[0] == "15m" and ttls[-1] == "7d" and "4h" in ttls  # the policy's bounds, its default
    assert blocks["ttl"]["element"]["initial_option"]["value"] == "4h"
    assert blocks["name"]["optional"] is True and blocks["version"]["optional"] is True
    assert blocks["channel"]["element"]["initial_conversation"] == CHANNEL
    assert fake_argo.calls() == []


def test_submitting_the_form_creates_through_the_same_path(
    bot: HttpBot, fake_argo: FakeArgo, fake_slack: FakeSlack
) -> None:
    values = {"service": "checkout", "ttl": "2h", "name": "from-form", "version": "1.4.2", "channel": CHANNEL}
    ack = post_payload(bot, submission(values))
    assert ack.status == 200 and not ack.body.strip()  # the form closes
    fake_slack.wait_for("/api/chat.postMessage")
    (submit,) = fake_argo.submits()
    params = argv_params(submit)
    assert (params["env_name"], params["service"], params["requested_by"], params["slack_channel"]) == (
        "from-form", "checkout", OWNER, CHANNEL,
    )  # fmt: skip
    assert params["version"] == "1.4.2"  # the form's version field is the typed command's version=
    (announced,) = fake_slack.posted(CHANNEL)
    assert "requested environment `from-form`" in announced["text"]


def test_form_errors_show_on_their_field(bot: HttpBot, fake_argo: FakeArgo) -> None:
    cases = {
        "name": ({"service": "checkout", "name": "prod", "channel": CHANNEL}, "reserved"),
        "ttl": ({"service": "checkout", "ttl": "7d", "channel": CHANNEL}, "ttl 7d is out of bounds"),
        "channel": ({"service": "checkout"}, "Choose a channel"),
    }
    for field, (values, words) in cases.items():
        ack = post_payload(bot, submission(values, view_id=f"V0{field.upper()}"))
        answer = ack.json()
        assert answer["response_action"] == "errors", field
        assert list(answer["errors"]) == [field] and words in answer["errors"][field], answer
    assert fake_argo.submits() == []


def test_the_home_tab_lists_your_environments_and_acts_from_them(
    bot: HttpBot, fake_argo: FakeArgo, fake_slack: FakeSlack
) -> None:
    fake_argo.configure(phases={"env-create-template": "Succeeded"})
    for name in ("home-a", "home-b"):
        _, path = bot.command(f"create checkout ttl=1h name={name}", user=OWNER, channel=CHANNEL)
        bot.reply(path)
    assert post_event(bot, {"type": "app_home_opened", "user": OWNER, "channel": "D0HOME", "tab": "home"}).status == 200
    (published,) = fake_slack.wait_for("/api/views.publish")
    assert published.body["user_id"] == OWNER
    view = published.body["view"]
    check_view(view, 100)
    text = json.dumps(view)
    assert view["type"] == "home" and "home-a" in text and "home-b" in text and "New environment" in text
    rows = [b for b in view["blocks"] if b.get("block_id", "").startswith("envbot_row_")]
    assert [e["text"]["text"] for e in rows[0]["elements"]] == ["Extend +2h", "Extend +1d", "Destroy"]

    # A click on a row (no response_url on the Home tab): the same path, and the tab shows the outcome.
    element = next(e for e in rows[0]["elements"] if e["text"]["text"] == "Extend +2h")
    click = {
        "type": "block_actions",
        "user": {"id": OWNER, "username": "someone", "team_id": "T111"},
        "api_app_id": "A111", "token": "t", "trigger_id": "1337.45.home",
        "container": {"type": "view", "view_id": "V0HOME"},
        "team": {"id": "T111", "domain": "example"},
        "view": {"id": "V0HOME", "type": "home"},
        "actions": [{"action_id": element["action_id"], "block_id": rows[0]["block_id"], "value": element["value"],
                     "type": "button", "action_ts": "1.0", "text": element["text"]}],
    }  # fmt: skip
    assert post_payload(bot, click).status == 200
    republished = published_with(fake_slack, "extended `home-a` by 2h")
    check_view(republished, 100)
    assert len([s for s in fake_argo.submits() if "workflowtemplate/env-extend-template" in s]) == 1

    # New environment opens the form.
    label = {"type": "plain_text", "text": "New environment"}
    action = {"action_id": "envbot_new", "block_id": "envbot_home_new", "type": "button", "action_ts": "2.0"}
    new = click | {"actions": [action | {"text": label}]}
    assert post_payload(bot, new).status == 200
    fake_slack.wait_for("/api/views.open")


def test_a_crowded_home_tab_stays_within_slacks_limits(fake_argo: FakeArgo) -> None:
    from datetime import UTC, datetime, timedelta

    from slackbot.history import fold
    from slackbot.orchestrator import WorkflowRecord
    from slackbot.replies import Button
    from slackbot.slack.views import home_view

    now = datetime(2026, 11, 28, 11, tzinfo=UTC)
    records = [
        WorkflowRecord(name=f"env-create-template-{i:05d}", action="create", env_name=f"crowd-{i:03d}",
                       service="checkout", owner=OWNER, channel=CHANNEL, created_at=now, phase="Succeeded",
                       expires_at=now + timedelta(hours=1 + i))
        for i in range(120)
    ]  # fmt: skip
    envs = sorted(fold(records).values(), key=lambda e: e.name)
    rows = [
        (env, (Button(action="destroy", env=env.name, label="Destroy", incarnation=env.create.name),)) for env in envs
    ]
    view = home_view(rows, now, notice="x" * 5000)
    check_view(view, 100)
    assert "…and 90 more" in json.dumps(view, ensure_ascii=False)


def test_the_form_and_the_home_tab_over_socket_mode(socket_bot: Any, fake_slack: FakeSlack) -> None:
    _, server = socket_bot
    payload = {
        "token": "t", "team_id": "T111", "channel_id": CHANNEL, "user_id": OWNER, "command": "/env", "text": "create",
        "api_app_id": "A111", "response_url": fake_slack.response_url("sm1"), "trigger_id": "111.222.sm1",
    }  # fmt: skip
    server.send({"envelope_id": "sm-1", "payload": payload, "type": "slash_commands", "accepts_response_payload": True})
    server.wait_ack("sm-1")
    (opened,) = fake_slack.wait_for("/api/views.open")
    assert opened.body["trigger_id"] == "111.222.sm1"
    event = {
        "token": "t", "team_id": "T111", "api_app_id": "A111", "type": "event_callback", "event_id": "Ev1",
        "event_time": 1, "event": {"type": "app_home_opened", "user": OWNER, "channel": "D0HOME", "tab": "home"},
    }  # fmt: skip
    server.send({"envelope_id": "sm-2", "payload": event, "type": "events_api", "accepts_response_payload": False})
    server.wait_ack("sm-2")
    (published,) = fake_slack.wait_for("/api/views.publish")
    check_view(published.body["view"], 100)


def test_the_list_is_one_line_per_environment_with_an_overflow_menu(
    bot: HttpBot, fake_argo: FakeArgo, fake_slack: FakeSlack
) -> None:
    from slack_sdk.models.blocks import Block

    fake_argo.configure(phases={"env-create-template": "Succeeded"})
    for name, ttl in (("later-one", "3h"), ("sooner-one", "1h")):
        _, path = bot.command(f"create checkout ttl={ttl} name={name}", user=OWNER, channel=CHANNEL)
        bot.reply(path)
    _, path = bot.command("list", user=OWNER, channel=CHANNEL)
    listing = bot.reply(path)
    blocks = listing["blocks"]
    assert len(blocks) <= 50
    for block in blocks:
        parsed = Block.parse(block)
        assert parsed is not None
        parsed.validate_json()
    assert blocks[0]["text"]["text"] == "*Your environments* (2, soonest expiry first)"
    assert [b["text"]["text"].split("`")[1] for b in blocks[1:]] == ["sooner-one", "later-one"]
    menu = blocks[1]["accessory"]
    assert menu["type"] == "overflow" and [o["text"]["text"] for o in menu["options"]] == [
        "Extend +2h", "Extend +1d", "Destroy",
    ]  # fmt: skip
    assert [o["text"]["text"] for o in blocks[2]["accessory"]["options"]] == ["Extend +1d", "Destroy"]  # adds time

    option = menu["options"][1]
    click = {
        "type": "block_actions",
        "user": {"id": OWNER, "username": "someone", "team_id": "T111"},
        "api_app_id": "A111", "token": "t", "trigger_id": "1337.46.row",
        "container": {"type": "message", "message_ts": "1.0", "channel_id": CHANNEL, "is_ephemeral": True},
        "team": {"id": "T111", "domain": "example"}, "channel": {"id": CHANNEL, "name": "dev"},
        "response_url": fake_slack.response_url("row1"),
        "actions": [{"action_id": menu["action_id"], "block_id": "b1", "type": "overflow",
                     "selected_option": option, "action_ts": "1.0"}],
    }  # fmt: skip
    assert post_payload(bot, click).status == 200
    reply = fake_slack.wait_for("/response/row1")[0].body
    assert "extended `sooner-one` by 1d" in reply["text"]
    (extend,) = [s for s in fake_argo.submits() if "workflowtemplate/env-extend-template" in s]
    assert argv_params(extend)["env_name"] == "sooner-one"
