"""`envbot check` proves each line it prints: run as operators run it, against the fake argo and Slack."""

import re
import shutil
from pathlib import Path
from typing import Any

import yaml

from slackbot.slack.checks import REQUIRED_SCOPES
from tests.conftest import APP_TOKEN, BOT_TOKEN, ROOT, SIGNING_SECRET, FakeArgo
from tests.execution_plane import ARGO_NAMESPACE, SETTINGS
from tests.fakes.argo_controller import Controller
from tests.fakes.cluster import install
from tests.fakes.kube_api import FakeKubeApi
from tests.fakes.slack_api import FakeSlack
from tests.test_cli import envbot


def check(tmp_path: Path, fake_argo: FakeArgo, fake_slack: FakeSlack, **env: str) -> tuple[int, dict[str, str], Any]:
    values = {
        "ARGO_BIN": str(fake_argo.bin),
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_URL": fake_slack.api_url,
    }
    result = envbot("check", env=values | env, cwd=tmp_path)
    lines: dict[str, str] = {}
    for line in result.stdout.splitlines():
        what, _, rest = line.partition(": ")
        lines[what] = f"{lines[what]} | {rest}" if what in lines else rest
    return result.returncode, lines, result


def test_everything_proven_ok_in_http_mode(tmp_path: Path, fake_argo: FakeArgo, fake_slack: FakeSlack) -> None:
    code, lines, result = check(tmp_path, fake_argo, fake_slack)
    assert code == 0, result.stdout
    assert result.stderr == ""  # no log noise around the report
    assert lines["policy"] == (
        "ok (built-in defaults; any service; quota 10 per user) | "
        "warning: no admins or oncall_groups: only an environment's owner can extend or destroy it"
    )
    assert lines["slack bot token"] == "ok (team Example, bot user UBOT)"
    assert (
        lines["slack scopes"]
        == "ok (channels:read, chat:write, chat:write.public, commands, groups:read, im:read, mpim:read, "
        "usergroups:read)"
    )
    assert lines["slack signing secret"].startswith("ok (set; ")
    assert lines["argo cli"] == "ok (v3.7.18, floor v3.6.0)"
    assert lines["argo server"].startswith("ok (kube mode")
    for template in ("env-create-template", "env-extend-template", "env-destroy-template"):
        expected = f"ok (installed in namespace {ARGO_NAMESPACE} with every parameter envbot passes)"
        assert lines[f"template {template}"] == expected
    assert lines["template envbot-recipes"] == (
        f"ok (installed in namespace {ARGO_NAMESPACE} (recipes of kind `workflow`, docs/deploy.md))"
    )
    dry_run = f"ok (a server-side dry run of env-create-template in {ARGO_NAMESPACE} was accepted"
    assert lines["argo submit"].startswith(dry_run)
    assert lines["records"] == "ok (workflows kept 21d, longer than ttl.lifetime 14d plus 1h for the reaper)"
    assert lines["quotas"].startswith("warning: no finished create has reported the execution plane's limits yet")
    assert fake_argo.workflows() == []  # the dry run created nothing
    (submit,) = fake_argo.submits()
    assert "--server-dry-run" in submit
    assert BOT_TOKEN not in result.stdout + result.stderr and SIGNING_SECRET not in result.stdout


def test_argo_problems_each_name_their_cause(tmp_path: Path, fake_argo: FakeArgo, fake_slack: FakeSlack) -> None:
    templates = tmp_path / "templates"
    shutil.copytree(ROOT / "argo/workflowtemplates", templates)
    (templates / "env-extend-template.yaml").unlink()
    create = templates / "env-create-template.yaml"
    doc = yaml.safe_load(create.read_text())
    doc["spec"]["arguments"]["parameters"] = [
        p for p in doc["spec"]["arguments"]["parameters"] if p["name"] != "slack_channel"
    ] + [{"name": "team"}]
    create.write_text(yaml.safe_dump(doc))
    fake_argo.configure(templates_dir=str(templates))
    code, lines, _ = check(tmp_path, fake_argo, fake_slack)
    assert code == 1
    assert lines["template env-extend-template"].startswith(
        f"FAILED: WorkflowTemplate env-extend-template is not installed in namespace {ARGO_NAMESPACE}"
    )
    assert lines["template env-create-template"] == "FAILED: does not declare slack_channel, which envbot passes"
    assert "argo submit" not in lines  # nothing is tried against templates that are known to be wrong

    shutil.copytree(ROOT / "argo/workflowtemplates", templates, dirs_exist_ok=True)
    create.write_text((ROOT / "argo/workflowtemplates/env-create-template.yaml").read_text())
    doc = yaml.safe_load(create.read_text())
    doc["spec"]["arguments"]["parameters"].append({"name": "team"})
    create.write_text(yaml.safe_dump(doc))
    _, lines, _ = check(tmp_path, fake_argo, fake_slack)
    assert lines["template env-create-template"] == "FAILED: requires team, which envbot does not pass"

    # An older create template with guard rails as parameters (defaults of its own): anyone who can
    # submit could turn them.
    doc["spec"]["arguments"]["parameters"][-1] = {"name": "pod_security_level", "value": "restricted"}
    create.write_text(yaml.safe_dump(doc))
    _, lines, _ = check(tmp_path, fake_argo, fake_slack)
    assert lines["template env-create-template"] == (
        "FAILED: declares pod_security_level, which envbot never passes: an older template that takes guard "
        "rails as parameters; re-apply argo/ and create ConfigMap envbot-services (docs/install.md)"
    )


