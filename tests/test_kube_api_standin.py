"""The Kubernetes API stand-in, driven by the real kubectl: each test pins down one behaviour scripts rely on."""

import json
import re
import shutil
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.kube_api import DEFAULT_USER, FakeKubeApi, Request, kubectl_env, kubectl_path

# Discovery and OpenAPI traffic, left out of a run's requests so tests see only the API calls.
DISCOVERY = re.compile(r"/version|/apis?|/api/v1|/apis/[^/]+/[^/]+|/openapi/.*")
OWNED = "envbot.dev/managed"


@dataclass
class Run:
    code: int
    out: str
    err: str
    requests: list[Request]  # what this kubectl invocation asked the API server, discovery left out


class Kubectl:
    def __init__(self, api: FakeKubeApi, home: Path, user: str = DEFAULT_USER) -> None:
        self.api = api
        self.env = kubectl_env(api, home, user)

    def __call__(self, *args: str, stdin: str | None = None) -> Run:
        start = len(self.api.requests)
        done = subprocess.run(
            [str(kubectl_path()), *args], env=self.env, input=stdin, capture_output=True, text=True, timeout=60
        )
        made = [r for r in self.api.requests[start:] if not DISCOVERY.fullmatch(r.path)]
        return Run(done.returncode, done.stdout, done.stderr, made)


@pytest.fixture
def kubectl(api: FakeKubeApi, tmp_path: Path) -> Kubectl:
    return Kubectl(api, tmp_path / "home")


def manifest(kind: str, name: str, namespace: str | None = None, **fields: Any) -> str:
    api_version = "argoproj.io/v1alpha1" if kind == "Workflow" else "v1"
    metadata: dict[str, Any] = {"name": name} if name else {}
    if namespace:
        metadata["namespace"] = namespace
    return json.dumps({"apiVersion": api_version, "kind": kind, "metadata": metadata | fields.pop("meta", {})} | fields)


def admin_of(account: str) -> dict[str, Any]:
    """A ClusterRoleBinding making a service account cluster-admin (the ClusterRole is stored beside it)."""
    namespace, name = account.split(":")[2:]
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": f"{name}-admin"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
        "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": namespace}],
    }


CLUSTER_ADMIN = {
    "apiVersion": "rbac.authorization.k8s.io/v1",
    "kind": "ClusterRole",
    "metadata": {"name": "cluster-admin"},
    "rules": [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}],
}


def rv(obj: dict[str, Any] | None) -> int:
    assert obj is not None
    return int(obj["metadata"]["resourceVersion"])


# --- discovery -----------------------------------------------------------------------------------


def test_aggregated_discovery_serves_every_resource_in_two_requests(api: FakeKubeApi, kubectl: Kubectl) -> None:
    run = kubectl("api-resources", "-o", "name")
    assert run.code == 0, run.err
    assert set(run.out.split()) == {
        "namespaces",
        "resourcequotas",
        "limitranges",
        "configmaps",
        "secrets",
        "serviceaccounts",
        "pods",
        "events",
        "networkpolicies.networking.k8s.io",
        "workflows.argoproj.io",
        "workflowtemplates.argoproj.io",
        "cronworkflows.argoproj.io",
        "clusterworkflowtemplates.argoproj.io",
        "roles.rbac.authorization.k8s.io",
        "clusterroles.rbac.authorization.k8s.io",
        "rolebindings.rbac.authorization.k8s.io",
        "clusterrolebindings.rbac.authorization.k8s.io",
        "validatingadmissionpolicies.admissionregistration.k8s.io",
        "validatingadmissionpolicybindings.admissionregistration.k8s.io",
        "deployments.apps",
        "services",
        "ingresses.networking.k8s.io",
    }
    assert [r.path for r in api.requests] == ["/api", "/apis"]
    version = json.loads(kubectl("version", "-o", "json").out)
    assert version["serverVersion"]["gitVersion"] == "v1.37.0"


def test_legacy_discovery_is_enough_when_aggregated_is_off(api: FakeKubeApi, kubectl: Kubectl) -> None:
    api.aggregated_discovery = False
    run = kubectl("get", "cwf,netpol,validatingadmissionpolicies", "-A", "-o", "name")
    assert (run.code, run.err) == (0, "")
    asked = {r.path for r in api.requests}
    assert {"/api/v1", "/apis/argoproj.io/v1alpha1", "/apis/networking.k8s.io/v1"} <= asked
    assert [r.path for r in run.requests] == [
        "/apis/argoproj.io/v1alpha1/cronworkflows",
        "/apis/networking.k8s.io/v1/networkpolicies",
        "/apis/admissionregistration.k8s.io/v1/validatingadmissionpolicies",
    ]


