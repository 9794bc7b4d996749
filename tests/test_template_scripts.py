"""The scripts inside argo/ run under test: rendered the way Argo substitutes parameters (raw text),
run with bash and a stand-in kubectl on PATH that records calls and answers from a small state."""

import json
import os
import re
import stat
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from tests.conftest import ROOT

LIB = yaml.safe_load((ROOT / "argo/config/envbot-lib.yaml").read_text())["data"]["lib.sh"]
OWNED = {"app.kubernetes.io/managed-by": "envbot"}
_VARIABLE = re.compile(r"\{\{\s*(workflow\.parameters\.[-\w]+|workflow\.namespace)\s*\}\}")


def load(path: str) -> dict[str, Any]:
    return yaml.safe_load((ROOT / path).read_text())


def workflow_spec(doc: dict[str, Any]) -> dict[str, Any]:
    return doc["spec"]["workflowSpec"] if doc["kind"] == "CronWorkflow" else doc["spec"]


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str
    kubectl_calls: list[list[str]]
    state: dict[str, Any]


class Cluster:
    """A fake cluster state plus a stand-in kubectl on PATH."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.state_file = folder / "state.json"
        self.calls_file = folder / "kubectl-calls.jsonl"
        self.lib = folder / "lib.sh"
        self.lib.write_text(LIB)
        bin_dir = folder / "bin"
        bin_dir.mkdir()
        kubectl = bin_dir / "kubectl"
        fake = ROOT / "tests" / "fakes" / "fake_kubectl.py"
        kubectl.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{fake}" "$@"\n')
        kubectl.chmod(kubectl.stat().st_mode | stat.S_IXUSR)
        self.path = f"{bin_dir}:{os.environ['PATH']}"
        self.save({"namespaces": {}, "objects": []})

    def save(self, state: dict[str, Any]) -> None:
        self.state_file.write_text(json.dumps(state))

    def add_namespace(self, name: str, labels: dict[str, str] | None = None, **annotations: str) -> None:
        state = json.loads(self.state_file.read_text())
        state["namespaces"][name] = {"labels": labels or {}, "annotations": annotations}
        self.save(state)

    def run(self, manifest: str, **params: str) -> Run:
        """Render the template's script as Argo would, then run it like the script container."""
        spec = workflow_spec(load(manifest))
        values = {p["name"]: p.get("value") for p in spec["arguments"]["parameters"]}
        values |= params

        def substitute(text: str) -> str:
            def one(match: re.Match[str]) -> str:
                key = match.group(1)
                if key == "workflow.namespace":
                    return "argo"
                value = values[key.removeprefix("workflow.parameters.")]
                assert value is not None, f"required parameter {key} not given"
                return value

            return _VARIABLE.sub(one, text)

        (template,) = [t for t in spec["templates"] if t["name"] == spec["entrypoint"]]
        script = template["script"]
        env = {e["name"]: substitute(e["value"]) for e in script["env"]}
        env |= {
            "ENVBOT_LIB": str(self.lib),
            "PATH": self.path,
            "KUBECTL_STATE": str(self.state_file),
            "KUBECTL_CALLS": str(self.calls_file),
        }  # the lib is mounted from the ConfigMap in-cluster
        source = self.folder / "script.sh"
        source.write_text(substitute(script["source"]))
        self.calls_file.write_text("")
        result = subprocess.run([*script["command"], str(source)], env=env, capture_output=True, text=True, timeout=60)
        calls = [json.loads(line) for line in self.calls_file.read_text().splitlines()]
        return Run(result.returncode, result.stdout, result.stderr, calls, json.loads(self.state_file.read_text()))


CREATE = "argo/workflowtemplates/env-create-template.yaml"
DESTROY = "argo/workflowtemplates/env-destroy-template.yaml"
EXTEND = "argo/workflowtemplates/env-extend-template.yaml"
REAPER = "argo/cronworkflows/env-reaper.yaml"
GOOD = {
    "env_name": "checkout-demo",
    "service": "checkout",
    "expires_at": "2026-11-28T15:00:00Z",
    "requested_by": "U111AAA",
    "slack_channel": "C111AAA",
}


@pytest.fixture
def cluster(tmp_path: Path) -> Cluster:
    return Cluster(tmp_path)


