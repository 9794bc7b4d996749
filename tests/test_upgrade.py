"""The upgrade from the shared `argo` layout to envbot's own namespace (docs/install.md, "Upgrading"),
run as an operator runs it: the real `kubectl apply -k argo/` and argo/upgrade/to-own-namespace.sh
against the API stand-in holding the old layout, its leftovers and environments in flight.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT
from tests.execution_plane import ARGO_NAMESPACE, REAPER, SETTINGS, render, run_script, service_account
from tests.fakes.cluster import ARGO_CONTROLLER_RBAC, BOT, bot_install, execution_plane
from tests.fakes.kube_api import FakeKubeApi, kubectl_env, kubectl_path

SCRIPT = ROOT / "argo/upgrade/to-own-namespace.sh"
OLD = "argo"


def old_layout() -> list[dict[str, Any]]:
    """What the release before ADR 0006 installed: the same objects, all in namespace `argo`."""
    docs = []
    for doc in (*execution_plane(), *bot_install()):
        if doc["kind"] == "Namespace":
            continue
        docs.append(json.loads(json.dumps(doc).replace(f'"{ARGO_NAMESPACE}"', f'"{OLD}"')))
    leftovers = [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "envbot-executor", "namespace": OLD}},
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": "envbot-environments"},
            "rules": [{"apiGroups": [""], "resources": ["namespaces"], "verbs": ["get", "list", "delete"]}],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": "envbot-environments"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "envbot-environments"},
            "subjects": [{"kind": "ServiceAccount", "name": "envbot-executor", "namespace": OLD}],
        },
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "envbot-slack-notifier", "namespace": OLD},
            "data": {"bot-token": "eG94Yi10ZXN0"},
        },
    ]
    return docs + leftovers


def environment(api: FakeKubeApi, name: str, expires: str) -> None:
    labels = {
        "app.kubernetes.io/managed-by": "envbot",
        "envbot.dev/instance": "envbot",
        "envbot.dev/env": name,
        "envbot.dev/requested-by": "U111AAA",
    }
    api.add_namespace(name, labels, {"envbot.dev/expires-at": expires, "janitor/expires": expires})


def old_workflow(name: str, completed: bool) -> dict[str, Any]:
    labels = {
        "app.kubernetes.io/managed-by": "envbot",
        "workflows.argoproj.io/workflow-template": "env-create-template",
    }
    if completed:
        labels["workflows.argoproj.io/completed"] = "true"
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {"name": name, "namespace": OLD, "labels": labels},
        "spec": {"workflowTemplateRef": {"name": "env-create-template"}},
        "status": {"phase": "Succeeded" if completed else "Running"},
    }


@pytest.fixture
def admin(api: FakeKubeApi, tmp_path: Path) -> dict[str, str]:
    env = kubectl_env(api, tmp_path / "admin")
    return env  # its PATH has kubectl's folder, then /usr/local/bin:/usr/bin:/bin for bash and jq


def names(api: FakeKubeApi, kind: str, namespace: str | None = None) -> set[str]:
    return {o["metadata"]["name"] for o in api.objects(kind, namespace)}


def test_upgrade_from_the_shared_argo_namespace_leaves_nothing_behind(
    api: FakeKubeApi, admin: dict[str, str], tmp_path: Path
) -> None:
    for doc in (*ARGO_CONTROLLER_RBAC, *old_layout()):
        api.put(doc)
    environment(api, "old-env", "2020-01-01T00:00:00Z")
    environment(api, "live-env", "2999-01-01T00:00:00Z")
    api.put(old_workflow("env-create-template-done1", completed=True))
    api.put(old_workflow("env-create-template-busy1", completed=False))
    settings = next(c for c in api.objects("ConfigMap", OLD) if c["metadata"]["name"] == "envbot-settings")
    settings["data"]["reaper_dry_run"] = "false"  # the operator's own setting, to be carried over
    settings["data"]["slack_api_url"] = "https://slack-proxy.example.com/api/"  # moved to the Secret: not carried
    api.put(settings)

    kubectl = str(kubectl_path())
    applied = subprocess.run(
        [kubectl, "apply", "-k", str(ROOT / "argo")], env=admin, capture_output=True, text=True, timeout=120
    )
    assert applied.returncode == 0, applied.stderr

    def upgrade() -> subprocess.CompletedProcess[str]:
        return subprocess.run(["/bin/bash", str(SCRIPT)], env=admin, capture_output=True, text=True, timeout=120)

    # A create still running in the old namespace: nothing is removed yet, and the script says why.
    first = upgrade()
    assert (
        first.returncode != 0 and "env-create-template-busy1" in first.stderr and "nothing was removed" in first.stderr
    )
    assert "envbot-executor" in names(api, "ServiceAccount", OLD)
    assert names(api, "CronWorkflow", OLD) == set()  # no new runs start in the old namespace
    assert names(api, "ConfigMap", ARGO_NAMESPACE) >= {"envbot-settings", "envbot-services", "envbot-lib"}
    assert (
        "removed slack_api_url (https://slack-proxy.example.com/api/) from envbot-settings and did NOT carry it over"
        in first.stdout
    )

    # It finishes; the upgrade completes and is safe to run again.
    api.put(old_workflow("env-create-template-busy1", completed=True))
    second = upgrade()
    assert second.returncode == 0, second.stderr
    assert upgrade().returncode == 0

    assert names(api, "ServiceAccount", OLD) == {"argo"}  # Argo's controller's own stays
    # Only the bot's read-only Role for the old records (below) is left there.
    assert names(api, "Role", OLD) == names(api, "RoleBinding", OLD) == {"envbot-history-reader"}
    assert names(api, "WorkflowTemplate", OLD) == names(api, "ConfigMap", OLD) == set()
    assert names(api, "Secret", OLD) == set()
    assert "envbot-environments" not in names(api, "ClusterRole") | names(api, "ClusterRoleBinding")
    assert names(api, "Secret", ARGO_NAMESPACE) == {"envbot-slack-notifier"}
    moved = next(c for c in api.objects("ConfigMap", ARGO_NAMESPACE) if c["metadata"]["name"] == "envbot-settings")
    assert moved["data"]["reaper_dry_run"] == "false"
    assert "slack_api_url" not in moved["data"]  # where the token goes is the Secret's to say (docs/adr/0014)
    (secret,) = api.objects("Secret", ARGO_NAMESPACE)
    assert set(secret["data"]) == {"bot-token"}
    for binding in api.objects("ClusterRoleBinding"):
        if binding["metadata"]["name"].startswith("envbot-"):
            assert {s["namespace"] for s in binding["subjects"]} == {ARGO_NAMESPACE}, binding["metadata"]["name"]
    # The old records stay until their TTL; Argo's own namespace stays.
    assert names(api, "Workflow", OLD) == {"env-create-template-done1", "env-create-template-busy1"}
    assert api.namespace(OLD) is not None
    # The bot reads them (ARGO_PREVIOUS_NAMESPACE, docs/adr/0014) and can do nothing else there.
    assert "ARGO_PREVIOUS_NAMESPACE=argo" in second.stdout
    as_bot = kubectl_env(api, tmp_path / "bot", user=BOT)
    for refused in (
        [kubectl, "delete", "workflows.argoproj.io", "env-create-template-done1", "-n", OLD],
        [kubectl, "create", "-f", "-", "-n", OLD],
    ):
        stdin = json.dumps(old_workflow("env-create-template-bot1", completed=False))
        run = subprocess.run(refused, env=as_bot, input=stdin, capture_output=True, text=True)
        assert run.returncode != 0 and "forbidden" in run.stderr, run.stderr
    listed = subprocess.run(
        [kubectl, "get", "workflows.argoproj.io", "-n", OLD, "-o", "name"], env=as_bot, capture_output=True, text=True
    )
    assert listed.returncode == 0 and "env-create-template-done1" in listed.stdout, listed.stderr

    # Environments in flight are the new install's: its reaper, as its own account, reaps the expired one.
    user = service_account(REAPER)
    env = kubectl_env(api, tmp_path / "reaper", user=user)
    run = run_script(render(REAPER, {}, SETTINGS | {"reaper_dry_run": "false"}), tmp_path / "pod", env)
    assert run.returncode == 0, run.output
    old_env, live_env = api.namespace("old-env"), api.namespace("live-env")
    assert old_env is not None and old_env["metadata"].get("deletionTimestamp")
    assert live_env is not None and not live_env["metadata"].get("deletionTimestamp")

    # A retired account, even with a token, can do nothing to them.
    retired = kubectl_env(api, tmp_path / "retired", user=f"system:serviceaccount:{OLD}:envbot-executor")
    gone = subprocess.run([kubectl, "delete", "namespace", "live-env"], env=retired, capture_output=True, text=True)
    assert gone.returncode != 0 and "forbidden" in gone.stderr
    live_env = api.namespace("live-env")
    assert live_env is not None and not live_env["metadata"].get("deletionTimestamp")
