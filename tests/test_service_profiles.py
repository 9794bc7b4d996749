"""The service profiles (ConfigMap envbot-services, docs/adr/0007): what admission lets an operator
write, and that the shipped profiles pass it. How the create template reads and re-validates them is
in test_template_scripts.py (before kubectl) and test_execution_plane.py (against the API stand-in).
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import ROOT
from tests.execution_plane import ARGO_NAMESPACE, SERVICES, documents
from tests.test_admission_policies import Request, load_policy

POLICY = load_policy(ROOT / "argo/admission/service-profiles.yaml")
OPERATOR = "alice@example.com"


def profiles(data: dict[str, str], name: str = "envbot-services", **extra: Any) -> dict[str, Any]:
    meta = {"name": name, "namespace": ARGO_NAMESPACE}
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": data} | extra


def write(data: dict[str, str], name: str = "envbot-services", operation: str = "UPDATE", **extra: Any) -> str | None:
    obj = profiles(data, name, **extra)
    labels = {"kubernetes.io/metadata.name": ARGO_NAMESPACE}
    home = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ARGO_NAMESPACE, "labels": labels}}
    old = profiles(SERVICES)
    return POLICY.admit(
        Request(operation, OPERATOR, "ConfigMap", obj, old, namespace=ARGO_NAMESPACE, namespace_object=home)
    )


def test_the_shipped_profiles_pass_admission() -> None:
    (shipped,) = documents(ROOT / "argo/settings/envbot-services.yaml")
    assert write(shipped["data"], operation="CREATE") is None
    assert write(SERVICES | {"checkout.quota.cpu": "8", "checkout.recipe.kind": "helm"}) is None
    recipe = {"checkout.recipe.repo": "https://github.com/acme/checkout.git", "checkout.recipe.timeout": "1200"}
    recipe |= {"checkout.recipe.ref": "release/1.4", "checkout.access.roles": "view,edit"}
    assert write(SERVICES | recipe) is None


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"checkout.pod_security_level": "privileged-ish"}, "must be restricted, baseline or privileged"),
        ({"default.pod_security_level": ""}, "must be restricted, baseline or privileged"),
        ({"checkout.quota.cpu": "lots"}, "are quantities"),
        ({"default.limits.memory_limit": "1Ti"}, "are quantities"),
        ({"checkout.quota.pods": "-1"}, "whole numbers"),
        ({"checkout.quota.loadbalancers": "1e3"}, "whole numbers"),
        ({"checkout.egress_blocked_cidrs": "169.254.169.254"}, "egress_blocked_cidrs"),
        ({"checkout.egress_blocked_cidrs": "10.0.0.0/8\n0.0.0.0/0"}, "egress_blocked_cidrs"),
        ({"Checkout.quota.cpu": "8"}, "<service>.<setting>"),
        ({"checkout": "8"}, "<service>.<setting>"),
        ({"checkout.Quota.cpu": "8"}, "<service>.<setting>"),
        ({"checkout..cpu": "8"}, "<service>.<setting>"),
        # Deploy recipes and access (docs/adr/0008).
        ({"checkout.recipe.kind": "shell"}, "must be none, kustomize, helm or workflow"),
        ({"checkout.recipe.timeout": "3600"}, "from 1 to 1200"),
        ({"checkout.recipe.timeout": "0"}, "from 1 to 1200"),
        ({"checkout.recipe.repo": "git@github.com:acme/x.git"}, "git URL"),
        ({"checkout.recipe.repo": "https://x/y;rm -rf /"}, "git URL"),
        ({"checkout.recipe.tag": "1.0\nnewTag: evil"}, "image tags or versions"),
        ({"checkout.recipe.ref": "main..evil"}, "git branch, tag or commit"),
        ({"checkout.recipe.images": "Ghcr.io/X"}, "image names"),
        ({"checkout.recipe.kinds": "deployment"}, "list of kinds"),
        ({"checkout.access.roles": "cluster admin"}, "ClusterRole names"),
    ],
)
def test_malformed_profiles_are_refused(change: dict[str, str], message: str) -> None:
    denied = write(SERVICES | change)
    assert denied is not None and message in denied, denied


# The guard rails' defaults (deploy recipes and access fall back to `none` and `view` in the scripts'
# own checks, and a service's own keys are optional).
GUARD_RAIL_DEFAULTS = sorted(
    k for k in SERVICES if k.startswith("default.") and k.split(".")[1] not in ("recipe", "access")
)


@pytest.mark.parametrize("key", GUARD_RAIL_DEFAULTS)
def test_removing_a_default_guard_rail_is_refused(key: str) -> None:
    denied = write({k: v for k, v in SERVICES.items() if k != key})
    assert denied is not None and "must keep a default for every guard rail" in denied


def test_binary_data_is_refused_and_other_config_maps_are_not_judged() -> None:
    denied = write(SERVICES, binaryData={"default.quota.cpu": "NA=="})
    assert denied is not None and "text only" in denied
    assert write({"anything": "goes"}, name="team-config") is None
