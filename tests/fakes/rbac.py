"""RBAC as the API server's authorizer decides it, for the Kubernetes API stand-in (tests/fakes/kube_api.py).

The rules come from the Roles, ClusterRoles, RoleBindings and ClusterRoleBindings stored in the
stand-in, so a test installs the project's own RBAC (argo/rbac, manifests/bot) and every request
is judged for the identity behind its token, as k8s.io/kubernetes/plugin/pkg/auth/authorizer/rbac
does:

  * a request is allowed when any rule of any role bound to the user, one of its groups or (for a
    service account) the account itself allows (apiGroup, resource[/subresource], verb, name);
  * a ClusterRoleBinding grants everywhere; a RoleBinding grants in its namespace only, whether it
    points at a Role or a ClusterRole;
  * for the `namespaces` resource the request's namespace is the namespace named (GET/PATCH/DELETE
    /api/v1/namespaces/X is "in the namespace X"), like the apiserver's RequestInfo;
  * `*` matches any group, resource or verb; resourceNames restrict to named objects (never list,
    watch, create or deletecollection, which carry no name);
  * the `system:masters` group is allowed everything (the real server short-circuits it before RBAC).

Not modelled: aggregated ClusterRoles (aggregationRule), nonResourceURLs (discovery, /version and
OpenAPI are open to any authenticated user, as the default system:discovery binding makes them),
impersonation, the escalate/bind checks on writing RBAC objects, Node and webhook authorizers.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

MASTERS = "system:masters"


@dataclass(frozen=True)
class Identity:
    """Who a bearer token authenticates as."""

    user: str
    groups: tuple[str, ...] = ()

    @staticmethod
    def of(user: str, groups: Iterable[str] = ()) -> Identity:
        """The groups the authenticator adds: system:authenticated always; a service account's token
        also carries system:serviceaccounts and system:serviceaccounts:<namespace>."""
        found = list(groups)
        if user.startswith("system:serviceaccount:"):
            namespace = user.split(":")[2]
            found += ["system:serviceaccounts", f"system:serviceaccounts:{namespace}"]
        found.append("system:authenticated")
        return Identity(user, tuple(dict.fromkeys(found)))


@dataclass(frozen=True)
class Attributes:
    """What RBAC is asked: may `identity` do `verb` on group/resource[/subresource] (name) in namespace?"""

    verb: str
    group: str
    resource: str
    namespace: str  # "" at the cluster scope
    name: str = ""
    subresource: str = ""


def _subject_matches(subject: dict[str, Any], identity: Identity, binding_namespace: str) -> bool:
    kind = subject.get("kind")
    if kind == "User":
        return bool(subject.get("name") == identity.user)
    if kind == "Group":
        return subject.get("name") in identity.groups
    if kind == "ServiceAccount":
        namespace = subject.get("namespace") or binding_namespace
        return identity.user == f"system:serviceaccount:{namespace}:{subject.get('name')}"
    return False


def _rule_allows(rule: dict[str, Any], attributes: Attributes) -> bool:
    groups = rule.get("apiGroups") or []
    resources = rule.get("resources") or []
    verbs = rule.get("verbs") or []
    names = rule.get("resourceNames") or []
    wanted = f"{attributes.resource}/{attributes.subresource}" if attributes.subresource else attributes.resource
    resource_ok = (
        "*" in resources
        or wanted in resources
        or bool(attributes.subresource and f"*/{attributes.subresource}" in resources)
    )
    return bool(
        ("*" in groups or attributes.group in groups)
        and resource_ok
        and ("*" in verbs or attributes.verb in verbs)
        and (not names or (attributes.name and attributes.name in names))
    )


def authorized(identity: Identity, attributes: Attributes, objects: Iterable[dict[str, Any]]) -> bool:
    """Decide from the stored RBAC objects (Role, ClusterRole, RoleBinding, ClusterRoleBinding)."""
    if MASTERS in identity.groups:
        return True
    objects = list(objects)
    roles = {
        (o["kind"], o["metadata"].get("namespace", ""), o["metadata"]["name"]): o
        for o in objects
        if o.get("kind") in ("Role", "ClusterRole")
    }
    for binding in objects:
        kind = binding.get("kind")
        if kind not in ("RoleBinding", "ClusterRoleBinding"):
            continue
        where = binding["metadata"].get("namespace", "") if kind == "RoleBinding" else ""
        if where and where != attributes.namespace:
            continue
        if not any(_subject_matches(s, identity, where) for s in binding.get("subjects") or []):
            continue
        ref = binding.get("roleRef") or {}
        role_namespace = where if ref.get("kind") == "Role" else ""
        role = roles.get((ref.get("kind"), role_namespace, ref.get("name")))
        if role is not None and any(_rule_allows(rule, attributes) for rule in role.get("rules") or []):
            return True
    return False


def denial(identity: Identity, attributes: Attributes) -> str:
    """The text after `<resource> "<name>" is forbidden: ` in the API server's 403."""
    resource = f"{attributes.resource}/{attributes.subresource}" if attributes.subresource else attributes.resource
    scope = f'in the namespace "{attributes.namespace}"' if attributes.namespace else "at the cluster scope"
    return (
        f'User "{identity.user}" cannot {attributes.verb} resource "{resource}" '
        f'in API group "{attributes.group}" {scope}'
    )