def test_create_and_apply_need_openapi_v3_and_leave_validation_to_the_server(
    api: FakeKubeApi, kubectl: Kubectl
) -> None:
    good = manifest("Namespace", "env-1")
    created = kubectl("create", "-f", "-", stdin=good)
    assert (created.code, created.out) == (0, "namespace/env-1 created\n")
    assert api.calls("GET", "/openapi/v3") and api.calls("GET", "/openapi/v3/api/v1")
    assert created.requests[-1].query["fieldValidation"] == "Strict"

    typo = manifest("ConfigMap", "settings", "env-1", meta={"label": {"a": "b"}}, dta={"k": "v"})
    refused = kubectl("apply", "-f", "-", stdin=typo)
    assert refused.code == 1
    assert refused.err == (
        'Error from server (BadRequest): error when creating "STDIN": ConfigMap in version "v1" cannot be handled '
        'as a ConfigMap: strict decoding error: unknown field "dta", unknown field "metadata.label"\n'
    )
    assert api.objects("ConfigMap", "env-1") == []

    # Without OpenAPI (a 404, like a server that does not serve it) kubectl refuses before sending anything.
    api.fail("GET", "/openapi/v3", 404)
    blind = kubectl("apply", "-f", "-", stdin=manifest("Namespace", "env-2"))
    assert blind.code == 1
    assert "error validating data: failed to download openapi" in blind.err
    assert api.calls("GET", "/openapi/v2") and blind.requests == []


# --- objects and reads ---------------------------------------------------------------------------


def test_create_namespace_is_atomic_and_reports_already_exists(api: FakeKubeApi, kubectl: Kubectl) -> None:
    first = kubectl("create", "namespace", "env-1")
    assert (first.code, first.out) == (0, "namespace/env-1 created\n")
    # `kubectl create namespace` uses a typed client that sends protobuf; the log holds it decoded.
    (post,) = first.requests
    assert post.content_type == "application/vnd.kubernetes.protobuf"
    assert post.body == {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "env-1"}}
    assert (post.user, post.status) == (DEFAULT_USER, 201)

    ns = api.namespace("env-1")
    assert ns is not None
    meta = ns["metadata"]
    assert uuid.UUID(meta["uid"]).version == 4
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", meta["creationTimestamp"])
    assert meta["labels"] == {"kubernetes.io/metadata.name": "env-1"}
    assert ns["spec"] == {"finalizers": ["kubernetes"]}
    assert ns["status"] == {"phase": "Active"}

    again = kubectl("create", "namespace", "env-1")
    assert again.code == 1
    assert again.err == 'Error from server (AlreadyExists): namespaces "env-1" already exists\n'
    assert rv(api.namespace("env-1")) == rv(ns)


def test_resource_versions_come_from_one_counter_and_no_op_writes_keep_them(api: FakeKubeApi, kubectl: Kubectl) -> None:
    kubectl("create", "namespace", "a")
    generated = kubectl("create", "-f", "-", stdin=manifest("ConfigMap", "", "a", meta={"generateName": "cfg-"}))
    assert generated.code == 0, generated.err
    name = re.fullmatch(r"configmap/(cfg-[bcdfghjklmnpqrstvwxz2456789]{5}) created\n", generated.out)
    assert name is not None
    kubectl("label", "namespace", "a", "tier=1")
    kubectl("create", "namespace", "b")
    (config,) = api.objects("ConfigMap", "a")
    assert config["metadata"]["name"] == name.group(1)
    versions = [rv(api.namespace("a")), rv(api.namespace("b"))]
    assert rv(config) < versions[0] < versions[1]

    unchanged = kubectl("label", "namespace", "a", "tier=1", "--overwrite")
    assert unchanged.code == 0
    assert rv(api.namespace("a")) == versions[0]


def test_get_ignore_not_found_is_silent_only_when_absent(api: FakeKubeApi, kubectl: Kubectl) -> None:
    missing = kubectl("get", "namespace", "env-1")
    assert (missing.code, missing.err) == (1, 'Error from server (NotFound): namespaces "env-1" not found\n')
    quiet = kubectl("get", "namespace", "env-1", "--ignore-not-found", "-o", "name")
    assert (quiet.code, quiet.out, quiet.err) == (0, "", "")

    api.add_namespace("env-1")
    api.fail("GET", "/api/v1/namespaces/env-1")
    broken = kubectl("get", "namespace", "env-1", "--ignore-not-found", "-o", "name")
    assert (broken.code, broken.out) == (1, "")
    assert broken.err == "Error from server (InternalError): Internal error occurred: injected fault\n"
    assert [r.status for r in broken.requests] == [500]  # no Retry-After, so client-go does not retry

    healed = kubectl("get", "namespace", "env-1", "--ignore-not-found", "-o", "name")
    assert (healed.code, healed.out) == (0, "namespace/env-1\n")


