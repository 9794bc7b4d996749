"""Plays Argo's workflow controller for submitted env-create and env-deploy workflows: each runs its
template's steps (tests/fakes/workflow_steps.py: `when`, templateRef into envbot-recipes, inputs and
outputs), every script for real with the real kubectl against the Kubernetes API stand-in, as its
step's service account, under Argo's synchronization semantics. WorkflowTemplate envbot-recipes and
ConfigMap envbot-services are read from the stand-in, where the test (as an operator) put them.

Locks, as Argo v3.6+ implements mutexes (docs/synchronization.md, workflow/sync):
- a mutex is keyed by its name after parameter substitution (one namespace here);
- a workflow-level mutex (`spec.synchronization`) is held from the workflow's start to its end, a
  template-level one (`templates[].synchronization`) while that step runs;
- waiters queue per lock by priority, then creation time (all priorities are equal here); only a
  waiter at the head of every queue it is in may acquire, and it takes all of its locks at once
  ("Multiple locks"), so a head needing several locks blocks everyone who needs any of them.
Waiting costs nothing but a blocked thread, like a Pending workflow costs nothing but an entry.
"""

from __future__ import annotations

import re
import threading
from bisect import insort
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.execution_plane import ARGO_NAMESPACE, CREATE, template
from tests.fakes.argo_handle import FakeArgo
from tests.fakes.kube_api import FakeKubeApi, kubectl_env
from tests.fakes.workflow_steps import Scope, StepResult, StepRunner

DEPLOY = "env-deploy-template"
RUN = (CREATE, DEPLOY)  # the templates this controller runs; the bot's other ones stay as submitted

_PARAMETER = re.compile(r"\{\{\s*workflow\.parameters\.([-\w]+)\s*\}\}")

Waiter = tuple[str, str]  # (creation time, workflow name): Argo's queue order for equal priorities


@dataclass
class Mutexes:
    """Named mutexes shared by every workflow, with Argo's queueing rules; `log` records each hold."""

    _cond: threading.Condition = field(default_factory=threading.Condition)
    _holder: dict[str, str] = field(default_factory=dict)
    _queues: dict[str, list[Waiter]] = field(default_factory=lambda: defaultdict(list))
    log: list[tuple[str, str, str]] = field(default_factory=list)  # (lock, "take"/"give", workflow)

    @contextmanager
    def held(self, names: list[str], waiter: Waiter) -> Iterator[None]:
        with self._cond:
            for name in names:
                insort(self._queues[name], waiter)
            while not all(name not in self._holder and self._queues[name][0] == waiter for name in names):
                self._cond.wait()
            for name in names:
                self._queues[name].remove(waiter)
                self._holder[name] = waiter[1]
                self.log.append((name, "take", waiter[1]))
        try:
            yield
        finally:
            with self._cond:
                for name in names:
                    del self._holder[name]
                    self.log.append((name, "give", waiter[1]))
                self._cond.notify_all()

    def never_shared(self) -> bool:
        """True if no lock was ever taken by one workflow while another held it."""
        holding: dict[str, str] = {}
        for lock, event, workflow in self.log:
            if event == "take":
                if lock in holding:
                    return False
                holding[lock] = workflow
            elif holding.pop(lock, None) != workflow:
                return False
        return True


