"""Every manifest validates, and the contract between the bot and its templates holds from both sides."""

import copy
import hashlib
import json
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from jsonschema import Draft202012Validator

from slackbot.argo_cli import LABEL_ACTION, LABEL_MANAGED_BY, MANAGED_BY, ArgoCliOrchestrator, DryRunRunner
from slackbot.commands import Target
from slackbot.orchestrator import CREATE_TEMPLATE, DEPLOY_TEMPLATE, DESTROY_TEMPLATE, EXTEND_TEMPLATE
from slackbot.policy import load_policy
from slackbot.spec import Access, DeployRequest, DestroyRequest, EnvironmentSpec, ExtendRequest, Lineage, Notices
from tests.conftest import ROOT
from tests.execution_plane import ARGO_NAMESPACE, SERVICES, SETTINGS, TEMPLATES, script_of, step_of, workflow_spec

KUBERNETES_VERSION = "1.31.0"
# Vendored from argoproj/argo-workflows v3.7.18 (tests/vendor/README.md): a clone runs offline.
SCHEMA_FILE = ROOT / "tests" / "vendor" / "argo-workflows-schema.json"
SCHEMA_SHA256 = "7121a93025875991aa5372aa0c3f922797ba9af4899d9ed33c5b99d85aa6eb37"
SCHEMA = json.loads(SCHEMA_FILE.read_text())
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


def test_the_vendored_schema_is_the_recorded_upstream_file() -> None:
    assert hashlib.sha256(SCHEMA_FILE.read_bytes()).hexdigest() == SCHEMA_SHA256
    assert SCHEMA_SHA256 in (ROOT / "tests/vendor/README.md").read_text()


def test_nothing_reads_outside_the_repository() -> None:
    for folder in ("slackbot", "tests", "argo", "bench"):
        for path in (ROOT / folder).rglob("*.py"):
            if path == Path(__file__):
                continue
            text = path.read_text()
            outside = '"../' + "shared"  # spelled in two parts so this guard doesn't match itself
            assert "ROOT.parent" not in text and outside not in text, path


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
    (script,) = [t["script"] for t in nested["spec"]["templates"] if t["name"] == "create"]
    script["securityContext"]["runAsNonRot"] = True
    assert argo_errors(nested)


@pytest.mark.parametrize("path", [p for p in KUBE_FILES if p.name != "kustomization.yaml"], ids=lambda p: p.name)
def test_kubernetes_manifests_validate(path: Path) -> None:
    for doc in documents(path):
        if doc["kind"] not in ARGO_KINDS:
            kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


CLUSTER_SCOPED = (
    "ClusterRole",
    "ClusterRoleBinding",
    "Namespace",
    "ValidatingAdmissionPolicy",
    "ValidatingAdmissionPolicyBinding",
)
# Created once with `kubectl create -f`, never re-applied: see argo/settings/envbot-settings.yaml.
NOT_APPLIED = {"secret.example.yaml", "envbot-settings.yaml", "envbot-services.yaml", "envbot-recipes.yaml"}


@pytest.mark.parametrize("folder", [ROOT / "argo", ROOT / "manifests" / "bot"], ids=["argo", "bot"])
def test_kustomizations_load_every_resource_once(folder: Path) -> None:
    kustomization = yaml.safe_load((folder / "kustomization.yaml").read_text())
    seen = set()
    for resource in kustomization["resources"]:
        for doc in documents(folder / resource):
            if "namespace" in kustomization and doc["kind"] not in CLUSTER_SCOPED:
                assert doc["metadata"].get("namespace", kustomization["namespace"]) == kustomization["namespace"]
            key = (doc["kind"], doc["metadata"].get("namespace"), doc["metadata"]["name"])
            assert key not in seen, f"{key} defined twice"
            seen.add(key)
    listed = {folder / r for r in kustomization["resources"]}
    unlisted = {p for p in folder.rglob("*.yaml") if p.name != "kustomization.yaml"} - listed
    assert {p.name for p in unlisted} <= NOT_APPLIED, unlisted