def test_errors_are_status_objects(api: FakeKubeApi) -> None:
    request = urllib.request.Request(
        f"{api.url}/apis/argoproj.io/v1alpha1/namespaces/env-1/workflows/w",
        headers={"Authorization": f"Bearer {api.token()}"},
    )
    with pytest.raises(urllib.error.HTTPError) as answer:
        urllib.request.urlopen(request, timeout=10)
    assert answer.value.code == 404
    assert json.loads(answer.value.read()) == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": 'workflows.argoproj.io "w" not found',
        "reason": "NotFound",
        "details": {"name": "w", "group": "argoproj.io", "kind": "workflows"},
        "code": 404,
    }
    assert (api.requests[-1].user, api.requests[-1].status) == (DEFAULT_USER, 404)


def test_default_get_prints_the_server_side_table(api: FakeKubeApi, kubectl: Kubectl) -> None:
    api.add_namespace("env-1", {"team": "a"})
    api.add_namespace("env-2", terminating=True)
    run = kubectl("get", "namespaces", "--show-labels")
    assert run.code == 0, run.err
    rows = [line.split() for line in run.out.splitlines()]
    assert rows[0] == ["NAME", "STATUS", "AGE", "LABELS"]
    assert [(r[0], r[1], r[3]) for r in rows[1:]] == [
        ("env-1", "Active", "kubernetes.io/metadata.name=env-1,team=a"),
        ("env-2", "Terminating", "kubernetes.io/metadata.name=env-2"),
    ]


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ("tier=1", ["n1"]),
        ("tier==1,env=b", []),
        ("tier!=1", ["n0", "n2", "n3", "plain"]),
        ("tier in (0, 3)", ["n0", "n3"]),
        ("tier notin (0,3)", ["n1", "n2", "plain"]),
        ("env", ["n0", "n1", "n2", "n3"]),
        ("!env", ["plain"]),
        ("tier>1", ["n2", "n3"]),
        ("tier<2,env=a", ["n1"]),
    ],
)
def test_label_selectors(api: FakeKubeApi, kubectl: Kubectl, selector: str, expected: list[str]) -> None:
    for i in range(4):
        api.add_namespace(f"n{i}", {"tier": str(i), "env": "a" if i % 2 else "b"})
    api.add_namespace("plain")
    run = kubectl("get", "namespaces", "-l", selector, "-o", "name")
    assert run.code == 0, run.err
    assert run.out.split() == [f"namespace/{name}" for name in expected]
    assert run.requests[0].query["labelSelector"] == selector


def test_bad_selectors_are_bad_requests(api: FakeKubeApi, kubectl: Kubectl) -> None:
    not_a_number = kubectl("get", "namespaces", "-l", "tier>one", "-o", "name")
    assert not_a_number.code == 1
    assert "(BadRequest)" in not_a_number.err
    assert "for 'Gt', 'Lt' operators, the value must be an integer" in not_a_number.err
    unknown_field = kubectl("get", "namespaces", "--field-selector", "spec.finalizers=x", "-o", "name")
    assert unknown_field.code == 1
    assert unknown_field.err.endswith("field label not supported: spec.finalizers\n")


def test_field_selectors_and_chunked_lists(api: FakeKubeApi, kubectl: Kubectl) -> None:
    for name in ("a", "b", "c", "d", "e"):
        api.add_namespace(name, {OWNED: "true"})
    api.add_namespace("f", {OWNED: "true"}, terminating=True)
    by_name = kubectl("get", "namespaces", "-l", OWNED, "--field-selector", "metadata.name==c", "-o", "name")
    assert by_name.out == "namespace/c\n"
    active = kubectl("get", "ns", "--field-selector", "status.phase=Active,metadata.name!=a", "-o", "name")
    assert active.out.split() == ["namespace/b", "namespace/c", "namespace/d", "namespace/e"]

    # kubectl lists in chunks of 500; --chunk-size shows the limit/continue protocol on a small list.
    chunked = kubectl("get", "namespaces", "--chunk-size=2", "--no-headers", "-o", "custom-columns=N:.metadata.name")
    assert chunked.out.split() == ["a", "b", "c", "d", "e", "f"]
    assert [r.query.get("limit") for r in chunked.requests] == ["2", "2", "2"]
    assert "continue" not in chunked.requests[0].query
    assert all(r.query.get("continue") for r in chunked.requests[1:])


# --- writes ----------------------------------------------------------------------------------------


