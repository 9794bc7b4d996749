"""Socket Mode end to end: the real SocketModeHandler against a local WebSocket stand-in."""

import time

import pytest

from slackbot.errors import ConfigError
from slackbot.slack.runtime import Runtime
from tests.conftest import APP_TOKEN, BOT_TOKEN, argv_params, block_actions, http_request, make_settings
from tests.fakes.socket_mode import FakeSocketMode


def envelope(envelope_id: str, text: str, response_url: str) -> dict:
    payload = {
        "token": "deprecated",
        "team_id": "T111",
        "team_domain": "example",
        "channel_id": "C222BBB",
        "channel_name": "qa",
        "user_id": "U222BBB",
        "user_name": "qa-person",
        "command": "/env",
        "text": text,
        "api_app_id": "A111",
        "response_url": response_url,
        "trigger_id": f"111.222.{envelope_id}",
    }
    return {"envelope_id": envelope_id, "payload": payload, "type": "slash_commands", "accepts_response_payload": True}


def test_create_over_socket_mode_acks_on_the_socket_then_responds(socket_bot, fake_slack, fake_argo) -> None:
    runtime, server = socket_bot
    (opened,) = fake_slack.requests("/api/apps.connections.open")
    assert opened.headers["Authorization"] == f"Bearer {APP_TOKEN}"
    assert http_request(f"http://127.0.0.1:{runtime.port}/healthz").status == 200

    server.send(envelope("env-1", "create checkout ttl=2h name=qa-checkout", fake_slack.response_url("s1")))
    ack = server.wait_ack("env-1")
    assert ack["payload"]["response_type"] == "ephemeral"
    assert "Checking `create qa-checkout`" in ack["payload"]["text"]

    reply = fake_slack.wait_for("/response/s1")[0].body
    assert reply["response_type"] == "in_channel"
    (workflow,) = fake_argo.workflows()
    assert workflow["metadata"]["name"] in reply["text"]
    params = argv_params(fake_argo.submits()[0])
    assert params["requested_by"] == "U222BBB" and params["slack_channel"] == "C222BBB"


def test_bad_input_over_socket_mode_is_answered_in_the_ack(socket_bot, fake_slack, fake_argo) -> None:
    _, server = socket_bot
    server.send(envelope("env-2", "destroy kube-system", fake_slack.response_url("s2")))
    ack = server.wait_ack("env-2")
    assert "reserved for the cluster" in ack["payload"]["text"]
    assert ack["payload"]["response_type"] == "ephemeral"
    assert fake_argo.calls() == []


@pytest.mark.serial
def test_a_burst_over_socket_mode_is_acked_fast_and_fully_answered(socket_bot, fake_slack, fake_argo) -> None:
    runtime, server = socket_bot
    runtime.verify_records()  # as `envbot serve` does at start-up
    fake_argo.configure(delay=1.5)
    sent = {}
    for i in range(30):
        message = envelope(f"burst-{i}", f"create svc{i} name=sock-{i}", fake_slack.response_url(f"b{i}"))
        message["payload"]["user_id"] = f"U{i:03d}SOCK"
        sent[f"burst-{i}"] = time.monotonic()
        server.send(message)
    for envelope_id in sent:
        server.wait_ack(envelope_id, timeout=10)
    ack_times = {a["envelope_id"]: t for a, t in zip(server.acks, server.ack_times, strict=True)}
    assert all(ack_times[e] - at < 3.0 for e, at in sent.items()), "an ack took 3 s or more"
    for i in range(30):
        reply = fake_slack.wait_for(f"/response/b{i}", timeout=120)[0].body
        assert reply["response_type"] == "in_channel" and f"`sock-{i}`" in reply["text"]


def test_readiness_follows_the_socket_and_liveness_does_not(fake_argo, fake_slack) -> None:
    server = FakeSocketMode()
    fake_slack.socket_url = server.url
    runtime = Runtime(make_settings(fake_argo, fake_slack, slack_app_token=APP_TOKEN), mode="socket", port=0)
    runtime.start()
    runtime.verify_records()
    server.wait_connected()
    url = f"http://127.0.0.1:{runtime.port}"
    assert http_request(f"{url}/readyz").status == 200
    fake_slack.fail("/api/apps.connections.open", 503, times=1000)  # and does not let it reconnect
    server.stop()  # Slack goes away: not ready, but alive (no restart during a Slack incident)
    deadline = time.monotonic() + 10
    while http_request(f"{url}/readyz").status == 200 and time.monotonic() < deadline:
        time.sleep(0.1)
    ready = http_request(f"{url}/readyz")
    assert ready.status == 503 and "Socket Mode is not connected" in ready.body
    assert http_request(f"{url}/healthz").status == 200
    runtime.stop()
    assert runtime.ready() == (False, "stopping")


def test_a_button_click_over_socket_mode_runs_once(socket_bot, fake_slack, fake_argo) -> None:
    _, server = socket_bot
    fake_argo.configure(phases={"env-create-template": "Succeeded"})
    server.send(envelope("env-c", "create checkout ttl=2h name=sock-btn", fake_slack.response_url("c1")))
    created = fake_slack.wait_for("/response/c1")[0].body
    for n in (1, 2):  # a double click: two deliveries of a click on the same button of the same message
        payload = block_actions(
            created, "Extend +2h", "U222BBB", "C222BBB", "1764320001.000100", fake_slack.response_url(f"x{n}"), f"x{n}"
        )
        server.send(
            {"envelope_id": f"click-{n}", "payload": payload, "type": "interactive", "accepts_response_payload": False}
        )
        assert server.wait_ack(f"click-{n}")["envelope_id"] == f"click-{n}"
    replies = [fake_slack.wait_for(f"/response/x{n}")[0].body for n in (1, 2)]
    assert sorted("Already on it" in r["text"] for r in replies) == [False, True]
    assert len([s for s in fake_argo.submits() if "workflowtemplate/env-extend-template" in s]) == 1
    stranger = block_actions(
        created, "Destroy", "U999ZZZ", "C222BBB", "1764320001.000100", fake_slack.response_url("x3"), "x3"
    )
    server.send(
        {"envelope_id": "click-3", "payload": stranger, "type": "interactive", "accepts_response_payload": False}
    )
    refusal = fake_slack.wait_for("/response/x3")[0].body
    assert refusal["response_type"] == "ephemeral" and "Only the owner <@U222BBB>" in refusal["text"]
    assert not [s for s in fake_argo.submits() if "workflowtemplate/env-destroy-template" in s]


def test_a_token_slack_rejects_stops_start_up_with_one_line(fake_argo, fake_slack) -> None:
    fake_slack.token_valid = False
    with pytest.raises(ConfigError) as caught:
        Runtime(make_settings(fake_argo, fake_slack, slack_app_token=APP_TOKEN), mode="socket", port=0)
    assert caught.value.user_message == "Slack did not accept SLACK_BOT_TOKEN (invalid_auth)."
    fake_slack.stop()  # Slack unreachable at start-up
    with pytest.raises(ConfigError) as caught:
        Runtime(make_settings(fake_argo, fake_slack), mode="http", port=0)
    assert caught.value.user_message.startswith(f"Could not reach Slack at SLACK_API_URL={fake_slack.api_url}")
    assert BOT_TOKEN not in caught.value.user_message
