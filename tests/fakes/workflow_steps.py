"""Runs a steps template the way Argo's controller does, each step's script for real (bash, the real
kubectl against the Kubernetes API stand-in), for tests/fakes/argo_controller.py.

What it models (argo-workflows v3.7, workflow/controller/steps.go, workflowpod.go, docs/variables.md):
- one step per group, in order; the first failed step ends the sequence (later ones never run);
- `when`: `{{...}}` substituted as text, then `A == B` / `A != B` with bare words as strings
  (shouldExecute turns govaluate's variables into strings); false gives a Skipped node;
- `template` names a template of the scope it is written in; `templateRef` a template of another
  WorkflowTemplate, whose own `template` names then resolve in that WorkflowTemplate;
- a step's pod runs as its template's `serviceAccountName`, else the running workflow's (never the
  referenced WorkflowTemplate's spec-level account);
- `{{workflow.parameters.*}}`, `{{workflow.namespace}}`, `{{workflow.name}}`, `{{inputs.parameters.*}}`
  and `{{steps.<name>.outputs.parameters.*}}` are substituted as raw text; an input without a value
  or default, or a reference that does not resolve, errors the step;
- output parameters come from `valueFrom.path` after the pod ends: a missing file takes `default`,
  else the step fails; the pod's /tmp (an emptyDir) is the step's own folder here, so env values
  and output paths under /tmp/ point into it;
- `valueFrom.configMapKeyRef` env from ConfigMap envbot-settings (`settings`); envbot's libraries
  and ConfigMap envbot-services mounted where the template mounts them;
- a failed step's message is its `envbot: ...` line (the termination message), else
  "Error (exit code N)".
Only script and steps templates are run; anything else fails the test loudly.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.execution_plane import ARGO_NAMESPACE, Rendered, run_script

_REFERENCE = re.compile(r"\{\{\s*([-\w.]+)\s*\}\}")
_WHEN = re.compile(r"\s*(\S*)\s*(==|!=)\s*(\S*)\s*")
POD_TMP = "/tmp"


class StepError(Exception):
    """A step Argo marks Error/Failed before or after its pod: unresolvable references, missing outputs."""


@dataclass
class Scope:
    """Where template names resolve: the running workflow's own templates, or a WorkflowTemplate's."""

    name: str  # "local" or the WorkflowTemplate's name
    templates: dict[str, dict[str, Any]]

    @classmethod
    def of(cls, name: str, spec: dict[str, Any]) -> Scope:
        return cls(name, {t["name"]: t for t in spec.get("templates", [])})


@dataclass
class StepResult:
    name: str
    phase: str  # Succeeded, Failed, Error, Skipped
    template: str
    template_ref: str | None = None  # the WorkflowTemplate it came from, for templateRef steps
    outputs: dict[str, str] = field(default_factory=dict)
    message: str | None = None
    account: str = ""


@dataclass
class StepRunner:
    """Everything a workflow's pods share: its identity, parameters and the cluster they run in."""

    workflow_name: str
    service_account: str  # the running workflow's spec-level account
    parameters: dict[str, str]
    settings: dict[str, str]
    services: Callable[[], dict[str, str] | None]  # ConfigMap envbot-services as mounted now (None: absent)
    resolve: Callable[[str], dict[str, Any] | None]  # a WorkflowTemplate's spec by name, None if absent
    kube_env: Callable[[str], dict[str, str]]  # kubectl's environment for an account name
    folder: Path
    extra_env: dict[str, str] = field(default_factory=dict)
    hold: Callable[[dict[str, Any], dict[str, str]], AbstractContextManager[None]] = lambda t, v: nullcontext()
    results: list[StepResult] = field(default_factory=list)

    def run_steps(self, template: dict[str, Any], scope: Scope, inputs: dict[str, str]) -> bool:
        """Run a steps template's groups in order; False once a step failed (results hold each step)."""
        done: dict[str, dict[str, str]] = {}
        for group in template["steps"]:
            assert len(group) == 1, "the stand-in runs one step per group"
            step = group[0]
            result = self._step(step, scope, inputs, done)
            self.results.append(result)
            done[step["name"]] = result.outputs
            if result.phase in ("Failed", "Error"):
                return False
        return True

    def _step(
        self, step: dict[str, Any], scope: Scope, inputs: dict[str, str], done: dict[str, dict[str, str]]
    ) -> StepResult:
        ref = step.get("templateRef")
        name = ref["template"] if ref else step["template"]
        result = StepResult(step["name"], "Succeeded", name, ref["name"] if ref else None)
        try:
            if "when" in step and not _true(self._substitute(step["when"], inputs, done)):
                result.phase, result.message = "Skipped", f"when '{step['when']}' evaluated false"
                return result
            target, where = self._resolve(scope, ref, name)
            arguments = {
                p["name"]: self._substitute(str(p.get("value", "")), inputs, done)
                for p in (step.get("arguments") or {}).get("parameters", [])
            }
            given = self._inputs(target, arguments)
            if "steps" in target:
                nested = StepRunner(**{**self.__dict__, "results": []})
                ok = nested.run_steps(target, where, given)
                self.results.extend(nested.results)
                result.phase = "Succeeded" if ok else "Failed"
                return result
            assert "script" in target, f"the stand-in runs only script and steps templates, not {name}"
            return self._pod(step["name"], target, given, result)
        except StepError as error:
            result.phase, result.message = "Error", str(error)
            return result

    def _resolve(self, scope: Scope, ref: dict[str, Any] | None, name: str) -> tuple[dict[str, Any], Scope]:
        if ref:
            if ref.get("clusterScope"):
                raise StepError(f"clusterworkflowtemplates.argoproj.io `{ref['name']}` not found")
            spec = self.resolve(ref["name"])
            if spec is None:
                raise StepError(f'workflowtemplates.argoproj.io "{ref["name"]}" not found')
            scope = Scope.of(ref["name"], spec)
        if name not in scope.templates:
            raise StepError(f"template {name} not found in {scope.name}")
        return scope.templates[name], scope

    def _inputs(self, template: dict[str, Any], arguments: dict[str, str]) -> dict[str, str]:
        values = {}
        for declared in (template.get("inputs") or {}).get("parameters", []):
            if declared["name"] in arguments:
                values[declared["name"]] = arguments[declared["name"]]
            elif "value" in declared or "default" in declared:
                values[declared["name"]] = str(declared.get("value", declared.get("default")))
            else:
                raise StepError(f"inputs.parameters.{declared['name']} was not supplied")
        return values

    def _substitute(self, text: str, inputs: dict[str, str], done: dict[str, dict[str, str]]) -> str:
        def one(match: re.Match[str]) -> str:
            key = match.group(1)
            if key == "workflow.namespace":
                return ARGO_NAMESPACE
            if key == "workflow.name":
                return self.workflow_name
            head, _, rest = key.partition(".")
            if key.startswith("workflow.parameters.") and rest.removeprefix("parameters.") in self.parameters:
                return self.parameters[rest.removeprefix("parameters.")]
            if head == "inputs" and rest.startswith("parameters.") and rest.removeprefix("parameters.") in inputs:
                return inputs[rest.removeprefix("parameters.")]
            parts = key.split(".")
            if len(parts) == 5 and parts[0] == "steps" and parts[2:4] == ["outputs", "parameters"]:
                found = done.get(parts[1], {})
                if parts[4] in found:
                    return found[parts[4]]
            raise StepError(f"Unable to resolve: {{{{{key}}}}}")

        return _REFERENCE.sub(one, text)

    def _pod(self, step: str, template: dict[str, Any], inputs: dict[str, str], result: StepResult) -> StepResult:
        account = template.get("serviceAccountName") or self.service_account
        result.account = account
        folder = self.folder / f"{len(self.results)}-{step}"
        script = template["script"]
        env: dict[str, str] = {}
        for variable in script.get("env", []):
            if "value" in variable:
                env[variable["name"]] = _pod_path(self._substitute(variable["value"], inputs, {}), folder)
                continue
            ref = variable["valueFrom"]["configMapKeyRef"]
            assert ref["name"] == "envbot-settings" and ref.get("optional") is True, variable
            if ref["key"] in self.settings:
                env[variable["name"]] = self.settings[ref["key"]]
        mounts = {m["name"] for m in script.get("volumeMounts", [])}
        services = self.services() if "envbot-services" in mounts else None
        if "envbot-services" in mounts and services is None:
            services = {}  # optional volume: an empty folder
        source = self._substitute(script["source"], inputs, {})
        rendered = Rendered(source, env, list(script["command"]), services)
        base = self.kube_env(account) | {"ENVBOT_OUTPUTS": str(folder / "envbot")} | self.extra_env
        with self.hold(template, self.parameters):
            run = run_script(rendered, folder, base)
        result.outputs = self._outputs(template, folder)
        if run.returncode != 0:
            said = [line for line in run.stderr.splitlines() if line.startswith("envbot: ")]
            result.phase = "Failed"
            result.message = said[-1] if said else f"Error (exit code {run.returncode})"
        elif isinstance(result.outputs, str):
            result.phase, result.message, result.outputs = "Failed", result.outputs, {}
        return result

    def _outputs(self, template: dict[str, Any], folder: Path) -> Any:
        found: dict[str, str] = {}
        for declared in (template.get("outputs") or {}).get("parameters", []):
            source = declared.get("valueFrom") or {}
            path = Path(_pod_path(source["path"], folder))
            if path.is_file():
                found[declared["name"]] = path.read_text()
            elif "default" in source:
                found[declared["name"]] = str(source["default"])
            else:  # the wait container cannot save it: the step fails
                return f"open {source['path']}: no such file or directory"
        return found


def _pod_path(value: str, folder: Path) -> str:
    """A path in the pod's /tmp (an emptyDir) is the step's own folder here."""
    if value == POD_TMP or value.startswith(POD_TMP + "/"):
        return str(folder) + value[len(POD_TMP) :]
    return value


def _true(expression: str) -> bool:
    match = _WHEN.fullmatch(expression)
    assert match, f"the stand-in evaluates only `A == B` and `A != B`, not {expression!r}"
    left, operator, right = match.groups()
    if not left or not right:  # govaluate cannot parse a comparison with a missing side
        raise StepError(f"Invalid 'when' expression '{expression}'")
    return (left == right) if operator == "==" else (left != right)