def test_creates_obey_namespace_lifecycle(api: FakeKubeApi, kubectl: Kubectl) -> None:
    api.add_namespace("dying", terminating=True)
    ghost = kubectl("create", "-f", "-", stdin=manifest("ConfigMap", "c", "ghost"))
    assert ghost.err == 'Error from server (NotFound): error when creating "STDIN": namespaces "ghost" not found\n'
    dying = kubectl("create", "-f", "-", stdin=manifest("ConfigMap", "c", "dying"))
    assert dying.code == 1
    assert dying.err == (
        'Error from server (Forbidden): error when creating "STDIN": configmaps "c" is forbidden: '
        "unable to create new content in namespace dying because it is being terminated\n"
    )
    # `kubectl create <kind>` words the same server error differently.
    typed = kubectl("create", "configmap", "c", "-n", "dying", "--from-literal=a=b")
    assert typed.err == (
        'error: failed to create configmap: configmaps "c" is forbidden: '
        "unable to create new content in namespace dying because it is being terminated\n"
    )
    applied = kubectl("apply", "--server-side", "-f", "-", stdin=manifest("Workflow", "w", "dying"))
    assert applied.code == 1
    assert 'workflows.argoproj.io "w" is forbidden' in applied.err
    assert api.objects("ConfigMap") == [] and api.objects("Workflow") == []


def test_invalid_names_and_labels_are_refused(api: FakeKubeApi, kubectl: Kubectl) -> None:
    bad_name = kubectl("create", "namespace", "Env_1")
    assert bad_name.code == 1
    assert bad_name.err.startswith(
        'The Namespace "Env_1" is invalid: metadata.name: Invalid value: "Env_1": a lowercase RFC 1123 label'
    )
    api.add_namespace("env-1")
    bad_label = kubectl("patch", "namespace", "env-1", "--type=merge", "-p", '{"metadata":{"labels":{"a":"b c"}}}')
    assert bad_label.code == 1
    assert bad_label.err.startswith('The Namespace "env-1" is invalid: metadata.labels: Invalid value: "b c"')
    assert api.namespace("Env_1") is None


def test_apply_creates_then_patches_and_tolerates_terminating_namespaces(api: FakeKubeApi, kubectl: Kubectl) -> None:
    first = kubectl("apply", "-f", "-", stdin=manifest("Namespace", "env-1", meta={"labels": {"v": "1"}}))
    assert first.out == "namespace/env-1 created\n"
    assert [(r.method, r.status) for r in first.requests] == [("GET", 404), ("POST", 201)]

    second = kubectl("apply", "-f", "-", stdin=manifest("Namespace", "env-1", meta={"labels": {"v": "2"}}))
    assert second.out == "namespace/env-1 configured\n"
    assert second.requests[-1].content_type == "application/strategic-merge-patch+json"
    ns = api.namespace("env-1")
    assert ns is not None and ns["metadata"]["labels"]["v"] == "2"

    ssa = kubectl("apply", "--server-side", "-f", "-", stdin=manifest("Namespace", "env-2"))
    assert (ssa.out, ssa.requests[0].content_type) == (
        "namespace/env-2 serverside-applied\n",
        "application/apply-patch+yaml",
    )
    assert ssa.requests[0].status == 201
    update = manifest("Namespace", "env-2", meta={"labels": {"v": "9"}})
    assert kubectl("apply", "--server-side", "-f", "-", stdin=update).requests[0].status == 200
    applied = api.namespace("env-2")
    assert applied is not None and applied["metadata"]["labels"]["v"] == "9"

    api.add_namespace("dying", terminating=True)
    late = kubectl("apply", "-f", "-", stdin=manifest("Namespace", "dying", meta={"labels": {"v": "3"}}))
    assert late.code == 0
    assert "Warning: Detected changes to resource dying which is currently being deleted." in late.err
    dying = api.namespace("dying")
    assert dying is not None and dying["status"]["phase"] == "Terminating"
    assert dying["metadata"]["labels"]["v"] == "3"  # metadata updates on a Terminating namespace are allowed


