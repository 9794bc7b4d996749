"""What to deploy, from chat to the execution plane and back (docs/adr/0008): the real Bolt app over
signed HTTP and Socket Mode against the fake `argo`, whose controller reports the deploy step's
outputs (version and URL) the way Argo records them on the step's node."""

from typing import Any

from tests.conftest import HttpBot, argv_labels, argv_params
from tests.test_socket_mode import envelope

URL = "https://{{workflow.parameters.env_name}}.preview.example.com"
# What the deploy step reports: the tag it set (here the requested version) and the recipe's host.
OUTPUTS = {"deploy": {"version": "{{workflow.parameters.version}}", "url": URL}}
DONE = {"env-create-template": "Succeeded", "env-deploy-template": "Succeeded"}


def ask(bot: HttpBot, text: str, user: str = "U111AAA") -> dict[str, Any]:
    _, path = bot.command(text, user=user)
    return bot.reply(path)


def test_create_with_a_version_submits_it_and_status_shows_what_runs_where(http_bot: HttpBot, fake_argo) -> None:
    fake_argo.configure(phases=DONE, outputs=OUTPUTS)
    created = ask(http_bot, "create checkout version=1.4.2 name=co-demo")
    (submit,) = fake_argo.submits()
    assert argv_params(submit)["version"] == "1.4.2" and "ref" not in argv_params(submit)
    assert "service `checkout` at `1.4.2`" in created["text"]

    status = ask(http_bot, "status co-demo")["text"]
    assert "Runs `1.4.2` at <https://co-demo.preview.example.com>" in status
    assert "• create of `1.4.2` by <@U111AAA>" in status
    listed = ask(http_bot, "list")["text"]
    assert "`co-demo` · checkout `1.4.2` · <https://co-demo.preview.example.com>" in listed


def test_ref_and_pr_are_passed_as_such(http_bot: HttpBot, fake_argo) -> None:
    ask(http_bot, "create checkout ref=feature/x name=co-ref")
    ask(http_bot, "create checkout pr=123 name=co-pr")
    first, second = fake_argo.submits()
    assert argv_params(first)["ref"] == "feature/x" and "version" not in argv_params(first)
    assert argv_params(second)["pr"] == "123"


def test_deploy_redeploys_a_live_environment_with_the_same_lineage_as_extend(http_bot: HttpBot, fake_argo) -> None:
    fake_argo.configure(phases=DONE, outputs=OUTPUTS)
    ask(http_bot, "create checkout version=1.4.2 name=co-demo")
    create = fake_argo.workflows()[0]["metadata"]["name"]
    reply = ask(http_bot, "deploy co-demo version=1.5.0")
    assert reply["response_type"] == "in_channel"
    assert "is deploying `checkout` at `1.5.0` into `co-demo`. It runs `1.4.2` until the new version" in reply["text"]
    deploy = fake_argo.submits()[-1]
    assert deploy[:4] == ["submit", "--from", "workflowtemplate/env-deploy-template", "-n"]
    assert argv_params(deploy) == {
        "env_name": "co-demo",
        "service": "checkout",
        "requested_by": "U111AAA",
        "slack_channel": "C111AAA",
        "version": "1.5.0",
    }
    labels = argv_labels(deploy)
    assert labels["envbot.dev/action"] == "deploy" and labels["envbot.dev/owner"] == "U111AAA"
    assert labels["envbot.dev/create-workflow"] == create and labels["envbot.dev/after"] == create
    status = ask(http_bot, "status co-demo")["text"]
    assert "Runs `1.5.0` at <https://co-demo.preview.example.com>" in status
    assert "• deploy of `1.5.0` by <@U111AAA>" in status
    # An extend after the deploy follows it in the chain.
    ask(http_bot, "extend co-demo ttl=2h")
    assert argv_labels(fake_argo.submits()[-1])["envbot.dev/after"] == fake_argo.workflows()[-2]["metadata"]["name"]


