"""The ValidatingAdmissionPolicies in argo/admission: schema-valid, and their CEL decides as intended.

Each request in the tables is evaluated by tests/fakes/admission.py, the evaluator the Kubernetes
API stand-in runs on every request (its docstring lists the known differences from the API
server): matchConstraints, variables, validations, with a CEL error denying (failurePolicy: Fail).
The tables here call one policy directly, as if it were bound with Deny everywhere.
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from slackbot.orchestrator import TEMPLATE_PARAMETERS
from tests.conftest import ROOT
from tests.execution_plane import ARGO_NAMESPACE, documents, template
from tests.fakes.admission import CEL, KINDS, Policy, Request

POLICY_FILES = sorted((ROOT / "argo" / "admission").glob("*.yaml"))
NAMESPACES_POLICY = ROOT / "argo/admission/namespace-ownership.yaml"
WORKFLOWS_POLICY = ROOT / "argo/admission/workflow-references.yaml"


def executor(action: str, argo_namespace: str = ARGO_NAMESPACE) -> str:
    return f"system:serviceaccount:{argo_namespace}:envbot-{action}"


HUMAN = "alice@example.com"
BOT = "system:serviceaccount:envbot:envbot"
CONTROLLER = "system:serviceaccount:argo:argo"
CI = "system:serviceaccount:team-ci:ci-runner"
NAMESPACE_CONTROLLER = "system:serviceaccount:kube-system:namespace-controller"


def load_policy(path: Path, instance: str = "envbot", argo_namespace: str = ARGO_NAMESPACE) -> Policy:
    """The shipped policy, or the same one as a second install would change it (docs/install.md)."""
    (doc,) = [copy.deepcopy(d) for d in documents(path) if d["kind"] == "ValidatingAdmissionPolicy"]
    for variable in doc["spec"]["variables"]:
        if variable["name"] == "instance":
            variable["expression"] = f"'{instance}'"
        if variable["name"] == "argoNamespace":
            variable["expression"] = f"'{argo_namespace}'"
    return Policy(doc)


BLUE_NAMESPACE = "envbot-blue-workflows"  # a second install (docs/examples/second-install)
TOKEN_POLICY_FILE = ROOT / "argo/admission/slack-token.yaml"
NAMESPACE_POLICY = load_policy(NAMESPACES_POLICY)
BLUE_NAMESPACE_POLICY = load_policy(NAMESPACES_POLICY, "blue", BLUE_NAMESPACE)
WORKFLOW_POLICY = load_policy(WORKFLOWS_POLICY)
TOKEN_POLICY = load_policy(TOKEN_POLICY_FILE)
NOTIFIER = f"system:serviceaccount:{ARGO_NAMESPACE}:envbot-notify"


# --- schema ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", POLICY_FILES, ids=lambda p: p.name)
def test_policies_and_bindings_validate_against_the_kubernetes_schema(path: Path) -> None:
    docs = documents(path)
    assert {d["kind"] for d in docs} == {"ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"}
    for doc in docs:
        assert doc["apiVersion"] == "admissionregistration.k8s.io/v1"
        kubernetes_validate.validate(doc, "1.31.0", strict=True)
    policy, binding = sorted(docs, key=lambda d: d["kind"])
    assert binding["spec"]["policyName"] == policy["metadata"]["name"] == binding["metadata"]["name"]
    assert binding["spec"]["validationActions"] == ["Deny"]


def test_policies_use_no_kubernetes_only_cel() -> None:
    # Library functions cel-python cannot run would leave part of a rule untested.
    for path in POLICY_FILES:
        text = path.read_text()
        for extension in (".?", "optional.", "lowerAscii", "authorizer", "isSorted", "quantity(", "url(", "ip("):
            assert extension not in text, (path.name, extension)


# --- namespaces --------------------------------------------------------------------------------------


def ns(name: str, labels: dict[str, str] | None = None, annotations: dict[str, str] | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "labels": {"kubernetes.io/metadata.name": name} | (labels or {})}
    if annotations is not None:
        meta["annotations"] = annotations
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": meta}


def ours(name: str, instance: str = "envbot", **extra: str) -> dict[str, str]:
    return {
        "app.kubernetes.io/managed-by": "envbot",
        "envbot.dev/instance": instance,
        "envbot.dev/env": name,
        "envbot.dev/service": "checkout",
        "envbot.dev/requested-by": "U111AAA",
    } | extra


EXPIRES = {"envbot.dev/expires-at": "2026-12-01T00:00:00Z", "janitor/expires": "2026-12-01T00:00:00Z"}
ENV = ns("checkout-x", ours("checkout-x"), EXPIRES)
BLUE_ENV = ns("blue-x", ours("blue-x", "blue"), EXPIRES)
PAYMENTS = ns("payments", {"team": "payments"})
KUBE_SYSTEM = ns("kube-system", {"pod-security.kubernetes.io/enforce": "privileged"})


def edit(
    obj: dict[str, Any], labels: Mapping[str, str | None] | None = None, /, **annotations: str | None
) -> dict[str, Any]:
    """A copy with labels/annotations set, or removed where the value is None."""
    changed = copy.deepcopy(obj)
    updates: tuple[tuple[str, Mapping[str, str | None]], ...] = (("labels", labels or {}), ("annotations", annotations))
    for where, values in updates:
        target = changed["metadata"].setdefault(where, {})
        for key, value in values.items():
            if value is None:
                target.pop(key, None)
            else:
                target[key] = value
    return changed


NAMESPACE_CASES: list[tuple[str, Request, bool]] = [
    # Executors create only this install's environments.
    ("create: executor, this install's env", Request("CREATE", executor("create"), "Namespace", ENV), True),
    ("create: executor, unlabelled", Request("CREATE", executor("create"), "Namespace", PAYMENTS), False),
    ("create: executor, another install's", Request("CREATE", executor("create"), "Namespace", BLUE_ENV), False),
    ("create: a person, plain namespace", Request("CREATE", HUMAN, "Namespace", PAYMENTS), True),
    ("create: a person, pre-labelled as ours", Request("CREATE", HUMAN, "Namespace", ENV), False),
    # Nobody else moves the ownership marks (issue 7, "What was seen" 7).
    (
        "update: a person adds our labels to payments",
        Request("UPDATE", HUMAN, "Namespace", edit(PAYMENTS, ours("payments")), PAYMENTS),
        False,
    ),
    (
        "update: a person removes managed-by",
        Request("UPDATE", HUMAN, "Namespace", edit(ENV, {"app.kubernetes.io/managed-by": None}), ENV),
        False,
    ),
    (
        "update: a person removes the instance label",
        Request("UPDATE", HUMAN, "Namespace", edit(ENV, {"envbot.dev/instance": None}), ENV),
        False,
    ),
    (
        "update: a person re-dates the expiry",
        Request("UPDATE", HUMAN, "Namespace", edit(ENV, **{"envbot.dev/expires-at": "2999-01-01T00:00:00Z"}), ENV),
        False,
    ),
    (
        "update: a person removes the expiry to escape the TTL",
        Request("UPDATE", HUMAN, "Namespace", edit(ENV, **{"envbot.dev/expires-at": None}), ENV),
        False,
    ),
    (
        "update: a person changes janitor/expires on an env",
        Request("UPDATE", HUMAN, "Namespace", edit(ENV, **{"janitor/expires": "2999-01-01T00:00:00Z"}), ENV),
        False,
    ),
    (
        "update: a person adds an unrelated label to an env",
        Request("UPDATE", HUMAN, "Namespace", edit(ENV, {"team": "checkout"}), ENV),
        True,
    ),
    (
        "update: a person sets janitor/expires on their own namespace",
        Request("UPDATE", HUMAN, "Namespace", edit(PAYMENTS, **{"janitor/expires": "2026-12-01T00:00:00Z"}), PAYMENTS),
        True,
    ),
    (
        "update: the namespace controller finalizes an env",
        Request("UPDATE", NAMESPACE_CONTROLLER, "Namespace", ENV | {"status": {"phase": "Terminating"}}, ENV),
        True,
    ),
    # Executors change only this install's environments and keep them labelled.
    (
        "update: extend re-dates an env",
        Request(
            "UPDATE",
            executor("extend"),
            "Namespace",
            edit(ENV, **{"envbot.dev/expires-at": "2027-01-01T00:00:00Z"}),
            ENV,
        ),
        True,
    ),
    (
        "update: create takes over payments",
        Request("UPDATE", executor("create"), "Namespace", edit(PAYMENTS, ours("payments")), PAYMENTS),
        False,
    ),
    (
        "update: an executor strips Pod Security from kube-system",
        Request(
            "UPDATE",
            executor("create"),
            "Namespace",
            edit(KUBE_SYSTEM, {"pod-security.kubernetes.io/enforce": None}),
            KUBE_SYSTEM,
        ),
        False,
    ),
    (
        "update: an executor unlabels an env",
        Request("UPDATE", executor("extend"), "Namespace", edit(ENV, {"envbot.dev/instance": None}), ENV),
        False,
    ),
    (
        "update: another install's executor re-dates our env",
        Request(
            "UPDATE",
            executor("extend", BLUE_NAMESPACE),
            "Namespace",
            edit(ENV, **{"envbot.dev/expires-at": "2999-01-01T00:00:00Z"}),
            ENV,
        ),
        False,
    ),
    # Executors delete only this install's environments.
    ("delete: destroy, this install's env", Request("DELETE", executor("destroy"), "Namespace", None, ENV), True),
    ("delete: reaper, kube-system", Request("DELETE", executor("reaper"), "Namespace", None, KUBE_SYSTEM), False),
    (
        "delete: reaper, only the well-known label",
        Request("DELETE", executor("reaper"), "Namespace", None, ns("p", {"app.kubernetes.io/managed-by": "envbot"})),
        False,
    ),
    (
        "delete: reaper, another install's env",
        Request("DELETE", executor("reaper"), "Namespace", None, BLUE_ENV),
        False,
    ),
    ("delete: a person, an env", Request("DELETE", HUMAN, "Namespace", None, ENV), True),
    (
        "delete: another install's reaper, our env",
        Request("DELETE", executor("reaper", BLUE_NAMESPACE), "Namespace", None, ENV),
        False,
    ),
]


def guard_rail(kind: str, namespace: dict[str, Any]) -> dict[str, Any]:
    group, version, _ = KINDS[kind]
    name = namespace["metadata"]["name"]
    return {"apiVersion": f"{group}/{version}".lstrip("/"), "kind": kind, "metadata": {"name": "x", "namespace": name}}


WARNED = json.dumps({"state": "sent", "expires": 1796083200, "lead": 3600, "at": 1796079600})
NOTICED = ns(
    "checkout-x",
    ours("checkout-x"),
    EXPIRES | {"envbot.dev/slack-channel": "C111AAA", "envbot.dev/warn-before": "3600"},
)
NOTIFIER_NAMESPACE_CASES: list[tuple[str, Request, bool]] = [
    # The notifier records its warnings on this install's environments, and does nothing else.
    (
        "notifier: records a warning",
        Request("UPDATE", NOTIFIER, "Namespace", edit(NOTICED, **{"envbot.dev/warning": WARNED}), NOTICED),
        True,
    ),
    (
        "notifier: a warning record on a foreign namespace",
        Request("UPDATE", NOTIFIER, "Namespace", edit(PAYMENTS, **{"envbot.dev/warning": WARNED}), PAYMENTS),
        False,
    ),
    (
        "notifier: a warning record on another install's environment",
        Request("UPDATE", NOTIFIER, "Namespace", edit(BLUE_ENV, **{"envbot.dev/warning": WARNED}), BLUE_ENV),
        False,
    ),
    (
        "another install's notifier: a warning record on ours",
        Request(
            "UPDATE",
            f"system:serviceaccount:{BLUE_NAMESPACE}:envbot-notify",
            "Namespace",
            edit(NOTICED, **{"envbot.dev/warning": WARNED}),
            NOTICED,
        ),
        False,
    ),
    (
        "notifier: re-dates the expiry",
        Request(
            "UPDATE", NOTIFIER, "Namespace", edit(NOTICED, **{"envbot.dev/expires-at": "2999-01-01T00:00:00Z"}), NOTICED
        ),
        False,
    ),
    (
        "notifier: lifts an operator's silence",
        Request(
            "UPDATE",
            NOTIFIER,
            "Namespace",
            edit(NOTICED, **{"envbot.dev/notices": None}),
            edit(NOTICED, **{"envbot.dev/notices": "off"}),
        ),
        False,
    ),
    ("notifier: adds a label", Request("UPDATE", NOTIFIER, "Namespace", edit(NOTICED, {"team": "x"}), NOTICED), False),
    (
        "notifier: adds a finalizer",
        Request(
            "UPDATE",
            NOTIFIER,
            "Namespace",
            {**NOTICED, "metadata": {**NOTICED["metadata"], "finalizers": ["example.com/hold"]}},
            NOTICED,
        ),
        False,
    ),
    (
        "notifier: adds an owner reference",
        Request(
            "UPDATE",
            NOTIFIER,
            "Namespace",
            {**NOTICED, "metadata": {**NOTICED["metadata"], "ownerReferences": [{"kind": "Namespace", "name": "x"}]}},
            NOTICED,
        ),
        False,
    ),
    ("notifier: deletes an environment", Request("DELETE", NOTIFIER, "Namespace", None, NOTICED), False),
    ("notifier: creates a namespace", Request("CREATE", NOTIFIER, "Namespace", NOTICED), False),
    # The notice settings create and extend record are ownership marks; the silence switch is not.
    (
        "a person changes the lead times",
        Request("UPDATE", HUMAN, "Namespace", edit(NOTICED, **{"envbot.dev/warn-before": "60"}), NOTICED),
        False,
    ),
    (
        "a person moves the latest expiry",
        Request(
            "UPDATE", HUMAN, "Namespace", edit(NOTICED, **{"envbot.dev/latest-expiry": "2999-01-01T00:00:00Z"}), NOTICED
        ),
        False,
    ),
    (
        "an operator silences one environment",
        Request("UPDATE", HUMAN, "Namespace", edit(NOTICED, **{"envbot.dev/notices": "off"}), NOTICED),
        True,
    ),
    (
        "an operator clears a warning record to resend it",
        Request(
            "UPDATE",
            HUMAN,
            "Namespace",
            NOTICED,
            edit(NOTICED, **{"envbot.dev/warning": WARNED}),
        ),
        True,
    ),
    (
        "extend records new notice settings and a new expiry",
        Request(
            "UPDATE",
            executor("extend"),
            "Namespace",
            edit(
                NOTICED,
                **{
                    "envbot.dev/expires-at": "2027-01-01T00:00:00Z",
                    "envbot.dev/warn-before": "7200,600",
                    "envbot.dev/extend-choices": "2h",
                    "envbot.dev/latest-expiry": "2027-02-01T00:00:00Z",
                    "envbot.dev/expiry-set-at": "2026-12-01T00:00:00Z",
                },
            ),
            NOTICED,
        ),
        True,
    ),
]


@pytest.mark.parametrize(
    ("case", "request_", "allowed"), NOTIFIER_NAMESPACE_CASES, ids=[c[0] for c in NOTIFIER_NAMESPACE_CASES]
)
def test_the_notifier_may_only_record_warnings_on_this_installs_environments(
    case: str, request_: Request, allowed: bool
) -> None:
    ok, reasons = verdict(request_, NAMESPACE_POLICY, BLUE_NAMESPACE_POLICY)
    assert ok is allowed, (case, reasons)
    assert not [r for r in reasons if r.startswith("error")], reasons


def test_the_notifier_writes_no_guard_rails() -> None:
    quota = guard_rail("ResourceQuota", ENV)
    request = Request("CREATE", NOTIFIER, "ResourceQuota", quota, namespace="checkout-x", namespace_object=ENV)
    ok, reasons = verdict(request, NAMESPACE_POLICY)
    assert not ok and reasons == [
        "envbot's notifier may only change the envbot.dev/warning annotation of this install's environments"
    ]


GUARD_RAIL_CASES: list[tuple[str, str, str, dict[str, Any], bool]] = [
    ("CREATE", executor("create"), "ResourceQuota", ENV, True),
    ("UPDATE", executor("create"), "NetworkPolicy", ENV, True),
    ("CREATE", executor("create"), "NetworkPolicy", KUBE_SYSTEM, False),
    ("UPDATE", executor("create"), "LimitRange", PAYMENTS, False),
    ("CREATE", executor("create"), "ResourceQuota", BLUE_ENV, False),
    ("DELETE", executor("reaper"), "NetworkPolicy", KUBE_SYSTEM, False),
    ("CREATE", HUMAN, "NetworkPolicy", KUBE_SYSTEM, True),
    # The deployer's RoleBinding (and the requester's): RBAC lets create bind its roles anywhere, this does not.
    ("CREATE", executor("create"), "RoleBinding", ENV, True),
    ("CREATE", executor("create"), "RoleBinding", KUBE_SYSTEM, False),
    ("UPDATE", executor("create"), "RoleBinding", PAYMENTS, False),
    ("CREATE", executor("create"), "RoleBinding", BLUE_ENV, False),
    ("CREATE", HUMAN, "RoleBinding", KUBE_SYSTEM, True),
]


def verdict(request: Request, *policies: Policy) -> tuple[bool, list[str]]:
    reasons = [r for r in (p.admit(request) for p in policies) if r is not None]
    return not reasons, reasons


@pytest.mark.parametrize(("case", "request_", "allowed"), NAMESPACE_CASES, ids=[c[0] for c in NAMESPACE_CASES])
def test_namespace_ownership_policy(case: str, request_: Request, allowed: bool) -> None:
    # Both installs' policies are in force: each governs only its own instance and executors.
    ok, reasons = verdict(request_, NAMESPACE_POLICY, BLUE_NAMESPACE_POLICY)
    assert ok is allowed, (case, reasons)
    assert not [r for r in reasons if r.startswith("error")], reasons


@pytest.mark.parametrize(("operation", "user", "kind", "namespace", "allowed"), GUARD_RAIL_CASES)
def test_guard_rails_are_written_by_executors_only_inside_this_installs_environments(
    operation: str, user: str, kind: str, namespace: dict[str, Any], allowed: bool
) -> None:
    obj = guard_rail(kind, namespace)
    request = Request(
        operation,
        user,
        kind,
        None if operation == "DELETE" else obj,
        None if operation == "CREATE" else obj,
        namespace=namespace["metadata"]["name"],
        namespace_object=namespace,
    )
    ok, reasons = verdict(request, NAMESPACE_POLICY)
    assert ok is allowed, reasons
    assert not [r for r in reasons if r.startswith("error")], reasons


def test_what_the_create_template_writes_is_allowed_for_its_account() -> None:
    # The exact namespace labels the create script sets (kept in step with the script by this test).
    (script,) = [
        t["script"]["source"] for t in template("env-create-template")["spec"]["templates"] if t["name"] == "create"
    ]
    for key in ours("x"):
        assert f'"{key}"' in script
    assert verdict(Request("CREATE", executor("create"), "Namespace", ENV), NAMESPACE_POLICY)[0]


# --- workflows ---------------------------------------------------------------------------------------

ARGO = ns(ARGO_NAMESPACE)
TEAM_CI = ns("team-ci")


def workflow(spec: dict[str, Any], kind: str = "Workflow", name: str = "w-abcde") -> dict[str, Any]:
    body = {"spec": {"workflowSpec": spec, "schedules": ["* * * * *"]}} if kind == "CronWorkflow" else {"spec": spec}
    return {"apiVersion": "argoproj.io/v1alpha1", "kind": kind, "metadata": {"name": name}} | body


def ref(name: str, **extra: Any) -> dict[str, Any]:
    params = [{"name": "env_name", "value": "checkout-x"}, {"name": "requested_by", "value": "U111AAA"}]
    return {"workflowTemplateRef": {"name": name}, "arguments": {"parameters": params}} | extra


def inline(**template_fields: Any) -> dict[str, Any]:
    return {"entrypoint": "main", "templates": [{"name": "main", "container": {"image": "alpine"}} | template_fields]}


def wf_request(
    user: str,
    obj: dict[str, Any],
    operation: str = "CREATE",
    old: dict[str, Any] | None = None,
    where: str = ARGO_NAMESPACE,
) -> Request:
    namespace = {ARGO_NAMESPACE: ARGO, "team-ci": TEAM_CI}[where]
    cluster = obj["kind"] == "ClusterWorkflowTemplate"
    return Request(
        operation,
        user,
        obj["kind"],
        obj,
        old,
        namespace="" if cluster else where,
        namespace_object=None if cluster else namespace,
    )


ESCAPED = '{"\\u0073erviceAccountName": "envbot-create"}'
WORKFLOW_CASES: list[tuple[str, Request, bool]] = [
    # The bot: envbot's three templates, arguments only.
    ("bot: create template with arguments", wf_request(BOT, workflow(ref("env-create-template"))), True),
    ("bot: extend template", wf_request(BOT, workflow(ref("env-extend-template"))), True),
    (
        "bot: serviceAccountName",
        wf_request(BOT, workflow(ref("env-create-template", serviceAccountName="envbot-create"))),
        False,
    ),
    ("bot: podSpecPatch", wf_request(BOT, workflow(ref("env-destroy-template", podSpecPatch="{}"))), False),
    ("bot: templates", wf_request(BOT, workflow(ref("env-create-template") | inline())), False),
    ("bot: entrypoint", wf_request(BOT, workflow(ref("env-create-template", entrypoint="create"))), False),
    ("bot: the reaper template", wf_request(BOT, workflow(ref("env-reaper-template"))), False),
    ("bot: someone else's template", wf_request(BOT, workflow(ref("team-build"))), False),
    (
        "bot: a cluster template of the same name",
        wf_request(
            BOT,
            workflow(
                ref("env-create-template")
                | {"workflowTemplateRef": {"name": "env-create-template", "clusterScope": True}}
            ),
        ),
        False,
    ),
    (
        "bot: a parameter from a ConfigMap",
        wf_request(
            BOT,
            workflow(
                {
                    "workflowTemplateRef": {"name": "env-create-template"},
                    "arguments": {
                        "parameters": [{"name": "env_name", "valueFrom": {"configMapKeyRef": {"name": "x"}}}]
                    },
                }
            ),
        ),
        False,
    ),
    ("bot: an inline workflow", wf_request(BOT, workflow(inline())), False),
    ("bot: a WorkflowTemplate", wf_request(BOT, workflow(inline(), "WorkflowTemplate", "mine")), False),
    # Anyone: referencing envbot's templates means arguments only.
    # Nobody but the bot and the controller starts anything in envbot's namespace (docs/adr/0006).
    ("person: destroy template with arguments", wf_request(HUMAN, workflow(ref("env-destroy-template"))), False),
    (
        "person: create template plus podSpecPatch",
        wf_request(HUMAN, workflow(ref("env-create-template", podSpecPatch='{"containers": []}'))),
        False,
    ),
    (
        "person: create template plus serviceAccountName",
        wf_request(HUMAN, workflow(ref("env-create-template", serviceAccountName="default"))),
        False,
    ),
    # Anyone: no naming an executor account anywhere.
    (
        "person: serviceAccountName",
        wf_request(HUMAN, workflow(inline() | {"serviceAccountName": "envbot-create"})),
        False,
    ),
    (
        "person: template serviceAccountName",
        wf_request(HUMAN, workflow(inline(serviceAccountName="envbot-reaper"))),
        False,
    ),
    (
        "person: templateDefaults",
        wf_request(HUMAN, workflow(inline() | {"templateDefaults": {"serviceAccountName": "envbot-destroy"}})),
        False,
    ),
    (
        "person: executor.serviceAccountName",
        wf_request(HUMAN, workflow(inline() | {"executor": {"serviceAccountName": "envbot-extend"}})),
        False,
    ),
    (
        "person: inline step template",
        wf_request(
            HUMAN,
            workflow(
                inline(steps=[[{"name": "s", "inline": {"container": {}, "serviceAccountName": "envbot-create"}}]])
            ),
        ),
        False,
    ),
    (
        "person: inline dag task template",
        wf_request(
            HUMAN,
            workflow(
                inline(dag={"tasks": [{"name": "t", "inline": {"executor": {"serviceAccountName": "envbot-reaper"}}}]})
            ),
        ),
        False,
    ),
    (
        "person: podSpecPatch sets the account",
        wf_request(HUMAN, workflow(inline() | {"podSpecPatch": '{"serviceAccountName": "envbot-create"}'})),
        False,
    ),
    (
        "person: podSpecPatch, other case",
        wf_request(HUMAN, workflow(inline(podSpecPatch="SERVICEACCOUNTNAME: envbot-create"))),
        False,
    ),
    ("person: podSpecPatch, escaped", wf_request(HUMAN, workflow(inline(podSpecPatch=ESCAPED))), False),
    (
        "person: harmless podSpecPatch",
        wf_request(HUMAN, workflow(inline(podSpecPatch='{"containers": [{"name": "main", "resources": {}}]}'))),
        False,
    ),
    ("person: own account, inline", wf_request(HUMAN, workflow(inline() | {"serviceAccountName": "ci-runner"})), False),
    (
        "person: a WorkflowTemplate running as an executor",
        wf_request(HUMAN, workflow(inline() | {"serviceAccountName": "envbot-create"}, "WorkflowTemplate", "evil")),
        False,
    ),
    (
        # Harmless: only a bare reference runs in envbot's namespace, and it cannot name a cluster template;
        # anywhere else `envbot-create` is some other namespace's account.
        "person: a ClusterWorkflowTemplate naming an executor's account",
        wf_request(
            HUMAN, workflow(inline() | {"serviceAccountName": "envbot-create"}, "ClusterWorkflowTemplate", "evil")
        ),
        True,
    ),
    (
        "person: a CronWorkflow overriding the reaper template",
        wf_request(HUMAN, workflow(ref("env-reaper-template", serviceAccountName="envbot-reaper"), "CronWorkflow")),
        False,
    ),
    (
        "person: a CronWorkflow running as the reaper",
        wf_request(HUMAN, workflow(inline(serviceAccountName="envbot-reaper"), "CronWorkflow")),
        False,
    ),
    (
        "another namespace: its own envbot-create is not ours",
        wf_request(HUMAN, workflow(inline() | {"serviceAccountName": "envbot-create"}), where="team-ci"),
        True,
    ),
    # The controller: cron-spawned reaper runs, and status updates of running workflows.
    (
        "controller: the reaper's workflow",
        wf_request(CONTROLLER, workflow({"workflowTemplateRef": {"name": "env-reaper-template"}})),
        True,
    ),
    (
        "controller: status update",
        wf_request(
            CONTROLLER,
            workflow(ref("env-create-template")) | {"status": {"phase": "Running"}},
            "UPDATE",
            workflow(ref("env-create-template")),
        ),
        True,
    ),
    (
        "person: argo stop",
        wf_request(
            HUMAN, workflow(ref("env-create-template", shutdown="Stop")), "UPDATE", workflow(ref("env-create-template"))
        ),
        True,
    ),
    (
        "person: adds podSpecPatch to a running workflow",
        wf_request(
            HUMAN,
            workflow(ref("env-create-template", podSpecPatch="{}")),
            "UPDATE",
            workflow(ref("env-create-template")),
        ),
        False,
    ),
]


@pytest.mark.parametrize(("case", "request_", "allowed"), WORKFLOW_CASES, ids=[c[0] for c in WORKFLOW_CASES])
def test_workflow_reference_policy(case: str, request_: Request, allowed: bool) -> None:
    ok, reasons = verdict(request_, WORKFLOW_POLICY)
    assert ok is allowed, (case, reasons)
    assert not [r for r in reasons if r.startswith("error")], reasons


SHIPPED_ARGO = [
    d
    for p in sorted((ROOT / "argo").glob("*/*.yaml"))
    for d in documents(p)
    if d["apiVersion"].startswith("argoproj.io")
]


@pytest.mark.parametrize("doc", SHIPPED_ARGO, ids=lambda d: d["metadata"]["name"])
def test_the_shipped_templates_and_cron_are_admitted(doc: dict[str, Any]) -> None:
    for operation in ("CREATE", "UPDATE"):
        request = wf_request(HUMAN, doc, operation, doc if operation == "UPDATE" else None)
        assert verdict(request, WORKFLOW_POLICY) == (True, [])


def test_the_bots_real_submission_is_admitted() -> None:
    # The Workflow `argo submit --from workflowtemplate/... -p k=v` creates (contract §1.2): a bare reference.
    parameters = [{"name": k, "value": v} for k, v in {"env_name": "e", "service": "s", "expires_at": "x"}.items()]
    submitted = {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {"generateName": "env-create-template-", "name": "env-create-template-x7k2p"},
        "spec": {"workflowTemplateRef": {"name": "env-create-template"}, "arguments": {"parameters": parameters}},
    }
    assert verdict(wf_request(BOT, submitted), WORKFLOW_POLICY) == (True, [])


def ended(template_name: str, **labels: str) -> dict[str, Any]:
    """An ended Workflow of `template_name` as the controller keeps it."""
    obj = workflow(ref(template_name)) | {"status": {"phase": "Succeeded", "finishedAt": "2026-11-28T15:00:00Z"}}
    obj["metadata"] = {
        "name": "w-abcde",
        "labels": {"workflows.argoproj.io/workflow-template": template_name, "workflows.argoproj.io/completed": "true"}
        | labels,
        "annotations": {"workflows.argoproj.io/pod-name-format": "v2"},
    }
    return obj


def noticed(obj: dict[str, Any], mark: str = "sent", **changes: Any) -> dict[str, Any]:
    new = copy.deepcopy(obj)
    new["metadata"]["labels"]["envbot.dev/notice"] = mark
    new["metadata"]["annotations"]["envbot.dev/notice-detail"] = '{"state": "done", "delivered": 1}'
    for key, value in changes.items():
        new[key] = value
    return new


CREATED = ended("env-create-template")
NOTIFIER_WORKFLOW_CASES: list[tuple[str, Request, bool]] = [
    ("notifier: marks a notice sent", wf_request(NOTIFIER, noticed(CREATED), "UPDATE", CREATED), True),
    (
        "notifier: marks a reaper run's notice",
        wf_request(NOTIFIER, noticed(ended("env-reaper-template"), "pending"), "UPDATE", ended("env-reaper-template")),
        True,
    ),
    (
        "notifier: on a workflow that is not envbot's",
        wf_request(NOTIFIER, noticed(ended("team-build")), "UPDATE", ended("team-build")),
        False,
    ),
    (
        "notifier: changes another label",
        wf_request(
            NOTIFIER,
            noticed(CREATED) | {"metadata": noticed(CREATED)["metadata"] | {"labels": {"envbot.dev/env": "x"}}},
            "UPDATE",
            CREATED,
        ),
        False,
    ),
    (
        "notifier: drops an annotation",
        wf_request(
            NOTIFIER,
            noticed(CREATED) | {"metadata": noticed(CREATED)["metadata"] | {"annotations": {}}},
            "UPDATE",
            CREATED,
        ),
        False,
    ),
    (
        "notifier: rewrites the status",
        wf_request(NOTIFIER, noticed(CREATED, status={"phase": "Failed"}), "UPDATE", CREATED),
        False,
    ),
    (
        "notifier: changes the arguments",
        wf_request(NOTIFIER, noticed(CREATED, spec=ref("env-create-template", arguments={})), "UPDATE", CREATED),
        False,
    ),
    ("notifier: submits a workflow", wf_request(NOTIFIER, workflow(ref("env-create-template"))), False),
    ("a person resends a notice", wf_request(HUMAN, noticed(CREATED, "pending"), "UPDATE", noticed(CREATED)), True),
    (
        "person: runs a workflow as the notifier (it holds the Slack token)",
        wf_request(HUMAN, workflow(inline(serviceAccountName="envbot-notify"))),
        False,
    ),
    ("bot: the notifier template", wf_request(BOT, workflow(ref("env-notifier-template"))), False),
    (
        "controller: the notifier's cron run",
        wf_request(CONTROLLER, workflow({"workflowTemplateRef": {"name": "env-notifier-template"}})),
        True,
    ),
]


@pytest.mark.parametrize(
    ("case", "request_", "allowed"), NOTIFIER_WORKFLOW_CASES, ids=[c[0] for c in NOTIFIER_WORKFLOW_CASES]
)
def test_the_notifier_may_only_mark_its_notices_on_envbots_workflows(
    case: str, request_: Request, allowed: bool
) -> None:
    ok, reasons = verdict(request_, WORKFLOW_POLICY)
    assert ok is allowed, (case, reasons)
    assert not [r for r in reasons if r.startswith("error")], reasons


# --- intent only, status only from the controller (issue 14) -------------------------------------------


def test_the_policy_pins_the_bot_to_exactly_the_parameters_the_bot_sends() -> None:
    (doc,) = [d for d in documents(WORKFLOWS_POLICY) if d["kind"] == "ValidatingAdmissionPolicy"]
    (expression,) = [v["expression"] for v in doc["spec"]["variables"] if v["name"] == "botParameters"]
    pinned = {str(k): [str(p) for p in v] for k, v in CEL.program(CEL.compile(expression)).evaluate({}).items()}
    assert pinned == {template: list(names) for template, names in TEMPLATE_PARAMETERS.items()}
    # And every parameter the bot may pass is one its template declares.
    for name, names in TEMPLATE_PARAMETERS.items():
        declared = {p["name"] for p in template(name)["spec"]["arguments"]["parameters"]}
        assert set(names) <= declared, name


def submitted(template_name: str, parameters: dict[str, Any], **metadata: Any) -> dict[str, Any]:
    """A Workflow as `argo submit --from workflowtemplate/<template> -p k=v -l ...` creates it."""
    meta = {"generateName": f"{template_name}-", "name": f"{template_name}-x7k2p"} | metadata
    meta.setdefault("labels", {})["workflows.argoproj.io/workflow-template"] = template_name
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Workflow",
        "metadata": meta,
        "spec": {
            "workflowTemplateRef": {"name": template_name},
            "arguments": {"parameters": [{"name": k, "value": v} for k, v in parameters.items()]},
        },
    }


CREATE_T = "env-create-template"
CREATE_ARGS = {"env_name": "checkout-x", "service": "checkout", "expires_at": "2026-12-01T00:00:00Z"}
FORGED = submitted("env-create-template", CREATE_ARGS) | {"status": {"phase": "Failed", "message": "<!channel> see"}}
COMPLETED_LABEL = submitted("env-destroy-template", {"env_name": "prod-db-1"})
COMPLETED_LABEL["metadata"]["labels"]["workflows.argoproj.io/completed"] = "true"
RUNNING = ended("env-create-template") | {"status": {"phase": "Running"}}
RUNNING["metadata"]["labels"].pop("workflows.argoproj.io/completed")
INTENT_CASES: list[tuple[str, Request, bool]] = [
    ("bot: every create parameter", wf_request(BOT, submitted("env-create-template", CREATE_ARGS)), True),
    (
        "bot: every create parameter envbot sends",
        wf_request(BOT, submitted("env-create-template", dict.fromkeys(TEMPLATE_PARAMETERS[CREATE_T], "x"))),
        True,
    ),
    (
        "bot: privileged Pod Security",
        wf_request(BOT, submitted("env-create-template", CREATE_ARGS | {"pod_security_level": "privileged"})),
        False,
    ),
    (
        "bot: a huge quota",
        wf_request(BOT, submitted("env-create-template", CREATE_ARGS | {"quota_requests_cpu": "9999"})),
        False,
    ),
    (
        "bot: no egress block",
        wf_request(BOT, submitted("env-create-template", CREATE_ARGS | {"egress_blocked_cidrs": ""})),
        False,
    ),
    (
        "bot: a parameter twice",
        wf_request(BOT, submitted("env-create-template", CREATE_ARGS) | {"spec": ref("env-create-template") | {
            "arguments": {"parameters": [{"name": "env_name", "value": "a"}, {"name": "env_name", "value": "b"}]}}}),
        False,
    ),
    ("bot: a create parameter on destroy", wf_request(BOT, submitted("env-destroy-template", {"service": "x"})), False),
    ("bot: the reaper with max age", wf_request(BOT, submitted("env-reaper-template", {"max_age_hours": "1"})), False),
    ("bot: a forged status", wf_request(BOT, FORGED), False),
    ("bot: a forged completed label", wf_request(BOT, COMPLETED_LABEL), False),
    ("bot: a made-up template label", wf_request(BOT, submitted("env-create-template", CREATE_ARGS) | {
        "metadata": {"name": "w", "labels": {"workflows.argoproj.io/workflow-template": "env-reaper-template"}}}),
        False),
    ("bot: argo's empty status", wf_request(BOT, submitted("env-create-template", CREATE_ARGS) | {
        "status": {"startedAt": None, "finishedAt": None}}), True),
    ("bot: updates its workflow", wf_request(BOT, noticed(CREATED, "pending"), "UPDATE", CREATED), False),
    ("CI: a bare reference", wf_request(CI, submitted("env-destroy-template", {"env_name": "prod-db"})), False),
    ("CI: a foreign workflow with templateRef to notify", wf_request(CI, workflow({
        "entrypoint": "main",
        "templates": [{"name": "main", "steps": [[{"name": "n", "templateRef": {
            "name": "env-create-template", "template": "notify"}}]]}]})), False),
    ("CI: forges a status", wf_request(CI, RUNNING | {"status": {"phase": "Succeeded"}}, "UPDATE", RUNNING), False),
    ("CI: marks it completed", wf_request(CI, ended("env-create-template"), "UPDATE", RUNNING), False),
    ("CI: changes the arguments", wf_request(
        CI, RUNNING | {"spec": ref("env-create-template", arguments={})}, "UPDATE", RUNNING), False),
    ("CI: its own CronWorkflow on the reaper", wf_request(CI, workflow(
        {"workflowTemplateRef": {"name": "env-reaper-template"}}, "CronWorkflow", "my-reaper")), False),
    ("CI: its own WorkflowTemplate", wf_request(CI, workflow(inline(), "WorkflowTemplate", "debug")), False),
    ("controller: marks it completed", wf_request(CONTROLLER, ended("env-create-template"), "UPDATE", RUNNING), True),
    ("controller: the bot's kind of workflow", wf_request(CONTROLLER, submitted("env-create-template", {})), False),
    ("controller: the reaper with arguments", wf_request(
        CONTROLLER, submitted("env-reaper-template", {"max_age_hours": "1"})), False),
    ("operator: argo stop keeps status", wf_request(
        HUMAN, RUNNING | {"spec": ref("env-create-template", shutdown="Stop")}, "UPDATE", RUNNING), True),
]  # fmt: skip


@pytest.mark.parametrize(("case", "request_", "allowed"), INTENT_CASES, ids=[c[0] for c in INTENT_CASES])
def test_only_the_bot_submits_intent_and_only_the_controller_writes_status(
    case: str, request_: Request, allowed: bool
) -> None:
    ok, reasons = verdict(request_, WORKFLOW_POLICY)
    assert ok is allowed, (case, reasons)
    assert not [r for r in reasons if r.startswith("error")], reasons


POD_POLICY = load_policy(ROOT / "argo/admission/pod-authors.yaml")


@pytest.mark.parametrize(
    ("user", "where", "allowed"),
    [
        (CONTROLLER, ARGO_NAMESPACE, True),
        (CI, ARGO_NAMESPACE, False),
        (HUMAN, ARGO_NAMESPACE, False),
        (BOT, ARGO_NAMESPACE, False),
        (executor("create"), ARGO_NAMESPACE, False),
        ("system:serviceaccount:kube-system:replicaset-controller", ARGO_NAMESPACE, False),
        (CI, "team-ci", True),  # other namespaces are not envbot's business
    ],
)
def test_only_the_controller_starts_pods_in_envbots_namespace(user: str, where: str, allowed: bool) -> None:
    for account in ("envbot-notify", "envbot-reaper", "default"):
        request = Request("CREATE", user, "Pod", pod(account), namespace=where, namespace_object=ns(where))
        assert verdict(request, POD_POLICY)[0] is allowed, (user, account)


# --- the Slack token -----------------------------------------------------------------------------------


def pod(account: str | None, *, volumes: list[dict[str, Any]] | None = None, **container: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {"containers": [{"name": "main", "image": "alpine"} | container]}
    if account is not None:
        spec["serviceAccountName"] = account
    if volumes is not None:
        spec["volumes"] = volumes
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": spec}


SECRET_VOLUME = [{"name": "t", "secret": {"secretName": "envbot-slack-notifier"}}]
TOKEN_CASES: list[tuple[str, dict[str, Any], str, bool]] = [
    ("the notifier mounts it", pod("envbot-notify", volumes=SECRET_VOLUME), ARGO_NAMESPACE, True),
    ("another account mounts it", pod("default", volumes=SECRET_VOLUME), ARGO_NAMESPACE, False),
    ("no account named (the default one)", pod(None, volumes=SECRET_VOLUME), ARGO_NAMESPACE, False),
    ("an executor mounts it", pod("envbot-reaper", volumes=SECRET_VOLUME), ARGO_NAMESPACE, False),
    (
        "a projected volume",
        pod("ci", volumes=[{"name": "t", "projected": {"sources": [{"secret": {"name": "envbot-slack-notifier"}}]}}]),
        ARGO_NAMESPACE,
        False,
    ),
    (
        "env from a key",
        pod(
            "ci",
            env=[{"name": "T", "valueFrom": {"secretKeyRef": {"name": "envbot-slack-notifier", "key": "bot-token"}}}],
        ),
        ARGO_NAMESPACE,
        False,
    ),
    ("envFrom", pod("ci", envFrom=[{"secretRef": {"name": "envbot-slack-notifier"}}]), ARGO_NAMESPACE, False),
    (
        "an init container",
        pod("ci")
        | {
            "spec": pod("ci")["spec"]
            | {"initContainers": [{"name": "i", "envFrom": [{"secretRef": {"name": "envbot-slack-notifier"}}]}]}
        },
        ARGO_NAMESPACE,
        False,
    ),
    ("another secret", pod("ci", volumes=[{"name": "t", "secret": {"secretName": "ci-token"}}]), ARGO_NAMESPACE, True),
    ("a plain pod", pod("ci", env=[{"name": "A", "value": "b"}]), ARGO_NAMESPACE, True),
    ("the same name in another namespace", pod("ci", volumes=SECRET_VOLUME), "team-ci", True),
]


@pytest.mark.parametrize(("case", "obj", "where", "allowed"), TOKEN_CASES, ids=[c[0] for c in TOKEN_CASES])
def test_only_the_notifier_can_mount_the_slack_token(case: str, obj: dict[str, Any], where: str, allowed: bool) -> None:
    request = Request("CREATE", CONTROLLER, "Pod", obj, namespace=where, namespace_object=ns(where))
    ok, reasons = verdict(request, TOKEN_POLICY)
    assert ok is allowed, (case, reasons)
    assert not [r for r in reasons if r.startswith("error")], reasons


def test_the_notifier_pods_argo_would_create_are_admitted() -> None:
    # The exit handler's and the sweep's pod specs, as far as the policy reads them.
    for name, step in (("env-create-template", "notify"), ("env-notifier-template", "sweep")):
        (t,) = [t for t in template(name)["spec"]["templates"] if t["name"] == step]
        account = t.get("serviceAccountName") or template(name)["spec"]["serviceAccountName"]
        obj = pod(account, volumes=t["volumes"], env=t["script"]["env"])
        request = Request("CREATE", CONTROLLER, "Pod", obj, namespace=ARGO_NAMESPACE, namespace_object=ARGO)
        assert verdict(request, TOKEN_POLICY) == (True, [])


# --- a second install --------------------------------------------------------------------------------


def test_the_second_install_overlay_scopes_names_accounts_and_policies_to_its_instance() -> None:
    kubectl = Path(sys.executable).parent / "kubectl"
    built = subprocess.run(
        [str(kubectl), "kustomize", str(ROOT / "docs/examples/second-install")],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    docs = [d for d in yaml.safe_load_all(built.stdout) if d]
    (namespace,) = [d for d in docs if d["kind"] == "Namespace"]
    assert namespace["metadata"]["name"] == BLUE_NAMESPACE
    docs.remove(namespace)
    cluster = [d for d in docs if d["kind"].startswith(("Cluster", "ValidatingAdmission"))]
    assert len(cluster) == 27 and all(d["metadata"]["name"].startswith("blue-") for d in cluster)
    # The deployer's RoleBinding in each environment names this install's ClusterRole, and create may bind only it.
    (binder,) = [
        d
        for d in cluster
        if (d["kind"], d["metadata"]["name"]) == ("ClusterRole", "blue-envbot-executor-create-deployer")
    ]
    assert binder["rules"][1]["resourceNames"] == ["blue-envbot-deployer"]
    assert all("namespace" not in d["metadata"] for d in cluster)
    assert {d["metadata"].get("namespace") for d in docs if d not in cluster} == {BLUE_NAMESPACE}
    for binding in (d for d in docs if d["kind"] == "ClusterRoleBinding"):
        assert binding["roleRef"]["name"] == binding["metadata"]["name"]
        assert binding["subjects"][0]["namespace"] == BLUE_NAMESPACE
    bindings = {d["spec"]["policyName"] for d in docs if d["kind"] == "ValidatingAdmissionPolicyBinding"}
    policies = {d["metadata"]["name"]: d for d in docs if d["kind"] == "ValidatingAdmissionPolicy"}
    assert bindings == set(policies)
    profiles = policies["blue-envbot-service-profiles"]["spec"]["matchConstraints"]["namespaceSelector"]
    assert profiles["matchExpressions"][0]["values"] == ["envbot-blue-workflows"]

    blue_ns = Policy(policies["blue-envbot-namespace-ownership"])
    blue_reaper = executor("reaper", BLUE_NAMESPACE)
    assert verdict(Request("DELETE", blue_reaper, "Namespace", None, BLUE_ENV), blue_ns, NAMESPACE_POLICY)[0]
    assert not verdict(Request("DELETE", blue_reaper, "Namespace", None, ENV), blue_ns, NAMESPACE_POLICY)[0]
    assert not verdict(Request("DELETE", executor("reaper"), "Namespace", None, BLUE_ENV), blue_ns, NAMESPACE_POLICY)[0]

    blue_wf = Policy(policies["blue-envbot-workflow-references"])
    blue_bot = "system:serviceaccount:envbot-blue:envbot"
    submission = workflow(ref("env-create-template"))
    in_blue = Request(
        "CREATE", blue_bot, "Workflow", submission, namespace=BLUE_NAMESPACE, namespace_object=ns(BLUE_NAMESPACE)
    )
    assert verdict(in_blue, blue_wf, WORKFLOW_POLICY) == (True, [])
    sneaky = workflow(ref("env-create-template", podSpecPatch="{}"))
    assert not verdict(
        Request("CREATE", blue_bot, "Workflow", sneaky, namespace=BLUE_NAMESPACE, namespace_object=ns(BLUE_NAMESPACE)),
        blue_wf,
        WORKFLOW_POLICY,
    )[0]

    # Its notifier records warnings on its own environments only, and only it may hold its token.
    blue_notifier = f"system:serviceaccount:{BLUE_NAMESPACE}:envbot-notify"
    record = {"envbot.dev/warning": '{"state": "sent"}'}
    mine = Request("UPDATE", blue_notifier, "Namespace", edit(BLUE_ENV, **record), BLUE_ENV)
    theirs = Request("UPDATE", blue_notifier, "Namespace", edit(ENV, **record), ENV)
    assert verdict(mine, blue_ns, NAMESPACE_POLICY)[0] and not verdict(theirs, blue_ns, NAMESPACE_POLICY)[0]
    blue_token = Policy(policies["blue-envbot-slack-token"])
    stolen = pod("ci", volumes=SECRET_VOLUME)
    in_blue = Request(
        "CREATE", CONTROLLER, "Pod", stolen, namespace=BLUE_NAMESPACE, namespace_object=ns(BLUE_NAMESPACE)
    )
    assert not verdict(in_blue, blue_token)[0]
