"""The third recipe kind: the platform team's own WorkflowTemplate (docs/adr/0013).

End to end: the real Bolt app over signed HTTP submits to the fake `argo`, whose controller stand-in
(tests/fakes/argo_controller.py) runs every step for real: envbot's create and deploy steps, then
`templateRef: envbot-recipes/deploy` (installed by the test as an operator, through admission, with
the real kubectl), then envbot's `verify`. The example recipe (examples/echo-recipe) deploys the
example service from a local git repository with the real kubectl against the API stand-in and its
rollout controller. The admission policy is tried as a hostile platform template would.
"""

from __future__ import annotations

import copy
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import ROOT, HttpBot
from tests.execution_plane import ARGO_NAMESPACE, SETTINGS, documents
from tests.fakes.argo_controller import Controller
from tests.fakes.argo_handle import FakeArgo
from tests.fakes.cluster import account, install
from tests.fakes.kube_api import DEFAULT_USER, FakeKubeApi, kubectl_env, kubectl_path
from tests.fakes.rollout import RolloutController
from tests.test_deploy import echo_repo

IMAGE = "hashicorp/http-echo"
EXAMPLE = ROOT / "examples/echo-recipe/envbot-recipes.yaml"
PLACEHOLDER = ROOT / "argo/settings/envbot-recipes.yaml"
RECIPE = account("envbot-recipe")
POLICY = "envbot-workflow-references"


def kubectl(api: FakeKubeApi, folder: Path, *args: str, user: str = DEFAULT_USER, stdin: Any = None) -> Any:
    env = kubectl_env(api, folder / "kubectl" / user.replace(":", "_"), user=user)
    text = json.dumps(stdin) if isinstance(stdin, dict) else stdin
    return subprocess.run(
        [str(kubectl_path()), *args], env=env, input=text, capture_output=True, text=True, timeout=60, check=False
    )


def example(repo: Path, **env: str) -> dict[str, Any]:
    """The example recipe, pointed at the local repository (what an operator edits before installing)."""
    (doc,) = documents(EXAMPLE)
    settings = {"REPO": f"file://{repo}", "FOLDER": "deploy/echo", "POLL": "0.05", "TIMEOUT": "30"} | env
    for variable in doc["spec"]["templates"][0]["script"]["env"]:
        if variable["name"] in settings:
            variable["value"] = settings[variable["name"]]
    return dict(doc)


def reporting(urls: str, ready: str, reason: str) -> dict[str, Any]:
    """A recipe that deploys nothing and reports exactly these outputs (a buggy or hostile one)."""
    (doc,) = documents(PLACEHOLDER)
    script = doc["spec"]["templates"][0]["script"]
    script["env"] += [{"name": "URLS", "value": urls}, {"name": "READY", "value": ready}]
    script["env"] += [{"name": "REASON", "value": reason}]
    script["source"] = (
        'mkdir -p "$OUT"\nprintf "%s" "$URLS" >"$OUT/urls"\nprintf "%s" "$READY" >"$OUT/ready"\n'
        'printf "%s" "$REASON" >"$OUT/reason"\n'
    )
    return dict(doc)