def test_patch_types(api: FakeKubeApi, kubectl: Kubectl) -> None:
    api.add_namespace("env-1", {"stage": "new"})
    merge = kubectl("patch", "ns", "env-1", "--type=merge", "-p", '{"metadata":{"labels":{"stage":null,"a":"1"}}}')
    assert merge.out == "namespace/env-1 patched\n"
    guarded = (
        '[{"op":"test","path":"/metadata/labels/a","value":"2"},{"op":"add","path":"/metadata/labels/b","value":"x"}]'
    )
    failed = kubectl("patch", "ns", "env-1", "--type=json", "-p", guarded)
    assert (failed.code, failed.requests[-1].status) == (1, 422)
    assert failed.err == "The request is invalid: the server rejected our request due to an error in our request\n"
    passed = kubectl("patch", "ns", "env-1", "--type=json", "-p", guarded.replace('"2"', '"1"'))
    assert passed.code == 0, passed.err
    strategic = kubectl("patch", "ns", "env-1", "-p", '{"metadata":{"labels":{"c":"y"}}}')
    assert strategic.requests[-1].content_type == "application/strategic-merge-patch+json"
    ns = api.namespace("env-1")
    assert ns is not None
    assert ns["metadata"]["labels"] == {"kubernetes.io/metadata.name": "env-1", "a": "1", "b": "x", "c": "y"}

    api.put(json.loads(manifest("Workflow", "w", "env-1", spec={"entrypoint": "main"})))
    crd = kubectl("patch", "wf", "w", "-n", "env-1", "-p", '{"spec":{"entrypoint":"other"}}')
    assert crd.code == 1
    assert "application/strategic-merge-patch+json is not supported by argoproj.io/v1alpha1, Kind=Workflow" in crd.err
    assert crd.requests[-1].status == 415


def test_label_and_annotate_need_overwrite_and_honour_resource_version(api: FakeKubeApi, kubectl: Kubectl) -> None:
    read = api.add_namespace("env-1", {"team": "a"}, {"envbot.dev/expires-at": "t1"})
    refused = kubectl("label", "namespace", "env-1", "team=b")
    assert (refused.code, refused.err) == (1, "error: 'team' already has a value (a), and --overwrite is false\n")
    assert [r.method for r in refused.requests] == ["GET"]

    seen = str(rv(read))
    ok = kubectl("annotate", "ns", "env-1", "--overwrite", f"--resource-version={seen}", "envbot.dev/expires-at=t2")
    assert ok.out == "namespace/env-1 annotated\n"
    assert ok.requests[-1].body == {
        "metadata": {"annotations": {"envbot.dev/expires-at": "t2"}, "resourceVersion": seen}
    }

    stale = kubectl("annotate", "ns", "env-1", "--overwrite", f"--resource-version={seen}", "envbot.dev/expires-at=t3")
    assert (stale.code, stale.requests[-1].status) == (1, 409)
    assert stale.err == (
        'Error from server (Conflict): Operation cannot be fulfilled on namespaces "env-1": the object has been '
        "modified; please apply your changes to the latest version and try again\n"
    )
    relabel = kubectl("label", "ns", "env-1", "--overwrite", f"--resource-version={seen}", "team=c")
    assert relabel.code == 1 and "(Conflict)" in relabel.err
    ns = api.namespace("env-1")
    assert ns is not None
    assert (ns["metadata"]["annotations"]["envbot.dev/expires-at"], ns["metadata"]["labels"]["team"]) == ("t2", "a")


def test_put_checks_resource_version(api: FakeKubeApi, kubectl: Kubectl) -> None:
    live = api.add_namespace("env-1")
    stale = json.loads(manifest("Namespace", "env-1", meta={"resourceVersion": str(rv(live)), "labels": {"x": "1"}}))
    api.add_namespace("env-1", {"moved": "on"})  # a concurrent writer
    replaced = kubectl("replace", "-f", "-", stdin=json.dumps(stale))
    assert (replaced.code, replaced.requests[-1].method) == (1, "PUT")
    assert 'Operation cannot be fulfilled on namespaces "env-1": the object has been modified' in replaced.err
    stale["metadata"]["resourceVersion"] = str(rv(api.namespace("env-1")))
    assert kubectl("replace", "-f", "-", stdin=json.dumps(stale)).out == "namespace/env-1 replaced\n"
    ns = api.namespace("env-1")
    assert ns is not None and ns["metadata"]["labels"] == {"kubernetes.io/metadata.name": "env-1", "x": "1"}


def policy_with(variables: dict[str, str]) -> str:
    """A ValidatingAdmissionPolicy whose spec.variables (a list merged by `name`) are `variables`, in order."""
    return json.dumps({
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicy",
        "metadata": {"name": "merge-by-name"},
        "spec": {
            "failurePolicy": "Fail",
            "matchConstraints": {"resourceRules": [{
                "apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"], "resources": ["configmaps"],
            }]},
            "variables": [{"name": name, "expression": expression} for name, expression in variables.items()],
            "validations": [{"expression": "true"}],
        },
    })  # fmt: skip


