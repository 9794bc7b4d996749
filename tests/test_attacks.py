"""Issue 14, "What was seen", tried as an attacker would: the real kubectl against the API stand-in with
envbot installed (tests/fakes/cluster.py), RBAC and the project's admission policies judging every
request for the identity behind its token.

Where an attack needs rights envbot's manifests never grant (a CI account allowed to create Pods
or Workflows in envbot's namespace), the test grants them first: RBAC is often wider than it should
be, and the policies must hold anyway.
"""

from __future__ import annotations

import base64
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.execution_plane import (
    ARGO_NAMESPACE,
    DESTROY,
    REAPER,
    SETTINGS,
    Run,
    render,
    run_script,
    service_account,
    template,
)
from tests.execution_plane import (
    NOTIFIER as NOTIFIER_T,
)
from tests.fakes.cluster import BLUE_NAMESPACE, BOT, CI, CONTROLLER, account, grant, install, install_blue
from tests.fakes.kube_api import DEFAULT_USER, FakeKubeApi, kubectl_env, kubectl_path
from tests.fakes.slack_api import FakeSlack
from tests.test_notices import Plane, create_params

NOTIFIER = account("envbot-notify")
ALL = ["get", "list", "watch", "create", "update", "patch", "delete"]


class Cluster:
    def __init__(self, api: FakeKubeApi, folder: Path) -> None:
        self.api, self.folder = api, folder
        install(api)

    def kubectl(self, user: str, *args: str, stdin: Any = None) -> subprocess.CompletedProcess[str]:
        env = kubectl_env(self.api, self.folder / user.replace(":", "_"), user=user)
        text = json.dumps(stdin) if isinstance(stdin, dict) else stdin
        return subprocess.run(
            [str(kubectl_path()), *args], env=env, input=text, capture_output=True, text=True, timeout=60, check=False
        )

    def create(self, user: str, obj: dict[str, Any]) -> subprocess.CompletedProcess[str]:
        return self.kubectl(user, "create", "-f", "-", "-o", "name", stdin=obj)

    def workflows(self) -> list[str]:
        return [w["metadata"]["name"] for w in self.api.objects("Workflow", ARGO_NAMESPACE)]


@pytest.fixture
def cluster(api: FakeKubeApi, tmp_path: Path) -> Cluster:
    return Cluster(api, tmp_path)


def denied(run: subprocess.CompletedProcess[str], policy: str) -> bool:
    return run.returncode != 0 and f"ValidatingAdmissionPolicy '{policy}'" in run.stderr


def workflow(spec: dict[str, Any], name: str = "ci-build") -> dict[str, Any]:
    meta = {"name": name, "namespace": ARGO_NAMESPACE}
    return {"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow", "metadata": meta, "spec": spec}


NOTIFY = {"name": "env-create-template", "template": "notify"}
STEP = {"name": "n", "templateRef": NOTIFY}
# Every place a templateRef can hide in a Workflow (seen 1: the old policy only read the top level).
FOREIGN_SHAPES: dict[str, dict[str, Any]] = {
    "steps": {"entrypoint": "main", "templates": [{"name": "main", "steps": [[STEP]]}]},
    "nested steps in an inline template": {
        "entrypoint": "main",
        "templates": [{"name": "main", "steps": [[{"name": "outer", "inline": {"steps": [[STEP]]}}]]}],
    },
    "dag": {"entrypoint": "main", "templates": [{"name": "main", "dag": {"tasks": [STEP]}}]},
    "workflow hooks": {
        "entrypoint": "main",
        "templates": [{"name": "main", "container": {"image": "alpine"}}],
        "hooks": {"exit": {"templateRef": NOTIFY}},
    },
    "step hooks": {
        "entrypoint": "main",
        "templates": [
            {"name": "main", "steps": [[{"name": "s", "template": "noop", "hooks": {"exit": STEP}}]]},
            {"name": "noop", "container": {"image": "alpine"}},
        ],
    },
    "onExit": {
        "entrypoint": "main",
        "onExit": "bye",
        "templates": [
            {"name": "main", "container": {"image": "alpine"}},
            {"name": "bye", "steps": [[STEP]]},
        ],
    },
    "beside a bare reference": {"workflowTemplateRef": {"name": "env-create-template"}, "templates": [
        {"name": "create", "steps": [[STEP]]}]},
}  # fmt: skip