class Plane:
    """envbot installed, Argo's controller and the rollout controller running, the bot over HTTP."""

    def __init__(self, api: FakeKubeApi, folder: Path, argo: FakeArgo, bot: HttpBot) -> None:
        self.api, self.folder, self.argo, self.bot = api, folder, argo, bot
        install(api)
        self.rollout = RolloutController(api).install()
        self.controller = Controller(argo, api, folder / "plane", SETTINGS, {"ENVBOT_POLL_SECONDS": "0.05"})

    def recipe(self, doc: dict[str, Any]) -> subprocess.CompletedProcess[str]:
        """Install the platform team's recipe as an operator: `kubectl replace`, through admission."""
        return kubectl(self.api, self.folder, "replace", "-f", "-", stdin=doc)

    def service(self, **recipe: str) -> None:
        """Give service `echo` these recipe settings (ConfigMap envbot-services, changed in place)."""
        patch = {"data": {f"echo.recipe.{k}": v for k, v in recipe.items()}}
        run = kubectl(
            self.api, self.folder, "-n", ARGO_NAMESPACE, "patch", "configmap", "envbot-services", "--type=merge",
            "-p", json.dumps(patch),
        )  # fmt: skip
        assert run.returncode == 0, run.stderr

    def ask(self, text: str) -> str:
        _, path = self.bot.command(text)
        return str(self.bot.reply(path)["text"])

    def run(self, text: str) -> dict[str, Any]:
        """A command that submits a workflow; returns the workflow once the controller ended it."""
        before = len(self.argo.workflows())
        reply = self.ask(text)
        assert len(self.argo.workflows()) == before + 1, reply
        self.controller.wait_until_all_ended()
        return self.argo.workflows()[-1]

    def nodes(self, workflow: dict[str, Any]) -> dict[str, dict[str, Any]]:
        return {n["displayName"]: n for n in workflow["status"]["nodes"].values() if n["type"] in ("Pod", "Skipped")}

    def image(self, env: str) -> str:
        (deployment,) = self.api.objects("Deployment", env)
        return str(deployment["spec"]["template"]["spec"]["containers"][0]["image"])


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return echo_repo(tmp_path / "repo")


@pytest.fixture
def plane(api: FakeKubeApi, tmp_path: Path, fake_argo: FakeArgo, http_bot: HttpBot) -> Iterator[Plane]:
    made = Plane(api, tmp_path, fake_argo, http_bot)
    made.service(kind="workflow", tag="1.0")
    with made.controller:
        yield made


def outputs(node: dict[str, Any]) -> dict[str, str]:
    return {p["name"]: p["value"] for p in (node.get("outputs") or {}).get("parameters", [])}


# --- end to end -------------------------------------------------------------------------------------


def test_a_create_deploys_through_the_platform_teams_template_and_reports_ready_and_the_url(
    plane: Plane, repo: Path
) -> None:
    assert plane.recipe(example(repo)).returncode == 0
    workflow = plane.run("create echo version=1.4.2 name=echo-wf")
    nodes = plane.nodes(workflow)
    said = {name: (node.get("message"), outputs(node)) for name, node in nodes.items()}
    assert workflow["status"]["phase"] == "Succeeded", said
    assert list(nodes) == ["create", "deploy", "recipe", "verify"]
    assert nodes["recipe"]["templateRef"] == {"name": "envbot-recipes", "template": "deploy"}
    assert outputs(nodes["recipe"]) == {"urls": "https://echo-wf.preview.example.com", "ready": "true", "reason": ""}
    assert outputs(nodes["verify"])["version"] == "1.4.2"
    assert outputs(nodes["verify"])["url"] == "https://echo-wf.preview.example.com"
    assert plane.image("echo-wf") == f"{IMAGE}:1.4.2"
    (deployment,) = plane.api.objects("Deployment", "echo-wf")
    assert {c["type"]: c["status"] for c in deployment["status"]["conditions"]}["Available"] == "True"
    # The recipe's pod ran as envbot-recipe, and wrote only inside the environment.
    writes = [r for r in plane.api.requests if r.user == RECIPE and r.method in ("POST", "PUT", "PATCH", "DELETE")]
    assert writes and all(r.path.startswith("/apis/apps/v1/namespaces/echo-wf/") or "/namespaces/echo-wf/" in r.path
                          for r in writes), [r.path for r in writes]  # fmt: skip
    status = plane.ask("status echo-wf")
    assert "Runs `1.4.2` at <https://echo-wf.preview.example.com>" in status, status


def test_deploy_redeploys_through_it(plane: Plane, repo: Path) -> None:
    plane.recipe(example(repo))
    plane.run("create echo version=1.0 name=echo-re")
    workflow = plane.run("deploy echo-re version=1.1")
    assert workflow["spec"]["workflowTemplateRef"]["name"] == "env-deploy-template"
    assert workflow["status"]["phase"] == "Succeeded", plane.nodes(workflow)
    assert list(plane.nodes(workflow)) == ["deploy", "recipe", "verify"]
    assert plane.image("echo-re") == f"{IMAGE}:1.1"
    assert "Runs `1.1` at <https://echo-re.preview.example.com>" in plane.ask("status echo-re")


