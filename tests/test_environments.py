"""Seeing and steering environments end to end: list, status, extend, buttons, over signed HTTP against
the fake argo. History is read from Argo, scoped by labels, and folded from lineage facts."""

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from freezegun import freeze_time

from tests.conftest import (
    FakeArgo,
    HttpBot,
    argv_labels,
    argv_params,
    button,
    keep_extend_records_three_days,
    operator_detail,
)
from tests.execution_plane import ARGO_NAMESPACE

T0 = datetime(2026, 11, 28, 11, tzinfo=UTC)
A, B, C = "U0AAAAA", "U0BBBBB", "U0CCCCC"
DEV, QA = "C0DEV", "C0QA"


def at(offset: timedelta = timedelta()) -> str:
    return (T0 + offset).strftime("%Y-%m-%dT%H:%M:%SZ")


def policy(tmp_path: Path, **fields: Any) -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(fields))
    return path


@pytest.fixture
def bot(http_bot_factory: Any, fake_argo: FakeArgo, tmp_path: Path) -> HttpBot:
    fake_argo.configure(now=at(), phases={"env-create-template": "Succeeded"})
    started: HttpBot = http_bot_factory(
        envbot_policy=policy(tmp_path, admins=["U0ADMIN1"], quotas={"per_user": 3}),
        argo_ui_url="https://argo.example.com",
    )
    return started


def run(bot: HttpBot, text: str, user: str = A, channel: str = DEV, when: timedelta = timedelta()) -> dict[str, Any]:
    """Send a command at T0 + when (the bot's clock and the fake argo's clock agree) and return its follow-up."""
    fake = FakeArgo.__new__(FakeArgo)  # a second handle on the same state, to move the fake's clock
    fake.state = Path(bot.runtime.settings.argo_bin).parent.parent / "argo-state"
    fake.configure(**(fake.config() | {"now": at(when)}))
    with freeze_time(T0 + when):
        ack, path = bot.command(text, user=user, channel=channel)
        assert ack.status == 200, ack
        return bot.reply(path)


def workflow_named(fake_argo: FakeArgo, template: str, env: str) -> str:
    found = [
        w["metadata"]["name"]
        for w in fake_argo.workflows()
        if w["spec"]["workflowTemplateRef"]["name"] == template and w["metadata"]["labels"]["envbot.dev/env"] == env
    ]
    return found[-1]


def test_list_reads_only_the_scope_it_needs_and_reads_as_a_list(bot: HttpBot, fake_argo: FakeArgo) -> None:
    run(bot, "create checkout ttl=4h name=a-checkout", user=A, channel=DEV)
    run(bot, "create search ttl=1h name=a-search", user=A, channel=QA)
    run(bot, "create checkout ttl=2d name=b-checkout", user=B, channel=QA)

    mine = run(bot, "list", user=A)
    lines = mine["text"].splitlines()
    assert lines[0] == "*Your environments* (2, soonest expiry first)"
    assert lines[1].startswith("• `a-search` · search · <@U0AAAAA> · <#C0QA> · expires <!date^")
    assert "1h left · ready" in lines[1]
    assert lines[2].startswith("• `a-checkout`") and "4h left" in lines[2]
    assert mine["response_type"] == "ephemeral"

    everyone = run(bot, "list all", user=C)
    assert [re.search(r"`([a-z-]+)`", line).group(1) for line in everyone["text"].splitlines()[1:]] == [
        "a-search",
        "a-checkout",
        "b-checkout",
    ]
    of_b = run(bot, f"list <@{B}|bee>", user=C)
    assert "*Environments of <@U0BBBBB>* (1" in of_b["text"] and "b-checkout" in of_b["text"]
    in_qa = run(bot, f"list <#{QA}|qa>", user=C)
    assert "a-search" in in_qa["text"] and "b-checkout" in in_qa["text"] and "a-checkout" not in in_qa["text"]

    selectors = [argv[argv.index("-l") + 1] for argv in fake_argo.lists()]
    base = "app.kubernetes.io/managed-by=envbot"
    assert f"{base},envbot.dev/owner={A}" in selectors
    assert f"{base},envbot.dev/owner={B}" in selectors
    assert f"{base},envbot.dev/channel={QA}" in selectors
    assert base in selectors  # list all: everything, read as a stream
    # Never --chunk-size: argo's kube mode would silently return only the first page.
    assert not any("--chunk-size" in argv for argv in fake_argo.lists())