def test_every_namespaced_execution_plane_object_names_envbots_namespace() -> None:
    # argo/kustomization.yaml sets no `namespace:` (kustomize would stamp it on the admission
    # policies too), so each file carries its own.
    for path in ARGO_FILES:
        for doc in documents(path):
            if doc["kind"] in CLUSTER_SCOPED:
                assert "namespace" not in doc["metadata"], (path, doc["metadata"]["name"])
            else:
                assert doc["metadata"]["namespace"] == ARGO_NAMESPACE, (path, doc["metadata"]["name"])


def test_kubectl_builds_the_execution_plane_without_the_settings() -> None:
    kubectl = Path(sys.executable).parent / "kubectl"
    built = subprocess.run(
        [str(kubectl), "kustomize", str(ROOT / "argo")], capture_output=True, text=True, check=True, timeout=60
    )
    docs = [d for d in yaml.safe_load_all(built.stdout) if d]
    names = {(d["kind"], d["metadata"]["name"]) for d in docs}
    assert ("ConfigMap", "envbot-lib") in names and ("ConfigMap", "envbot-settings") not in names
    assert len(docs) == sum(
        len(documents(ROOT / "argo" / r))
        for r in yaml.safe_load((ROOT / "argo/kustomization.yaml").read_text())["resources"]
    )
    for doc in docs:
        if doc["kind"] in CLUSTER_SCOPED:
            assert "namespace" not in doc["metadata"], doc["metadata"]["name"]


def template(name: str) -> dict[str, Any]:
    return documents(ROOT / "argo" / "workflowtemplates" / f"{name}.yaml")[0]


def declared(name: str) -> dict[str, dict[str, Any]]:
    return {p["name"]: p for p in template(name)["spec"]["arguments"]["parameters"]}


NOTICES = Notices(
    warn_before=(timedelta(hours=1), timedelta(minutes=10)),
    extend_choices=(timedelta(hours=2), timedelta(days=1), timedelta(minutes=90)),
    latest_expiry=datetime(2026, 12, 12, 9, 0, tzinfo=UTC),
    warn_owner_by_dm=True,
)


# What to deploy: the bot passes at most one of these, so "every optional value" is their union.
TARGETS = (Target(version="1.4.2"), Target(ref="feature-x"), Target(pr="123"))


def bot_argv(action: str, full: bool, target: Target = TARGETS[0]) -> list[str]:
    """The argv the bot's own orchestrator builds for `action`, with every optional value or none."""
    runner = DryRunRunner()
    argo = ArgoCliOrchestrator("argo", "argo", 5, runner)
    expires = datetime(2026, 11, 28, 15, 0, tzinfo=UTC)
    who = {"requested_by": "U1AAA"} if full else {}
    lineage = Lineage(channel="C1AAA", thread="1764320001.000100") if full else Lineage()
    notices = {"notices": NOTICES} if full else {}
    targets = {"target": target} if full else {}
    if action == "create":
        where = {"slack_channel": "C1AAA", "slack_thread": "1764320001.000100"} if full else {}
        where |= {"access": Access(user="alice@example.com", role="view")} if full else {}
        spec = EnvironmentSpec(env_name="e", service="s", expires_at=expires, **who, **where, **notices, **targets)
        argo.create(spec)
    elif action == "deploy":
        argo.deploy(DeployRequest(env_name="e", service="s", requested_by="U1AAA", lineage=lineage, **targets))
    elif action == "extend":
        argo.extend(ExtendRequest(env_name="e", expires_at=expires, requested_by="U1AAA", lineage=lineage, **notices))
    else:
        argo.destroy(DestroyRequest(env_name="e", lineage=lineage, **who))
    return runner.argvs[-1]