def test_a_missing_recipe_template_is_named_with_its_fix(
    tmp_path: Path, fake_argo: FakeArgo, fake_slack: FakeSlack
) -> None:
    """envbot-recipes is created once at install, apart from argo/'s kustomization: easy to forget."""
    fake_argo.configure(extra_templates=[])
    code, lines, _ = check(tmp_path, fake_argo, fake_slack)
    assert code == 1
    assert lines["template envbot-recipes"] == (
        f"FAILED: WorkflowTemplate envbot-recipes is not installed in namespace {ARGO_NAMESPACE}. Ask an operator "
        "to create it once from argo/settings/envbot-recipes.yaml (see docs/install.md). The create and deploy "
        "templates call it: Argo refuses them without it."
    )


def test_a_refused_dry_run_a_down_cluster_and_an_old_cli(
    tmp_path: Path, fake_argo: FakeArgo, fake_slack: FakeSlack
) -> None:
    fake_argo.configure(modes={"submit": "forbidden"})
    code, lines, _ = check(tmp_path, fake_argo, fake_slack)
    assert (
        code == 1
        and lines["argo submit"]
        == f"FAILED: envbot's service account may not do this in namespace {ARGO_NAMESPACE} (RBAC)."
    )

    fake_argo.configure(modes={"template": "unavailable"})
    code, lines, _ = check(tmp_path, fake_argo, fake_slack)
    assert code == 1
    assert lines["template env-create-template"].startswith("FAILED: argo could not reach the cluster")

    fake_argo.configure(version="v3.5.8")
    code, lines, _ = check(tmp_path, fake_argo, fake_slack)
    assert (
        code == 1
        and lines["argo cli"] == "FAILED: v3.5.8 is older than the supported floor v3.6.0 (see docs/install.md)"
    )

    fake_argo.configure(server_version="v3.7.18")
    _, lines, _ = check(tmp_path, fake_argo, fake_slack)
    assert lines["argo server"] == "ok (v3.7.18, floor v3.6.0)"

    code, lines, _ = check(tmp_path, fake_argo, fake_slack, ARGO_BIN=str(tmp_path / "nope"))
    assert code == 1 and lines["argo cli"].startswith("FAILED: The argo CLI was not found")


def test_slack_tokens_are_tried_and_wrong_kinds_named(
    tmp_path: Path, fake_argo: FakeArgo, fake_slack: FakeSlack
) -> None:
    fake_slack.token_valid = False
    code, lines, _ = check(tmp_path, fake_argo, fake_slack)
    assert code == 1 and lines["slack bot token"] == "FAILED: Slack rejected SLACK_BOT_TOKEN (invalid_auth)"
    fake_slack.token_valid = True

    code, lines, _ = check(tmp_path, fake_argo, fake_slack, SLACK_BOT_TOKEN=APP_TOKEN)
    assert code == 1
    assert (
        lines["slack bot token"] == "FAILED: SLACK_BOT_TOKEN holds an app-level token; it needs the bot token (xoxb-…)"
    )

    fake_slack.scopes = ("commands", "chat:write", "channels:read", "groups:read", "im:read", "mpim:read")
    code, lines, _ = check(tmp_path, fake_argo, fake_slack)
    assert code == 1
    assert lines["slack scopes"] == (
        "FAILED: missing chat:write.public and usergroups:read; reinstall the app from manifests/slack-app.yaml"
    )
    fake_slack.scopes = tuple(REQUIRED_SCOPES)

    code, lines, _ = check(tmp_path, fake_argo, fake_slack, SLACK_APP_TOKEN=BOT_TOKEN)
    assert code == 1 and lines["slack mode"].startswith("ok (socket; ")
    assert (
        lines["slack app token"]
        == "FAILED: SLACK_APP_TOKEN holds a bot token; Socket Mode needs an app-level token (xapp-…)"
    )
    code, lines, _ = check(tmp_path, fake_argo, fake_slack, SLACK_APP_TOKEN=APP_TOKEN)
    assert code == 0 and lines["slack app token"].startswith("ok (Slack issued a Socket Mode connection URL")
    (opened,) = fake_slack.requests("/api/apps.connections.open")
    assert opened.headers["Authorization"] == f"Bearer {APP_TOKEN}"

    code, lines, _ = check(tmp_path, fake_argo, fake_slack, SLACK_SIGNING_SECRET=BOT_TOKEN)
    assert (
        code == 1
        and lines["slack signing secret"] == "FAILED: SLACK_SIGNING_SECRET holds a bot token; copy the Signing Secret"
    )