def test_a_long_list_shows_twenty_and_how_many_more(bot: HttpBot, fake_argo: FakeArgo) -> None:
    fake_argo.seed(
        25,
        params=lambda i: {"env_name": f"seeded-{i:02d}", "service": "svc", "expires_at": at(timedelta(hours=i + 1))},
        labels=lambda i: {
            "app.kubernetes.io/managed-by": "envbot",
            "envbot.dev/env": f"seeded-{i:02d}",
            "envbot.dev/action": "create",
            "envbot.dev/owner": A,
            "envbot.dev/requested-by": A,
        },
    )
    reply = run(bot, "list", user=A)
    lines = reply["text"].splitlines()
    assert lines[0] == "*Your environments* (25, soonest expiry first)"
    assert len(lines) == 22 and lines[1].startswith("• `seeded-00`") and lines[20].startswith("• `seeded-19`")
    assert lines[21].startswith("…and 5 more.")


def test_list_all_sees_every_environment_past_any_page_size(bot: HttpBot, fake_argo: FakeArgo) -> None:
    fake_argo.seed(
        600,
        params=lambda i: {"env_name": f"many-{i:03d}", "service": "svc", "expires_at": at(timedelta(days=1))},
        labels=lambda i: {
            "app.kubernetes.io/managed-by": "envbot",
            "envbot.dev/env": f"many-{i:03d}",
            "envbot.dev/action": "create",
            "envbot.dev/owner": f"U0OWNER{i % 9}",
            "envbot.dev/channel": "C0PUBLIC1",  # a public channel: everyone sees them (docs/commands.md)
        },
    )
    reply = run(bot, "list all", user=C)
    assert reply["text"].splitlines()[0] == "*All environments* (600, soonest expiry first)"


def test_extend_moves_the_expiry_and_the_environment_stays_counted(bot: HttpBot, fake_argo: FakeArgo) -> None:
    run(bot, "create checkout ttl=1h name=ext-demo", user=A)
    create = workflow_named(fake_argo, "env-create-template", "ext-demo")

    reply = run(bot, "extend ext-demo ttl=4h", user=A, when=timedelta(minutes=30))
    assert reply["response_type"] == "in_channel"
    assert "<@U0AAAAA> extended `ext-demo` by 4h from now." in reply["text"]
    assert "|2026-11-28 15:30 UTC>" in reply["text"]
    extend = fake_argo.submits()[-1]
    assert extend[:3] == ["submit", "--from", "workflowtemplate/env-extend-template"]
    assert argv_params(extend) == {
        "env_name": "ext-demo",
        "expires_at": "2026-11-28T15:30:00Z",
        "requested_by": A,
        "slack_channel": DEV,
        "warn_before": "3600,600",
        "extend_choices": "2h,1d",
        "latest_expiry": "2026-12-12T11:00:00Z",  # counted from the creation, not from this extend
    }
    labels = argv_labels(extend)
    assert labels["envbot.dev/create-workflow"] == labels["envbot.dev/after"] == create
    assert labels["envbot.dev/owner"] == A and labels["envbot.dev/expires"] == str(
        int(datetime(2026, 11, 28, 15, 30, tzinfo=UTC).timestamp())
    )

    # Two hours in, past the create's own expiry: the extend keeps it live for names and quotas.
    taken = run(bot, "create checkout name=ext-demo", user=B, when=timedelta(hours=2))
    assert "`ext-demo` already exists (owner <@U0AAAAA>)" in taken["text"]
    listing = run(bot, "list", user=A, when=timedelta(hours=2))
    assert (
        "`ext-demo`" in listing["text"] and "2h 30m left" in listing["text"] and "extend submitted" in listing["text"]
    )

    # A second extend follows the first; a failed one does not count.
    run(bot, "extend ext-demo ttl=8h", user=A, when=timedelta(hours=2))
    second = workflow_named(fake_argo, "env-extend-template", "ext-demo")
    assert argv_labels(fake_argo.submits()[-1])["envbot.dev/after"] != create
    fake_argo.set_phase(second, "Failed", node_message="envbot: environment ext-demo is being deleted")
    status = run(bot, "status ext-demo", user=C, when=timedelta(hours=2))
    assert "Expires <!date^" in status["text"] and "|2026-11-28 15:30 UTC>" in status["text"]
    assert "step `extend` failed: envbot: environment ext-demo is being deleted" in status["text"]