def passed(argv: list[str]) -> set[str]:
    return {argv[i + 1].split("=", 1)[0] for i, a in enumerate(argv) if a == "-p"}


def passed_values(argv: list[str]) -> dict[str, str]:
    return dict(argv[i + 1].split("=", 1) for i, a in enumerate(argv) if a == "-p")


# Intent only (docs/adr/0007): a template declares nothing the bot does not pass; guard rails come
# from ConfigMap envbot-services, never from parameters.
TEMPLATE_ONLY: dict[str, set[str]] = {
    CREATE_TEMPLATE: set(),
    EXTEND_TEMPLATE: set(),
    DEPLOY_TEMPLATE: set(),
    DESTROY_TEMPLATE: set(),
}
# What the bot passes even with no optional values: the template's required parameters, plus
# requested_by on an extend or deploy (the bot only does those on someone's behalf).
ALWAYS = {EXTEND_TEMPLATE: {"requested_by"}, DEPLOY_TEMPLATE: {"requested_by"}}


@pytest.mark.parametrize(
    ("action", "name"),
    [
        ("create", CREATE_TEMPLATE),
        ("extend", EXTEND_TEMPLATE),
        ("deploy", DEPLOY_TEMPLATE),
        ("destroy", DESTROY_TEMPLATE),
    ],
)
def test_bot_and_templates_agree_on_parameters(action: str, name: str) -> None:
    params = declared(name)
    required = {n for n, p in params.items() if "value" not in p and "valueFrom" not in p}
    minimal = passed(bot_argv(action, False))
    full = set().union(*(passed(bot_argv(action, True, target)) for target in TARGETS))
    assert full == set(params) - TEMPLATE_ONLY[name], "the bot passes exactly the declared parameters"
    assert minimal == required | ALWAYS.get(name, set()), "the bot always passes every required parameter"
    for optional in set(params) - required - TEMPLATE_ONLY[name]:
        assert params[optional]["value"] == "", f"{optional} must default to empty (the bot leaves out empty values)"
    for knob in TEMPLATE_ONLY[name]:
        assert params[knob].get("value"), f"{knob} needs a default"
    assert template(name)["metadata"]["name"] == name


def test_notice_parameters_are_passed_in_the_format_the_scripts_read() -> None:
    # The wire format the scripts validate and the notifier parses (docs/adr/0005).
    for action in ("create", "extend"):
        values = passed_values(bot_argv(action, True))
        assert values["warn_before"] == "3600,600"
        assert values["extend_choices"] == "2h,1d,1h30m"
        assert values["latest_expiry"] == "2026-12-12T09:00:00Z"
    assert passed_values(bot_argv("extend", True))["slack_channel"] == "C1AAA"
    assert passed_values(bot_argv("destroy", True))["slack_channel"] == "C1AAA"


def test_workflow_labels_match_what_the_bot_queries() -> None:
    for name, action in ((CREATE_TEMPLATE, "create"), (DESTROY_TEMPLATE, "destroy"), (EXTEND_TEMPLATE, "extend")):
        labels = template(name)["spec"]["workflowMetadata"]["labels"]
        assert labels == {LABEL_MANAGED_BY: MANAGED_BY, LABEL_ACTION: action}
    # The reaper's runs are not requests: they must not show up in the bot's history queries.
    reaper = template("env-reaper-template")["spec"]["workflowMetadata"]["labels"]
    assert LABEL_MANAGED_BY not in reaper and LABEL_ACTION not in reaper


def every_workflow_spec() -> list[tuple[str, dict[str, Any]]]:
    return [
        (doc["metadata"]["name"], workflow_spec(doc))
        for _, doc in ARGO_RESOURCES
        if doc["kind"] != "CronWorkflow" and doc["metadata"]["name"] != RECIPES
    ]


RECIPES = "envbot-recipes"  # the platform team's template (docs/adr/0013): its shape is admission's to check


