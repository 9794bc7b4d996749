"""The service in the environment: the create workflow's two steps and env-deploy-template, run as
their service accounts with the real kubectl and git against the API stand-in and its rollout
controller (tests/fakes/rollout.py). The recipe's repository is a local git repository holding the
example service (examples/echo); nothing touches the network.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT
from tests.execution_plane import (
    CREATE,
    SERVICES,
    SETTINGS,
    Run,
    allowed,
    documents,
    render,
    run_script,
    service_account,
)
from tests.fakes.cluster import install
from tests.fakes.kube_api import FakeKubeApi, kubectl_env
from tests.fakes.rollout import RolloutController

DEPLOY = "env-deploy-template"
ENV = "echo-demo"
CREATE_PARAMS = {
    "env_name": ENV,
    "service": "echo",
    "expires_at": "2999-01-01T00:00:00Z",
    "requested_by": "U111AAA",
    "slack_channel": "C111AAA",
}
IMAGE = "hashicorp/http-echo"
GIT = shutil.which("git") or "git"


def git(repo: Path, *args: str) -> str:
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com", "GIT_COMMITTER_NAME": "t"}
    env |= {"GIT_COMMITTER_EMAIL": "t@example.com", "HOME": str(repo), "PATH": "/usr/bin:/bin"}
    done = subprocess.run([GIT, "-C", str(repo), *args], env=env, capture_output=True, text=True, check=True)
    return done.stdout.strip()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return echo_repo(tmp_path / "repo")


def echo_repo(repo: Path) -> Path:
    """The example service in a git repository: main, a tag, a branch and a pull request head."""
    shutil.copytree(ROOT / "examples/echo", repo / "deploy/echo")
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "echo")
    git(repo, "tag", "v1")
    git(repo, "checkout", "-q", "-b", "feature-x")
    feature = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: feature\ndata:\n  branch: feature-x\n"
    add_resource(repo, "configmap.yaml", feature, "feature")
    git(repo, "update-ref", "refs/pull/123/head", "HEAD")
    git(repo, "checkout", "-q", "main")
    return repo


def add_resource(repo: Path, name: str, manifest: str, message: str) -> Path:
    """Commit `manifest` as one more resource of the example's kustomization; returns the kustomization."""
    (repo / "deploy/echo" / name).write_text(manifest)
    kustomization = repo / "deploy/echo/kustomization.yaml"
    kustomization.write_text(kustomization.read_text().replace("  - ingress.yaml\n", f"  - ingress.yaml\n  - {name}\n"))
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)
    return kustomization


def recipe(repo: Path, **overrides: str) -> dict[str, str]:
    settings = {
        "kind": "kustomize",
        "repo": f"file://{repo}",
        "path": "deploy/echo",
        "ref": "main",
        "images": IMAGE,
        "tag": "1.0",
        "ref_tag": "{ref}",
        "pr_ref": "refs/pull/{pr}/head",
        "pr_tag": "pr-{pr}",
        "host": "{env}.preview.example.com",
        "timeout": "30",
        "kinds": "Deployment,Service,Ingress,ConfigMap",
    }
    return {f"echo.recipe.{key}": value for key, value in (settings | overrides).items()}