def test_extend_is_bounded_by_the_lifetime_and_by_who_may_act(
    http_bot_factory: Any, fake_argo: FakeArgo, tmp_path: Path
) -> None:
    fake_argo.configure(now=at(), phases={"env-create-template": "Succeeded"})
    bot = http_bot_factory(
        envbot_policy=policy(tmp_path, admins=["U0ADMIN1"], ttl={"max": "1d", "lifetime": "1d"}),
    )
    run(bot, "create checkout ttl=4h name=bounded", user=A)
    too_long = run(bot, "extend bounded ttl=1d", user=A, when=timedelta(hours=2))
    assert "`bounded` may live until" in too_long["text"] and "|2026-11-29 11:00 UTC>" in too_long["text"]
    assert "the most you can ask for now is ttl=22h" in too_long["text"]
    stranger = run(bot, "extend bounded ttl=2h", user=C, when=timedelta(hours=2))
    assert "Only the owner <@U0AAAAA> or admins (<@U0ADMIN1>) may act on `bounded`" in stranger["text"]
    by_admin = run(bot, "extend bounded ttl=20h", user="U0ADMIN1", when=timedelta(hours=2))
    assert "extended `bounded` (owner <@U0AAAAA>) by 20h" in by_admin["text"]
    assert [argv_params(s)["expires_at"] for s in fake_argo.submits()[1:]] == ["2026-11-29T09:00:00Z"]


def test_extend_refuses_what_it_cannot_extend(bot: HttpBot, fake_argo: FakeArgo) -> None:
    assert "There is no environment called `ghost`. You have none" in run(bot, "extend ghost", user=A)["text"]
    run(bot, "create checkout ttl=15m name=brief", user=A)
    expired = run(bot, "extend brief", user=A, when=timedelta(hours=1))
    assert "`brief` expired" in expired["text"] and "|2026-11-28 11:15 UTC>" in expired["text"]
    run(bot, "create checkout name=gone", user=A)
    run(bot, "destroy gone", user=A)
    assert "`gone` was destroyed by <@U0AAAAA>" in run(bot, "extend gone", user=A)["text"]
    assert not [s for s in fake_argo.submits() if "workflowtemplate/env-extend-template" in s]


def test_same_second_destroy_and_re_create_are_ordered_by_facts(
    http_bot_factory: Any, fake_argo: FakeArgo, tmp_path: Path
) -> None:
    fake_argo.configure(now=at(), phases={"env-create-template": "Succeeded", "env-destroy-template": "Succeeded"})
    bot = http_bot_factory(envbot_policy=policy(tmp_path, quotas={"per_user": 3}))
    with freeze_time(T0):
        for name in ("q1", "q2", "q3"):
            run(bot, f"create checkout name={name}", user=A)
        run(bot, "destroy q3", user=A)
        again = run(bot, "create checkout name=q3", user=A)  # all in the same second as the destroy
        assert again["response_type"] == "in_channel"
        fourth = run(bot, "create checkout name=q4", user=A)
        assert "You have 3 live environments (limit 3): `q1`, `q2`, `q3`" in fourth["text"]
        old_create, new_create = [
            w["metadata"]["name"]
            for w in fake_argo.workflows()
            if w["metadata"]["labels"]["envbot.dev/env"] == "q3"
            and w["metadata"]["labels"]["envbot.dev/action"] == "create"
        ]
        assert fake_argo.workflow(new_create)["metadata"]["creationTimestamp"] == at()  # the same second
        # The new create names the one it replaces; the destroy names the one it ended.
        assert fake_argo.workflow(new_create)["metadata"]["labels"]["envbot.dev/after"] == old_create
        destroy = workflow_named(fake_argo, "env-destroy-template", "q3")
        assert fake_argo.workflow(destroy)["metadata"]["labels"]["envbot.dev/create-workflow"] == old_create
        refused = run(bot, "destroy q3", user=B)
        assert "Only the owner <@U0AAAAA>" in refused["text"]
    assert len([s for s in fake_argo.submits() if "workflowtemplate/env-create-template" in s]) == 4