def test_apply_merges_keyed_lists_by_their_key_as_kubectl_patches_them(api: FakeKubeApi, kubectl: Kubectl) -> None:
    """kubectl apply sends only the changed entries of a list with a merge key (spec.variables by name),
    with `$setElementOrder` and `$patch: delete`: replacing the list would drop every unchanged entry."""
    assert kubectl("apply", "-f", "-", stdin=policy_with({"a": "1", "b": "2", "c": "3"})).code == 0
    run = kubectl("apply", "-f", "-", stdin=policy_with({"a": "1", "d": "4", "b": "20"}))
    assert run.code == 0, run.err
    (patch,) = [r for r in run.requests if r.method == "PATCH"]
    assert "$setElementOrder/variables" in json.dumps(patch.body)  # kubectl sent a keyed patch, not the list
    (stored,) = api.objects("ValidatingAdmissionPolicy")
    assert stored["spec"]["variables"] == [
        {"name": "a", "expression": "1"}, {"name": "d", "expression": "4"}, {"name": "b", "expression": "20"},
    ]  # fmt: skip
    assert stored["spec"]["validations"] == [{"expression": "true"}]
    # A list without a key in the patch is still replaced as a whole.
    replaced = json.loads(policy_with({"a": "1", "d": "4", "b": "20"}))
    replaced["spec"]["validations"] = [{"expression": "1 == 1"}]
    assert kubectl("apply", "-f", "-", stdin=json.dumps(replaced)).code == 0
    (again,) = api.objects("ValidatingAdmissionPolicy")
    assert again["spec"]["validations"] == [{"expression": "1 == 1"}]
    assert [v["name"] for v in again["spec"]["variables"]] == ["a", "d", "b"]


# --- deletes -----------------------------------------------------------------------------------------


def test_namespace_delete_starts_termination(api: FakeKubeApi, kubectl: Kubectl) -> None:
    api.add_namespace("env-1")
    api.put(json.loads(manifest("ResourceQuota", "quota", "env-1", spec={"hard": {"pods": "2"}})))
    api.put(json.loads(manifest("ConfigMap", "settings", "env-1")))
    # Other kinds go at once, so even the default --wait returns straight away.
    config = kubectl("delete", "configmap", "settings", "-n", "env-1")
    assert (config.code, config.out) == (0, 'configmap "settings" deleted from env-1 namespace\n')
    assert [(r.method, r.status) for r in config.requests] == [("DELETE", 200), ("GET", 404)]
    assert api.objects("ConfigMap") == []

    run = kubectl("delete", "namespace", "env-1", "--wait=false")
    assert (run.code, run.out) == (0, 'namespace "env-1" deleted\n')
    (delete,) = run.requests
    assert (delete.method, delete.path, delete.body) == (
        "DELETE",
        "/api/v1/namespaces/env-1",
        {"propagationPolicy": "Background"},
    )
    ns = api.namespace("env-1")
    assert ns is not None
    assert ns["status"]["phase"] == "Terminating" and ns["metadata"]["deletionTimestamp"]

    again = kubectl("delete", "namespace", "env-1", "--wait=false")
    assert (again.code, again.requests[0].status) == (0, 200)  # 200 since Kubernetes 1.17, not 409
    assert api.objects("ResourceQuota", "env-1") != []

    api.finish_termination("env-1")
    assert api.namespace("env-1") is None and api.objects("ResourceQuota") == []
    gone = kubectl("delete", "namespace", "env-1", "--wait=false")
    assert gone.err == 'Error from server (NotFound): namespaces "env-1" not found\n'
    assert kubectl("delete", "namespace", "env-1", "--ignore-not-found", "--wait=false").code == 0


def test_delete_waits_for_the_namespace_to_vanish_by_default(api: FakeKubeApi, kubectl: Kubectl) -> None:
    api.add_namespace("stuck")
    timed_out = kubectl("delete", "namespace", "stuck", "--timeout=2s")
    assert (timed_out.code, timed_out.out) == (1, 'namespace "stuck" deleted\n')
    # client-go may log a "Failed to watch ... context deadline exceeded" line first, depending on timing.
    assert timed_out.err.splitlines()[-1] == "error: timed out waiting for the condition on namespaces/stuck"
    watch = timed_out.requests[-1]
    assert watch.query["watch"] == "true" and watch.query["fieldSelector"] == "metadata.name=stuck"
    assert watch.query["sendInitialEvents"] == "true"

    api.termination_delay = 0.5
    api.add_namespace("env-1")
    started = time.monotonic()
    finished = kubectl("delete", "namespace", "env-1")
    assert (finished.code, finished.out) == (0, 'namespace "env-1" deleted\n')
    assert time.monotonic() - started >= 0.5
    assert api.namespace("env-1") is None