@pytest.mark.parametrize("shape", list(FOREIGN_SHAPES))
def test_seen_1_no_foreign_workflow_reaches_the_notifier_template(cluster: Cluster, shape: str) -> None:
    grant(cluster.api, CI, [{"apiGroups": ["argoproj.io"], "resources": ["workflows"], "verbs": ALL}], ARGO_NAMESPACE)
    run = cluster.create(CI, workflow(FOREIGN_SHAPES[shape]))
    assert denied(run, "envbot-workflow-references"), run.stderr
    assert cluster.workflows() == []
    # The bot's own account cannot do it either.
    run = cluster.create(BOT, workflow(FOREIGN_SHAPES[shape]))
    assert denied(run, "envbot-workflow-references"), run.stderr
    assert cluster.workflows() == []


def notifier_pod(account_name: str = "envbot-notify") -> dict[str, Any]:
    """A pod like the one Argo creates for the create template's exit handler, with the token mounted."""
    notify = next(t for t in template("env-create-template")["spec"]["templates"] if t["name"] == "notify")
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "env-create-template-x-notify-1", "namespace": ARGO_NAMESPACE},
        "spec": {
            "serviceAccountName": account_name,
            "containers": [{"name": "main", "image": notify["script"]["image"], "command": ["sh"]}],
            "volumes": notify["volumes"],
        },
    }


def test_seen_2_only_argos_controller_starts_pods_as_envbots_accounts(cluster: Cluster) -> None:
    # A CI account that may create Pods everywhere (a common CI grant).
    grant(cluster.api, CI, [{"apiGroups": [""], "resources": ["pods"], "verbs": ALL}])
    for name in ("envbot-notify", "envbot-reaper", "envbot-create", "default"):
        run = cluster.create(CI, notifier_pod(name))
        assert denied(run, "envbot-pod-authors"), (name, run.stderr)
    # A Deployment's pods come from the ReplicaSet controller: not Argo's, so refused too.
    replicasets = "system:serviceaccount:kube-system:replicaset-controller"
    grant(cluster.api, replicasets, [{"apiGroups": [""], "resources": ["pods"], "verbs": ALL}])
    assert denied(cluster.create(replicasets, notifier_pod()), "envbot-pod-authors")
    assert cluster.api.objects("Pod") == []
    # Argo's controller starting the exit handler's pod is what the policies let through.
    run = cluster.create(CONTROLLER, notifier_pod())
    assert run.returncode == 0, run.stderr
    # But not a pod that mounts the token under any other account, even from the controller.
    stolen = notifier_pod("envbot-reaper") | {"metadata": {"name": "x", "namespace": ARGO_NAMESPACE}}
    assert denied(cluster.create(CONTROLLER, stolen), "envbot-slack-token")


def submission(template_name: str, parameters: dict[str, str], **extra: Any) -> dict[str, Any]:
    """What `argo submit --from workflowtemplate/<t> -p ... -l ...` creates."""
    labels = {"workflows.argoproj.io/workflow-template": template_name, "app.kubernetes.io/managed-by": "envbot"}
    obj = workflow(
        {
            "workflowTemplateRef": {"name": template_name},
            "arguments": {"parameters": [{"name": k, "value": v} for k, v in parameters.items()]},
        },
        name=f"{template_name}-x7k2p",
    )
    obj["metadata"]["labels"] = labels
    return obj | extra


CREATE = {"env_name": "checkout-x", "service": "checkout", "expires_at": "2026-12-01T00:00:00Z"}