def test_only_those_who_may_act_can_deploy_and_bad_versions_run_nothing(http_bot: HttpBot, fake_argo) -> None:
    ask(http_bot, "create checkout name=co-demo")
    refused = ask(http_bot, "deploy co-demo version=2.0", user="U999ZZZ")
    assert "Only the owner <@U111AAA>" in refused["text"]
    ack, _ = http_bot.command("deploy co-demo version=2.0;reboot")
    assert "`;` is not allowed" in ack.json()["text"]
    ack, _ = http_bot.command("create checkout version=1.0 pr=7")
    assert "at most one of `version=`, `ref=` and `pr=`" in ack.json()["text"]
    assert len(fake_argo.submits()) == 1
    missing = ask(http_bot, "deploy no-such-env version=2.0")
    assert "There is no environment called `no-such-env`" in missing["text"]


def test_a_create_whose_deploy_failed_shows_as_failed_and_a_deploy_mends_it(http_bot: HttpBot, fake_argo) -> None:
    reason = "envbot: checkout is not ready: deployment checkout: image `ghcr.io/acme/checkout:1.4.9` not found"
    fake_argo.configure(
        phases={"env-create-template": "Failed", "env-deploy-template": "Succeeded"},
        fail_message={"env-create-template": reason},
        outputs=OUTPUTS,
    )
    ask(http_bot, "create checkout version=1.4.9 name=co-demo")
    status = ask(http_bot, "status co-demo")["text"]
    assert "its create failed (deploy another version with `/env deploy`, or destroy it)" in status
    assert f"step `deploy` failed: {reason}" in status
    ask(http_bot, "deploy co-demo version=1.4.2")
    status = ask(http_bot, "status co-demo")["text"]
    assert status.startswith("*`co-demo`*: live") and "Runs `1.4.2`" in status


def test_create_with_a_version_over_socket_mode_and_the_url_in_status(socket_bot, fake_slack, fake_argo) -> None:
    _, server = socket_bot
    fake_argo.configure(phases=DONE, outputs=OUTPUTS)
    server.send(envelope("d-1", "create checkout version=1.4.2 name=sock-co", fake_slack.response_url("d1")))
    assert "Checking `create sock-co`" in server.wait_ack("d-1")["payload"]["text"]
    created = fake_slack.wait_for("/response/d1")[0].body
    assert "at `1.4.2`" in created["text"]
    assert argv_params(fake_argo.submits()[0])["version"] == "1.4.2"
    server.send(envelope("d-2", "deploy sock-co version=1.5.0", fake_slack.response_url("d2")))
    fake_slack.wait_for("/response/d2")
    assert argv_params(fake_argo.submits()[-1])["version"] == "1.5.0"
    server.send(envelope("d-3", "status sock-co", fake_slack.response_url("d3")))
    status = fake_slack.wait_for("/response/d3")[0].body["text"]
    assert "Runs `1.5.0` at <https://sock-co.preview.example.com>" in status


ACCESS_POLICY = """
access:
  role: view
  users:
    U111AAA: alice@example.com
services:
  checkout:
    description: Checkout API
    access_role: edit
  search:
    description: Search
"""


def test_access_for_the_requester_follows_the_policy(http_bot_factory, fake_argo, tmp_path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(ACCESS_POLICY)
    bot = http_bot_factory(envbot_policy=policy)
    created = ask(bot, "create checkout name=co-demo")
    assert "You get `edit` access to it as `alice@example.com`" in created["text"]
    ask(bot, "create search name=se-demo")
    ask(bot, "create search name=se-other", user="U222BBB")  # not mapped: no access
    first, second, third = (argv_params(s) for s in fake_argo.submits())
    assert (first["access_user"], first["access_role"]) == ("alice@example.com", "edit")
    assert (second["access_user"], second["access_role"]) == ("alice@example.com", "view")
    assert "access_user" not in third and "access_role" not in third
