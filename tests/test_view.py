"""The view of environments: a create's follow-up waits for its submit alone, and the view fails closed.

The real bot over signed HTTP against the fake argo; argo calls are counted per command."""

from pathlib import Path
from typing import Any

import pytest
import yaml

from slackbot.argo_cli import ArgoCliOrchestrator, ProcessRunner
from slackbot.orchestrator import Submission
from slackbot.spec import EnvironmentSpec
from slackbot.view import MAX_AGE_FACTOR, EnvironmentView
from tests.conftest import FakeArgo, HttpBot, argv_params
from tests.execution_plane import ARGO_NAMESPACE

A, B = "U0AAAAA", "U0BBBBB"
DEV, QA = "C0DEV", "C0QA"


def policy(tmp_path: Path, **fields: Any) -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(fields))
    return path


def served(factory: Any, tmp_path: Path, **quotas: int) -> HttpBot:
    """A bot as `envbot serve` runs it: templates verified, the view loaded."""
    bot: HttpBot = factory(envbot_policy=policy(tmp_path, quotas=quotas), env_view_refresh=600)
    bot.runtime.warm_up()
    assert bot.runtime.bot.services.view.wait_loaded(20)
    return bot


def calls_for(bot: HttpBot, fake_argo: FakeArgo, text: str, user: str = A, channel: str = DEV) -> tuple[str, list]:
    """Run one command to its follow-up; return the follow-up's text and the argo calls it made."""
    before = len(fake_argo.calls())
    ack, path = bot.command(text, user=user, channel=channel)
    assert ack.status == 200
    reply = bot.reply(path)["text"]
    return reply, [argv[0] for argv in fake_argo.calls()[before:]]


def test_a_create_costs_one_submit_with_a_name_and_a_channel_quota(
    http_bot_factory: Any, fake_argo: FakeArgo, tmp_path: Path
) -> None:
    bot = served(http_bot_factory, tmp_path, per_user=3, per_channel=5)
    for text in ("create checkout", "create checkout name=chosen", "create search ttl=2h name=other"):
        reply, calls = calls_for(bot, fake_argo, text)
        assert "requested environment" in reply
        assert calls == ["submit"], (text, calls)


def test_own_submits_count_at_once_and_a_refusal_is_confirmed_afresh(
    http_bot_factory: Any, fake_argo: FakeArgo, tmp_path: Path
) -> None:
    bot = served(http_bot_factory, tmp_path, per_user=2)
    for name in ("one", "two"):
        assert calls_for(bot, fake_argo, f"create checkout name={name}")[1] == ["submit"]
    reply, calls = calls_for(bot, fake_argo, "create checkout name=three")
    assert "You have 2 live environments (limit 2): `one`, `two`" in reply
    assert calls == ["list", "list"]  # the view said no; Argo (owner, then name) agreed; nothing was submitted
    # A name taken by this replica's own submit is refused without a submit too.
    reply, calls = calls_for(bot, fake_argo, "create checkout name=one", user=B)
    assert "`one` already exists (owner <@U0AAAAA>)" in reply and "submit" not in calls


def test_a_stale_refusal_is_not_shown_when_argo_says_otherwise(
    http_bot_factory: Any, fake_argo: FakeArgo, tmp_path: Path
) -> None:
    bot = served(http_bot_factory, tmp_path, per_user=1)
    assert calls_for(bot, fake_argo, "create checkout name=doomed")[1] == ["submit"]
    (workflow,) = [w["metadata"]["name"] for w in fake_argo.workflows()]
    fake_argo.set_phase(workflow, "Running")
    fake_argo.set_phase(workflow, "Failed", message="the namespace could not be created")  # the view can't know
    reply, calls = calls_for(bot, fake_argo, "create checkout name=retry")
    assert "requested environment `retry`" in reply
    assert calls == ["list", "list", "submit"]  # confirmed afresh (owner, name), then submitted


def test_a_destroy_frees_its_quota_in_the_view_at_once(
    http_bot_factory: Any, fake_argo: FakeArgo, tmp_path: Path
) -> None:
    bot = served(http_bot_factory, tmp_path, per_user=1)
    calls_for(bot, fake_argo, "create checkout name=first")
    reply, calls = calls_for(bot, fake_argo, "destroy first")
    assert "requested destroy" in reply
    reply, calls = calls_for(bot, fake_argo, "create checkout name=second")
    assert "requested environment `second`" in reply and calls == ["submit"]


