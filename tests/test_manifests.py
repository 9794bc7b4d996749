"""Every manifest validates, and the contract between the bot and its templates holds from both sides."""

import copy
import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from jsonschema import Draft202012Validator

from slackbot.argo_cli import LABEL_ACTION, LABEL_MANAGED_BY, MANAGED_BY, ArgoCliOrchestrator, DryRunRunner
from slackbot.orchestrator import CREATE_TEMPLATE, DESTROY_TEMPLATE, EXTEND_TEMPLATE
from slackbot.policy import load_policy
from slackbot.spec import DestroyRequest, EnvironmentSpec
from tests.conftest import ROOT, SHARED
from tests.test_template_scripts import workflow_spec

KUBERNETES_VERSION = "1.31.0"
SCHEMA = json.loads((SHARED / "schemas" / "argo-workflows-schema.json").read_text())
ARGO_KINDS = {"WorkflowTemplate", "CronWorkflow", "Workflow", "ClusterWorkflowTemplate"}


def argo_validator(kind: str) -> Draft202012Validator:
    """Argo's schema rooted at one kind, tightened so unknown fields fail (contract §7)."""
    root = copy.deepcopy(SCHEMA)
    root.pop("oneOf", None)
    root["$ref"] = f"#/definitions/io.argoproj.workflow.v1alpha1.{kind}"
    for definition in root["definitions"].values():
        if definition.get("type") == "object" and "properties" in definition:
            definition.setdefault("additionalProperties", False)
    return Draft202012Validator(root)


VALIDATORS = {kind: argo_validator(kind) for kind in ("WorkflowTemplate", "CronWorkflow")}


def documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def argo_errors(doc: dict[str, Any]) -> list[str]:
    errors = VALIDATORS[doc["kind"]].iter_errors(doc)
    return [f"{list(e.absolute_path)}: {e.message}" for e in errors]


ARGO_FILES = sorted((ROOT / "argo").glob("*/*.yaml"))
ARGO_RESOURCES = [(p, d) for p in ARGO_FILES for d in documents(p) if d["kind"] in ARGO_KINDS]
KUBE_FILES = [p for p in ARGO_FILES if any(d["kind"] not in ARGO_KINDS for d in documents(p))]
KUBE_FILES += sorted((ROOT / "manifests" / "bot").glob("*.yaml"))


@pytest.mark.parametrize(("path", "doc"), ARGO_RESOURCES, ids=lambda v: v.name if isinstance(v, Path) else "")
def test_argo_resources_validate_against_the_strict_official_schema(path: Path, doc: dict[str, Any]) -> None:
    assert argo_errors(doc) == [], path


def test_the_strict_schema_catches_a_typo() -> None:
    doc = documents(ROOT / "argo/workflowtemplates/env-create-template.yaml")[0]
    typo = copy.deepcopy(doc)
    typo["spec"]["ttlStrategey"] = typo["spec"].pop("ttlStrategy")
    assert any("ttlStrategey" in error for error in argo_errors(typo))
    nested = copy.deepcopy(doc)
    nested["spec"]["templates"][0]["script"]["securityContext"]["runAsNonRot"] = True
    assert argo_errors(nested)


@pytest.mark.parametrize("path", [p for p in KUBE_FILES if p.name != "kustomization.yaml"], ids=lambda p: p.name)
def test_kubernetes_manifests_validate(path: Path) -> None:
    for doc in documents(path):
        if doc["kind"] not in ARGO_KINDS:
            kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


@pytest.mark.parametrize("folder", [ROOT / "argo", ROOT / "manifests" / "bot"], ids=["argo", "bot"])
def test_kustomizations_load_every_resource_once(folder: Path) -> None:
    kustomization = yaml.safe_load((folder / "kustomization.yaml").read_text())
    seen = set()
    for resource in kustomization["resources"]:
        for doc in documents(folder / resource):
            if "namespace" in kustomization and doc["kind"] not in ("ClusterRole", "ClusterRoleBinding", "Namespace"):
                assert doc["metadata"].get("namespace", kustomization["namespace"]) == kustomization["namespace"]
            key = (doc["kind"], doc["metadata"].get("namespace"), doc["metadata"]["name"])
            assert key not in seen, f"{key} defined twice"
            seen.add(key)
    listed = {folder / r for r in kustomization["resources"]}
    unlisted = {p for p in folder.rglob("*.yaml") if p.name != "kustomization.yaml"} - listed
    assert {p.name for p in unlisted} <= {"secret.example.yaml"}, unlisted


def template(name: str) -> dict[str, Any]:
    return documents(ROOT / "argo" / "workflowtemplates" / f"{name}.yaml")[0]


