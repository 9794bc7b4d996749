"""Authorization and quotas end to end over real HTTP: ownership read back from argo's own records,
on-call membership from a local Slack Web API stand-in."""

import json
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from slack_sdk.signature import SignatureVerifier

from tests.conftest import SIGNING_SECRET, HttpBot
from tests.execution_plane import ARGO_NAMESPACE

OWNER, STRANGER, ADMIN, ONCALL = "U0OWNER1", "U0STRANGER", "U0ADMIN1", "U0ONCALL1"
POLICY = f"""
admins: [{ADMIN}]
oncall_groups: [S0ONCALL]
quotas: {{per_user: 3}}
services:
  checkout: {{}}
  payments: {{channels: [C0PAY]}}
channels: [C111AAA, C0PAY]
"""


@pytest.fixture
def bot(http_bot_factory: Any, fake_slack: Any, tmp_path: Path) -> HttpBot:
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    fake_slack.groups = {"S0ONCALL": [ONCALL, "U0SOMEONE"]}
    return http_bot_factory(envbot_policy=policy, group_cache_seconds=300)


def create(bot: HttpBot, name: str, user: str = OWNER) -> dict[str, Any]:
    _, path = bot.command(f"create checkout name={name}", user=user)
    return bot.reply(path)


def destroy(bot: HttpBot, name: str, user: str) -> dict[str, Any]:
    _, path = bot.command(f"destroy {name}", user=user)
    return bot.reply(path)


def destroy_submits(fake_argo: Any) -> list[list[str]]:
    return [argv for argv in fake_argo.submits() if "workflowtemplate/env-destroy-template" in argv]


def test_owner_destroys_their_environment(bot: HttpBot, fake_argo: Any) -> None:
    create(bot, "co-owned")
    reply = destroy(bot, "co-owned", OWNER)
    assert reply["response_type"] == "in_channel"
    assert len(destroy_submits(fake_argo)) == 1
    lookup = [argv for argv in fake_argo.calls() if argv[0] == "list"][-1]  # the one destroy made
    assert lookup == [
        "list",
        "-n",
        ARGO_NAMESPACE,
        "-l",
        "app.kubernetes.io/managed-by=envbot,envbot.dev/env=co-owned",
        "-o",
        "json",
    ]


def test_a_stranger_is_refused_and_told_who_may(bot: HttpBot, fake_argo: Any) -> None:
    create(bot, "co-owned")
    reply = destroy(bot, "co-owned", STRANGER)
    assert reply["response_type"] == "ephemeral"
    assert f"Only the owner <@{OWNER}>, admins (<@{ADMIN}>) or members of <!subteam^S0ONCALL>" in reply["text"]
    assert destroy_submits(fake_argo) == []


def test_admin_and_oncall_member_may_destroy_anyones(bot: HttpBot, fake_argo: Any) -> None:
    create(bot, "co-one")
    create(bot, "co-two")
    assert destroy(bot, "co-one", ADMIN)["response_type"] == "in_channel"
    reply = destroy(bot, "co-two", ONCALL)
    assert reply["response_type"] == "in_channel"
    assert f"(owner <@{OWNER}>)" in reply["text"]
    assert [argv[argv.index("-p") + 1] for argv in destroy_submits(fake_argo)] == ["env_name=co-one", "env_name=co-two"]


def test_unknown_environment_only_privileged_may_destroy(bot: HttpBot, fake_argo: Any) -> None:
    reply = destroy(bot, "never-made", STRANGER)
    assert "There is no environment called `never-made`." in reply["text"]
    assert destroy_submits(fake_argo) == []
    assert destroy(bot, "never-made", ADMIN)["response_type"] == "in_channel"


def test_a_burst_of_oncall_commands_costs_one_group_lookup(bot: HttpBot, fake_slack: Any, fake_argo: Any) -> None:
    names = [f"co-{i}" for i in range(3)]
    for name in names:
        create(bot, name)
    with ThreadPoolExecutor(max_workers=3) as pool:
        replies = list(pool.map(lambda n: destroy(bot, n, ONCALL), names))
    assert all(r["response_type"] == "in_channel" for r in replies)
    lookups = fake_slack.requests("/api/usergroups.users.list")
    assert len(lookups) == 1 and lookups[0].body["usergroup"] == "S0ONCALL"


