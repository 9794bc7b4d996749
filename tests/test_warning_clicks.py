"""The whole loop of issue 9: the bot creates, the execution plane's notifier warns (the real scripts with the
real kubectl and curl), and a click on the warning's Extend button goes back through the bot, over HTTP and
over Socket Mode: exactly one extend, and a refusal for someone who may not act."""

import json
from pathlib import Path
from typing import Any

from tests.conftest import FakeArgo, HttpBot, argv_params, block_actions
from tests.fakes.kube_api import FakeKubeApi
from tests.fakes.slack_api import FakeSlack
from tests.test_notices import CREATE, Plane, expiry_of
from tests.test_socket_mode import envelope

OWNER, STRANGER, CHANNEL = "U111AAA", "U0STRANGER", "C111AAA"


def warning_for(env: str, fake_argo: FakeArgo, api: FakeKubeApi, slack: FakeSlack, folder: Path) -> dict[str, Any]:
    """Run the real create script with what the bot submitted, move the scripts' clock to ten minutes before
    the expiry, run the notifier sweep, and return the warning Slack received. (The bot's clock is real
    time, so its environments are created for 1h: Extend +2h then adds time by either clock.)"""
    plane = Plane(api, slack, folder)
    (create,) = [s for s in fake_argo.submits() if "workflowtemplate/env-create-template" in s]
    (workflow,) = [w["metadata"]["name"] for w in fake_argo.workflows() if CREATE in json.dumps(w.get("spec", {}))]
    run = plane.run(CREATE, argv_params(create), workflow={"name": workflow})  # the incarnation the buttons name
    assert run.returncode == 0, run.output
    plane.advance(expiry_of(plane, env) - 600 + 30 - plane.now())
    assert plane.sweep().returncode == 0
    (warning,) = [m for m in slack.posted(CHANNEL) if f"`{env}` expires" in m["text"]]
    return warning


def extends(fake_argo: FakeArgo) -> list[list[str]]:
    return [s for s in fake_argo.submits() if "workflowtemplate/env-extend-template" in s]


def test_a_warnings_extend_button_over_http(
    http_bot: HttpBot, fake_argo: FakeArgo, fake_slack: FakeSlack, api: FakeKubeApi, tmp_path: Path
) -> None:
    _, path = http_bot.command("create checkout ttl=1h name=warned-http", user=OWNER, channel=CHANNEL)
    assert http_bot.reply(path)["response_type"] == "in_channel"
    warning = warning_for("warned-http", fake_argo, api, fake_slack, tmp_path / "plane")

    _, refused_path = http_bot.click(warning, "Extend +2h", user=STRANGER, channel=CHANNEL, ts=warning["ts"])
    refused = http_bot.reply(refused_path)
    assert refused["response_type"] == "ephemeral" and "Only the owner <@U111AAA>" in refused["text"]
    assert extends(fake_argo) == []

    paths = [http_bot.click(warning, "Extend +2h", user=OWNER, channel=CHANNEL, ts=warning["ts"])[1] for _ in range(2)]
    replies = [http_bot.reply(p) for p in paths]
    assert sorted("Already on it" in r["text"] for r in replies) == [False, True]
    (extend,) = extends(fake_argo)
    assert argv_params(extend)["env_name"] == "warned-http"
    assert any("<@U111AAA> extended `warned-http` by 2h" in r["text"] for r in replies)


def test_a_warnings_buttons_over_socket_mode(
    socket_bot: Any, fake_argo: FakeArgo, fake_slack: FakeSlack, api: FakeKubeApi, tmp_path: Path
) -> None:
    _, server = socket_bot
    message = envelope("w-1", "create checkout ttl=1h name=warned-sock", fake_slack.response_url("w1"))
    message["payload"] |= {"user_id": OWNER, "channel_id": CHANNEL}
    server.send(message)
    assert fake_slack.wait_for("/response/w1")[0].body["response_type"] == "in_channel"
    warning = warning_for("warned-sock", fake_argo, api, fake_slack, tmp_path / "plane")

    for n, (user, label) in enumerate([(OWNER, "Extend +2h"), (OWNER, "Extend +2h"), (STRANGER, "Destroy now")]):
        url = fake_slack.response_url(f"wc{n}")
        payload = block_actions(warning, label, user, CHANNEL, warning["ts"], url, f"wc{n}")
        server.send({"envelope_id": f"wc-{n}", "payload": payload, "type": "interactive"})
        server.wait_ack(f"wc-{n}")
    replies = [fake_slack.wait_for(f"/response/wc{n}")[0].body for n in range(3)]
    assert "extended `warned-sock` by 2h" in replies[0]["text"] and "Already on it" in replies[1]["text"]
    assert "Only the owner <@U111AAA>" in replies[2]["text"]
    assert len(extends(fake_argo)) == 1
    assert not [s for s in fake_argo.submits() if "workflowtemplate/env-destroy-template" in s]
