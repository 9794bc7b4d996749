"""Runs the scripts inside argo/ the way Argo and the kubelet would, for the execution-plane tests.

Argo substitutes `{{workflow.parameters.*}}`, `{{workflow.namespace}}` and, for exit handlers,
`{{workflow.name}}`, `{{workflow.status}}` and `{{workflow.failures}}` as raw text; the kubelet
resolves `valueFrom.configMapKeyRef` from ConfigMap envbot-settings (an optional key that is
missing leaves the variable unset); the libraries are mounted from ConfigMap envbot-lib, and the
service profiles from ConfigMap envbot-services (one file per key; optional, so a missing
ConfigMap is an empty folder). The
script then runs under bash as its template's service account (a template-level
`serviceAccountName`, as the exit handlers have, wins over the workflow's).
"""

from __future__ import annotations

import functools
import json
import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tests.conftest import ROOT
from tests.fakes.rbac import Attributes, Identity, authorized

ARGO_NAMESPACE = "envbot-workflows"  # the settings default: envbot's own namespace (ADR 0006)
CREATE = "env-create-template"
DESTROY = "env-destroy-template"
EXTEND = "env-extend-template"
REAPER = "env-reaper-template"
NOTIFIER = "env-notifier-template"
TEMPLATES = (CREATE, DESTROY, EXTEND, REAPER, NOTIFIER)
LIBRARIES: dict[str, str] = {
    name: text
    for config in ("envbot-lib.yaml", "envbot-deploy.yaml")
    for name, text in yaml.safe_load((ROOT / "argo/config" / config).read_text())["data"].items()
}
LIB = LIBRARIES["lib.sh"]
SETTINGS: dict[str, str] = yaml.safe_load((ROOT / "argo/settings/envbot-settings.yaml").read_text())["data"]
SERVICES: dict[str, str] = yaml.safe_load((ROOT / "argo/settings/envbot-services.yaml").read_text())["data"]
_VARIABLE = re.compile(
    r"\{\{\s*(workflow\.parameters\.[-\w]+|workflow\.namespace|workflow\.name|workflow\.status|workflow\.failures)\s*\}\}"
)


def documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def workflow_spec(doc: dict[str, Any]) -> dict[str, Any]:
    return doc["spec"]["workflowSpec"] if doc["kind"] == "CronWorkflow" else doc["spec"]


def template(name: str) -> dict[str, Any]:
    (doc,) = documents(ROOT / "argo" / "workflowtemplates" / f"{name}.yaml")
    return doc


def cron_arguments() -> dict[str, str]:
    """What the env-reaper CronWorkflow passes to its template (the reaper's effective arguments)."""
    (cron,) = documents(ROOT / "argo/cronworkflows/env-reaper.yaml")
    parameters = cron["spec"]["workflowSpec"].get("arguments", {}).get("parameters", [])
    return {p["name"]: p["value"] for p in parameters}


def step_of(name: str, step: str | None = None) -> dict[str, Any]:
    """One of a template's steps: its entrypoint unless named (e.g. "notify", the exit handler)."""
    spec = template(name)["spec"]
    (entry,) = [t for t in spec["templates"] if t["name"] == (step or spec["entrypoint"])]
    if "steps" in entry:  # steps: its first step (a local template, or one referenced by templateRef)
        first = entry["steps"][0][0]
        if "templateRef" in first:
            return step_of(first["templateRef"]["name"], first["templateRef"]["template"])
        if step is None:
            return step_of(name, first["template"])
    return entry


def service_account(name: str, step: str | None = None) -> str:
    account = step_of(name, step).get("serviceAccountName") or template(name)["spec"]["serviceAccountName"]
    return f"system:serviceaccount:{ARGO_NAMESPACE}:{account}"


def script_of(name: str, step: str | None = None) -> dict[str, Any]:
    return step_of(name, step)["script"]


@dataclass
class Rendered:
    source: str
    env: dict[str, str]
    command: list[str]
    services: dict[str, str] | None = None  # ConfigMap envbot-services, when the step mounts it


def argo_failures(failures: list[dict[str, Any]] | None) -> str:
    """`{{workflow.failures}}` as Argo renders it: the JSON list, strconv.Quote-wrapped ("null" when none)."""
    return json.dumps(json.dumps(failures or None))