def declared(name: str) -> dict[str, dict[str, Any]]:
    return {p["name"]: p for p in template(name)["spec"]["arguments"]["parameters"]}


def bot_argv(action: str, full: bool) -> list[str]:
    runner = DryRunRunner()
    argo = ArgoCliOrchestrator("argo", "argo", 5, runner)
    who = {"requested_by": "U1AAA"} if full else {}
    if action == "create":
        where = {"slack_channel": "C1AAA"} if full else {}
        argo.create(EnvironmentSpec(env_name="e", service="s", expires_at=datetime.now(UTC), **who, **where))
    else:
        argo.destroy(DestroyRequest(env_name="e", **who))
    return runner.argvs[-1]


def passed(argv: list[str]) -> set[str]:
    return {argv[i + 1].split("=", 1)[0] for i, a in enumerate(argv) if a == "-p"}


# Operator knobs the bot never sets; each has a default in the template.
TEMPLATE_ONLY = {
    CREATE_TEMPLATE: {
        "quota_cpu",
        "quota_memory",
        "quota_pods",
        "default_cpu_request",
        "default_memory_request",
        "default_cpu_limit",
        "default_memory_limit",
    },
    DESTROY_TEMPLATE: set(),
}


@pytest.mark.parametrize(("action", "name"), [("create", CREATE_TEMPLATE), ("destroy", DESTROY_TEMPLATE)])
def test_bot_and_templates_agree_on_parameters(action: str, name: str) -> None:
    params = declared(name)
    required = {n for n, p in params.items() if "value" not in p and "valueFrom" not in p}
    minimal, full = passed(bot_argv(action, False)), passed(bot_argv(action, True))
    assert full == set(params) - TEMPLATE_ONLY[name], "the bot passes exactly the declared parameters"
    assert minimal == required, "the bot always passes every required parameter, and only those when bare"
    for optional in full - minimal:
        assert params[optional]["value"] == "", f"{optional} must default to empty"
    for knob in TEMPLATE_ONLY[name]:
        assert params[knob].get("value"), f"{knob} needs a default"
    assert template(name)["metadata"]["name"] == name


def test_extend_template_declares_what_the_extend_command_will_pass() -> None:
    params = declared(EXTEND_TEMPLATE)
    assert {n for n, p in params.items() if "value" not in p} == {"env_name", "expires_at"}
    assert params["requested_by"]["value"] == ""


def test_workflow_labels_match_what_the_bot_queries() -> None:
    for name, action in ((CREATE_TEMPLATE, "create"), (DESTROY_TEMPLATE, "destroy"), (EXTEND_TEMPLATE, "extend")):
        labels = template(name)["spec"]["workflowMetadata"]["labels"]
        assert labels == {LABEL_MANAGED_BY: MANAGED_BY, LABEL_ACTION: action}


def every_workflow_spec() -> list[tuple[str, dict[str, Any]]]:
    return [(doc["metadata"]["name"], workflow_spec(doc)) for _, doc in ARGO_RESOURCES]


@pytest.mark.parametrize(("name", "spec"), every_workflow_spec(), ids=lambda v: v if isinstance(v, str) else "")
def test_templates_are_bounded_and_pinned(name: str, spec: dict[str, Any]) -> None:
    assert spec["serviceAccountName"] == "envbot-executor"
    assert 0 < spec["activeDeadlineSeconds"] <= 900
    assert spec["ttlStrategy"] and spec["podGC"]["strategy"]
    for t in spec["templates"]:
        image = t["script"]["image"]
        assert re.fullmatch(r"[\w./-]+:\d+\.\d+\.\d+", image), f"{name}: image {image} is not pinned by tag"
        assert t["script"]["securityContext"]["runAsNonRoot"] is True
        # Parameters reach scripts only through env: never pasted into the script text itself.
        assert "{{" not in t["script"]["source"], f"{name}: parameter substituted into shell source"


def test_history_outlives_the_environments_it_describes() -> None:
    kept = {
        name: template(name)["spec"]["ttlStrategy"]["secondsAfterSuccess"]
        for name in (CREATE_TEMPLATE, DESTROY_TEMPLATE, EXTEND_TEMPLATE)
    }
    assert kept[CREATE_TEMPLATE] > load_policy(None).ttl.max.total_seconds()  # ownership is read from it
    # If a destroy's record vanished before its create's, the environment would look live again.
    assert kept[DESTROY_TEMPLATE] >= kept[CREATE_TEMPLATE]
    assert kept[EXTEND_TEMPLATE] >= kept[CREATE_TEMPLATE]


def test_one_mutex_per_environment_across_create_destroy_and_extend() -> None:
    names = {
        template(n)["spec"]["synchronization"]["mutexes"][0]["name"]
        for n in (CREATE_TEMPLATE, DESTROY_TEMPLATE, EXTEND_TEMPLATE)
    }
    assert names == {"envbot-env-{{workflow.parameters.env_name}}"}