def test_seen_3_only_the_controller_writes_how_a_workflow_ended(cluster: Cluster) -> None:
    forged = submission("env-destroy-template", {"env_name": "prod-db-1"}, status={"phase": "Succeeded"})
    forged["metadata"]["labels"]["workflows.argoproj.io/completed"] = "true"
    assert denied(cluster.create(BOT, forged), "envbot-workflow-references")
    forged.pop("status")
    assert denied(cluster.create(BOT, forged), "envbot-workflow-references")  # the label alone
    assert cluster.workflows() == []

    ok = cluster.create(BOT, submission("env-create-template", CREATE))
    assert ok.returncode == 0, ok.stderr
    name = ok.stdout.strip().rsplit("/", 1)[1]
    grant(cluster.api, CI, [{"apiGroups": ["argoproj.io"], "resources": ["workflows"], "verbs": ALL}], ARGO_NAMESPACE)
    status = json.dumps({"status": {"phase": "Failed", "message": "<!channel> log in at https://evil.example"}})
    patch = cluster.kubectl(CI, "-n", ARGO_NAMESPACE, "patch", "workflow", name, "--type=merge", "-p", status)
    assert denied(patch, "envbot-workflow-references"), patch.stderr
    label = cluster.kubectl(CI, "-n", ARGO_NAMESPACE, "label", "workflow", name, "workflows.argoproj.io/completed=true")
    assert denied(label, "envbot-workflow-references"), label.stderr
    # The notifier writes by PUT (RBAC: update); a PUT of the workflow with a status is refused too.
    read = cluster.kubectl(NOTIFIER, "-n", ARGO_NAMESPACE, "get", "workflow", name, "-o", "json")
    forged = json.loads(read.stdout) | {"status": {"phase": "Failed"}}
    forged["metadata"]["labels"]["workflows.argoproj.io/completed"] = "true"
    replaced = cluster.kubectl(NOTIFIER, "-n", ARGO_NAMESPACE, "replace", "-f", "-", stdin=forged)
    assert denied(replaced, "envbot-workflow-references"), replaced.stderr
    (stored,) = cluster.api.objects("Workflow", ARGO_NAMESPACE)
    assert "status" not in stored and "workflows.argoproj.io/completed" not in stored["metadata"]["labels"]
    done = cluster.kubectl(CONTROLLER, "-n", ARGO_NAMESPACE, "patch", "workflow", name, "--type=merge", "-p", status)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize(
    ("template_name", "parameters"),
    [
        ("env-create-template", CREATE | {"pod_security_level": "privileged"}),
        ("env-create-template", CREATE | {"egress_blocked_cidrs": ""}),
        ("env-create-template", CREATE | {"quota_requests_cpu": "512"}),
        ("env-create-template", CREATE | {"expires_at": "2099-01-01T00:00:00Z", "max_ttl": "876000h"}),
        ("env-reaper-template", {"max_age_hours": "1"}),
        ("env-notifier-template", {}),
    ],
)
def test_seen_4_the_bots_account_passes_intent_only(
    cluster: Cluster, template_name: str, parameters: dict[str, str]
) -> None:
    run = cluster.create(BOT, submission(template_name, parameters))
    assert denied(run, "envbot-workflow-references"), run.stderr
    assert cluster.workflows() == []


def test_seen_4_nobody_schedules_their_own_reaper(cluster: Cluster) -> None:
    rules = [{"apiGroups": ["argoproj.io"], "resources": ["cronworkflows", "workflows"], "verbs": ALL}]
    grant(cluster.api, CI, rules, ARGO_NAMESPACE)
    cron = {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "CronWorkflow",
        "metadata": {"name": "reap-often", "namespace": ARGO_NAMESPACE},
        "spec": {"schedules": ["* * * * *"], "workflowSpec": {"workflowTemplateRef": {"name": "env-reaper-template"}}},
    }
    assert denied(cluster.create(CI, cron), "envbot-workflow-references")
    # Nor does a reaper run start except from envbot's own CronWorkflow, by Argo's controller.
    assert denied(cluster.create(CI, submission("env-reaper-template", {})), "envbot-workflow-references")
    run = cluster.create(CONTROLLER, submission("env-reaper-template", {}))
    assert run.returncode == 0, run.stderr


