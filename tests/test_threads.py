"""One message per environment (issue 16, docs/adr/0009), end to end: the bot posts the create
announcement as a real channel message (chat.postMessage), its ts travels to the workflow as
`slack_thread`, and the execution plane's notice scripts (run as Argo would, with the real kubectl and
curl against the stand-ins) post into its thread and update it in place (chat.update)."""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from slackbot.settings import Settings
from slackbot.slack.runtime import Runtime
from tests.conftest import APP_TOKEN, FakeArgo, HttpBot, argv_params, make_settings
from tests.fakes.kube_api import FakeKubeApi
from tests.fakes.slack_api import FakeSlack
from tests.fakes.socket_mode import FakeSocketMode
from tests.test_notices import CREATE, EXTEND, Plane, expiry_of
from tests.test_socket_mode import envelope

OWNER, CHANNEL = "U111AAA", "C111AAA"


@pytest.fixture
def bot(http_bot_factory: Any) -> HttpBot:
    started: HttpBot = http_bot_factory(slack_threads=True)
    return started


@pytest.fixture
def socket_bot_factory(fake_argo: FakeArgo, fake_slack: FakeSlack) -> Iterator[Any]:
    started: list[tuple[Runtime, FakeSocketMode]] = []

    def start(**overrides: Any) -> tuple[Runtime, FakeSocketMode]:
        server = FakeSocketMode()
        fake_slack.socket_url = server.url
        settings = make_settings(fake_argo, fake_slack, slack_app_token=APP_TOKEN, **overrides)
        runtime = Runtime(settings, mode="socket", port=0)
        runtime.start()
        server.wait_connected()
        started.append((runtime, server))
        return runtime, server

    yield start
    for runtime, server in started:
        runtime.stop()
        server.stop()


def creates(fake_argo: FakeArgo) -> list[list[str]]:
    return [s for s in fake_argo.submits() if "workflowtemplate/env-create-template" in s]


def test_threads_are_the_default() -> None:
    assert Settings(_env_file=None).slack_threads is True  # type: ignore[call-arg]


def test_the_create_announcement_is_one_channel_message_whose_ts_goes_to_the_workflow(
    bot: HttpBot, fake_argo: FakeArgo, fake_slack: FakeSlack, api: FakeKubeApi, tmp_path: Path
) -> None:
    ack, path = bot.command("create checkout ttl=1h name=threaded", user=OWNER, channel=CHANNEL)
    assert "Checking `create threaded`" in ack.json()["text"]
    pointer = bot.reply(path)
    # The requester's "Checking…" becomes a pointer; the channel gets one message, not a second post.
    assert pointer["response_type"] == "ephemeral" and pointer["replace_original"] is True
    assert "Its message in this channel shows how it is doing" in pointer["text"]
    (root,) = fake_slack.posted(CHANNEL)
    (submit,) = creates(fake_argo)
    params = argv_params(submit)
    assert params["slack_thread"] == root["ts"]
    # Posted before the submit as the announcement the submit confirmed (the request names its workflow),
    # with the workflow and the buttons: one Web API call, no update.
    (posted,) = fake_slack.requests("/api/chat.postMessage")
    assert "requested environment `threaded`" in posted.body["text"] and "Submitting…" not in posted.body["text"]
    assert fake_slack.requests("/api/chat.update") == []
    workflow = fake_argo.workflows()[0]["metadata"]["name"]
    assert workflow in root["text"] and root["text"].startswith(":rocket:")
    assert [e["text"]["text"] for b in root["blocks"] if b["type"] == "actions" for e in b["elements"]] == [
        "Extend +2h", "Extend +1d", "Destroy",
    ]  # fmt: skip

    # The execution plane: the real create records the thread; the exit handler's notice goes into the
    # thread and the root now says "ready" with the expiry.
    plane = Plane(api, fake_slack, tmp_path / "plane")
    plane.create(**params)
    assert (api.namespace("threaded") or {})["metadata"]["annotations"]["envbot.dev/slack-thread"] == root["ts"]
    run = plane.exit_handler(CREATE, plane.workflow(CREATE, params, phase="Succeeded"), "Succeeded")
    assert "sent" in run.stdout
    ready = fake_slack.posted(CHANNEL)[1]
    assert ready["thread_ts"] == root["ts"] and ready["text"].startswith(":white_check_mark: `threaded` is ready.")
    root = fake_slack.posted(CHANNEL)[0]
    assert root["text"].startswith(":white_check_mark: `threaded` is ready. Expires <!date^")
    assert len(fake_slack.posted(CHANNEL)) == 2  # one top-level message; the rest is in its thread

    # A warning before expiry goes into the thread too, and the root says the environment is expiring.
    plane.advance(expiry_of(plane, "threaded") - 600 + 30 - plane.now())
    assert plane.sweep().returncode == 0
    warning = fake_slack.posted(CHANNEL)[2]
    assert warning["thread_ts"] == root["ts"] and "`threaded` expires" in warning["text"]
    assert fake_slack.posted(CHANNEL)[0]["text"].startswith(":hourglass_flowing_sand: `threaded` expires")
    assert [m for m in fake_slack.posted(CHANNEL) if "thread_ts" not in m] == [fake_slack.posted(CHANNEL)[0]]