def test_create_on_a_fresh_name(cluster: Cluster) -> None:
    run = cluster.run(CREATE, **GOOD)
    assert run.returncode == 0, run.stderr
    ns = run.state["namespaces"]["checkout-demo"]
    assert ns["labels"] == {
        "app.kubernetes.io/managed-by": "envbot",
        "envbot.dev/env": "checkout-demo",
        "envbot.dev/service": "checkout",
        "envbot.dev/requested-by": "U111AAA",
    }
    assert ns["annotations"]["envbot.dev/expires-at"] == "2026-11-28T15:00:00Z"
    assert ns["annotations"]["janitor/expires"] == "2026-11-28T15:00:00Z"
    kinds = {o["kind"]: o for o in run.state["objects"]}
    assert set(kinds) == {"ResourceQuota", "LimitRange", "NetworkPolicy"}
    assert kinds["ResourceQuota"]["spec"]["hard"]["pods"] == "30"
    assert kinds["LimitRange"]["spec"]["limits"][0]["default"] == {"cpu": "1", "memory": "1Gi"}
    assert kinds["NetworkPolicy"]["spec"]["ingress"] == [
        {
            "from": [
                {"podSelector": {}},
                {
                    "namespaceSelector": {
                        "matchExpressions": [
                            {"key": "app.kubernetes.io/managed-by", "operator": "NotIn", "values": ["envbot"]}
                        ]
                    }
                },
            ]
        }
    ]
    kubernetes_validate.validate(kinds["NetworkPolicy"], "1.31.0", strict=True)
    for kind in ("ResourceQuota", "LimitRange"):
        kubernetes_validate.validate(kinds[kind], "1.31.0", strict=True)
    assert "ready to use until 2026-11-28T15:00:00Z" in run.stdout


def test_create_guard_rails_follow_parameters(cluster: Cluster) -> None:
    run = cluster.run(CREATE, **GOOD, quota_cpu="8", quota_memory="16Gi", default_memory_limit="2Gi")
    assert run.returncode == 0, run.stderr
    kinds = {o["kind"]: o for o in run.state["objects"]}
    assert kinds["ResourceQuota"]["spec"]["hard"]["requests.cpu"] == "8"
    assert kinds["ResourceQuota"]["spec"]["hard"]["limits.memory"] == "16Gi"
    assert kinds["LimitRange"]["spec"]["limits"][0]["default"]["memory"] == "2Gi"


def test_create_again_converges(cluster: Cluster) -> None:
    assert cluster.run(CREATE, **GOOD).returncode == 0
    run = cluster.run(CREATE, **(GOOD | {"expires_at": "2026-11-29T15:00:00Z"}))
    assert run.returncode == 0, run.stderr
    assert "converging" in run.stdout
    assert list(run.state["namespaces"]) == ["checkout-demo"]
    assert run.state["namespaces"]["checkout-demo"]["annotations"]["envbot.dev/expires-at"] == "2026-11-29T15:00:00Z"
    assert len(run.state["objects"]) == 3


def test_create_over_a_foreign_namespace_is_refused_untouched(cluster: Cluster) -> None:
    cluster.add_namespace("checkout-demo", {"team": "payments"}, note="made by a person")
    run = cluster.run(CREATE, **GOOD)
    assert run.returncode != 0
    assert "exists and is not managed by envbot" in run.stderr
    assert not any(call[0] == "apply" for call in run.kubectl_calls)
    assert run.state["namespaces"]["checkout-demo"] == {
        "labels": {"team": "payments"},
        "annotations": {"note": "made by a person"},
    }


def test_destroy_owned_deletes_it(cluster: Cluster) -> None:
    cluster.run(CREATE, **GOOD)
    run = cluster.run(DESTROY, env_name="checkout-demo", requested_by="U111AAA")
    assert run.returncode == 0, run.stderr
    assert "checkout-demo" not in run.state["namespaces"]
    (delete,) = [c for c in run.kubectl_calls if c[0] == "delete"]
    assert "-l" in delete and "app.kubernetes.io/managed-by=envbot" in delete


@pytest.mark.parametrize("name", ["payments-prod", "team-a"])
def test_destroy_foreign_is_refused_and_nothing_deleted(cluster: Cluster, name: str) -> None:
    cluster.add_namespace(name, {"team": "payments"})
    run = cluster.run(DESTROY, env_name=name)
    assert run.returncode != 0
    assert "not managed by envbot; refusing to delete it" in run.stderr
    assert name in run.state["namespaces"]
    assert not any(call[0] == "delete" for call in run.kubectl_calls)


@pytest.mark.parametrize("name", ["kube-system", "default", "argo", "kube-public"])
def test_destroy_system_namespaces_is_refused_before_kubectl(cluster: Cluster, name: str) -> None:
    cluster.add_namespace(name, OWNED)  # even if someone put the ownership label on it
    run = cluster.run(DESTROY, env_name=name)
    assert run.returncode != 0
    assert "reserved" in run.stderr or "Argo namespace" in run.stderr
    assert run.kubectl_calls == []
    assert name in run.state["namespaces"]


def test_destroy_missing_succeeds(cluster: Cluster) -> None:
    run = cluster.run(DESTROY, env_name="long-gone")
    assert run.returncode == 0, run.stderr
    assert "already gone" in run.stdout


def test_extend_rewrites_both_expiry_annotations_on_owned_only(cluster: Cluster) -> None:
    cluster.run(CREATE, **GOOD)
    run = cluster.run(EXTEND, env_name="checkout-demo", expires_at="2026-11-30T09:00:00Z")
    assert run.returncode == 0, run.stderr
    annotations = run.state["namespaces"]["checkout-demo"]["annotations"]
    assert annotations["envbot.dev/expires-at"] == annotations["janitor/expires"] == "2026-11-30T09:00:00Z"

    cluster.add_namespace("foreign", {"team": "x"})
    refused = cluster.run(EXTEND, env_name="foreign", expires_at="2026-11-30T09:00:00Z")
    assert refused.returncode != 0 and "refusing to change it" in refused.stderr
    assert refused.state["namespaces"]["foreign"]["annotations"] == {}
    missing = cluster.run(EXTEND, env_name="nope", expires_at="2026-11-30T09:00:00Z")
    assert missing.returncode != 0 and "does not exist" in missing.stderr