LEFTOVERS = (
    # What an earlier release installed and `kubectl apply -k` never pruned (seen 5).
    {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": "envbot-environments"},
        "rules": [
            {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["get", "list", "create", "patch", "delete"]}
        ],
    },
    {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": "envbot-environments"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "envbot-environments"},
        "subjects": [
            {"kind": "ServiceAccount", "name": "envbot-executor", "namespace": "argo"},
            {"kind": "ServiceAccount", "name": "envbot-reaper", "namespace": "argo"},
        ],
    },
)


@pytest.mark.parametrize(
    "retired", ["system:serviceaccount:argo:envbot-executor", "system:serviceaccount:argo:envbot-reaper"]
)
def test_seen_5_retired_accounts_left_behind_cannot_touch_environments(cluster: Cluster, retired: str) -> None:
    for doc in LEFTOVERS:
        cluster.api.put(doc)
    labels = {
        "app.kubernetes.io/managed-by": "envbot",
        "envbot.dev/instance": "envbot",
        "envbot.dev/env": "checkout-x",
    }
    cluster.api.add_namespace("checkout-x", labels, {"envbot.dev/expires-at": "2020-01-01T00:00:00Z"})
    run = cluster.kubectl(retired, "delete", "namespace", "checkout-x", "--wait=false")
    assert denied(run, "envbot-namespace-ownership") and "retired envbot account" in run.stderr, run.stderr
    run = cluster.kubectl(retired, "create", "namespace", "anything")
    assert denied(run, "envbot-namespace-ownership"), run.stderr
    ns = cluster.api.namespace("checkout-x")
    assert ns is not None and not ns["metadata"].get("deletionTimestamp")


# --- guards that check themselves (seen 8) ------------------------------------------------------------


def environment(api: FakeKubeApi, name: str, expires: str = "2020-01-01T00:00:00Z", **labels: str) -> None:
    owned = {
        "app.kubernetes.io/managed-by": "envbot",
        "envbot.dev/instance": "envbot",
        "envbot.dev/env": name,
        "envbot.dev/requested-by": "U111AAA",
    }
    api.add_namespace(name, owned | labels, {"envbot.dev/expires-at": expires, "janitor/expires": expires})


def run_as_its_account(cluster: Cluster, name: str, **params: str) -> Run:
    user = service_account(name)
    env = kubectl_env(cluster.api, cluster.folder / "home" / user.rsplit(":", 1)[1], user=user)
    settings = SETTINGS | {"reaper_dry_run": "false"}
    return run_script(render(name, params, settings), cluster.folder / "pod", env)


def writes(api: FakeKubeApi) -> list[tuple[str, str]]:
    return [(r.method, r.path) for r in api.requests if r.method in ("POST", "PUT", "PATCH", "DELETE")]


BREAKS = {
    "a deleted binding": ("delete", "validatingadmissionpolicybinding", "{name}"),
    "a deleted policy": ("delete", "validatingadmissionpolicy", "{name}"),
    "a binding that only warns": (
        "patch", "validatingadmissionpolicybinding", "{name}", "--type=merge", "-p",
        '{"spec": {"validationActions": ["Warn"]}}',
    ),
    "a policy that fails open": (
        "patch", "validatingadmissionpolicy", "{name}", "--type=merge", "-p", '{"spec": {"failurePolicy": "Ignore"}}'
    ),
}  # fmt: skip