def test_reaper_schedule_policy_and_safe_default() -> None:
    (reaper,) = documents(ROOT / "argo/cronworkflows/env-reaper.yaml")
    assert reaper["spec"]["schedules"] == ["*/5 * * * *"]
    assert reaper["spec"]["concurrencyPolicy"] == "Forbid"
    (dry_run,) = reaper["spec"]["workflowSpec"]["arguments"]["parameters"]
    assert dry_run == dry_run | {"name": "dry_run", "value": "true"}


def test_executor_rbac_is_as_narrow_as_the_templates_need() -> None:
    docs = {d["kind"]: d for d in documents(ROOT / "argo/rbac/executor.yaml")}
    rules = {(tuple(r["apiGroups"]), tuple(r["resources"])): set(r["verbs"]) for r in docs["ClusterRole"]["rules"]}
    assert rules == {
        (("",), ("namespaces",)): {"get", "list", "create", "patch", "delete"},
        (("",), ("resourcequotas", "limitranges")): {"get", "create", "patch"},
        (("networking.k8s.io",), ("networkpolicies",)): {"get", "create", "patch"},
    }
    assert docs["Role"]["rules"] == [
        {"apiGroups": ["argoproj.io"], "resources": ["workflowtaskresults"], "verbs": ["create", "patch"]}
    ]


def test_bot_rbac_only_touches_workflows_in_the_argo_namespace() -> None:
    docs = [d for p in (ROOT / "manifests/bot").glob("*.yaml") for d in documents(p)]
    assert not [d for d in docs if d["kind"] in ("ClusterRole", "ClusterRoleBinding")]
    (role,) = [d for d in docs if d["kind"] == "Role"]
    assert role["metadata"]["namespace"] == "argo"
    assert {(tuple(r["resources"]), tuple(r["verbs"])) for r in role["rules"]} == {
        (("workflowtemplates",), ("get", "list", "watch")),
        (("workflows",), ("create", "get", "list", "watch")),
    }


def test_deployment_runs_locked_down_with_tokens_from_a_secret() -> None:
    (deployment,) = documents(ROOT / "manifests/bot/deployment.yaml")
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["livenessProbe"]["httpGet"]["path"] == container["readinessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["resources"]["limits"] and container["resources"]["requests"]
    env = {e["name"]: e for e in container["env"]}
    for secret in ("SLACK_BOT_TOKEN", "SLACK_APP_TOKEN", "SLACK_SIGNING_SECRET"):
        assert env[secret]["valueFrom"]["secretKeyRef"]["name"] == "envbot-slack"
        assert "value" not in env[secret]
    assert env["ENVBOT_POLICY"]["value"] == "/etc/envbot/policy.yaml"


def test_shipped_policy_example_is_valid(tmp_path: Path) -> None:
    (configmap,) = documents(ROOT / "manifests/bot/policy-configmap.yaml")
    path = tmp_path / "policy.yaml"
    path.write_text(configmap["data"]["policy.yaml"])
    policy = load_policy(path)
    assert policy.services and "checkout" in policy.services
    assert policy.oncall_groups and policy.admins
    documented = (ROOT / "docs/policy.example.yaml").read_text()
    assert documented.split("\n", 1)[1] == configmap["data"]["policy.yaml"], "docs example and ConfigMap differ"


def test_slack_app_manifest_declares_the_command_scopes_and_socket_mode() -> None:
    app = yaml.safe_load((ROOT / "manifests/slack-app.yaml").read_text())
    (command,) = app["features"]["slash_commands"]
    assert command["command"] == "/env" and command["description"] and command["usage_hint"]
    assert len(command["usage_hint"]) <= 1000 and len(app["display_information"]["name"]) <= 35
    assert {"commands", "chat:write", "usergroups:read"} <= set(app["oauth_config"]["scopes"]["bot"])
    assert app["settings"]["socket_mode_enabled"] is True
    assert app["settings"]["interactivity"]["is_enabled"] is True
    assert "subteam_members_changed" in app["settings"]["event_subscriptions"]["bot_events"]


def test_dockerfile_pins_and_verifies_argo_and_runs_as_non_root() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert re.search(r"ARG ARGO_VERSION=v\d+\.\d+\.\d+", text)
    assert "sha256sum -c" in text and "ARG ARGO_SHA256" in text
    assert re.search(r"^USER 10001", text, re.MULTILINE)
    assert ":latest" not in text
    for image in re.findall(r"^FROM (\S+)", text, re.MULTILINE):
        assert re.search(r":\d+\.\d+\.\d+", image), image
