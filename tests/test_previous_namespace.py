"""Environments in flight across the upgrade to envbot's own namespace (docs/adr/0014).

An environment is created (and extended) by a bot of the old layout, whose workflows live in Argo's
shared namespace `argo`; then the upgrade moves envbot to `envbot-workflows`. The new bot, with
ARGO_PREVIOUS_NAMESPACE=argo, reads the old records beside its own, read-only: list, status, extend
and destroy over signed HTTP work on that environment, and what it submits goes to the new
namespace with the lineage of the old create. The real bot against the fake argo.
"""

from pathlib import Path
from typing import Any

import pytest

from slackbot.argo_cli import ArgoCliOrchestrator, ProcessRunner
from slackbot.errors import ConfigError, OrchestratorError
from slackbot.orchestrator import Scope
from slackbot.settings import load_settings
from tests.conftest import FakeArgo, HttpBot, argv_labels, argv_params
from tests.execution_plane import ARGO_NAMESPACE
from tests.fakes.kube_api import FakeKubeApi
from tests.fakes.slack_api import FakeSlack
from tests.test_check import check
from tests.test_warning_clicks import warning_for

OLD = "argo"
OWNER, CHANNEL = "U111AAA", "C111AAA"
UI = "https://argo.example.com"


def namespace_of(argv: list[str]) -> str:
    return argv[argv.index("-n") + 1]


def done(fake_argo: FakeArgo, argv: list[str]) -> str:
    """The controller runs the submitted workflow to success; returns its name."""
    name = argv[argv.index("--name") + 1]
    fake_argo.set_phase(name, "Succeeded", namespace=namespace_of(argv))
    return name


def before_the_upgrade(
    http_bot_factory: Any, fake_argo: FakeArgo, ttl: str = "4h", extend_to: str | None = "1d"
) -> tuple[str, str | None]:
    """The old layout: templates and every envbot workflow in `argo`. Returns (create, extend) names."""
    fake_argo.configure(namespace=OLD)
    old_bot: HttpBot = http_bot_factory(argo_namespace=OLD)
    _, path = old_bot.command(f"create checkout name=checkout-demo ttl={ttl}")
    assert "requested environment" in old_bot.reply(path)["text"]
    create = done(fake_argo, fake_argo.submits()[-1])
    extend = None
    if extend_to is not None:
        _, path = old_bot.command(f"extend checkout-demo ttl={extend_to}")
        old_bot.reply(path)
        extend = done(fake_argo, fake_argo.submits()[-1])
    assert {namespace_of(argv) for argv in fake_argo.submits()} == {OLD}
    old_bot.runtime.stop()
    # The upgrade: envbot's templates now live in its own namespace; the old records stay in `argo`.
    fake_argo.configure(namespace=ARGO_NAMESPACE)
    return create, extend


def test_without_the_setting_the_new_bot_has_no_record_of_environments_from_before(
    http_bot_factory: Any, fake_argo: FakeArgo
) -> None:
    before_the_upgrade(http_bot_factory, fake_argo)
    bot = http_bot_factory()
    submits = len(fake_argo.submits())
    for command in ("status checkout-demo", "destroy checkout-demo"):
        _, path = bot.command(command)
        assert "There is no environment called `checkout-demo`" in bot.reply(path)["text"], command
    assert len(fake_argo.submits()) == submits  # refused: nothing submitted