def test_what_another_replica_did_is_seen_after_a_refresh(
    http_bot_factory: Any, fake_argo: FakeArgo, tmp_path: Path
) -> None:
    bot = served(http_bot_factory, tmp_path, per_user=5)
    fake_argo.add_workflow(  # as if another replica had submitted it
        params={"env_name": "elsewhere", "service": "checkout", "expires_at": "2099-01-01T00:00:00Z"},
        labels={
            "app.kubernetes.io/managed-by": "envbot", "envbot.dev/env": "elsewhere", "envbot.dev/action": "create",
            "envbot.dev/owner": B, "envbot.dev/requested-by": B, "envbot.dev/channel": QA,
            "envbot.dev/expires": "4070908800",
        },
    )  # fmt: skip
    view = bot.runtime.bot.services.view
    assert view.snapshot() is not None and view.snapshot().named("elsewhere") is None  # type: ignore[union-attr]
    view.refresh()
    reply, calls = calls_for(bot, fake_argo, "create checkout name=elsewhere")
    assert "`elsewhere` already exists (owner <@U0BBBBB>)" in reply
    assert "submit" not in calls


def test_the_view_is_not_used_before_it_loads_or_once_it_is_too_old(fake_argo: FakeArgo) -> None:
    clock = [1000.0]
    orchestrator = ArgoCliOrchestrator(str(fake_argo.bin), ARGO_NAMESPACE, 10, ProcessRunner())
    view = EnvironmentView(orchestrator, refresh=30, now=lambda: clock[0])
    assert view.snapshot() is None  # never loaded
    view.refresh()
    assert view.snapshot() is not None
    clock[0] += MAX_AGE_FACTOR * 30 - 1
    assert view.snapshot() is not None
    clock[0] += 1
    assert view.snapshot() is None  # too old: read afresh
    fake_argo.configure(modes={"list": "unavailable"})
    with pytest.raises(Exception, match="could not reach the cluster"):
        view.refresh()
    assert view.snapshot() is None  # a failed refresh does not make it trusted again
    assert EnvironmentView(orchestrator, refresh=0).snapshot() is None  # ENV_VIEW_REFRESH=0: always afresh


def test_an_untrusted_view_reads_argo_afresh(http_bot_factory: Any, fake_argo: FakeArgo, tmp_path: Path) -> None:
    fake_argo.configure(modes={"list": "unavailable"})
    bot: HttpBot = http_bot_factory(envbot_policy=policy(tmp_path, quotas={"per_user": 2}), env_view_refresh=600)
    bot.runtime.verify_records()
    with pytest.raises(Exception, match="could not reach the cluster"):
        bot.runtime.bot.services.view.refresh()  # its first read fails
    fake_argo.configure()
    assert bot.runtime.bot.services.view.snapshot() is None
    reply, calls = calls_for(bot, fake_argo, "create checkout")
    assert "requested environment `checkout-" in reply
    assert calls == ["list", "submit"]  # as before the view: the requester's environments, then the submit


def test_own_submits_are_kept_until_a_read_that_started_after_them(fake_argo: FakeArgo) -> None:
    orchestrator = ArgoCliOrchestrator(str(fake_argo.bin), ARGO_NAMESPACE, 10, ProcessRunner())
    view = EnvironmentView(orchestrator, refresh=30)
    view.refresh()
    spec = EnvironmentSpec.model_validate(
        {"env_name": "mine", "service": "checkout", "expires_at": "2099-01-01T00:00:00Z", "requested_by": A}
    )
    submitted = orchestrator.create(spec)
    view.created(spec, submitted, spec.expires_at)
    assert view.snapshot().named("mine").create.phase == ""  # type: ignore[union-attr]
    view.created(spec.model_copy(update={"env_name": "ghost"}), Submission(workflow_name="ghost-x"), spec.expires_at)
    view.refresh()
    snapshot = view.snapshot()
    assert snapshot is not None
    assert snapshot.named("mine") is not None  # now Argo's record
    assert snapshot.named("ghost") is None  # a submit Argo does not have is dropped once a later read says so
    assert argv_params(fake_argo.submits()[0])["env_name"] == "mine"


def test_a_name_created_again_counts_only_for_its_new_owner_and_channel(fake_argo: FakeArgo) -> None:
    """Quotas read the view's per-owner and per-channel listings: a new incarnation moves the name."""
    view = EnvironmentView(ArgoCliOrchestrator(str(fake_argo.bin), ARGO_NAMESPACE, 10, ProcessRunner()), refresh=30)
    view.refresh()
    first = EnvironmentSpec.model_validate(
        {"env_name": "shared", "service": "checkout", "expires_at": "2099-01-01T00:00:00Z", "requested_by": A,
         "slack_channel": DEV}
    )  # fmt: skip
    view.created(first, Submission(workflow_name="envbot-create-first"), first.expires_at)
    again = first.model_copy(update={"requested_by": B, "slack_channel": QA, "replaces": "envbot-create-first"})
    view.created(again, Submission(workflow_name="envbot-create-again"), first.expires_at)
    snapshot = view.snapshot()
    assert snapshot is not None
    assert snapshot.owned_by(A) == {} and snapshot.in_channel(DEV) == {}
    assert snapshot.owned_by(B)["shared"].create.name == "envbot-create-again"
    assert snapshot.in_channel(QA)["shared"].create.name == "envbot-create-again"