@pytest.mark.parametrize("mode", ["empty", "null", "object", "garbage"])
def test_history_that_is_not_a_list_of_workflows_fails_closed(
    bot: HttpBot, fake_argo: FakeArgo, mode: str, caplog: pytest.LogCaptureFixture
) -> None:
    bot.runtime.verify_records()
    fake_argo.configure(**(fake_argo.config() | {"modes": {"list": mode}}))
    reply = run(bot, "create checkout name=unsure", user=A)
    assert "not a JSON list of workflows" in operator_detail(caplog, reply)
    assert "I couldn't create `unsure`" in reply["text"] and "Nothing was created." in reply["text"]
    assert reply["response_type"] == "ephemeral"
    assert fake_argo.submits() == []


def test_a_create_costs_two_argo_calls_whatever_the_history(bot: HttpBot, fake_argo: FakeArgo) -> None:
    fake_argo.seed(
        400,
        params=lambda i: {"env_name": f"old-{i}", "service": "svc", "expires_at": at(timedelta(days=-1))},
        labels=lambda i: {
            "app.kubernetes.io/managed-by": "envbot",
            "envbot.dev/env": f"old-{i}",
            "envbot.dev/action": "create",
            "envbot.dev/owner": f"U0OTHER{i % 7}",
        },
    )
    bot.runtime.verify_records()
    before = len(fake_argo.calls())
    reply = run(bot, "create checkout", user=A)
    assert reply["response_type"] == "in_channel"
    calls = fake_argo.calls()[before:]
    assert [argv[0] for argv in calls] == ["list", "submit"]
    assert calls[0][calls[0].index("-l") + 1].endswith(f"envbot.dev/owner={A}")