def test_membership_change_event_refreshes_the_cache(bot: HttpBot, fake_slack: Any) -> None:
    create(bot, "co-a")
    create(bot, "co-b")
    fake_slack.groups["S0ONCALL"] = []
    assert destroy(bot, "co-a", STRANGER)["response_type"] == "ephemeral"  # fetched: not a member
    fake_slack.groups["S0ONCALL"] = [STRANGER]
    event = {
        "token": "x",
        "team_id": "T111",
        "api_app_id": "A111",
        "type": "event_callback",
        "event_id": "Ev1",
        "event_time": int(time.time()),
        "event": {
            "type": "subteam_members_changed",
            "subteam_id": "S0ONCALL",
            "team_id": "T111",
            "added_users": [STRANGER],
            "removed_users": [],
        },
    }
    body = json.dumps(event)
    stamp = str(int(time.time()))
    headers = {
        "Content-Type": "application/json",  # the Events API sends JSON
        "X-Slack-Request-Timestamp": stamp,
        "X-Slack-Signature": SignatureVerifier(SIGNING_SECRET).generate_signature(timestamp=stamp, body=body),
    }
    assert bot.post(body, headers=headers).status == 200
    assert destroy(bot, "co-b", STRANGER)["response_type"] == "in_channel"
    assert len(fake_slack.requests("/api/usergroups.users.list")) == 2


def test_slack_down_fails_closed_for_non_owners(bot: HttpBot, fake_slack: Any, fake_argo: Any) -> None:
    create(bot, "co-x")
    fake_slack.groups_down = True
    reply = destroy(bot, "co-x", ONCALL)
    assert reply["response_type"] == "ephemeral"
    assert "couldn't reach Slack to check on-call group membership" in reply["text"]
    assert f"only the owner <@{OWNER}>" in reply["text"]
    assert destroy_submits(fake_argo) == []
    assert destroy(bot, "co-x", OWNER)["response_type"] == "in_channel"


def test_quota_refuses_the_extra_create_until_one_is_destroyed(bot: HttpBot, fake_argo: Any) -> None:
    for i in range(3):
        assert create(bot, f"q-{i}")["response_type"] == "in_channel"
    refused = create(bot, "q-3")
    assert refused["response_type"] == "ephemeral"
    assert "You have 3 live environments (limit 3): `q-0`, `q-1`, `q-2`" in refused["text"]
    assert "/env destroy <name>" in refused["text"]
    assert destroy(bot, "q-1", OWNER)["response_type"] == "in_channel"
    assert create(bot, "q-3")["response_type"] == "in_channel"
    assert create(bot, "other", user=STRANGER)["response_type"] == "in_channel"  # quotas are per user


def test_quota_holds_under_a_concurrent_burst(bot: HttpBot, fake_argo: Any) -> None:
    fake_argo.configure(delay=0.3)
    with ThreadPoolExecutor(max_workers=6) as pool:
        replies = list(pool.map(lambda i: create(bot, f"burst-{i}"), range(6)))
    assert sum(r["response_type"] == "in_channel" for r in replies) == 3
    assert len(fake_argo.submits()) == 3


def test_expired_and_failed_environments_do_not_count(bot: HttpBot, fake_argo: Any) -> None:
    fake_argo.configure(phase="Failed")
    for i in range(3):
        create(bot, f"failed-{i}")
    fake_argo.configure()
    assert create(bot, "works")["response_type"] == "in_channel"


def test_taken_name_is_refused(bot: HttpBot) -> None:
    create(bot, "shared-name")
    reply = create(bot, "shared-name", user=STRANGER)
    assert f"`shared-name` already exists (owner <@{OWNER}>)" in reply["text"]


def test_catalog_and_channel_rules_run_nothing(bot: HttpBot, fake_argo: Any) -> None:
    ack, _ = bot.command("create checkot", user=OWNER)
    assert "Did you mean `checkout`?" in ack.json()["text"]
    ack, _ = bot.command("create payments", user=OWNER)
    assert "can only be requested in <#C0PAY>" in ack.json()["text"]
    ack, _ = bot.command("create checkout", user=OWNER, channel="C0RANDOM")
    assert "not enabled in this channel" in ack.json()["text"]
    ack, _ = bot.command("help", user=OWNER, channel="C0RANDOM")
    assert "gives you" in ack.json()["text"]
    time.sleep(0.3)
    assert fake_argo.calls() == []