ACCOUNTS = {
    "env-create-template": "envbot-create",
    "env-destroy-template": "envbot-destroy",
    "env-extend-template": "envbot-extend",
    "env-reaper-template": "envbot-reaper",
    "env-notifier-template": "envbot-notify",
    "env-deploy-template": "envbot-deployer",
}
# Create deploys the service after the namespace (docs/adr/0008): recipe timeouts are at most 1200 s.
DEADLINES = {"env-create-template": 1500, "env-deploy-template": 1500}


@pytest.mark.parametrize(
    "path", [ROOT / "argo/settings/envbot-recipes.yaml", ROOT / "examples/echo-recipe/envbot-recipes.yaml"]
)
def test_the_shipped_recipe_templates_are_pinned_and_take_values_only_through_env(path: Path) -> None:
    (doc,) = documents(path)
    assert argo_errors(doc) == []
    for t in doc["spec"]["templates"]:
        assert t["serviceAccountName"] == "envbot-recipe"
        assert re.fullmatch(r"[\w./-]+:\d+\.\d+\.\d+", t["script"]["image"])
        context = t["script"]["securityContext"]
        assert context["runAsNonRoot"] is True and context["readOnlyRootFilesystem"] is True
        assert "{{" not in t["script"]["source"], "inputs substituted into shell source"


@pytest.mark.parametrize(("name", "spec"), every_workflow_spec(), ids=lambda v: v if isinstance(v, str) else "")
def test_templates_are_bounded_and_pinned(name: str, spec: dict[str, Any]) -> None:
    assert spec["serviceAccountName"] == ACCOUNTS[name]
    assert 0 < spec["activeDeadlineSeconds"] <= DEADLINES.get(name, 900)
    assert spec["ttlStrategy"] and spec["podGC"]["strategy"]
    profiles = {"envbot-services": "envbot-services"} if name in DEADLINES else {}
    deploys = {"envbot-deploy": "envbot-deploy"} if name in DEADLINES else {}
    assert {v["name"]: v["configMap"]["name"] for v in spec["volumes"] if "configMap" in v} == {
        "envbot-lib": "envbot-lib"
    } | profiles | deploys
    for t in spec["templates"]:
        if "steps" in t:  # runs script templates, checked where they are defined (here or in create)
            steps = [step for group in t["steps"] for step in group]
            assert all("template" in s or s["templateRef"]["name"] in (CREATE_TEMPLATE, RECIPES) for s in steps), name
            # The platform team's template runs only when the recipe says so, and only as `deploy`.
            assert all(s["templateRef"] == {"name": RECIPES, "template": "deploy"} and "when" in s
                       for s in steps if s.get("templateRef", {}).get("name") == RECIPES), name  # fmt: skip
            continue
        image = t["script"]["image"]
        assert re.fullmatch(r"[\w./-]+:\d+\.\d+\.\d+", image), f"{name}: image {image} is not pinned by tag"
        context = t["script"]["securityContext"]
        assert context["runAsNonRoot"] is True and context["readOnlyRootFilesystem"] is True
        assert context["seccompProfile"] == {"type": "RuntimeDefault"} and context["capabilities"] == {"drop": ["ALL"]}
        # Parameters reach scripts only through env: never pasted into the script text itself.
        assert "{{" not in t["script"]["source"], f"{name}: parameter substituted into shell source"
        env = {e["name"]: e for e in t["script"]["env"]}
        assert env["ENVBOT_LIB"]["value"] == "/envbot/lib/lib.sh"
        # Beside, not inside, each other: a mount point inside a read-only ConfigMap volume cannot be created.
        assert {"name": "envbot-lib", "mountPath": "/envbot/lib", "readOnly": True} in t["script"]["volumeMounts"]
        assert env["ENVBOT_INSTANCE"]["valueFrom"]["configMapKeyRef"] == {
            "name": "envbot-settings",
            "key": "instance",
            "optional": True,
        }


WORKFLOW_RETENTION_SECONDS = 21 * 24 * 3600  # the bot reads ownership and history back from these