def test_extend_and_destroy_announce_in_the_thread(
    bot: HttpBot, fake_argo: FakeArgo, fake_slack: FakeSlack, api: FakeKubeApi, tmp_path: Path
) -> None:
    _, path = bot.command("create checkout ttl=1h name=steered", user=OWNER, channel=CHANNEL)
    bot.reply(path)
    (root,) = fake_slack.posted(CHANNEL)
    _, path = bot.command("extend steered ttl=4h", user=OWNER, channel=CHANNEL)
    assert "posted in the thread of `steered`" in bot.reply(path)["text"]
    extend = [s for s in fake_argo.submits() if "workflowtemplate/env-extend-template" in s][-1]
    assert argv_params(extend)["slack_thread"] == root["ts"]
    extended = fake_slack.posted(CHANNEL)[1]
    assert extended["thread_ts"] == root["ts"] and "extended `steered` by 4h" in extended["text"]
    # The extend's own notice, from its exit handler, threads and updates the root as well.
    plane = Plane(api, fake_slack, tmp_path / "plane")
    plane.create(**argv_params(creates(fake_argo)[0]))
    plane.exit_handler(EXTEND, plane.workflow(EXTEND, argv_params(extend), phase="Succeeded"), "Succeeded")
    assert fake_slack.posted(CHANNEL)[2]["thread_ts"] == root["ts"]
    assert fake_slack.posted(CHANNEL)[0]["text"].endswith(" (extended)")
    _, path = bot.command("destroy steered", user=OWNER, channel=CHANNEL)
    assert "posted in the thread of `steered`" in bot.reply(path)["text"]
    destroy = [s for s in fake_argo.submits() if "workflowtemplate/env-destroy-template" in s][-1]
    assert argv_params(destroy)["slack_thread"] == root["ts"]
    assert fake_slack.posted(CHANNEL)[-1]["thread_ts"] == root["ts"]


@pytest.mark.parametrize("code", ["not_in_channel", "channel_not_found"])
def test_a_bot_outside_the_channel_says_how_to_fix_it(
    bot: HttpBot, fake_argo: FakeArgo, fake_slack: FakeSlack, code: str
) -> None:
    fake_slack.fail("/api/chat.postMessage", 200, error=code)
    _, path = bot.command("create checkout name=outside", user=OWNER, channel=CHANNEL)
    reply = bot.reply(path)
    assert reply["response_type"] == "in_channel" and "requested environment `outside`" in reply["text"]
    assert f"Slack said `{code}`" in reply["text"] and "/invite @envbot" in reply["text"]
    assert "slack_thread" not in argv_params(creates(fake_argo)[0])  # no message: nothing to thread under
    assert fake_slack.posted(CHANNEL) == []


def test_a_create_that_could_not_be_submitted_says_so_on_its_message(
    bot: HttpBot, fake_argo: FakeArgo, fake_slack: FakeSlack
) -> None:
    bot.runtime.bot.services.retention.ensure()
    fake_argo.configure(modes={"submit": "unavailable"})
    _, path = bot.command("create checkout name=unsubmitted", user=OWNER, channel=CHANNEL)
    assert "Nothing was created." in bot.reply(path)["text"]
    (root,) = fake_slack.posted(CHANNEL)
    assert root["text"] == ":x: `unsubmitted` was not created: the request could not be submitted."


def test_threads_over_socket_mode(fake_argo: FakeArgo, fake_slack: FakeSlack, socket_bot_factory: Any) -> None:
    _, server = socket_bot_factory(slack_threads=True)
    message = envelope("t-1", "create checkout ttl=2h name=sock-thread", fake_slack.response_url("t1"))
    message["payload"] |= {"user_id": OWNER, "channel_id": CHANNEL}
    server.send(message)
    server.wait_ack("t-1")
    pointer = fake_slack.wait_for("/response/t1")[0].body
    assert pointer["replace_original"] is True and "Requested `sock-thread`" in pointer["text"]
    (root,) = fake_slack.posted(CHANNEL)
    assert argv_params(creates(fake_argo)[0])["slack_thread"] == root["ts"]


def test_warnings_also_go_to_the_owner_by_dm_when_the_policy_says_so(
    http_bot_factory: Any, fake_argo: FakeArgo, fake_slack: FakeSlack, api: FakeKubeApi, tmp_path: Path
) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text("notices:\n  warn_owner_by_dm: true\n")
    bot = http_bot_factory(slack_threads=True, envbot_policy=policy)
    _, path = bot.command("create checkout ttl=1h name=dm-warned", user=OWNER, channel=CHANNEL)
    bot.reply(path)
    params = argv_params(creates(fake_argo)[0])
    assert params["warn_owner_dm"] == "true"
    plane = Plane(api, fake_slack, tmp_path / "plane")
    plane.create(**params)
    plane.advance(expiry_of(plane, "dm-warned") - 600 + 30 - plane.now())
    assert plane.sweep().returncode == 0
    in_thread = [m for m in fake_slack.posted(CHANNEL) if m.get("thread_ts") and "`dm-warned` expires" in m["text"]]
    (dm,) = fake_slack.posted(OWNER)  # chat.postMessage to the user id: the app's DM with them
    assert len(in_thread) == 1 and in_thread[0]["thread_ts"] == params["slack_thread"]
    assert dm["text"] == in_thread[0]["text"] and "thread_ts" not in dm


def test_without_the_switch_no_dm_is_sent(
    bot: HttpBot, fake_argo: FakeArgo, fake_slack: FakeSlack, api: FakeKubeApi, tmp_path: Path
) -> None:
    _, path = bot.command("create checkout ttl=1h name=no-dm", user=OWNER, channel=CHANNEL)
    bot.reply(path)
    params = argv_params(creates(fake_argo)[0])
    assert "warn_owner_dm" not in params
    plane = Plane(api, fake_slack, tmp_path / "plane")
    plane.create(**params)
    plane.advance(expiry_of(plane, "no-dm") - 600 + 30 - plane.now())
    assert plane.sweep().returncode == 0
    assert [m for m in fake_slack.posted(CHANNEL) if "`no-dm` expires" in m["text"]]
    assert fake_slack.posted(OWNER) == []