def _reaper_cluster(cluster: Cluster) -> None:
    cluster.add_namespace("old-env", OWNED, **{"envbot.dev/expires-at": "2020-01-01T00:00:00Z"})
    cluster.add_namespace("live-env", OWNED, **{"envbot.dev/expires-at": "2999-01-01T00:00:00Z"})
    cluster.add_namespace("broken-env", OWNED, **{"envbot.dev/expires-at": "next tuesday"})
    cluster.add_namespace("unmarked-env", OWNED)
    cluster.add_namespace("foreign-old", {"team": "x"}, **{"envbot.dev/expires-at": "2020-01-01T00:00:00Z"})


def test_reaper_deletes_only_expired_owned_namespaces(cluster: Cluster) -> None:
    _reaper_cluster(cluster)
    run = cluster.run(REAPER, dry_run="false")
    assert run.returncode == 0, run.stderr
    assert set(run.state["namespaces"]) == {"live-env", "broken-env", "unmarked-env", "foreign-old"}
    assert "deleting old-env (expired 2020-01-01T00:00:00Z)" in run.stdout
    assert "skip broken-env: no parseable" in run.stdout and "skip unmarked-env" in run.stdout
    assert "1 expired, 1 live, 2 skipped" in run.stdout


def test_reaper_dry_run_reports_and_deletes_nothing(cluster: Cluster) -> None:
    _reaper_cluster(cluster)
    run = cluster.run(REAPER)  # the shipped default is dry_run=true
    assert run.returncode == 0, run.stderr
    assert len(run.state["namespaces"]) == 5
    assert "would delete old-env" in run.stdout
    assert not any(call[0] == "delete" for call in run.kubectl_calls)


def test_reaper_fails_loudly_when_kubectl_fails(cluster: Cluster) -> None:
    _reaper_cluster(cluster)
    state = json.loads(cluster.state_file.read_text())
    cluster.save(state | {"unreachable": True})
    run = cluster.run(REAPER, dry_run="false")
    assert run.returncode != 0
    assert "reaper at" not in run.stdout  # no "nothing to do" summary when the listing failed


MALICIOUS = [
    "a; kubectl delete ns kube-system",
    "$(id)",
    "`id`",
    "ok\nkubectl delete ns kube-system",
    'x"\n  labels: {evil: yes}',
    "x: y\n- z",
    "{{workflow.name}}",
    "' || true #",
    "A" * 64,
    "",
]


OPTIONAL = ("requested_by", "slack_channel")  # empty is their documented default, so it is allowed
CREATE_CASES = [
    (param, value)
    for param in ("env_name", "service", "expires_at", "requested_by", "slack_channel", "quota_cpu")
    for value in MALICIOUS
    if not (param in OPTIONAL and value == "")
]


@pytest.mark.parametrize(("param", "value"), CREATE_CASES)
def test_malicious_create_parameters_are_rejected_before_kubectl(cluster: Cluster, param: str, value: str) -> None:
    canary = cluster.folder / "pwned"
    run = cluster.run(CREATE, **(GOOD | {param: value.replace("id", f"touch {canary}")}))
    assert run.returncode != 0
    assert run.kubectl_calls == []
    assert not canary.exists()
    assert "envbot:" in run.stderr


@pytest.mark.parametrize("value", MALICIOUS)
def test_malicious_destroy_and_extend_parameters_are_rejected(cluster: Cluster, value: str) -> None:
    for manifest, params in (
        (DESTROY, {"env_name": value}),
        (EXTEND, {"env_name": value, "expires_at": "2026-11-30T09:00:00Z"}),
        (EXTEND, {"env_name": "checkout-demo", "expires_at": value}),
    ):
        run = cluster.run(manifest, **params)
        assert run.returncode != 0, (manifest, params)
        assert run.kubectl_calls == []


@pytest.mark.parametrize("value", ["yes", "TRUE", "1", "true; rm -rf /", ""])
def test_reaper_rejects_a_bad_dry_run_value(cluster: Cluster, value: str) -> None:
    run = cluster.run(REAPER, dry_run=value)
    assert run.returncode != 0 and "dry_run must be true or false" in run.stderr
    assert run.kubectl_calls == []


def test_expiry_instants_must_be_real_utc_times(cluster: Cluster) -> None:
    for bad in ("2026-13-01T00:00:00Z", "2026-11-28T25:00:00Z", "2026-11-28T15:00:00+01:00", "2026-11-28"):
        run = cluster.run(CREATE, **(GOOD | {"expires_at": bad}))
        assert run.returncode != 0 and "RFC 3339 UTC" in run.stderr, bad