def test_with_the_previous_namespace_list_status_extend_and_destroy_work_across_the_upgrade(
    http_bot_factory: Any, fake_argo: FakeArgo
) -> None:
    create, extend = before_the_upgrade(http_bot_factory, fake_argo)
    bot = http_bot_factory(argo_previous_namespace=OLD, argo_ui_url=UI)

    _, path = bot.command("list")
    assert "checkout-demo" in bot.reply(path)["text"]
    _, path = bot.command("status checkout-demo")
    status = bot.reply(path)["text"]
    assert create in status and extend in status and f"<@{OWNER}>" in status

    # Extend: submitted in the new namespace, continuing the old chain.
    _, path = bot.command("extend checkout-demo ttl=2d")
    assert "extend" in bot.reply(path)["text"]
    submit = fake_argo.submits()[-1]
    assert namespace_of(submit) == ARGO_NAMESPACE and "workflowtemplate/env-extend-template" in submit
    labels = argv_labels(submit)
    assert labels["envbot.dev/create-workflow"] == create and labels["envbot.dev/after"] == extend
    assert labels["envbot.dev/owner"] == OWNER and labels["envbot.dev/channel"] == CHANNEL
    assert argv_params(submit)["slack_channel"] == CHANNEL
    new_extend = done(fake_argo, submit)

    # Destroy: the same, after the new extend.
    _, path = bot.command("destroy checkout-demo")
    reply = bot.reply(path)["text"]
    submit = fake_argo.submits()[-1]
    assert namespace_of(submit) == ARGO_NAMESPACE and "workflowtemplate/env-destroy-template" in submit
    labels = argv_labels(submit)
    assert labels["envbot.dev/create-workflow"] == create and labels["envbot.dev/after"] == new_extend
    destroy = next(
        w["metadata"]["name"] for w in fake_argo.workflows(ARGO_NAMESPACE) if "destroy" in w["metadata"]["name"]
    )
    assert destroy in reply
    _, path = bot.command("status checkout-demo")
    status = bot.reply(path)["text"]
    # Each record links to where it lives in the Argo UI.
    assert f"<{UI}/workflows/{OLD}/{create}|{create}>" in status and f"<{UI}/workflows/{OLD}/{extend}|" in status
    assert f"<{UI}/workflows/{ARGO_NAMESPACE}/{new_extend}|" in status
    assert f"<{UI}/workflows/{ARGO_NAMESPACE}/{destroy}|" in status

    # After the upgrade every submit went to the new namespace; the old one was only read.
    assert [namespace_of(argv) for argv in fake_argo.submits()] == [OLD, OLD, ARGO_NAMESPACE, ARGO_NAMESPACE]


def test_the_execution_planes_warning_buttons_work_on_an_environment_from_before_the_upgrade(
    http_bot_factory: Any, fake_argo: FakeArgo, fake_slack: FakeSlack, api: FakeKubeApi, tmp_path: Path
) -> None:
    # Created for 1h by the old bot; the real notifier warns ten minutes before (its buttons name the
    # old create as the incarnation); the new bot takes the click.
    create, _ = before_the_upgrade(http_bot_factory, fake_argo, ttl="1h", extend_to=None)
    warning = warning_for("checkout-demo", fake_argo, api, fake_slack, tmp_path / "plane")
    bot: HttpBot = http_bot_factory(argo_previous_namespace=OLD)
    _, path = bot.click(warning, "Extend +2h", user=OWNER, channel=CHANNEL, ts=warning["ts"])
    assert "<@U111AAA> extended `checkout-demo` by 2h" in bot.reply(path)["text"]
    submit = fake_argo.submits()[-1]
    assert namespace_of(submit) == ARGO_NAMESPACE and "workflowtemplate/env-extend-template" in submit
    assert argv_labels(submit)["envbot.dev/create-workflow"] == argv_labels(submit)["envbot.dev/after"] == create


def test_a_create_still_costs_one_argo_call_with_the_setting_on(http_bot_factory: Any, fake_argo: FakeArgo) -> None:
    before_the_upgrade(http_bot_factory, fake_argo)
    bot: HttpBot = http_bot_factory(argo_previous_namespace=OLD, env_view_refresh=600)
    bot.runtime.warm_up()
    assert bot.runtime.bot.services.view.wait_loaded(20)
    before = len(fake_argo.calls())
    _, path = bot.command("create checkout name=after-upgrade")
    assert "requested environment" in bot.reply(path)["text"]
    assert [argv[0] for argv in fake_argo.calls()[before:]] == ["submit"]
    # The old name is still taken: the view knows it from the old records.
    _, path = bot.command("create checkout name=checkout-demo")
    assert "checkout-demo" in bot.reply(path)["text"] and len(fake_argo.submits()) == 3


