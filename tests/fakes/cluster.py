"""A cluster as an operator leaves it after installing envbot, inside the Kubernetes API stand-in.

install() writes what `kubectl apply -k argo/`, `kubectl create -f argo/settings/...`, the bot's
manifests and Argo's own install leave behind (straight into the store, like etcd: fast, and
without admission): envbot's namespace and everything in it, the RBAC from argo/rbac and
manifests/bot, the admission policies and bindings from argo/admission, and Argo's controller
with its stock ClusterRole. From then on every request the real kubectl makes is authorized and
admitted for its caller, so a test acts as the bot, an executor, Argo's controller or a CI account
just by picking the identity (identities below).
"""

from __future__ import annotations

import functools
import subprocess
from pathlib import Path
from typing import Any

import yaml

from tests.conftest import ROOT
from tests.execution_plane import ARGO_NAMESPACE, documents
from tests.fakes.kube_api import FakeKubeApi, kubectl_path

# The identities a test can act as, beside the executors (account()).
CONTROLLER = "system:serviceaccount:argo:argo"  # Argo's stock install: SA `argo` in namespace `argo`
BOT = "system:serviceaccount:envbot:envbot"
CI = "system:serviceaccount:team-ci:ci-runner"  # another team's CI: no rights in envbot's namespace


def account(name: str, namespace: str = ARGO_NAMESPACE) -> str:
    return f"system:serviceaccount:{namespace}:{name}"


# Argo's controller as its stock cluster install grants it (argoproj/argo-workflows
# manifests/cluster-install/workflow-controller-rbac, v3.7: the rules envbot's workflows touch).
ARGO_CONTROLLER_RBAC: tuple[dict[str, Any], ...] = (
    {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "argo"}},
    {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "argo", "namespace": "argo"}},
    {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": "argo-cluster-role"},
        "rules": [
            {
                "apiGroups": [""],
                "resources": ["pods", "pods/exec"],
                "verbs": ["create", "get", "list", "watch", "update", "patch", "delete"],
            },
            {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "watch", "list"]},
            {"apiGroups": [""], "resources": ["serviceaccounts"], "verbs": ["get", "list"]},
            {"apiGroups": [""], "resources": ["events"], "verbs": ["create", "patch"]},
            {
                "apiGroups": ["argoproj.io"],
                "resources": ["workflows", "workflows/finalizers"],
                "verbs": ["get", "list", "watch", "update", "patch", "delete", "create"],
            },
            {
                "apiGroups": ["argoproj.io"],
                "resources": ["workflowtemplates", "clusterworkflowtemplates"],
                "verbs": ["get", "list", "watch"],
            },
            {
                "apiGroups": ["argoproj.io"],
                "resources": ["cronworkflows", "cronworkflows/finalizers"],
                "verbs": ["get", "list", "watch", "update", "patch", "delete"],
            },
        ],
    },
    {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": "argo-binding"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "argo-cluster-role"},
        "subjects": [{"kind": "ServiceAccount", "name": "argo", "namespace": "argo"}],
    },
)


@functools.cache
def _built(folder: Path) -> tuple[dict[str, Any], ...]:
    """`kubectl kustomize <folder>`: what `kubectl apply -k` would send."""
    out = subprocess.run(
        [str(kubectl_path()), "kustomize", str(folder)], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    return tuple(doc for doc in yaml.safe_load_all(out) if doc)


def execution_plane(folder: Path = ROOT / "argo") -> tuple[dict[str, Any], ...]:
    """argo/ as `kubectl apply -k` applies it, plus the settings and profiles created once beside it."""
    once = [doc for path in sorted((ROOT / "argo/settings").glob("*.yaml")) for doc in documents(path)]
    return (*_built(folder), *once)


def bot_install() -> tuple[dict[str, Any], ...]:
    return tuple(
        doc
        for doc in _built(ROOT / "manifests/bot")
        if doc["kind"] in ("Namespace", "ServiceAccount", "Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding")
    )


def install(
    api: FakeKubeApi,
    *,
    without: tuple[str, ...] = (),
    extra: tuple[dict[str, Any], ...] = (),
) -> None:
    """Install Argo's controller RBAC, envbot's execution plane and the bot's RBAC into `api`.

    `without`: names of objects to leave out (e.g. a binding, to show what a missing guard does)."""
    for doc in (*ARGO_CONTROLLER_RBAC, *execution_plane(), *bot_install(), *extra):
        if doc["metadata"]["name"] not in without:
            api.put(doc)


BLUE_NAMESPACE = "envbot-blue-workflows"  # the second install of docs/examples/second-install (instance blue)


def install_blue(api: FakeKubeApi) -> None:
    """A second install beside the first: docs/examples/second-install, with its own settings."""
    for doc in _built(ROOT / "docs/examples/second-install"):
        api.put(doc)
    settings = documents(ROOT / "argo/settings/envbot-settings.yaml")[0]
    settings["metadata"]["namespace"] = BLUE_NAMESPACE
    settings["data"]["instance"] = "blue"
    api.put(settings)


def grant(api: FakeKubeApi, user: str, rules: list[dict[str, Any]], namespace: str | None = None) -> None:
    """Give `user` (a service account) `rules`: cluster-wide, or in `namespace` only.

    How a cluster's RBAC is commonly misconfigured for CI: the point of the admission policies is
    that envbot stays safe even then."""
    sa_namespace, name = user.split(":")[2:]
    role_kind, binding_kind = ("Role", "RoleBinding") if namespace else ("ClusterRole", "ClusterRoleBinding")
    where = {"namespace": namespace} if namespace else {}
    role_name = f"{name}-granted"
    api.put(
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": role_kind,
            "metadata": {"name": role_name, **where},
            "rules": rules,
        }
    )
    api.put(
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": binding_kind,
            "metadata": {"name": role_name, **where},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": role_kind, "name": role_name},
            "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": sa_namespace}],
        }
    )