def test_delete_by_selector_lists_then_deletes_without_rechecking(api: FakeKubeApi, kubectl: Kubectl) -> None:
    api.add_namespace("env-1", {OWNED: "true"})

    def disown(server: FakeKubeApi) -> None:
        ns = server.namespace("env-1")
        assert ns is not None
        del ns["metadata"]["labels"][OWNED]
        server.put(ns)

    api.after("GET", "/api/v1/namespaces", disown)  # between kubectl's LIST and its DELETE
    run = kubectl(
        "delete", "namespaces", "-l", f"{OWNED}=true", "--field-selector", "metadata.name=env-1", "--wait=false"
    )
    assert (run.code, run.out) == (0, 'namespace "env-1" deleted\n')
    listing, delete = run.requests
    assert (listing.method, listing.path) == ("GET", "/api/v1/namespaces")
    assert listing.query == {"labelSelector": f"{OWNED}=true", "fieldSelector": "metadata.name=env-1"}
    assert (delete.method, delete.path, delete.body) == (
        "DELETE",
        "/api/v1/namespaces/env-1",
        {"propagationPolicy": "Background"},
    )
    ns = api.namespace("env-1")
    assert ns is not None
    assert OWNED not in ns["metadata"]["labels"] and ns["status"]["phase"] == "Terminating"  # the race is lost

    nothing = kubectl("delete", "namespaces", "-l", f"{OWNED}=true", "--field-selector", "metadata.name=env-2")
    # Unlike `kubectl get`, `kubectl delete` reports an empty match on stdout.
    assert (nothing.code, nothing.out, nothing.err) == (0, "No resources found\n", "")


def test_delete_raw_with_preconditions(api: FakeKubeApi, kubectl: Kubectl, tmp_path: Path) -> None:
    ns = api.add_namespace("env-1", {OWNED: "true"})
    uid, version = ns["metadata"]["uid"], ns["metadata"]["resourceVersion"]
    body = tmp_path / "delete.json"

    def delete_raw(preconditions: dict[str, str], path: str = "/api/v1/namespaces/env-1") -> Run:
        body.write_text(json.dumps({"kind": "DeleteOptions", "apiVersion": "v1", "preconditions": preconditions}))
        return kubectl("delete", "--raw", path, "-f", str(body))

    other = str(uuid.uuid4())
    wrong_uid = delete_raw({"uid": other})
    assert (wrong_uid.code, wrong_uid.requests[0].body["preconditions"]) == (1, {"uid": other})
    assert wrong_uid.err == (
        'Error from server (Conflict): Operation cannot be fulfilled on namespaces "env-1": '
        f"Precondition failed: UID in precondition: {other}, UID in object meta: {uid}\n"
    )
    api.add_namespace("env-1", {OWNED: "true", "touched": "yes"})  # resourceVersion moves on
    moved = str(rv(api.namespace("env-1")))
    wrong_rv = delete_raw({"uid": uid, "resourceVersion": version})
    assert wrong_rv.err == (
        'Error from server (Conflict): Operation cannot be fulfilled on namespaces "env-1": '
        f"Precondition failed: ResourceVersion in precondition: {version}, ResourceVersion in object meta: {moved}\n"
    )
    untouched = api.namespace("env-1")
    assert untouched is not None and "deletionTimestamp" not in untouched["metadata"]

    matched = delete_raw({"uid": uid, "resourceVersion": moved})
    assert matched.code == 0
    assert json.loads(matched.out)["status"]["phase"] == "Terminating"

    # Other kinds check preconditions in storage, which wraps the same text.
    config = api.put(json.loads(manifest("ConfigMap", "c", "env-1")))
    wrapped = delete_raw({"uid": other}, "/api/v1/namespaces/env-1/configmaps/c")
    assert wrapped.err == (
        'Error from server (Conflict): Operation cannot be fulfilled on configmaps "c": StorageError: invalid object, '
        "Code: 4, Key: /registry/configmaps/env-1/c, ResourceVersion: 0, AdditionalErrorMsg: Precondition failed: "
        f"UID in precondition: {other}, UID in object meta: {config['metadata']['uid']}\n"
    )


# --- faults ------------------------------------------------------------------------------------------


def test_retry_after_makes_client_go_retry(api: FakeKubeApi, kubectl: Kubectl) -> None:
    api.add_namespace("env-1")
    api.fail("GET", "/api/v1/namespaces/env-1", 429, times=2, retry_after=1)
    run = kubectl("get", "namespace", "env-1", "-o", "name")
    assert (run.code, run.out) == (0, "namespace/env-1\n")
    assert [r.status for r in run.requests] == [429, 429, 200]

    api.fail("GET", "/api/v1/namespaces/env-1", 503, after=1)  # only the second matching request
    assert kubectl("get", "namespace", "env-1", "-o", "name").code == 0
    unavailable = kubectl("get", "namespace", "env-1", "-o", "name")
    assert (
        unavailable.err
        == "Error from server (ServiceUnavailable): the server is currently unable to handle the request\n"
    )