def test_history_reads_both_namespaces_and_fails_closed_when_the_old_one_cannot_be_read(
    fake_argo: FakeArgo, tmp_path: Path
) -> None:
    orchestrator = ArgoCliOrchestrator(str(fake_argo.bin), ARGO_NAMESPACE, 10, ProcessRunner(), OLD)
    before = len(fake_argo.calls())
    assert orchestrator.history(Scope()) == []
    assert sorted(namespace_of(argv) for argv in fake_argo.calls()[before:]) == sorted([ARGO_NAMESPACE, OLD])
    # The bot may not read `argo` (the upgrade's Role was deleted too early): argo as the API answers it.
    wrapper = tmp_path / "argo"
    wrapper.write_text(
        "#!/bin/bash\n"
        f'if [[ " $* " == *" -n {OLD} "* ]]; then\n'
        "  echo 'Error: rpc error: code = PermissionDenied desc = workflows.argoproj.io is forbidden' >&2; exit 1\n"
        "fi\n"
        f'exec {fake_argo.bin} "$@"\n'
    )
    wrapper.chmod(0o755)
    denied = ArgoCliOrchestrator(str(wrapper), ARGO_NAMESPACE, 10, ProcessRunner(), OLD)
    with pytest.raises(OrchestratorError) as caught:
        denied.history(Scope(env_name="checkout-demo"))
    assert caught.value.user_message.startswith(
        f"Could not read the history from before the upgrade in namespace {OLD} (ARGO_PREVIOUS_NAMESPACE)"
    )


def test_envbot_check_says_what_still_comes_from_the_previous_namespace_and_when_to_drop_it(
    http_bot_factory: Any, fake_argo: FakeArgo, fake_slack: FakeSlack, tmp_path: Path
) -> None:
    before_the_upgrade(http_bot_factory, fake_argo)
    _, lines, result = check(tmp_path, fake_argo, fake_slack, ARGO_PREVIOUS_NAMESPACE=OLD)
    assert lines["previous namespace"] == (
        f"ok (history is also read (read-only) in {OLD} for 1 environment(s) created there: `checkout-demo`)"
    ), result.stdout
    bot = http_bot_factory(argo_previous_namespace=OLD)
    _, path = bot.command("destroy checkout-demo")
    bot.reply(path)
    done(fake_argo, fake_argo.submits()[-1])
    code, lines, result = check(tmp_path, fake_argo, fake_slack, ARGO_PREVIOUS_NAMESPACE=OLD)
    assert code == 0  # a warning, not a failure
    assert lines["previous namespace"].startswith(
        f"warning: no environment created in {OLD} before the upgrade is left: unset ARGO_PREVIOUS_NAMESPACE "
        f"and delete Role and RoleBinding envbot-history-reader in {OLD}"
    ), result.stdout
    assert "previous namespace" not in check(tmp_path, fake_argo, fake_slack)[1]  # off: no line


def test_the_setting_is_a_namespace_other_than_argo_namespace() -> None:
    assert load_settings(_env_file=None).argo_previous_namespace is None  # off by default
    assert load_settings(_env_file=None, argo_previous_namespace=" ").argo_previous_namespace is None
    assert load_settings(_env_file=None, argo_previous_namespace=OLD).argo_previous_namespace == OLD
    for value, why in (
        ("Argo_NS", "ARGO_PREVIOUS_NAMESPACE is invalid: ARGO_PREVIOUS_NAMESPACE `Argo_NS` is not valid"),
        (ARGO_NAMESPACE, "ARGO_PREVIOUS_NAMESPACE must name the namespace envbot used before the upgrade"),
    ):
        with pytest.raises(ConfigError) as caught:
            load_settings(_env_file=None, argo_previous_namespace=value)
        assert why in caught.value.user_message