def test_create_extend_and_destroy_keep_their_workflows_equally_long() -> None:
    kept = {
        (name, outcome): template(name)["spec"]["ttlStrategy"][outcome]
        for name in (CREATE_TEMPLATE, DESTROY_TEMPLATE, EXTEND_TEMPLATE)
        for outcome in ("secondsAfterSuccess", "secondsAfterFailure")
    }
    # Equal, so no record of an environment outlives another (a destroy vanishing before its create
    # would make the environment look live again), and longer than any environment may live.
    assert set(kept.values()) == {WORKFLOW_RETENTION_SECONDS}, kept
    assert load_policy(None).ttl.lifetime.total_seconds() < WORKFLOW_RETENTION_SECONDS
    for name in (CREATE_TEMPLATE, DESTROY_TEMPLATE, EXTEND_TEMPLATE):
        assert "secondsAfterCompletion" not in template(name)["spec"]["ttlStrategy"]


def test_one_mutex_per_environment_across_create_destroy_and_extend() -> None:
    names = {
        template(n)["spec"]["synchronization"]["mutexes"][0]["name"]
        for n in (CREATE_TEMPLATE, DESTROY_TEMPLATE, EXTEND_TEMPLATE)
    }
    assert names == {"envbot-env-{{workflow.parameters.env_name}}"}


def test_the_max_age_backstop_never_cuts_a_legitimate_lifetime_short() -> None:
    # It applies only to environments without a valid expiry, but even so it is never shorter than
    # the longest an environment may live (ttl.lifetime, extensions included).
    # It is a setting, not a parameter (no CronWorkflow can shorten it), and its default (when the
    # key is missing) is the one the shipped settings write.
    assert "arguments" not in template("env-reaper-template")["spec"]
    assert int(SETTINGS["reaper_max_age_hours"]) * 3600 >= load_policy(None).ttl.lifetime.total_seconds()
    source = step_of("env-reaper-template")["script"]["source"]
    assert f"MAX_AGE_HOURS=${{ENVBOT_REAPER_MAX_AGE_HOURS-{SETTINGS['reaper_max_age_hours']}}}" in source


def test_reaper_cron_only_references_its_template_and_the_switch_ships_safe() -> None:
    (reaper,) = documents(ROOT / "argo/cronworkflows/env-reaper.yaml")
    assert reaper["spec"]["schedules"] == ["*/5 * * * *"]
    assert reaper["spec"]["concurrencyPolicy"] == "Forbid"
    # A bare reference: the admission policy lets nothing else run as envbot-reaper.
    assert reaper["spec"]["workflowSpec"] == {"workflowTemplateRef": {"name": "env-reaper-template"}}
    assert template("env-reaper-template")["spec"]["serviceAccountName"] == "envbot-reaper"
    assert SETTINGS == {
        "instance": "envbot",
        "reaper_dry_run": "true",
        "reaper_max_age_hours": "336",
        "reaper_max_deletes": "50",
        "notices": "off",
        "argo_ui_url": "",
        # The same as the shipped policy's quotas (manifests/bot/policy-configmap.yaml).
        "max_environments_per_user": "3",
        "max_environments_per_channel": "20",
    }
    install = (ROOT / "docs/install.md").read_text()
    assert 'reaper_dry_run: "true"' in install and "reaper_dry_run" in (ROOT / "docs/operations.md").read_text()


def test_the_reaper_counts_its_runs_for_the_alerts_operations_md_gives() -> None:
    (metric,) = template("env-reaper-template")["spec"]["metrics"]["prometheus"]
    assert metric["name"] == "envbot_reaper_runs" and metric["counter"] == {"value": "1"}
    assert metric["labels"] == [{"key": "status", "value": "{{workflow.status}}"}]
    operations = (ROOT / "docs/operations.md").read_text()
    assert 'argo_workflows_envbot_reaper_runs(_total)?", status!="Succeeded"' in operations