@dataclass
class Cluster:
    api: FakeKubeApi
    rollout: RolloutController
    folder: Path
    services: dict[str, str]
    path: str = ""  # prepended to the pod's PATH
    extra_env: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        install(self.api)  # RBAC and admission from argo/ judge every request the steps make

    def step(self, name: str, step: str | None, params: dict[str, str]) -> Run:
        user = service_account(name, step)
        home = self.folder / "home" / user.rsplit(":", 1)[1]
        base = kubectl_env(self.api, home, user=user) | {"ENVBOT_POLL_SECONDS": "0.05"}
        base |= {"ENVBOT_OUTPUTS": str(self.folder / "outputs")} | self.extra_env
        base["PATH"] = self.path + base["PATH"]
        rendered = render(name, params, SETTINGS, step=step, services=SERVICES | self.services)
        return run_script(rendered, self.folder / "pod", base)

    def create(self, **params: str) -> tuple[Run, Run | None]:
        """The create workflow: the namespace step, then (if it succeeded) the deploy step."""
        given = CREATE_PARAMS | params
        first = self.step(CREATE, "create", given)
        if first.returncode != 0:
            return first, None
        return first, self.step(CREATE, "deploy", given)

    def deploy(self, **params: str) -> Run:
        # env-deploy-template's entrypoint runs create's `deploy` template (templateRef), with its own parameters.
        return self.step(DEPLOY, None, {"env_name": ENV, "service": "echo"} | params)

    def output(self, name: str) -> str:
        return (self.folder / "outputs" / name).read_text()

    def deployment(self, name: str = "echo") -> dict[str, Any]:
        (found,) = [d for d in self.api.objects("Deployment", ENV) if d["metadata"]["name"] == name]
        return found


@pytest.fixture
def cluster(api: FakeKubeApi, tmp_path: Path, repo: Path) -> Cluster:
    return Cluster(api, RolloutController(api).install(), tmp_path, {"default.recipe.kind": "none"} | recipe(repo))


def image_of(deployment: dict[str, Any]) -> str:
    return str(deployment["spec"]["template"]["spec"]["containers"][0]["image"])


def test_create_deploys_the_example_service_and_waits_until_it_is_available(cluster: Cluster) -> None:
    first, second = cluster.create(version="1.4.2")
    assert first.returncode == 0, first.output
    assert second is not None and second.returncode == 0, second.output
    deployment = cluster.deployment()
    assert image_of(deployment) == f"{IMAGE}:1.4.2"
    conditions = {c["type"]: c["status"] for c in deployment["status"]["conditions"]}
    assert conditions["Available"] == "True", "the step ended before the workload was Available"
    assert f"echo is ready in {ENV}" in second.stdout
    (ingress,) = cluster.api.objects("Ingress", ENV)
    assert ingress["spec"]["rules"][0]["host"] == f"{ENV}.preview.example.com"
    assert {s["metadata"]["name"] for s in cluster.api.objects("Service", ENV)} == {"echo"}
    assert cluster.output("version") == "1.4.2"
    assert cluster.output("url") == f"https://{ENV}.preview.example.com"


def test_the_deployer_acts_only_inside_the_environment_through_its_rolebinding(cluster: Cluster) -> None:
    cluster.create()
    (binding,) = cluster.api.objects("RoleBinding", ENV)
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": "envbot-deployer",
    }
    deployer = service_account(CREATE, "deploy")
    home = deployer.split(":")[2]
    assert binding["subjects"] == [  # the deployer, and the platform team's own recipe (docs/adr/0013)
        {"kind": "ServiceAccount", "name": "envbot-deployer", "namespace": home},
        {"kind": "ServiceAccount", "name": "envbot-recipe", "namespace": home},
    ]
    made = [
        (r, a)
        for r in cluster.api.requests
        if r.user == deployer and (a := cluster.api.attributes(r.method, r.path, r.query))
    ]
    assert made, "the deployer made no requests"
    for request, need in made:
        namespace, group, resource, verb = need.namespace, need.group, need.resource, need.verb
        if resource == "namespaces":
            assert (verb, request.path) == ("get", f"/api/v1/namespaces/{ENV}") and allowed("envbot-deployer", need)
            continue
        assert namespace == ENV, f"{request.method} {request.path} is outside the environment"
        assert (group, resource) in _deployer_rules(), (
            f"{request.method} {request.path} is not in ClusterRole envbot-deployer"
        )


def _deployer_rules() -> set[tuple[str, str]]:

    (role,) = [
        d
        for d in documents(ROOT / "argo/rbac/deployer.yaml")
        if d["metadata"]["name"] == "envbot-deployer" and d["kind"] == "ClusterRole"
    ]
    return {(g, r.split("/")[0]) for rule in role["rules"] for g in rule["apiGroups"] for r in rule["resources"]}


