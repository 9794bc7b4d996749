"""Plays Argo's workflow controller for submitted env-create workflows: each runs its template's script
with the real kubectl against the Kubernetes API stand-in, under Argo's synchronization semantics.

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

from tests.execution_plane import CREATE, render, run_script, service_account, step_of, template
from tests.fakes.argo_handle import FakeArgo
from tests.fakes.kube_api import FakeKubeApi, kubectl_env

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

    def __init__(self, argo: FakeArgo, api: FakeKubeApi, folder: Path, settings: dict[str, str]) -> None:
        self.argo = argo
        self.settings = settings
        self.folder = folder
        self.locks = Mutexes()
        user = service_account(CREATE)
        self.kube_env = kubectl_env(api, folder / "home", user=user)  # written once, shared by every pod
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
                workflows = [w for w in self.argo.workflows() if _is_create(w)]
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
                if name in self._taken or not _is_create(workflow) or workflow["status"].get("phase"):
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
        params = {p["name"]: p["value"] for p in workflow["spec"].get("arguments", {}).get("parameters", [])}
        values = {p["name"]: p.get("value", "") for p in template(CREATE)["spec"]["arguments"]["parameters"]}
        values |= params
        waiter = (workflow["metadata"]["creationTimestamp"], name)
        with self.locks.held(_mutexes(template(CREATE)["spec"], values), waiter):
            self.argo.set_phase(name, "Running")
            with self.locks.held(_mutexes(step_of(CREATE), values), waiter):
                run = run_script(render(CREATE, params, self.settings), self.folder / "pods" / name, self.kube_env)
            if run.returncode == 0:
                self.argo.set_phase(name, "Succeeded")
            else:  # the step's message is the script's `envbot: ...` line (its termination message)
                reason = [line for line in run.stderr.splitlines() if line.startswith("envbot: ")]
                message = (reason or [run.stderr.strip()])[-1]
                self.argo.set_phase(name, "Failed", node_message=message, failed_step=_first_step_name())
            limits = self.folder / "pods" / name / "envbot-limits.json"  # the step's output parameter file
            self.argo.set_outputs(name, {"limits": limits.read_text() if limits.exists() else ""})


def _first_step_name() -> str:
    """The name of the create entrypoint's first step: the one this controller runs."""
    spec = template(CREATE)["spec"]
    (entry,) = [t for t in spec["templates"] if t["name"] == spec["entrypoint"]]
    return str(entry["steps"][0][0]["name"]) if "steps" in entry else ""


def _is_create(workflow: dict[str, Any]) -> bool:
    return bool(workflow["spec"].get("workflowTemplateRef", {}).get("name") == CREATE)


def _mutexes(spec: dict[str, Any], values: dict[str, str]) -> list[str]:
    names = [m["name"] for m in (spec.get("synchronization") or {}).get("mutexes", [])]
    return [_PARAMETER.sub(lambda m: values[m.group(1)], name) for name in names]
