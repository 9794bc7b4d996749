"""ValidatingAdmissionPolicies as the API server applies them, for the Kubernetes API stand-in and the
policy tables in tests/test_admission_policies.py.

The policies and bindings are the ones stored in the stand-in (so a test installs argo/admission,
deletes a binding, or installs a second install's), and every CREATE, UPDATE and DELETE is judged
the way k8s.io/apiserver/pkg/admission/plugin/policy/validating does:

  * a (policy, binding) pair applies when the policy's matchConstraints and the binding's
    matchResources both match: resourceRules / excludeResourceRules (group, version, resource or
    resource/subresource, operation; `*` wildcards), namespaceSelector (a Namespace object is
    matched on its own labels; other cluster-scoped objects always match) and objectSelector
    (matches if the old or the new object's labels do);
  * then matchConditions (any false skips the pair), variables, validations; a validation that is
    not true denies with its message (or messageExpression), its reason (default Invalid);
  * an expression error, or a namespace the selector cannot read, follows failurePolicy: Fail
    denies, Ignore skips;
  * only bindings with `Deny` in validationActions deny; `Warn` and `Audit` never do;
  * a binding whose policy does not exist, and a policy nobody binds, do nothing.

The CEL runs in cel-python, a standard-CEL interpreter. Known differences from the API server:
  * no Kubernetes CEL libraries (lists/regex/url/quantity/authz, optional types): the policies use
    only standard CEL, and tests/test_admission_policies.py checks that they do;
  * no type-checking against OpenAPI schemas (the API server does none for CRDs either), no cost
    limits, no status.typeChecking on the policy objects;
  * variables are evaluated in order up front, but an error is kept as an error value, so like the
    API server's lazy variables it only denies if a validation actually needs it;
  * paramKind/paramRef are refused (the project uses none); messages are the API server's format
    (`ValidatingAdmissionPolicy '<p>' with binding '<b>' denied request: <message>`), audit
    annotations and warnings are not produced.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import celpy
from celpy import celtypes

CEL = celpy.Environment()
# kind -> (group, version, resource) for every kind the policies or the stand-in deal with.
KINDS: dict[str, tuple[str, str, str]] = {
    "Namespace": ("", "v1", "namespaces"),
    "ResourceQuota": ("", "v1", "resourcequotas"),
    "LimitRange": ("", "v1", "limitranges"),
    "ConfigMap": ("", "v1", "configmaps"),
    "Secret": ("", "v1", "secrets"),
    "ServiceAccount": ("", "v1", "serviceaccounts"),
    "Event": ("", "v1", "events"),
    "Pod": ("", "v1", "pods"),
    "NetworkPolicy": ("networking.k8s.io", "v1", "networkpolicies"),
    "Workflow": ("argoproj.io", "v1alpha1", "workflows"),
    "WorkflowTemplate": ("argoproj.io", "v1alpha1", "workflowtemplates"),
    "CronWorkflow": ("argoproj.io", "v1alpha1", "cronworkflows"),
    "ClusterWorkflowTemplate": ("argoproj.io", "v1alpha1", "clusterworkflowtemplates"),
    "Role": ("rbac.authorization.k8s.io", "v1", "roles"),
    "ClusterRole": ("rbac.authorization.k8s.io", "v1", "clusterroles"),
    "RoleBinding": ("rbac.authorization.k8s.io", "v1", "rolebindings"),
    "ClusterRoleBinding": ("rbac.authorization.k8s.io", "v1", "clusterrolebindings"),
    "ValidatingAdmissionPolicy": ("admissionregistration.k8s.io", "v1", "validatingadmissionpolicies"),
    "ValidatingAdmissionPolicyBinding": ("admissionregistration.k8s.io", "v1", "validatingadmissionpolicybindings"),
}
REASON_CODES = {"Forbidden": 403, "Invalid": 422, "RequestEntityTooLarge": 413, "Unauthorized": 401}


@dataclass
class Request:
    """One admission request: what the API server hands the policies."""

    operation: str  # CREATE | UPDATE | DELETE
    user: str
    kind: str
    obj: dict[str, Any] | None
    old: dict[str, Any] | None = None
    namespace: str = ""  # "" for cluster-scoped objects
    namespace_object: dict[str, Any] | None = None
    groups: list[str] = field(default_factory=list)
    subresource: str = ""
    dry_run: bool = False
    gvr: tuple[str, str, str] | None = None  # (group, version, resource) when the kind is not in KINDS

    @property
    def name(self) -> str:
        return str((self.obj or self.old or {}).get("metadata", {}).get("name", ""))

    @property
    def resource(self) -> tuple[str, str, str]:
        return self.gvr or KINDS[self.kind]


@dataclass(frozen=True)
class Denial:
    policy: str
    binding: str
    reason: str  # Forbidden | Invalid | ...
    message: str

    @property
    def code(self) -> int:
        return REASON_CODES.get(self.reason, 400)

    def text(self) -> str:
        return f"ValidatingAdmissionPolicy '{self.policy}' with binding '{self.binding}' denied request: {self.message}"


class _Unmatchable(Exception):
    """A selector could not be evaluated (e.g. the namespace could not be read)."""


def _selector_matches(selector: dict[str, Any] | None, labels: dict[str, str]) -> bool:
    """A metav1.LabelSelector; an empty or missing one matches everything."""
    if not selector:
        return True
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expression in selector.get("matchExpressions") or []:
        key, operator, values = expression["key"], expression["operator"], expression.get("values") or []
        present = key in labels
        if operator == "In" and not (present and labels[key] in values):
            return False
        if operator == "NotIn" and present and labels[key] in values:
            return False
        if operator == "Exists" and not present:
            return False
        if operator == "DoesNotExist" and present:
            return False
    return True


def _rule_matches(rule: dict[str, Any], request: Request) -> bool:
    group, version, resource = request.resource
    wanted = f"{resource}/{request.subresource}" if request.subresource else resource
    resources = rule.get("resources") or []
    resource_ok = (
        "*/*" in resources
        or wanted in resources
        or (not request.subresource and "*" in resources)
        or bool(request.subresource and f"*/{request.subresource}" in resources)
        or bool(request.subresource and f"{resource}/*" in resources)
    )
    operations = rule.get("operations") or []
    return bool(
        resource_ok
        and ("*" in (rule.get("apiGroups") or []) or group in (rule.get("apiGroups") or []))
        and ("*" in (rule.get("apiVersions") or []) or version in (rule.get("apiVersions") or []))
        and ("*" in operations or request.operation in operations)
    )


def _labels(obj: dict[str, Any] | None) -> dict[str, str]:
    return dict(((obj or {}).get("metadata") or {}).get("labels") or {})


def _constraints_match(constraints: dict[str, Any] | None, request: Request) -> bool:
    """matchConstraints / matchResources. A missing block matches everything (a binding's case)."""
    if constraints is None:
        return True
    rules = constraints.get("resourceRules")
    if rules is not None and not any(_rule_matches(rule, request) for rule in rules):
        return False
    if any(_rule_matches(rule, request) for rule in constraints.get("excludeResourceRules") or []):
        return False
    selector = constraints.get("namespaceSelector")
    if selector:
        if request.kind == "Namespace":
            if not _selector_matches(selector, _labels(request.obj or request.old)):
                return False
        elif request.namespace:
            if request.namespace_object is None:
                raise _Unmatchable(f'namespaces "{request.namespace}" not found')
            if not _selector_matches(selector, _labels(request.namespace_object)):
                return False
    objects = constraints.get("objectSelector")
    return not objects or any(
        _selector_matches(objects, _labels(o)) for o in (request.obj, request.old) if o is not None
    )


def _is_true(value: Any) -> bool:
    return value is True or value == celtypes.BoolType(True)


class Policy:
    """One ValidatingAdmissionPolicy document, compiled once."""

    def __init__(self, doc: dict[str, Any]) -> None:
        self.doc = doc
        self.name = str(doc["metadata"]["name"])
        spec = doc["spec"]
        if "paramKind" in spec:
            raise ValueError(f"{self.name}: paramKind is not supported by the stand-in")
        self.failure_policy = spec.get("failurePolicy", "Fail")
        self.conditions = [(c["name"], self._compile(c["expression"])) for c in spec.get("matchConditions") or []]
        self.variables = [(v["name"], self._compile(v["expression"])) for v in spec.get("variables") or []]
        self.validations = [
            (
                self._compile(v["expression"]),
                v["expression"],
                v.get("message"),
                self._compile(v["messageExpression"]) if v.get("messageExpression") else None,
                v.get("reason", "Invalid"),
            )
            for v in spec.get("validations") or []
        ]

    @staticmethod
    def _compile(expression: str) -> Any:
        return CEL.program(CEL.compile(expression))

    def matches(self, request: Request) -> bool:
        return _constraints_match(self.doc["spec"].get("matchConstraints"), request)

    def activation(self, request: Request) -> dict[str, Any]:
        group, version, resource = request.resource
        return {
            "object": celpy.json_to_cel(request.obj),
            "oldObject": celpy.json_to_cel(request.old),
            "namespaceObject": celpy.json_to_cel(request.namespace_object if request.namespace else None),
            "params": celpy.json_to_cel(None),
            "request": celpy.json_to_cel(
                {
                    "operation": request.operation,
                    "userInfo": {"username": request.user, "groups": list(request.groups)},
                    "resource": {"group": group, "version": version, "resource": resource},
                    "subResource": request.subresource,
                    "kind": {"group": group, "version": version, "kind": request.kind},
                    "namespace": request.namespace,
                    "name": request.name,
                    "dryRun": request.dry_run,
                }
            ),
        }

    def evaluate(self, request: Request) -> tuple[str, str] | None:
        """Run conditions, variables, validations: None (allowed or skipped) or (reason, message)."""
        activation = self.activation(request)
        errors: list[str] = []
        for name, program in self.conditions:
            result = _run(program, activation)
            if isinstance(result, Exception):
                errors.append(f"matchCondition '{name}' resulted in error: {result}")
            elif not _is_true(result):
                return None
        if errors:
            return self._failed("; ".join(errors))
        variables: dict[Any, Any] = {}
        for name, program in self.variables:
            value = _run(program, activation | {"variables": celtypes.MapType(variables)})
            if isinstance(value, Exception) and not isinstance(value, celpy.CELEvalError):
                value = celpy.CELEvalError(str(value))
            variables[celtypes.StringType(name)] = value
        scope = activation | {"variables": celtypes.MapType(variables)}
        for program, expression, message, message_program, reason in self.validations:
            result = _run(program, scope)
            if isinstance(result, Exception):
                failed = self._failed(f"expression '{expression}' resulted in error: {result}")
                if failed is not None:
                    return failed
                continue
            if not _is_true(result):
                text = message or f"failed expression: {expression}"
                if message_program is not None:
                    rendered = _run(message_program, scope)
                    if isinstance(rendered, str) and rendered.strip():
                        text = str(rendered)
                return reason, " ".join(text.split())
        return None

    def _failed(self, why: str) -> tuple[str, str] | None:
        return None if self.failure_policy == "Ignore" else ("Invalid", why)

    def admit(self, request: Request) -> str | None:
        """This policy as if bound with Deny everywhere: None when allowed, else why it is denied
        ("error: ..." when an expression failed)."""
        try:
            if not self.matches(request):
                return None
        except _Unmatchable as error:
            return None if self.failure_policy == "Ignore" else f"error: {error}"
        outcome = self.evaluate(request)
        if outcome is None:
            return None
        return f"error: {outcome[1]}" if "resulted in error" in outcome[1] else outcome[1]


def _run(program: Any, activation: dict[str, Any]) -> Any:
    try:
        return program.evaluate(activation)
    except Exception as error:  # a CEL runtime error: the caller applies failurePolicy
        return error


class Admission:
    """The validating admission stage of one API server: policies compiled once per resourceVersion."""

    def __init__(self) -> None:
        self._compiled: dict[tuple[str, str], Policy] = {}

    def _policy(self, doc: dict[str, Any]) -> Policy:
        key = (doc["metadata"]["name"], str(doc["metadata"].get("resourceVersion", "")))
        if key not in self._compiled:
            self._compiled[key] = Policy(doc)
        return self._compiled[key]

    def review(
        self, request: Request, policies: Iterable[dict[str, Any]], bindings: Iterable[dict[str, Any]]
    ) -> Denial | None:
        """The first denial of any (policy, Deny binding) pair that applies, else None."""
        by_name = {p["metadata"]["name"]: p for p in policies}
        for binding in sorted(bindings, key=lambda b: b["metadata"]["name"]):
            spec = binding.get("spec") or {}
            doc = by_name.get(spec.get("policyName"))
            if doc is None or "Deny" not in (spec.get("validationActions") or []):
                continue
            policy = self._policy(doc)
            try:
                applies = policy.matches(request) and _constraints_match(spec.get("matchResources"), request)
            except _Unmatchable as error:
                if policy.failure_policy == "Ignore":
                    continue
                return Denial(policy.name, binding["metadata"]["name"], "Invalid", str(error))
            if not applies:
                continue
            outcome = policy.evaluate(request)
            if outcome is not None:
                return Denial(policy.name, binding["metadata"]["name"], *outcome)
        return None