def render(
    name: str,
    params: dict[str, str],
    settings: dict[str, str] | None,
    *,
    step: str | None = None,
    workflow: dict[str, str] | None = None,
    services: dict[str, str] | None = SERVICES,
) -> Rendered:
    """The script and its environment as the pod would see them; `settings` None: no ConfigMap.
    `services` is ConfigMap envbot-services ({} when it does not exist).

    `step` picks a template other than the entrypoint; `workflow` gives the exit-handler variables
    (name, status, failures as argo_failures() renders them)."""
    spec = template(name)["spec"]
    declared = spec.get("arguments", {}).get("parameters", [])
    values: dict[str, str | None] = {p["name"]: p.get("value") for p in declared}
    if name == REAPER:
        values |= cron_arguments()
    values |= params

    def substitute(text: str) -> str:
        def one(match: re.Match[str]) -> str:
            key = match.group(1)
            if key == "workflow.namespace":
                return ARGO_NAMESPACE
            if key == "workflow.name" and workflow is None:
                return f"{name}-test1"  # what Argo would generate; tests that compare names pass workflow=
            if not key.startswith("workflow.parameters."):
                assert workflow is not None, f"{key} is only known to exit handlers: pass workflow="
                return workflow[key.removeprefix("workflow.")]
            value = values[key.removeprefix("workflow.parameters.")]
            assert value is not None, f"required parameter {key} not given"
            return value

        return _VARIABLE.sub(one, text)

    script = script_of(name, step)
    env: dict[str, str] = {}
    for variable in script["env"]:
        if "value" in variable:
            env[variable["name"]] = substitute(variable["value"])
            continue
        ref = variable["valueFrom"]["configMapKeyRef"]
        assert ref["name"] == "envbot-settings" and ref.get("optional") is True, variable
        if settings is not None and ref["key"] in settings:
            env[variable["name"]] = settings[ref["key"]]
    mounts = {m["name"] for m in script.get("volumeMounts", [])}
    profiles = dict(services or {}) if "envbot-services" in mounts else None
    return Rendered(substitute(script["source"]), env, list(script["command"]), profiles)


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def run_script(rendered: Rendered, folder: Path, base_env: dict[str, str], timeout: float = 60) -> Run:
    """Run a rendered script with the libraries where the ConfigMap would be mounted."""
    folder.mkdir(parents=True, exist_ok=True)
    for library, text in LIBRARIES.items():
        (folder / library).write_text(text)
    source = folder / "script.sh"
    source.write_text(rendered.source)
    # The pod's HOME and /tmp are an emptyDir; here they are the test's own folder.
    env = rendered.env | base_env
    env |= {
        name: str(folder / f"{name.removeprefix('ENVBOT_').lower()}.sh")
        for name in ("ENVBOT_LIB", "ENVBOT_NOTIFY", "ENVBOT_DEPLOY")
    }
    for output in ("ENVBOT_REAPED_FILE", "ENVBOT_LIMITS_FILE"):  # output parameter files, in /tmp in the pod
        if output in env:
            env[output] = str(folder / Path(env[output]).name)
    if rendered.services is not None:  # the envbot-services volume: one file per key
        profiles = folder / "services"
        profiles.mkdir(exist_ok=True)
        for stale in profiles.iterdir():
            stale.unlink()
        for key, value in rendered.services.items():
            (profiles / key).write_text(value)
        env["ENVBOT_SERVICES"] = str(profiles)
    env.setdefault("TMPDIR", str(folder))
    env.setdefault("PATH", os.environ["PATH"])
    result = subprocess.run(
        [*rendered.command, str(source)], env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    return Run(result.returncode, result.stdout, result.stderr)


@functools.cache
def _argo_rbac() -> tuple[dict[str, Any], ...]:
    return tuple(doc for path in sorted((ROOT / "argo/rbac").glob("*.yaml")) for doc in documents(path))


def allowed(account: str, attributes: Attributes) -> bool:
    """Whether argo/rbac alone grants envbot's service account `account` a request (its attributes
    from FakeKubeApi.attributes), judged by the stand-in's own RBAC evaluator (tests/fakes/rbac.py)."""
    identity = Identity.of(f"system:serviceaccount:{ARGO_NAMESPACE}:{account}")
    return authorized(identity, attributes, _argo_rbac())