def test_a_recipe_that_reports_not_ready_fails_the_environment_with_its_plain_reason(plane: Plane, repo: Path) -> None:
    plane.recipe(example(repo))
    plane.rollout.missing.add(f"{IMAGE}:9.9")
    workflow = plane.run("create echo version=9.9 name=echo-bad")
    assert workflow["status"]["phase"] == "Failed"
    reason = (
        f"envbot: echo is not ready: container echo: ImagePullBackOff ({IMAGE}:9.9) (WorkflowTemplate envbot-recipes)"
    )
    assert plane.nodes(workflow)["verify"]["message"] == reason
    status = plane.ask("status echo-bad")
    assert f"step `verify` failed: {reason}" in status and "Runs `" not in status, status
    # It can be mended like any other failed deploy.
    assert plane.run("deploy echo-bad version=1.0")["status"]["phase"] == "Succeeded"
    assert plane.ask("status echo-bad").startswith("*`echo-bad`*: live")


@pytest.mark.parametrize(
    ("urls", "ready", "reason", "said"),
    [
        ("https://ok.example.com", "yes", "", "reported no verdict envbot can use: ready must be true or false"),
        ("javascript:alert(1)", "true", "", "a URL envbot cannot use (https://<host> only): 'javascript:alert(1)'"),
        ("https://x.example.com/<!channel>", "true", "", "reported a URL envbot cannot use"),
        ("*", "true", "", "reported a URL envbot cannot use (https://<host> only): '*'"),
        ("", "", "", "ready must be true or false, not ''"),
        ("", "false", "db\nmigration `failed`\x07", "echo is not ready: db?migration `failed`? (WorkflowTemplate"),
        ("", "false", "", "echo is not ready: the recipe gave no reason"),
    ],
)  # fmt: skip
def test_junk_from_a_recipe_fails_closed_with_a_plain_reason(
    plane: Plane, urls: str, ready: str, reason: str, said: str
) -> None:
    assert plane.recipe(reporting(urls, ready, reason)).returncode == 0
    workflow = plane.run("create echo name=echo-junk")
    assert workflow["status"]["phase"] == "Failed"
    verify = plane.nodes(workflow)["verify"]
    assert verify["message"].startswith("envbot: ") and said in verify["message"], verify["message"]
    assert "url" not in outputs(verify) or outputs(verify)["url"] == ""
    assert "Runs `" not in plane.ask("status echo-junk")


def test_the_shipped_placeholder_says_no_recipe_is_installed(plane: Plane) -> None:
    workflow = plane.run("create echo name=echo-none")
    assert workflow["status"]["phase"] == "Failed"
    assert "no custom deploy recipe is installed for echo" in plane.nodes(workflow)["verify"]["message"]


def test_other_recipe_kinds_skip_the_platform_teams_template(plane: Plane) -> None:
    plane.service(kind="none")
    workflow = plane.run("create echo name=echo-empty")
    nodes = plane.nodes(workflow)
    assert workflow["status"]["phase"] == "Succeeded"
    assert [(n, nodes[n]["phase"]) for n in nodes] == [
        ("create", "Succeeded"),
        ("deploy", "Succeeded"),
        ("recipe", "Skipped"),
        ("verify", "Skipped"),
    ]
    assert not [r for r in plane.api.requests if r.user == RECIPE]


# --- the recipe's identity: only inside environments ---------------------------------------------