def test_notifier_cron_runs_every_minute_one_at_a_time_and_notices_ship_off() -> None:
    (cron,) = documents(ROOT / "argo/cronworkflows/env-notifier.yaml")
    assert cron["spec"]["schedules"] == ["* * * * *"]
    assert cron["spec"]["concurrencyPolicy"] == "Forbid"
    assert cron["spec"]["workflowSpec"] == {"workflowTemplateRef": {"name": "env-notifier-template"}}
    # The reaper keeps an hour of runs: the sweep reads what each one deleted from its Workflow.
    (reaper,) = documents(ROOT / "argo/cronworkflows/env-reaper.yaml")
    assert reaper["spec"]["successfulJobsHistoryLimit"] * 5 >= 60
    install, operations = (ROOT / "docs/install.md").read_text(), (ROOT / "docs/operations.md").read_text()
    assert SETTINGS["notices"] == "off" and 'notices: "off"' in install and "notices" in operations
    for key in ("slack_api_url", "argo_ui_url", "envbot-slack-notifier"):
        assert key in install, key


def test_only_the_notifier_steps_mount_the_slack_token() -> None:
    mounting = []
    for _, doc in ARGO_RESOURCES:
        spec = workflow_spec(doc)
        assert not [v for v in spec.get("volumes", []) if "secret" in v], "the token is never a workflow-level volume"
        for t in spec.get("templates", []):
            secrets = [v for v in t.get("volumes", []) if "secret" in v]
            if not secrets:
                env = (t.get("script") or {}).get("env", [])  # a steps template runs others, checked on their own
                assert "ENVBOT_SLACK_TOKEN_FILE" not in {e["name"] for e in env}
                continue
            mounting.append((doc["metadata"]["name"], t["name"]))
            account = t.get("serviceAccountName") or spec["serviceAccountName"]
            assert account == "envbot-notify", (doc["metadata"]["name"], t["name"])
            assert [v["secret"]["secretName"] for v in secrets] == ["envbot-slack-notifier"]
            assert secrets[0]["secret"]["optional"] is True and secrets[0]["secret"]["defaultMode"] == 0o440
            assert t["securityContext"]["fsGroup"] == t["script"]["securityContext"]["runAsUser"]
            mounts = {m["name"]: m for m in t["script"]["volumeMounts"]}
            assert mounts["slack-token"]["readOnly"] is True
            # The token reaches the script only as a file path: never a parameter or an env value.
            assert all("secretKeyRef" not in e.get("valueFrom", {}) for e in t["script"]["env"])
            # The URL it is sent to comes from the same Secret, the same way (docs/adr/0014).
            files = {i["key"]: i["path"] for i in secrets[0]["secret"]["items"]}
            assert files == {"bot-token": "bot-token", "slack_api_url": "slack_api_url"}
            where = mounts["slack-token"]["mountPath"]
            env = {e["name"]: e for e in t["script"]["env"]}
            assert env["ENVBOT_SLACK_TOKEN_FILE"]["value"] == f"{where}/bot-token"
            assert env["ENVBOT_SLACK_API_URL_FILE"]["value"] == f"{where}/slack_api_url"
            # envbot-settings' slack_api_url is read only to be refused.
            assert env["ENVBOT_SETTINGS_SLACK_API_URL"]["valueFrom"]["configMapKeyRef"]["key"] == "slack_api_url"
            assert "ENVBOT_SLACK_API_URL" not in env
    assert sorted(mounting) == [
        ("env-create-template", "notify"),
        ("env-destroy-template", "notify"),
        ("env-extend-template", "notify"),
        ("env-notifier-template", "sweep"),
    ]
    for name in ("env-create-template", "env-destroy-template", "env-extend-template"):
        assert template(name)["spec"]["onExit"] == "notify"
        (notify,) = [t for t in template(name)["spec"]["templates"] if t["name"] == "notify"]
        assert 0 < int(notify["activeDeadlineSeconds"]) <= 300  # exit handlers ignore the workflow deadline
    assert "onExit" not in template("env-reaper-template")["spec"]  # the reaper never holds the token