def test_records_that_would_not_outlive_their_environments_stop_creates(
    http_bot_factory: Any, fake_argo: FakeArgo, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    keep_extend_records_three_days(fake_argo, tmp_path)
    bot = http_bot_factory()
    reply = run(bot, "create checkout", user=A)
    assert "Nothing was created." in reply["text"]
    detail = operator_detail(caplog, reply)
    assert "envbot is misconfigured, so nothing was submitted" in detail
    assert "WorkflowTemplate env-extend-template keeps its workflows 3d" in detail and "ttl.lifetime" in detail
    assert fake_argo.submits() == []


def test_status_shows_every_workflow_with_links_and_why_one_failed(bot: HttpBot, fake_argo: FakeArgo) -> None:
    run(bot, "create checkout ttl=2h name=st-demo", user=A)
    create = workflow_named(fake_argo, "env-create-template", "st-demo")
    run(bot, "extend st-demo ttl=3h", user=A, when=timedelta(minutes=10))
    extend = workflow_named(fake_argo, "env-extend-template", "st-demo")
    fake_argo.set_phase(extend, "Failed", node_message="envbot: namespace st-demo is still being deleted; try again")
    status = run(bot, "status st-demo", user=B, when=timedelta(minutes=20))
    text = status["text"]
    assert status["response_type"] == "ephemeral"
    assert text.startswith("*`st-demo`*: live")
    assert "Owner <@U0AAAAA> · service `checkout` · <#C0DEV>" in text
    assert (
        f"• create by <@U0AAAAA>: <https://argo.example.com/workflows/{ARGO_NAMESPACE}/{create}|{create}> · ready"
        in text
    )
    assert f"<https://argo.example.com/workflows/{ARGO_NAMESPACE}/{extend}|{extend}> · extend failed" in text
    assert "step `extend` failed: envbot: namespace st-demo is still being deleted; try again" in text
    assert ["get", extend, "-n", ARGO_NAMESPACE, "-o", "json"] in fake_argo.calls()
    assert "There is no environment called `nope`" in run(bot, "status nope", user=B)["text"]
    # A typo among one's own: the near match, not a permissions lecture.
    typo = run(bot, "destroy st-dmeo", user=A, when=timedelta(minutes=20))
    assert typo["text"] == ":no_entry: There is no environment called `st-dmeo`. Did you mean `st-demo`?"


def test_buttons_go_through_the_same_path_and_a_double_click_submits_once(bot: HttpBot, fake_argo: FakeArgo) -> None:
    created = run(bot, "create checkout ttl=1h name=btn-demo", user=A)  # +2h from now adds time
    labels = [e["text"]["text"] for b in created["blocks"] if b["type"] == "actions" for e in b["elements"]]
    assert labels == ["Extend +2h", "Extend +1d", "Destroy"]
    destroy = button(created, "Destroy")
    assert destroy["style"] == "danger" and destroy["confirm"]["style"] == "danger"
    assert destroy["confirm"]["title"]["text"] == "Destroy btn-demo?"
    assert created["text"].startswith(":rocket:")  # the plain-text fallback

    with freeze_time(T0 + timedelta(minutes=5)):
        first, path1 = bot.click(created, "Extend +2h", user=A, channel=DEV, ts="1764320001.000100")
        second, path2 = bot.click(created, "Extend +2h", user=A, channel=DEV, ts="1764320001.000100")
        assert first.status == second.status == 200
        replies = [bot.reply(path1), bot.reply(path2)]
    extends = [s for s in fake_argo.submits() if "workflowtemplate/env-extend-template" in s]
    assert len(extends) == 1
    assert argv_params(extends[0])["expires_at"] == "2026-11-28T13:05:00Z"
    assert sorted("Already on it" in r["text"] for r in replies) == [False, True]
    assert any("extended `btn-demo` by 2h" in r["text"] for r in replies)

    _, path = bot.click(created, "Destroy", user=C, channel=DEV, ts="1764320001.000100")
    refusal = bot.reply(path)
    assert refusal["response_type"] == "ephemeral" and "Only the owner <@U0AAAAA>" in refusal["text"]
    assert refusal["replace_original"] is False
    with freeze_time(T0 + timedelta(minutes=6)):
        _, path = bot.click(created, "Destroy", user=A, channel=DEV, ts="1764320001.000100")
        done = bot.reply(path)
    assert "requested destroy of environment `btn-demo`" in done["text"]
    assert len([s for s in fake_argo.submits() if "workflowtemplate/env-destroy-template" in s]) == 1


def test_audit_records_for_list_status_and_extend(http_bot_factory: Any, fake_argo: FakeArgo, tmp_path: Path) -> None:
    fake_argo.configure(now=at(), phases={"env-create-template": "Succeeded"})
    audit = tmp_path / "audit.jsonl"
    bot = http_bot_factory(envbot_audit_file=audit)
    run(bot, "create checkout ttl=1h name=aud", user=A)
    run(bot, "extend aud ttl=2h", user=A, when=timedelta(minutes=1))
    run(bot, "list", user=A)
    run(bot, "status aud", user=A)
    records = [json.loads(line) for line in audit.read_text().splitlines()]
    by_action = {r["action"]: r for r in records}
    assert by_action["extend"] | {"latency_ms": 0} == by_action["extend"] | {
        "decision": "allowed",
        "outcome": "submitted",
        "ttl": "2h",
        "expires_at": "2026-11-28T13:01:00Z",
        "env": "aud",
        "latency_ms": 0,
    }
    assert by_action["create"]["ttl"] == "1h" and by_action["create"]["expires_at"] == "2026-11-28T12:00:00Z"
    assert by_action["list"]["outcome"] == "answered" and by_action["list"]["reason"] == "1 live"
    assert by_action["status"]["outcome"] == "answered" and by_action["status"]["expires_at"] == "2026-11-28T13:01:00Z"