def test_the_recipe_account_acts_only_inside_environments(plane: Plane, repo: Path) -> None:
    plane.recipe(example(repo))
    plane.run("create echo name=echo-own")
    plane.api.add_namespace("payments", {"team": "payments"})

    def as_recipe(*args: str, stdin: Any = None) -> subprocess.CompletedProcess[str]:
        return kubectl(plane.api, plane.folder, *args, user=RECIPE, stdin=stdin)

    config = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}, "data": {"a": "b"}}
    assert as_recipe("-n", "echo-own", "create", "-f", "-", stdin=config).returncode == 0  # its environment
    for where in ("payments", ARGO_NAMESPACE, "kube-system"):
        run = as_recipe("-n", where, "create", "-f", "-", stdin=config)
        assert run.returncode != 0 and "forbidden" in run.stderr.lower(), (where, run.stderr)
    for attempt in (
        ("-n", ARGO_NAMESPACE, "get", "secret", "envbot-slack-notifier"),
        ("-n", ARGO_NAMESPACE, "get", "workflows"),
        ("-n", "echo-own", "delete", "configmap", "x"),
        ("get", "namespaces"),
        ("create", "namespace", "mine"),
        ("-n", "echo-own", "create", "rolebinding", "x", "--clusterrole=admin", f"--user={RECIPE}"),
    ):
        run = as_recipe(*attempt)
        assert run.returncode != 0 and "forbidden" in run.stderr.lower(), (attempt, run.stderr)
    workflow = {"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow", "metadata": {"name": "w"}}
    workflow["spec"] = {"workflowTemplateRef": {"name": "env-destroy-template"}}
    run = as_recipe("-n", ARGO_NAMESPACE, "create", "-f", "-", stdin=workflow)
    assert run.returncode != 0 and "forbidden" in run.stderr.lower()


HOSTILE_SCRIPT = """mkdir -p "$OUT"
printf 'apiVersion: v1\\nkind: ConfigMap\\nmetadata: {name: planted}\\n' >"$OUT/cm.yaml"
for where in payments envbot-workflows kube-system; do kubectl -n "$where" create -f "$OUT/cm.yaml" || true; done
kubectl -n envbot-workflows get secret envbot-slack-notifier -o json >"$OUT/token" || true
kubectl create namespace planted || true
printf false >"$OUT/ready"
printf 'tried to leave the environment' >"$OUT/reason"
"""


def test_a_hostile_recipe_that_passes_admission_still_cannot_leave_the_environment(plane: Plane) -> None:
    plane.api.add_namespace("payments", {"team": "payments"})
    doc = reporting("", "false", "")
    doc["spec"]["templates"][0]["script"]["source"] = HOSTILE_SCRIPT
    assert plane.recipe(doc).returncode == 0  # a legitimate shape: admission cannot read scripts
    workflow = plane.run("create echo name=echo-evil")
    assert workflow["status"]["phase"] == "Failed"
    assert "tried to leave the environment" in plane.nodes(workflow)["verify"]["message"]
    for where in ("payments", ARGO_NAMESPACE, "kube-system"):
        assert "planted" not in {c["metadata"]["name"] for c in plane.api.objects("ConfigMap", where)}
    assert plane.api.namespace("planted") is None
    tried = [r for r in plane.api.requests if r.user == RECIPE and plane.api.attributes(r.method, r.path, r.query)]
    assert len(tried) == 5 and all(r.status == 403 for r in tried), [(r.method, r.path, r.status) for r in tried]


# --- admission: what may be installed as envbot-recipes ------------------------------------------


def _hostile(change: Any) -> dict[str, Any]:
    (doc,) = documents(PLACEHOLDER)
    doc = copy.deepcopy(doc)
    change(doc)
    return dict(doc)


def _deploy(doc: dict[str, Any]) -> Any:
    return doc["spec"]["templates"][0]


def _helper(**fields: Any) -> Any:
    def add(doc: dict[str, Any]) -> None:
        doc["spec"]["templates"].append({"name": "helper", "serviceAccountName": "envbot-recipe"} | fields)

    return add