class Controller:
    """Watches the fake argo's store for new create workflows and runs each one to its end."""

    def __init__(
        self,
        argo: FakeArgo,
        api: FakeKubeApi,
        folder: Path,
        settings: dict[str, str],
        extra_env: dict[str, str] | None = None,
    ) -> None:
        self.argo = argo
        self.api = api
        self.settings = settings
        self.folder = folder
        self.extra_env = extra_env or {}  # e.g. ENVBOT_POLL_SECONDS, to keep readiness polls short
        self.locks = Mutexes()
        self._kube_envs: dict[str, dict[str, str]] = {}  # per account, written once, shared by its pods
        self._kube_lock = threading.Lock()
        self._taken: set[str] = set()
        self._threads: list[threading.Thread] = []
        self._stop = threading.Event()
        self._errors: list[BaseException] = []
        self._watcher = threading.Thread(target=self._watch, daemon=True)

    def __enter__(self) -> Controller:
        self._watcher.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._watcher.join()
        for thread in list(self._threads):
            thread.join()

    def finished(self) -> list[dict[str, Any]]:
        return [w for w in self.argo.workflows() if w["status"].get("phase") in ("Succeeded", "Failed", "Error")]

    def wait_until_all_ended(self, timeout: float = 600) -> list[dict[str, Any]]:
        """Wait for the state "every submitted create workflow has ended"; return them all."""
        deadline = threading.Event()
        timer = threading.Timer(timeout, deadline.set)
        timer.start()
        try:
            while True:
                assert not self._errors, self._errors
                workflows = [w for w in self.argo.workflows() if _is_run(w)]
                if workflows and all(w["status"].get("phase") in ("Succeeded", "Failed") for w in workflows):
                    return workflows
                assert not deadline.is_set(), "the create workflows never all ended"
                self._stop.wait(0.05)  # poll the store, as the controller's informer would be told
        finally:
            timer.cancel()

    # --- the controller's loop -----------------------------------------------------------------------

    def _watch(self) -> None:
        while not self._stop.is_set():
            for workflow in self.argo.workflows():
                name = workflow["metadata"]["name"]
                if name in self._taken or not _is_run(workflow) or workflow["status"].get("phase"):
                    continue
                self._taken.add(name)
                thread = threading.Thread(target=self._guarded, args=(workflow,), daemon=True)
                self._threads.append(thread)
                thread.start()
            self._stop.wait(0.05)

    def _guarded(self, workflow: dict[str, Any]) -> None:
        try:
            self._run(workflow)
        except BaseException as error:
            self._errors.append(error)

    def _run(self, workflow: dict[str, Any]) -> None:
        name = workflow["metadata"]["name"]
        spec = template(workflow["spec"]["workflowTemplateRef"]["name"])["spec"]
        params = {p["name"]: p["value"] for p in workflow["spec"].get("arguments", {}).get("parameters", [])}
        values = {p["name"]: p.get("value", "") for p in spec["arguments"]["parameters"]} | params
        waiter = (workflow["metadata"]["creationTimestamp"], name)
        runner = StepRunner(
            workflow_name=name,
            service_account=spec["serviceAccountName"],
            parameters=values,
            settings=self.settings,
            services=self._services,
            resolve=self._resolve,
            kube_env=self._kube_env,
            folder=self.folder / "pods" / name,
            extra_env=self.extra_env,
            hold=lambda tmpl, v: self.locks.held(_mutexes(tmpl, v), waiter),
        )
        (entry,) = [t for t in spec["templates"] if t["name"] == spec["entrypoint"]]
        with self.locks.held(_mutexes(spec, values), waiter):
            self.argo.set_phase(name, "Running")
            ok = runner.run_steps(entry, Scope.of("local", spec), {})
        top = {group[0]["name"] for group in entry["steps"]}
        if ok:
            self.argo.set_phase(name, "Succeeded")
        else:  # the step's message is the script's `envbot: ...` line (its termination message)
            failed = [r for r in runner.results if r.phase in ("Failed", "Error")]
            step = next(r.name for r in failed if r.name in top)
            self.argo.set_phase(name, "Failed", node_message=failed[0].message, failed_step=step)
        self.argo.set_step_results(name, [r for r in runner.results if r.name in top])

    def results(self, name: str) -> list[StepResult]:
        """What each step of workflow `name` ended as, from the stored workflow's nodes."""
        return [
            StepResult(n["displayName"], n["phase"], n.get("templateName", ""), message=n.get("message"))
            for n in self.argo.workflow(name)["status"]["nodes"].values()
            if n["type"] in ("Pod", "Skipped")
        ]

    def _kube_env(self, account: str) -> dict[str, str]:
        with self._kube_lock:
            if account not in self._kube_envs:
                user = f"system:serviceaccount:{ARGO_NAMESPACE}:{account}"
                self._kube_envs[account] = kubectl_env(self.api, self.folder / "home" / account, user=user)
            return self._kube_envs[account]

    def _services(self) -> dict[str, str] | None:
        """ConfigMap envbot-services as the kubelet mounts it: its data now, None when it does not exist."""
        found = [c for c in self.api.objects("ConfigMap", ARGO_NAMESPACE) if c["metadata"]["name"] == "envbot-services"]
        return dict(found[0].get("data") or {}) if found else None

    def _resolve(self, name: str) -> dict[str, Any] | None:
        """A WorkflowTemplate's spec: envbot's own as argo/ installs them, any other from the stand-in."""
        if name in RUN:
            return dict(template(name)["spec"])
        stored = [t for t in self.api.objects("WorkflowTemplate", ARGO_NAMESPACE) if t["metadata"]["name"] == name]
        return dict(stored[0]["spec"]) if stored else None


def _is_run(workflow: dict[str, Any]) -> bool:
    return bool(workflow["spec"].get("workflowTemplateRef", {}).get("name") in RUN)


def _mutexes(spec: dict[str, Any], values: dict[str, str]) -> list[str]:
    names = [m["name"] for m in (spec.get("synchronization") or {}).get("mutexes", [])]
    return [_PARAMETER.sub(lambda m: values[m.group(1)], name) for name in names]