def test_create_defaults_fit_together() -> None:
    profile = {k.removeprefix("default."): v for k, v in SERVICES.items() if k.startswith("default.")}
    params = {
        "quota_pods": profile["quota.pods"],
        "quota_cpu": profile["quota.cpu"],
        "quota_memory": profile["quota.memory"],
        "default_cpu_limit": profile["limits.cpu_limit"],
        "default_memory_limit": profile["limits.memory_limit"],
        "default_cpu_request": profile["limits.cpu_request"],
        "default_memory_request": profile["limits.memory_request"],
        "quota_services_loadbalancers": profile["quota.loadbalancers"],
        "quota_services_nodeports": profile["quota.nodeports"],
        "pod_security_level": profile["pod_security_level"],
        "egress_blocked_cidrs": profile["egress_blocked_cidrs"],
    }

    def milli(quantity: str) -> int:
        units = {"m": 1, "": 1000, "Ki": 1024000, "Mi": 1048576000, "Gi": 1073741824000}
        number, unit = re.fullmatch(r"([0-9.]+)([A-Za-z]*)", quantity).groups()  # type: ignore[union-attr]
        return int(float(number) * units[unit])

    pods = int(params["quota_pods"])
    # The pod quota is reachable: that many containers at the default limits fit the quotas.
    assert pods * milli(params["default_cpu_limit"]) <= milli(params["quota_cpu"])
    assert pods * milli(params["default_memory_limit"]) <= milli(params["quota_memory"])
    assert milli(params["default_cpu_request"]) <= milli(params["default_cpu_limit"])
    assert milli(params["default_memory_request"]) <= milli(params["default_memory_limit"])
    assert params["quota_services_loadbalancers"] == params["quota_services_nodeports"] == "0"
    assert params["pod_security_level"] == "restricted"
    assert "169.254.169.254/32" in params["egress_blocked_cidrs"].split(",")


def test_each_template_has_its_own_narrow_service_account() -> None:
    docs = documents(ROOT / "argo/rbac/executor.yaml")
    roles = {d["metadata"]["name"]: d for d in docs if d["kind"] == "ClusterRole"}

    def rules(account: str) -> set[tuple[str, str, str]]:
        granted = set()
        for binding in (d for d in docs if d["kind"] == "ClusterRoleBinding"):
            if any(s["name"] == account for s in binding["subjects"]):
                if binding["metadata"]["name"] != "envbot-guards":  # the one role three accounts share
                    assert binding["subjects"] == [
                        {"kind": "ServiceAccount", "name": account, "namespace": ARGO_NAMESPACE}
                    ]
                for rule in roles[binding["roleRef"]["name"]]["rules"]:
                    granted |= {(g, r, v) for g in rule["apiGroups"] for r in rule["resources"] for v in rule["verbs"]}
        return granted

    namespaces = {("", "namespaces", v) for v in ("get", "list", "create", "patch", "delete")}
    guard_rails = {
        (g, r, v)
        for g, r in (("", "resourcequotas"), ("", "limitranges"), ("networking.k8s.io", "networkpolicies"))
        for v in ("get", "create", "patch")
    }
    # list: counting an owner's or a channel's live environments for the quotas (docs/adr/0011).
    assert rules("envbot-create") == (namespaces - {("", "namespaces", "delete")}) | guard_rails
    # destroy, reaper and notify read the admission policies they rely on before acting (require_guards).
    guards = {
        ("admissionregistration.k8s.io", r, "get")
        for r in ("validatingadmissionpolicies", "validatingadmissionpolicybindings")
    }
    assert rules("envbot-destroy") == {("", "namespaces", "get"), ("", "namespaces", "delete")} | guards
    assert rules("envbot-extend") == {("", "namespaces", "get"), ("", "namespaces", "patch")}
    assert rules("envbot-reaper") == {("", "namespaces", v) for v in ("get", "list", "delete")} | guards
    assert rules("envbot-notify") == {("", "namespaces", v) for v in ("get", "list", "patch")} | guards
    roles = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Role"}
    assert roles["envbot-executor"]["rules"] == [
        {"apiGroups": ["argoproj.io"], "resources": ["workflowtaskresults"], "verbs": ["create", "patch"]}
    ]
    assert roles["envbot-notify"]["rules"] == [
        {"apiGroups": ["argoproj.io"], "resources": ["workflows"], "verbs": ["get", "list", "update"]}
    ]
    bindings = {d["metadata"]["name"]: d for d in docs if d["kind"] == "RoleBinding"}
    assert set(bindings) == set(roles)
    assert sorted(s["name"] for s in bindings["envbot-executor"]["subjects"]) == sorted(
        template(n)["spec"]["serviceAccountName"] for n in TEMPLATES
    )
    assert bindings["envbot-notify"]["subjects"] == [
        {"kind": "ServiceAccount", "name": "envbot-notify", "namespace": ARGO_NAMESPACE}
    ]