def test_dropped_connections(api: FakeKubeApi, kubectl: Kubectl) -> None:
    api.add_namespace("env-1")
    # A GET whose connection broke is retried (by Go's transport at once on a reused connection, else by
    # client-go after a second); writes are not.
    api.drop("GET", "/api/v1/namespaces/env-1")
    read = kubectl("get", "namespace", "env-1", "-o", "name")
    assert (read.code, [r.status for r in read.requests]) == (0, [0, 200])

    api.drop("DELETE", "/api/v1/namespaces/env-1")
    lost = kubectl("delete", "namespace", "env-1", "--wait=false")
    assert (lost.code, lost.err) == (1, "Unable to connect to the server: EOF\n")
    ns = api.namespace("env-1")
    assert ns is not None and ns["status"]["phase"] == "Active"

    # The write happened but its answer was lost: a retry then meets the result.
    api.drop("POST", "/api/v1/namespaces", served=True)
    blind = kubectl("create", "namespace", "env-2")
    assert (blind.code, blind.err) == (1, "Unable to connect to the server: EOF\n")
    retry = kubectl("create", "namespace", "env-2")
    assert retry.err == 'Error from server (AlreadyExists): namespaces "env-2" already exists\n'


def test_requests_record_the_user_behind_the_token(api: FakeKubeApi, tmp_path: Path) -> None:
    reaper = Kubectl(api, tmp_path / "reaper", user="system:serviceaccount:team-ci:runner")
    api.put(CLUSTER_ADMIN)
    api.put(admin_of("system:serviceaccount:team-ci:runner"))
    reaper("create", "namespace", "env-1")
    bot = Kubectl(api, tmp_path / "bot")
    bot("label", "namespace", "env-1", "a=b")
    writes = [(r.method, r.user, r.status) for r in api.requests if r.method != "GET"]
    assert writes == [
        ("POST", "system:serviceaccount:team-ci:runner", 201),
        ("PATCH", DEFAULT_USER, 200),
    ]
    patch = api.calls("PATCH")[0]
    assert (patch.path, patch.query, patch.content_type) == (
        "/api/v1/namespaces/env-1",
        {"fieldManager": "kubectl-label"},
        "application/merge-patch+json",
    )
    assert patch.body == {"metadata": {"labels": {"a": "b"}}}

    # The environment reaches this server and nothing else.
    assert shutil.which("kubectl", path=bot.env["PATH"]) == str(kubectl_path())
    assert set(bot.env) == {"PATH", "HOME", "KUBECONFIG", "KUBECACHEDIR", "NO_PROXY", "LANG", "TMPDIR"}
    assert json.loads(Path(bot.env["KUBECONFIG"]).read_text())["clusters"][0]["cluster"]["server"].startswith(api.url)

    intruder = Kubectl(api, tmp_path / "intruder")
    intruder.env["KUBECONFIG"] = str(tmp_path / "intruder.json")
    config = json.loads(Path(reaper.env["KUBECONFIG"]).read_text())
    config["clusters"][0]["cluster"]["server"] = f"{api.url}/auth/not-a-token"
    Path(intruder.env["KUBECONFIG"]).write_text(json.dumps(config))
    denied = intruder("create", "namespace", "env-2")
    assert denied.code == 1 and "You must be logged in to the server" in denied.err
    assert api.requests[-1].status == 401 and api.namespace("env-2") is None


def test_termination_delay_and_direct_state_changes(api: FakeKubeApi) -> None:
    api.add_namespace("env-1")
    workflow = api.put(json.loads(manifest("Workflow", "w", "env-1", spec={})))
    assert api.objects("Workflow", "env-1") == [workflow]
    with pytest.raises(ValueError, match="not Terminating"):
        api.finish_termination("env-1")

    api.termination_delay = 0.2
    api.add_namespace("env-2", terminating=True, created="2024-01-01T00:00:00Z")
    ns = api.namespace("env-2")
    assert ns is not None and ns["metadata"]["creationTimestamp"] == "2024-01-01T00:00:00Z"
    deadline = time.monotonic() + 5
    while api.namespace("env-2") is not None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert api.namespace("env-2") is None
    assert api.namespace("env-1") is not None


def test_a_failing_callback_surfaces_when_the_server_stops() -> None:
    server = FakeKubeApi().start()

    def broken(_: FakeKubeApi) -> None:
        raise AssertionError("callback bug")

    server.after("GET", "/api/v1/namespaces", broken)
    request = urllib.request.Request(
        f"{server.url}/api/v1/namespaces", headers={"Authorization": f"Bearer {server.token()}"}
    )
    with urllib.request.urlopen(request, timeout=10) as answer:  # the client still gets its answer
        assert json.loads(answer.read())["kind"] == "NamespaceList"
    with pytest.raises(RuntimeError, match="inside the stand-in") as stopped:
        server.stop()
    assert isinstance(stopped.value.__cause__, AssertionError)