@pytest.mark.parametrize(
    ("params", "tag", "configmap"),
    [({"ref": "feature-x"}, "feature-x", True), ({"pr": "123"}, "pr-123", True), ({}, "1.0", False)],
)
def test_ref_and_pr_map_to_a_git_ref_and_a_tag_by_the_recipes_rules(
    cluster: Cluster, params: dict[str, str], tag: str, configmap: bool
) -> None:
    _, deployed = cluster.create(**params)
    assert deployed is not None and deployed.returncode == 0, deployed.output
    assert image_of(cluster.deployment()) == f"{IMAGE}:{tag}"
    assert bool(cluster.api.objects("ConfigMap", ENV)) is configmap, "the branch's own manifests were not deployed"
    assert cluster.output("version") == tag


def test_a_ref_that_does_not_exist_fails_with_the_reason_and_applies_nothing(cluster: Cluster) -> None:
    _, deployed = cluster.create(ref="no-such-branch")
    assert deployed is not None and deployed.returncode == 1
    assert "ref no-such-branch does not exist" in deployed.stderr
    assert cluster.api.objects("Deployment", ENV) == []


def test_an_unreachable_repository_fails_with_the_reason(cluster: Cluster, tmp_path: Path) -> None:
    cluster.services |= recipe(tmp_path / "nowhere")
    _, deployed = cluster.create()
    assert deployed is not None and deployed.returncode == 1
    assert "could not fetch main from file://" in deployed.stderr and "nothing was deployed" in deployed.stderr


def test_an_image_that_cannot_be_pulled_is_named_with_its_reason(cluster: Cluster) -> None:
    cluster.rollout.missing.add(f"{IMAGE}:1.4.9")
    _, deployed = cluster.create(version="1.4.9")
    assert deployed is not None and deployed.returncode == 1
    assert f"deployment echo: image `{IMAGE}:1.4.9` not found (ImagePullBackOff)" in deployed.stderr


def test_a_crashing_container_is_reported_with_its_last_log_lines(cluster: Cluster) -> None:
    cluster.rollout.crashing[f"{IMAGE}:2.0"] = ["starting", "config: missing DATABASE_URL", "exit 1"]
    _, deployed = cluster.create(version="2.0")
    assert deployed is not None and deployed.returncode == 1
    said = "container echo keeps crashing (CrashLoopBackOff), last log lines: "
    assert said + "starting | config: missing DATABASE_URL | exit 1" in deployed.stderr
    logs = [r for r in cluster.api.requests if r.path.endswith("/log")]
    assert logs and all(r.path.startswith(f"/api/v1/namespaces/{ENV}/pods/") for r in logs)


def test_a_workload_over_the_quota_is_reported_as_quota_exceeded(cluster: Cluster, repo: Path) -> None:
    git(repo, "checkout", "-q", "-b", "greedy")
    deployment = repo / "deploy/echo/deployment.yaml"
    deployment.write_text(deployment.read_text().replace("requests: {cpu: 10m", "requests: {cpu: '8'"))
    git(repo, "commit", "-q", "-am", "ask for more than the quota")
    _, deployed = cluster.create(ref="greedy")
    assert deployed is not None and deployed.returncode == 1
    assert "deployment echo: quota exceeded: requests.cpu" in deployed.stderr


def test_cluster_scoped_objects_and_unlisted_kinds_are_refused_before_anything_is_applied(
    cluster: Cluster, repo: Path
) -> None:
    takeover = "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata:\n  name: takeover\nrules: []\n"
    kustomization = add_resource(repo, "role.yaml", takeover, "role")
    _, deployed = cluster.create()
    assert deployed is not None and deployed.returncode == 1
    # With RBAC in force the deployer may not even read a ClusterRole, so a real API server (and the
    # stand-in) refuses the server-side render before the script's own kind check gets to say so.
    assert "refused, nothing was applied: ClusterRole/takeover is cluster-scoped" in deployed.stderr or (
        "did not render" in deployed.stderr and "Forbidden" in deployed.stderr
    ), deployed.stderr
    assert cluster.api.objects("Deployment", ENV) == []
    assert "takeover" not in {r["metadata"]["name"] for r in cluster.api.objects("ClusterRole")}
    kustomization.write_text(kustomization.read_text().replace("  - role.yaml\n", ""))
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "no role")
    cluster.services |= recipe(repo, kinds="Deployment,Service")
    _, narrowed = cluster.create()
    assert narrowed is not None and narrowed.returncode == 1
    assert "is a kind the recipe may not deploy" in narrowed.stderr