def test_cluster_scoped_names_carry_the_instance() -> None:
    instance = SETTINGS["instance"]
    cluster = [d for p in ARGO_FILES for d in documents(p) if d["kind"] in CLUSTER_SCOPED]
    assert len(cluster) == 27  # 22, and the deployer's 5 (argo/rbac/deployer.yaml)
    for doc in cluster:
        assert doc["metadata"]["name"].startswith(instance + "-"), doc["metadata"]["name"]
    assert "envbot-environments" not in {d["metadata"]["name"] for d in cluster}  # the old shared binding name
    # The instance the policies protect is the one the scripts label namespaces with.
    (policy,) = [d for d in documents(ROOT / "argo/admission/namespace-ownership.yaml") if d["kind"].endswith("Policy")]
    variables = {v["name"]: v["expression"] for v in policy["spec"]["variables"]}
    assert variables["instance"] == f"'{instance}'" and variables["argoNamespace"] == f"'{ARGO_NAMESPACE}'"
    assert all(e["name"] != "DRY_RUN" for e in script_of("env-reaper-template")["env"])


def test_bot_rbac_only_touches_workflows_in_envbots_namespace() -> None:
    docs = [d for p in (ROOT / "manifests/bot").glob("*.yaml") for d in documents(p)]
    assert not [d for d in docs if d["kind"] in ("ClusterRole", "ClusterRoleBinding")]
    (role,) = [d for d in docs if d["kind"] == "Role"]
    assert role["metadata"]["namespace"] == ARGO_NAMESPACE
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
    # Alive: the process answers (/healthz); ready: what serving needs (/readyz).
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
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
    # Every description survives YAML whole (an unquoted " #" would start a comment and cut it).
    assert policy.services["payments"].description == "Payments service (only from #payments-dev)"
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
    # One message per environment, the create form and the Home tab (docs/adr/0009).
    assert "app_home_opened" in app["settings"]["event_subscriptions"]["bot_events"]
    assert app["features"]["app_home"]["home_tab_enabled"] is True
    assert {"chat:write", "chat:write.public"} <= set(app["oauth_config"]["scopes"]["bot"])


def test_dockerfile_pins_and_verifies_argo_and_runs_as_non_root() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert re.search(r"ARG ARGO_VERSION=v\d+\.\d+\.\d+", text)
    assert "sha256sum -c" in text and "ARG ARGO_SHA256" in text
    assert re.search(r"^USER 10001", text, re.MULTILINE)
    assert ":latest" not in text
    for image in re.findall(r"^FROM (\S+)", text, re.MULTILINE):
        assert re.search(r":\d+\.\d+\.\d+", image), image
