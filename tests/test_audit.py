"""Audit records for every decision, and no token or signing secret anywhere a person could see it."""

import json
import logging
import re
from pathlib import Path
from typing import Any

import pytest

from slackbot.slack.runtime import Runtime
from tests.conftest import APP_TOKEN, BOT_TOKEN, SECRETS, HttpBot, make_settings
from tests.fakes.socket_mode import FakeSocketMode
from tests.test_socket_mode import envelope

FIELDS = {
    "kind",
    "time",
    "user",
    "channel",
    "command",
    "action",
    "decision",
    "reason",
    "env",
    "workflow",
    "outcome",
    "latency_ms",
    "source",
    "ttl",
    "expires_at",
}


@pytest.fixture
def audited(http_bot_factory: Any, fake_slack: Any, tmp_path: Path) -> tuple[HttpBot, Path]:
    policy = tmp_path / "policy.yaml"
    policy.write_text("admins: [U0ADMIN1]\noncall_groups: [S0ONCALL]\n")
    audit = tmp_path / "audit.jsonl"
    fake_slack.groups = {"S0ONCALL": ["U0ONCALL1"]}
    return http_bot_factory(envbot_policy=policy, envbot_audit_file=audit), audit


def run(bot: HttpBot, text: str, user: str = "U0OWNER1") -> dict[str, Any]:
    ack, path = bot.command(text, user=user)
    return ack.json() if "More in `/env help`" in ack.body or "gives you" in ack.body else bot.reply(path)


def test_every_decision_writes_one_record(audited: tuple[HttpBot, Path], capfd: Any) -> None:
    bot, audit = audited
    run(bot, "create checkout name=co-audit ttl=2h")
    run(bot, "destroy co-audit", user="U0STRANGER")
    run(bot, "create checkout ttl=9d")
    run(bot, "destroy co-audit")
    run(bot, "help")
    records = [json.loads(line) for line in audit.read_text().splitlines()]
    assert [(r["action"], r["decision"], r["outcome"]) for r in records] == [
        ("create", "allowed", "submitted"),
        ("destroy", "refused", "none"),
        ("create", "invalid", "none"),
        ("destroy", "allowed", "submitted"),
        ("help", "help", "none"),
    ]
    for record in records:
        assert set(record) == FIELDS
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", record["time"])
        assert record["channel"] == "C111AAA" and record["latency_ms"] >= 0
    assert records[0]["env"] == "co-audit" and records[0]["workflow"].startswith("env-create-template-")
    assert records[1]["user"] == "U0STRANGER" and "Only the owner" in records[1]["reason"]
    assert records[2]["command"] == "create checkout ttl=9d" and "out of bounds" in records[2]["reason"]
    stdout_records = [json.loads(line) for line in capfd.readouterr().out.splitlines() if '"kind": "audit"' in line]
    assert stdout_records == records


def test_failed_submissions_are_audited_with_their_cause(audited: tuple[HttpBot, Path], fake_argo: Any) -> None:
    bot, audit = audited
    fake_argo.configure(mode="unavailable")
    run(bot, "create checkout name=co-down")
    (record,) = [json.loads(line) for line in audit.read_text().splitlines()]
    assert (record["decision"], record["outcome"]) == ("allowed", "failed")
    assert "could not reach the cluster" in record["reason"]


def test_no_secret_appears_in_logs_replies_audit_or_slack_traffic(
    audited: tuple[HttpBot, Path], fake_slack: Any, fake_argo: Any, caplog: Any, capfd: Any, tmp_path: Path
) -> None:
    caplog.set_level(logging.DEBUG)
    bot, audit = audited
    replies = [
        run(bot, "create checkout name=co-secret"),
        run(bot, "destroy co-secret", user="U0STRANGER"),
        run(bot, "destroy co-secret", user="U0ONCALL1"),
        run(bot, "create checkout; cat /etc/passwd"),
        run(bot, f"create {BOT_TOKEN}"),
    ]
    fake_argo.configure(mode="unavailable")
    replies.append(run(bot, "create checkout name=co-fails"))
    fake_argo.configure(mode="normal")
    fake_slack.groups_down = True
    replies.append(run(bot, "destroy co-secret", user="U0STRANGER"))

    server = FakeSocketMode()
    fake_slack.socket_url = server.url
    socket = Runtime(make_settings(fake_argo, fake_slack, slack_app_token=APP_TOKEN), mode="socket", port=0)
    socket.start()
    server.wait_connected()
    server.send(envelope("e-1", "create checkout name=co-socket", fake_slack.response_url("sock")))
    acks = [server.wait_ack("e-1")]
    replies.append(fake_slack.wait_for("/response/sock")[0].body)
    socket.stop()
    server.stop()

    captured = capfd.readouterr()
    slack_bodies = "\n".join(json.dumps(r.body) for r in fake_slack.received)
    seen = "\n".join(
        [
            caplog.text,
            captured.out,
            captured.err,
            audit.read_text(),
            json.dumps(replies),
            json.dumps(acks),
            slack_bodies,
            json.dumps(fake_argo.calls()),
        ]
    )
    assert "co-secret" in seen and "co-socket" in seen  # the scenarios really ran
    for secret in SECRETS:
        assert secret not in seen, "a secret leaked"
    # The bot token goes to Slack only, and only as the Authorization header.
    for request in fake_slack.received:
        for name, value in request.headers.items():
            if secret_in(value):
                assert name.lower() == "authorization" and request.path.startswith("/api/"), (name, request.path)


def secret_in(text: str) -> bool:
    return any(secret in text for secret in SECRETS)


def test_a_pasted_token_is_refused_not_echoed_and_redacted_in_the_audit(
    audited: tuple[HttpBot, Path], fake_argo: Any
) -> None:
    bot, audit = audited
    for text in (f"create {BOT_TOKEN}", f"create checkout name={APP_TOKEN}", "destroy xoxp-1-2-3"):
        ack, _ = bot.command(text)
        assert "looks like a Slack token" in ack.json()["text"]
        assert BOT_TOKEN not in ack.body and APP_TOKEN not in ack.body
    records = [json.loads(line) for line in audit.read_text().splitlines()]
    assert [r["command"] for r in records] == [
        "create [redacted]",
        "create checkout name=[redacted]",
        "destroy [redacted]",
    ]
    assert fake_argo.calls() == []