@pytest.mark.parametrize(
    "params",
    [
        {"version": "1.0;rm -rf /"},
        {"version": "$(id)"},
        {"version": "1.0\nnewTag: evil"},
        {"version": "-oops"},
        {"ref": "../../etc"},
        {"ref": "--upload-pack=evil"},
        {"pr": "12 34"},
        {"version": "1.0", "pr": "1"},
    ],
)
def test_versions_and_refs_are_data_refused_by_the_script(cluster: Cluster, params: dict[str, str]) -> None:
    _, deployed = cluster.create(**params)
    assert deployed is not None and deployed.returncode == 1
    assert deployed.stderr.startswith("envbot: ") and "\n" not in deployed.stderr.strip()
    assert cluster.api.objects("Deployment", ENV) == []


def test_a_redeploy_changes_the_version_of_a_live_environment(cluster: Cluster) -> None:
    cluster.create(version="1.0")
    deployed = cluster.deploy(version="1.1")
    assert deployed.returncode == 0, deployed.output
    assert image_of(cluster.deployment()) == f"{IMAGE}:1.1"
    assert cluster.deployment()["status"]["observedGeneration"] == 2


def test_a_failed_deploy_can_be_redeployed(cluster: Cluster) -> None:
    cluster.rollout.missing.add(f"{IMAGE}:9.9")
    _, failed = cluster.create(version="9.9")
    assert failed is not None and failed.returncode == 1
    fixed = cluster.deploy(version="1.0")
    assert fixed.returncode == 0, fixed.output
    assert image_of(cluster.deployment()) == f"{IMAGE}:1.0"


def test_a_redeploy_refuses_what_is_not_this_installs_environment(cluster: Cluster) -> None:
    cluster.api.add_namespace(ENV, {"team": "payments"})
    deployed = cluster.deploy(version="1.0")
    assert deployed.returncode == 1
    assert "is not managed by this envbot install" in deployed.stderr
    assert cluster.api.objects("Deployment", ENV) == []


def test_without_a_host_pattern_the_url_is_read_back_from_the_ingress(cluster: Cluster) -> None:
    cluster.services |= {"echo.recipe.host": ""}
    _, deployed = cluster.create()
    assert deployed is not None and deployed.returncode == 0, deployed.output
    (ingress,) = cluster.api.objects("Ingress", ENV)
    assert ingress["spec"]["rules"][0]["host"] == "echo.example.invalid"  # the kustomization's own host
    assert cluster.output("url") == "https://echo.example.invalid"
    reads = [r for r in cluster.api.requests if r.method == "GET" and "/ingresses" in r.path]
    assert reads and all(f"/namespaces/{ENV}/" in r.path for r in reads)


def test_a_service_without_a_recipe_is_an_empty_namespace(cluster: Cluster) -> None:
    first, second = cluster.create(service="other")
    assert first.returncode == 0 and second is not None and second.returncode == 0, second.output if second else ""
    assert "has no deploy recipe" in second.stdout
    assert cluster.output("url") == ""


# --- helm: no helm binary exists on these machines (not on PyPI, not in Debian here), so a stand-in
# at the process boundary records its argv and values and renders like `helm template` would. What
# is NOT exercised: a real chart, a real OCI/HTTP chart repository, helm's own rendering.