@pytest.mark.parametrize("guard", ["envbot-namespace-ownership", "envbot-workflow-references", "envbot-pod-authors"])
@pytest.mark.parametrize("broken", list(BREAKS))
def test_seen_8_without_their_guards_the_reaper_destroy_and_notifier_do_nothing(
    cluster: Cluster, guard: str, broken: str
) -> None:
    environment(cluster.api, "old-env")
    # A namespace labelled by hand as envbot's: without the policies, labels alone would be ownership.
    environment(cluster.api, "payments")
    admin = cluster.kubectl(DEFAULT_USER, *(arg.replace("{name}", guard) for arg in BREAKS[broken]))
    assert admin.returncode == 0, admin.stderr
    before = len(writes(cluster.api))
    for name, params in ((REAPER, {}), (DESTROY, {"env_name": "payments"}), (NOTIFIER_T, {})):
        run = run_as_its_account(cluster, name, **params)
        assert run.returncode != 0, (name, run.output)
        assert "admission guards are not in force" in run.stderr and guard in run.stderr, (name, run.stderr)
    assert writes(cluster.api)[before:] == []
    assert cluster.api.namespace("payments") is not None and cluster.api.namespace("old-env") is not None
    assert not cluster.api.namespace("payments")["metadata"].get("deletionTimestamp")  # type: ignore[index]


def test_seen_8_with_every_guard_in_force_the_reaper_deletes(cluster: Cluster) -> None:
    environment(cluster.api, "old-env")
    run = run_as_its_account(cluster, REAPER)
    assert run.returncode == 0, run.output
    assert cluster.api.namespace("old-env")["metadata"].get("deletionTimestamp")  # type: ignore[index]


def test_seen_8_no_install_reaps_or_destroys_an_installs_own_namespace(cluster: Cluster) -> None:
    install_blue(cluster.api)
    # The second install's namespace, labelled as one of this install's expired environments.
    environment(cluster.api, BLUE_NAMESPACE, **{"app.kubernetes.io/part-of": "envbot"})
    assert run_as_its_account(cluster, DESTROY, env_name=BLUE_NAMESPACE).returncode != 0
    run_as_its_account(cluster, REAPER)
    blue = cluster.api.namespace(BLUE_NAMESPACE)
    assert blue is not None and not blue["metadata"].get("deletionTimestamp")
    # And admission refuses the executors, whatever the scripts would do.
    destroyer = service_account(DESTROY)
    run = cluster.kubectl(destroyer, "delete", "namespace", BLUE_NAMESPACE, "--wait=false")
    assert denied(run, "envbot-namespace-ownership"), run.stderr
    # Nor may an environment be created under the name of an install's namespace.
    create = run_as_its_account(
        cluster, "env-create-template", env_name="envbot", service="checkout", expires_at="2999-01-01T00:00:00Z"
    )
    assert create.returncode != 0 and "reserved" in create.stderr


def test_nobody_but_an_admin_reads_the_notice_secret(cluster: Cluster) -> None:
    cluster.api.put(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "envbot-slack-notifier", "namespace": ARGO_NAMESPACE},
            "data": {"bot-token": "eG94Yi10ZXN0"},
        }
    )
    executors = [account(f"envbot-{name}") for name in ("create", "destroy", "extend", "reaper", "notify")]
    for who in (BOT, CI, CONTROLLER, *executors):
        run = cluster.kubectl(who, "-n", ARGO_NAMESPACE, "get", "secret", "envbot-slack-notifier", "-o", "json")
        assert run.returncode != 0 and "Forbidden" in run.stderr and "bot-token" not in run.stdout, who
        listing = cluster.kubectl(who, "-n", ARGO_NAMESPACE, "get", "secrets", "-o", "json")
        assert listing.returncode != 0 and "Forbidden" in listing.stderr, who


# --- where the token is sent (seen 8) -----------------------------------------------------------------

OPERATOR = "system:serviceaccount:platform:settings-editor"  # may switch settings, not touch the Secret