REF = {"name": "env-create-template", "template": "notify"}
HOSTILE = {
    "reaches notify by templateRef": _helper(
        steps=[[{"name": "n", "templateRef": {"name": "env-create-template", "template": "notify"}}]]
    ),
    "reaches a cluster template": _helper(
        steps=[[{"name": "n", "templateRef": {"name": "anything", "template": "x", "clusterScope": True}}]]
    ),
    "runs as an executor": lambda d: _deploy(d).update(serviceAccountName="envbot-create"),
    "runs as the notifier": lambda d: _deploy(d).update(serviceAccountName="envbot-notify"),
    "runs as the workflow's account (none named)": lambda d: _deploy(d).pop("serviceAccountName"),
    "a helper without an account": lambda d: d["spec"]["templates"].append(
        {"name": "helper", "script": {"image": "alpine", "source": "id"}}
    ),
    "podSpecPatch": lambda d: _deploy(d).update(podSpecPatch='{"serviceAccountName": "envbot-create"}'),
    "an executor account": lambda d: _deploy(d).update(executor={"serviceAccountName": "envbot-notify"}),
    "automountServiceAccountToken": lambda d: _deploy(d).update(automountServiceAccountToken=True),
    "mounts the Slack token": lambda d: _deploy(d)["volumes"].append(
        {"name": "t", "secret": {"secretName": "envbot-slack-notifier"}}
    ),
    "the token through a projected volume": lambda d: _deploy(d)["volumes"].append(
        {"name": "t", "projected": {"sources": [{"secret": {"name": "envbot-slack-notifier"}}]}}
    ),
    "the token in an env variable": lambda d: _deploy(d)["script"]["env"].append(
        {"name": "T", "valueFrom": {"secretKeyRef": {"name": "envbot-slack-notifier", "key": "bot-token"}}}
    ),
    "an inline template": _helper(steps=[[{"name": "i", "inline": {"container": {"image": "alpine"}}}]]),
    "a lifecycle hook": _helper(steps=[[{"name": "h", "template": "deploy", "hooks": {"exit": {"templateRef": REF}}}]]),
    "a dag reaching another template": _helper(
        dag={"tasks": [{"name": "t", "templateRef": {"name": "env-destroy-template", "template": "main"}}]}
    ),
    "envbot's mutex": lambda d: _deploy(d).update(synchronization={"mutexes": [{"name": "envbot-env-x"}]}),
    "an output that passes for envbot's url": lambda d: _deploy(d)["outputs"]["parameters"].append(
        {"name": "url", "valueFrom": {"path": "/tmp/u"}}
    ),
    "a global output": lambda d: _deploy(d)["outputs"]["parameters"][0].update(globalName="version"),
    "workflow-level fields": lambda d: d["spec"].update(serviceAccountName="envbot-create", onExit="deploy"),
    "no contract outputs": lambda d: _deploy(d)["outputs"]["parameters"].pop(1),
    "an http template (runs in the agent pod)": _helper(http={"url": "https://example.com"}),
}


@pytest.mark.parametrize("attack", list(HOSTILE))
def test_a_hostile_recipe_template_is_refused(api: FakeKubeApi, tmp_path: Path, attack: str) -> None:
    install(api)
    doc = _hostile(HOSTILE[attack])
    run = kubectl(api, tmp_path, "replace", "-f", "-", stdin=doc)
    assert run.returncode != 0 and f"ValidatingAdmissionPolicy '{POLICY}'" in run.stderr, run.stderr
    stored = [t for t in api.objects("WorkflowTemplate", ARGO_NAMESPACE) if t["metadata"]["name"] == "envbot-recipes"]
    assert stored and stored[0]["spec"] == documents(PLACEHOLDER)[0]["spec"]


def test_only_that_one_extra_template_name_is_admitted(api: FakeKubeApi, tmp_path: Path) -> None:
    install(api)
    (doc,) = documents(PLACEHOLDER)
    doc["metadata"]["name"] = "my-recipes"
    run = kubectl(api, tmp_path, "create", "-f", "-", stdin=doc)
    assert run.returncode != 0 and "only envbot's own WorkflowTemplates" in run.stderr


def test_the_placeholder_and_the_example_are_admitted(api: FakeKubeApi, tmp_path: Path, repo: Path) -> None:
    install(api)
    assert kubectl(api, tmp_path, "replace", "-f", "-", stdin=documents(PLACEHOLDER)[0]).returncode == 0
    run = kubectl(api, tmp_path, "replace", "-f", "-", stdin=example(repo))
    assert run.returncode == 0, run.stderr
    assert yaml.safe_load(EXAMPLE.read_text())["metadata"]["name"] == "envbot-recipes"