def test_policies_that_switch_the_bot_off_warn_and_a_bad_audit_file_fails(
    tmp_path: Path, fake_argo: FakeArgo, fake_slack: FakeSlack
) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text("channels: []\nservices: {}\nadmins: [U0ADMIN1]\n")
    code, lines, _ = check(tmp_path, fake_argo, fake_slack, ENVBOT_POLICY=str(policy))
    assert code == 0
    assert "warning: channels: [] switches envbot off in every channel" in lines["policy"]
    assert "warning: services: {} leaves nothing to create" in lines["policy"]

    policy.write_text("ttl: {max: 20d, lifetime: 30d}\n")
    code, lines, _ = check(tmp_path, fake_argo, fake_slack, ENVBOT_POLICY=str(policy))
    assert code == 1
    assert re.match(
        r"FAILED: WorkflowTemplate env-create-template keeps its workflows 21d, but the policy", lines["records"]
    )

    readonly = tmp_path / "ro"
    readonly.mkdir()
    readonly.chmod(0o500)
    code, lines, _ = check(tmp_path, fake_argo, fake_slack, ENVBOT_AUDIT_FILE=str(readonly / "audit.jsonl"))
    # root ignores directory permissions; a path under a regular file fails for everyone
    if code == 0:
        (tmp_path / "file").write_text("")
        code, lines, _ = check(
            tmp_path, fake_argo, fake_slack, ENVBOT_AUDIT_FILE=str(tmp_path / "file" / "audit.jsonl")
        )
    assert code == 1 and lines["audit"].startswith("FAILED: ENVBOT_AUDIT_FILE=")


def test_the_required_scopes_are_what_the_manifest_asks_for() -> None:
    manifest = yaml.safe_load((ROOT / "manifests/slack-app.yaml").read_text())
    assert set(manifest["oauth_config"]["scopes"]["bot"]) == REQUIRED_SCOPES


def test_quotas_compare_the_policy_with_the_limits_the_execution_plane_enforced(
    tmp_path: Path, fake_argo: FakeArgo, fake_slack: FakeSlack, api: FakeKubeApi
) -> None:
    policy = tmp_path / "policy.yaml"
    params = {"service": "checkout", "expires_at": "2999-01-01T00:00:00Z", "requested_by": "U111AAA"}
    cases = [  # what envbot-settings says, what the policy says, what check reports
        ({}, "quotas: {per_user: 3, per_channel: 20}", "ok (3 per user, 20 per channel, the same in the policy"),
        ({}, "quotas: {per_user: 5}", "warning: the policy's quotas.per_user is 5 but envbot-settings "
         'max_environments_per_user is 3 (set it to "5", or change the policy); the policy\'s quotas.per_channel '
         "is not set but envbot-settings max_environments_per_channel is 20 (remove it, or change the policy)"),
        ({"max_environments_per_user": "", "max_environments_per_channel": ""}, "quotas: {per_user: 3}",
         "without a plane limit, two replicas can exceed the quota"),
    ]  # fmt: skip
    install(api)  # the create and deploy steps run against the installed RBAC, policies and profiles
    for i, (settings, quotas, expected) in enumerate(cases):
        with Controller(fake_argo, api, tmp_path / f"plane-{i}", SETTINGS | settings) as plane:
            fake_argo.add_workflow(name=f"env-create-template-case{i}", params=params | {"env_name": f"case-{i}"})
            plane.wait_until_all_ended()
        policy.write_text(quotas + "\n")
        code, lines, result = check(tmp_path, fake_argo, fake_slack, ENVBOT_POLICY=str(policy))
        assert code == 0, result.stdout
        assert expected in lines["quotas"], lines["quotas"]
        assert f"as reported by env-create-template-case{i}" in lines["quotas"]


def test_no_view_refresh_warns_that_environment_messages_are_not_kept(
    tmp_path: Path, fake_argo: FakeArgo, fake_slack: FakeSlack
) -> None:
    assert "environment messages" not in check(tmp_path, fake_argo, fake_slack)[1]
    code, lines, result = check(tmp_path, fake_argo, fake_slack, ENV_VIEW_REFRESH="0")
    assert code == 0, result.stdout
    assert lines["environment messages"].startswith("warning: ENV_VIEW_REFRESH=0: with notices off")
    assert (
        "environment messages"
        not in check(tmp_path, fake_argo, fake_slack, ENV_VIEW_REFRESH="0", SLACK_THREADS="false")[1]
    )