FAKE_HELM = """#!/bin/bash
printf '%s\\n' "$@" >"$HELM_LOG/argv"
values=""
while (($#)); do [[ $1 == --values ]] && values=$2; shift; done
cp "$values" "$HELM_LOG/values.json"
tag=$(jq -r '.image.tag' "$values")
cat <<YAML
apiVersion: apps/v1
kind: Deployment
metadata: {name: echo}
spec:
  selector: {matchLabels: {app: echo}}
  template:
    metadata: {labels: {app: echo}}
    spec: {containers: [{name: echo, image: "hashicorp/http-echo:$tag"}]}
YAML
"""


@pytest.fixture
def helm(cluster: Cluster, tmp_path: Path) -> Path:
    bin_dir = tmp_path / "helm-bin"
    bin_dir.mkdir()
    (bin_dir / "helm").write_text(FAKE_HELM)
    (bin_dir / "helm").chmod(0o755)
    cluster.services = {"default.recipe.kind": "none"} | {
        f"echo.recipe.{key}": value
        for key, value in {
            "kind": "helm",
            "chart": "oci://ghcr.io/acme/charts/echo",
            "chart_repo": "",
            "chart_version": "0.3.1",
            "values": '{"replicaCount": 1, "image": {"repository": "hashicorp/http-echo"}}',
            "tag_value": "image.tag",
            "tag": "1.0",
            "images": "",
            "ref_tag": "",
            "pr_ref": "refs/pull/{pr}/head",
            "pr_tag": "pr-{pr}",
            "host": "{env}.preview.example.com",
            "timeout": "30",
            "kinds": "Deployment,Service",
        }.items()
    }
    cluster.path = f"{bin_dir}:"
    cluster.extra_env = {"HELM_LOG": str(bin_dir)}
    return bin_dir


def test_a_helm_recipe_renders_the_pinned_chart_with_the_tag_in_its_values(cluster: Cluster, helm: Path) -> None:
    _, deployed = cluster.create(version="2.1.0")
    assert deployed is not None and deployed.returncode == 0, deployed.output
    argv = (helm / "argv").read_text().split("\n")[:-1]
    assert argv[:5] == ["template", "echo", "oci://ghcr.io/acme/charts/echo", "--version", "0.3.1"]
    assert argv[5:7] == ["--namespace", ENV]
    values = json.loads((helm / "values.json").read_text())
    assert values["image"] == {"repository": "hashicorp/http-echo", "tag": "2.1.0"}
    assert values["envbot"] == {"host": f"{ENV}.preview.example.com"}
    assert image_of(cluster.deployment()) == f"{IMAGE}:2.1.0"
    assert cluster.output("version") == "2.1.0"


# --- access for the requester (off unless the bot's policy maps them) -------------------------------


def test_the_requester_gets_the_role_the_service_allows_in_their_environment(cluster: Cluster) -> None:
    cluster.services |= {"echo.access.roles": "view,edit"}
    first, _ = cluster.create(access_user="alice@example.com", access_role="edit")
    assert first.returncode == 0, first.output
    access = [b for b in cluster.api.objects("RoleBinding", ENV) if b["metadata"]["name"] == "envbot-access"]
    assert [(b["roleRef"]["name"], b["subjects"]) for b in access] == [
        ("edit", [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "alice@example.com"}])
    ]


def test_no_access_binding_unless_asked(cluster: Cluster) -> None:
    cluster.create()
    assert [b["metadata"]["name"] for b in cluster.api.objects("RoleBinding", ENV)] == ["envbot-deployer"]


@pytest.mark.parametrize(
    ("user", "role", "said"),
    [
        ("alice@example.com", "cluster-admin", "access_role must be one of: view"),
        ("alice@example.com", "edit", "access_role must be one of: view"),  # default.access.roles is view
        ("alice\nsystem:masters", "view", "access_user must be a Kubernetes user name"),
        ("", "view", "access_user must be a Kubernetes user name"),
    ],
)
def test_a_role_the_service_does_not_allow_or_a_malformed_user_is_refused_before_anything_is_created(
    cluster: Cluster, user: str, role: str, said: str
) -> None:
    first, deployed = cluster.create(access_user=user, access_role=role)
    assert first.returncode == 1 and deployed is None
    assert said in first.stderr
    assert cluster.api.namespace(ENV) is None