def kubelet_mounts(api: FakeKubeApi, plane: Plane) -> dict[str, str]:
    """What the notice pods get from the stand-in, as the kubelet gives it: ConfigMap envbot-settings'
    data, and the Secret's keys as files (a key that is missing is not mounted: the volume is optional)."""
    (secret,) = [s for s in api.objects("Secret", ARGO_NAMESPACE) if s["metadata"]["name"] == "envbot-slack-notifier"]
    data = {k: base64.b64decode(v).decode() for k, v in secret.get("data", {}).items()}
    plane.token_file.write_text(data["bot-token"])
    plane.api_url_file.unlink(missing_ok=True)
    if "slack_api_url" in data:
        plane.api_url_file.write_text(data["slack_api_url"])
    (settings,) = [c for c in api.objects("ConfigMap", ARGO_NAMESPACE) if c["metadata"]["name"] == "envbot-settings"]
    return dict(settings["data"])


def test_seen_8_whoever_may_edit_the_settings_cannot_redirect_the_token(api: FakeKubeApi, tmp_path: Path) -> None:
    slack, evil = FakeSlack().start(), FakeSlack().start()
    try:
        plane = Plane(api, slack, tmp_path)  # envbot installed; the notifier's pods as Argo runs them
        cluster = Cluster.__new__(Cluster)
        cluster.api, cluster.folder = api, tmp_path / "kubectl"
        # The admin stores the token, and (the stand-in's allowance) the URL it goes to, in the Secret.
        secret_data = {"bot-token": plane.token, "slack_api_url": slack.api_url}
        api.put(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": "envbot-slack-notifier", "namespace": ARGO_NAMESPACE},
                "data": {k: base64.b64encode(v.encode()).decode() for k, v in secret_data.items()},
            }
        )
        settings_only = {
            "apiGroups": [""],
            "resources": ["configmaps"],
            "resourceNames": ["envbot-settings"],
            "verbs": ["get", "patch", "update"],
        }
        grant(api, OPERATOR, [settings_only], namespace=ARGO_NAMESPACE)

        # The operator points slack_api_url at their own server: the ConfigMap takes it ...
        change = {"data": {"notices": "on", "slack_api_url": evil.api_url}}
        edited = cluster.kubectl(
            OPERATOR,
            "-n",
            ARGO_NAMESPACE,
            "patch",
            "configmap",
            "envbot-settings",
            "--type=merge",
            "-p",
            json.dumps(change),
        )
        assert edited.returncode == 0, edited.stderr
        # ... but the Secret, where the URL is read from, is not theirs to read or change.
        for args in (
            (
                "patch",
                "secret",
                "envbot-slack-notifier",
                "--type=merge",
                "-p",
                json.dumps({"stringData": {"slack_api_url": evil.api_url}}),
            ),
            ("get", "secret", "envbot-slack-notifier", "-o", "json"),
        ):
            run = cluster.kubectl(OPERATOR, "-n", ARGO_NAMESPACE, *args)
            assert run.returncode != 0 and "Forbidden" in run.stderr, run.stderr

        # A workflow ends; its exit handler and the notifier run with what the cluster now holds.
        workflow = plane.workflow("env-create-template", create_params(plane))
        settings = kubelet_mounts(api, plane)
        assert settings["slack_api_url"] == evil.api_url
        exit_run = plane.exit_handler("env-create-template", workflow, settings=settings)
        plane.end(workflow, ago=600)
        sweep = plane.sweep(settings=settings)
        refused = "setting 'slack_api_url' in ConfigMap envbot-settings is refused"
        assert refused in exit_run.stderr and refused in sweep.stderr and sweep.returncode != 0
        assert evil.received == [] and slack.received == []  # the token went nowhere
        assert all(plane.token not in json.dumps(call) for call in plane.curl_calls())

        # The admin removes the setting: notices go where the Secret says, and still never to the operator.
        fixed = cluster.kubectl(
            DEFAULT_USER, "-n", ARGO_NAMESPACE, "patch", "configmap", "envbot-settings", "--type=json",
            "-p", '[{"op": "remove", "path": "/data/slack_api_url"}]',
        )  # fmt: skip
        assert fixed.returncode == 0, fixed.stderr
        assert plane.sweep(settings=kubelet_mounts(api, plane)).returncode == 0
        assert len(slack.posted()) == 1 and evil.received == []
    finally:
        slack.stop()
        evil.stop()
