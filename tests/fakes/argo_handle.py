"""The test's handle on the fake `argo` executable: configure it, read what it was asked, and play the
workflow controller (move workflows through their phases, seed history)."""

import json
import random
import stat
import sys
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypedDict

from tests.fakes import fake_argo
from tests.fakes.fake_argo import Store, Workflow

ROOT = Path(__file__).resolve().parents[2]
FAKES = Path(__file__).resolve().parent
DEFAULTS = {
    "templates_dir": str(ROOT / "argo" / "workflowtemplates"),
    "extra_templates": [str(ROOT / "argo" / "settings" / "envbot-recipes.yaml")],
    "namespace": "envbot-workflows",
    "mode": "normal",
}

# A Python stub rather than a shell one: a shell would add PWD to the environment argo records, and -I
# keeps a caller's PYTHONPATH or user site-packages from changing the fake.
STUB = """#!{python} -I
import sys
sys.path.insert(0, {fakes!r})
import fake_argo
sys.exit(fake_argo.main(sys.argv[1:], {state!r}))
"""


class CallRecord(TypedDict):
    argv: list[str]
    pid: int
    env: list[str]  # names only: the values may be secrets


PerIndex = Callable[[int], Mapping[str, str]] | Mapping[str, str] | None


class FakeArgo:
    """Handle on the fake `argo` executable at `self.bin`, with its state under `self.state`."""

    def __init__(self, folder: Path) -> None:
        self.state = folder / "argo-state"
        self.state.mkdir()
        self.bin = folder / "bin" / "argo"
        self.bin.parent.mkdir()
        self.bin.write_text(STUB.format(python=sys.executable, fakes=str(FAKES), state=str(self.state)))
        self.bin.chmod(self.bin.stat().st_mode | stat.S_IXUSR)
        self.configure()
        Store(self.state).close()  # create the database once, before any concurrent process races to

    # --- configuration ---------------------------------------------------------------------------

    def configure(self, **options: Any) -> None:
        """Replace the configuration with the defaults plus `options` (keys: fake_argo's docstring)."""
        (self.state / "config.json").write_text(json.dumps(DEFAULTS | options))

    def config(self) -> dict[str, Any]:
        return dict(json.loads((self.state / "config.json").read_text()))

    # --- what argo was asked -----------------------------------------------------------------------

    def records(self) -> list[CallRecord]:
        path = self.state / "calls.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []

    def calls(self) -> list[list[str]]:
        return [r["argv"] for r in self.records()]

    def pids(self) -> list[int]:
        return [r["pid"] for r in self.records()]

    def envs(self) -> list[list[str]]:
        return [r["env"] for r in self.records()]

    def submits(self) -> list[list[str]]:
        return [argv for argv in self.calls() if fake_argo.find_verb(argv) == "submit"]

    def lists(self) -> list[list[str]]:
        return [argv for argv in self.calls() if fake_argo.find_verb(argv) == "list"]

    # --- the cluster's workflows ---------------------------------------------------------------------

    def workflows(self, namespace: str | None = None) -> list[Workflow]:
        """Every stored workflow in creation order, as `argo get -o json` would show it."""
        store = Store(self.state)
        try:
            found = store.all()
        finally:
            store.close()
        return [w for w in found if namespace is None or w["metadata"]["namespace"] == namespace]

    def workflow(self, name: str, namespace: str | None = None) -> Workflow:
        store = Store(self.state)
        try:
            found = store.get(namespace or self._namespace(), name)
        finally:
            store.close()
        if found is None:
            raise KeyError(f"no workflow {name}")
        return found

    def set_phase(
        self,
        name: str,
        phase: str,
        message: str | None = None,
        node_message: str | None = None,
        *,
        namespace: str | None = None,
        at: datetime | str | None = None,
        failed_step: str | None = None,
    ) -> Workflow:
        """Do what the controller does when workflow `name` reaches `phase` (at `at`, default the fake's
        clock; a steps workflow fails at `failed_step`, default its last). A finished workflow never
        changes again, so that raises ValueError."""

        def advance(workflow: Workflow) -> None:
            template = self._template(workflow["spec"].get("workflowTemplateRef", {}).get("name", ""))
            fake_argo.reconcile(
                workflow,
                phase,
                self._when(at),
                template=template,
                message=message,
                node_message=node_message,
                outputs=self.config().get("outputs"),
                failed_step=failed_step,
            )

        return self._update(name, namespace, advance)

    def set_outputs(self, name: str, parameters: Mapping[str, str], *, namespace: str | None = None) -> Workflow:
        """Record the output parameters of a workflow's first step (its first Pod node; the only node of a
        one-step workflow), as the executor reports them."""

        def record(workflow: Workflow) -> None:
            nodes = list(workflow["status"]["nodes"].values())
            node = next((n for n in nodes if n.get("type") == "Pod"), nodes[0])
            node.setdefault("outputs", {})["parameters"] = [{"name": k, "value": v} for k, v in parameters.items()]

        return self._update(name, namespace, record)

    def mark(
        self, name: str, labels: Mapping[str, str], annotations: Mapping[str, str], *, namespace: str | None = None
    ) -> Workflow:
        """Write labels and annotations on a stored workflow, as another API client does (the execution
        plane's notice marks)."""

        def write(workflow: Workflow) -> None:
            meta = workflow["metadata"]
            meta["labels"] = dict(sorted({**(meta.get("labels") or {}), **labels}.items()))
            meta["annotations"] = dict(sorted({**(meta.get("annotations") or {}), **annotations}.items()))

        return self._update(name, namespace, write)

    def set_step_results(self, name: str, results: Sequence[Any], *, namespace: str | None = None) -> Workflow:
        """Record how each step of a steps workflow ended, on its node (by display name), as the controller
        does: output parameters the executor reported, Skipped nodes for a `when` that was false, Error
        for a step that never got a pod, and `templateRef` for steps from another WorkflowTemplate.
        `results` are tests/fakes/workflow_steps.StepResult."""

        def record(workflow: Workflow) -> None:
            nodes = {n["displayName"]: n for n in workflow["status"]["nodes"].values() if n.get("type") != "Steps"}
            for result in results:
                node = nodes.get(result.name)
                if node is None:
                    continue
                if node["type"] == "Skipped" and result.phase != "Skipped":  # it ran after all
                    node |= {"type": "Pod", "phase": result.phase, "outputs": {"exitCode": "0"}}
                    node.pop("message", None)
                if result.template_ref:
                    node.pop("templateName", None)
                    node["templateRef"] = {"name": result.template_ref, "template": result.template}
                    node["templateScope"] = f"namespaced/{result.template_ref}"
                if result.phase == "Skipped":
                    node |= {"type": "Skipped", "phase": "Skipped", "message": result.message}
                    node.pop("outputs", None)
                    continue
                if result.phase == "Error":
                    node["phase"] = "Error"
                if result.outputs:
                    parameters = [{"name": k, "value": v} for k, v in result.outputs.items()]
                    node.setdefault("outputs", {})["parameters"] = parameters

        return self._update(name, namespace, record)

    def _update(self, name: str, namespace: str | None, change: Callable[[Workflow], None]) -> Workflow:
        """Change one stored workflow under the store's write lock, as one API update (a new resourceVersion)."""
        store = Store(self.state)
        try:
            with store.write():
                workflow = store.get(namespace or self._namespace(), name)
                if workflow is None:
                    raise KeyError(f"no workflow {name}")
                change(workflow)
                workflow["metadata"]["resourceVersion"] = store.resource_version()
                store.replace(workflow)
        finally:
            store.close()
        return workflow

    def add_workflow(
        self,
        template: str = "env-create-template",
        *,
        name: str | None = None,
        namespace: str | None = None,
        params: Mapping[str, str] | None = None,
        labels: Mapping[str, str] | None = None,
        created: datetime | str | None = None,
        phase: str = "",
        message: str | None = None,
        node_message: str | None = None,
        finished: datetime | str | None = None,
    ) -> Workflow:
        """Insert one workflow as if submitted `--from workflowtemplate/<template>` at `created` and then
        driven to `phase` (finishing at `finished`, default `created`)."""
        at = self._when(created)
        (workflow,) = self._build(
            1,
            template,
            namespace,
            params or {},
            labels or {},
            lambda _: at,
            lambda _: phase,
            lambda _: self._when(finished) if finished else at,
            names=[name] if name else None,
            message=message,
            node_message=node_message,
        )
        return workflow

    def seed(
        self,
        n: int,
        template: str = "env-create-template",
        *,
        namespace: str | None = None,
        params: PerIndex = None,
        labels: PerIndex = None,
        start: datetime | str | None = None,
        every: timedelta = timedelta(minutes=1),
        duration: timedelta = timedelta(seconds=30),
        phase: str | Callable[[int], str] = "Succeeded",
    ) -> list[str]:
        """Insert `n` historical workflows in one transaction: workflow i is created at start + i*every
        (start defaults to n*every before the fake's clock) and finishes `duration` later. `params`,
        `labels` and `phase` may be functions of i. Returns the names, oldest first."""
        first = self._when(start) if start is not None else self._when(None) - n * every
        workflows = self._build(
            n,
            template,
            namespace,
            params or {},
            labels or {},
            lambda i: first + i * every,
            phase if callable(phase) else lambda _: phase,
            lambda i: first + i * every + duration,
        )
        return [w["metadata"]["name"] for w in workflows]

    # --- internals -----------------------------------------------------------------------------------

    def _namespace(self) -> str:
        return str(self.config().get("namespace", "argo"))

    def _when(self, at: datetime | str | None) -> datetime:
        if at is None:
            return fake_argo.clock(self.config())
        return fake_argo.parse_time(at) if isinstance(at, str) else at.replace(microsecond=0)

    def _template(self, name: str) -> dict[str, Any] | None:
        config = self.config()
        found = fake_argo.load_templates(config, str(config.get("namespace", "argo"))).get(name)
        return found[0] if found else None

    def _build(
        self,
        n: int,
        template: str,
        namespace: str | None,
        params: PerIndex,
        labels: PerIndex,
        created: Callable[[int], datetime],
        phase: Callable[[int], str],
        finished: Callable[[int], datetime],
        *,
        names: list[str] | None = None,
        message: str | None = None,
        node_message: str | None = None,
    ) -> list[Workflow]:
        namespace = namespace or self._namespace()
        spec = self._template(template)
        store = Store(self.state)
        try:
            with store.write():
                taken = store.names(namespace)
                built = []
                for i in range(n):
                    name = names[i] if names else _fresh_name(f"{template}-", taken)
                    if name in taken:
                        raise ValueError(f"workflow {name} already exists")
                    taken.add(name)
                    values = params(i) if callable(params) else params
                    extra = labels(i) if callable(labels) else labels
                    draft = fake_argo.new_workflow(
                        template,
                        namespace,
                        [{"name": k, "value": v} for k, v in (values or {}).items()],
                        {fake_argo.TEMPLATE_LABEL: template, **(extra or {})},
                    )
                    workflow = fake_argo.admit(draft, name, created(i), store.resource_version())
                    target = phase(i)
                    if target in fake_argo.FINAL:  # it ran first, so startedAt is its creation
                        fake_argo.reconcile(workflow, "Running", created(i), template=spec)
                    if target:
                        at = finished(i) if target in fake_argo.FINAL else created(i)
                        fake_argo.reconcile(
                            workflow, target, at, template=spec, message=message, node_message=node_message
                        )
                    built.append(workflow)
                store.insert(built)
        finally:
            store.close()
        return built


def _fresh_name(prefix: str, taken: set[str]) -> str:
    while (name := prefix + "".join(random.choices(fake_argo.NAME_ALPHABET, k=5))) in taken:
        pass
    return name
