"""Environments as the execution plane's history describes them, folded from facts.

Each environment's life is a chain of workflows: a create (its *incarnation*), then extends and
destroys that name the create they act on and the workflow they followed. The chain, not the
creation timestamps (whole seconds), decides what came first.
"""

import threading
from collections import defaultdict
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict

from slackbot.orchestrator import EnvironmentOrchestrator, Scope, WorkflowRecord
from slackbot.spec import Lineage

State = Literal["live", "failed", "destroying", "destroyed", "expired"]
WorkflowState = Literal["submitted", "running", "ready", "failed"]

_PHASE_STATES: dict[str, WorkflowState] = {
    "": "submitted",
    "Pending": "submitted",
    "Running": "running",
    "Succeeded": "ready",
    "Failed": "failed",
    "Error": "failed",
}


def workflow_state(record: WorkflowRecord) -> WorkflowState:
    return _PHASE_STATES.get(record.phase, "running")


class Environment(BaseModel):
    """One incarnation of an environment name: its create and everything that acted on it."""

    model_config = ConfigDict(frozen=True)
    name: str
    create: WorkflowRecord
    # Extends and deploys: links of one chain (each names the workflow it followed), in that order.
    changes: tuple[WorkflowRecord, ...] = ()
    destroys: tuple[WorkflowRecord, ...] = ()

    @property
    def service(self) -> str | None:
        return self.create.service

    @property
    def owner(self) -> str | None:
        return self.create.owner

    @property
    def channel(self) -> str | None:
        return self.create.channel

    @property
    def created_at(self) -> datetime:
        return self.create.created_at

    @property
    def expires_at(self) -> datetime | None:
        """The latest extend that did not fail, else what the create set."""
        for extend in reversed(self.extends):
            if not extend.failed and extend.expires_at is not None:
                return extend.expires_at
        return self.create.expires_at

    @property
    def destroy(self) -> WorkflowRecord | None:
        """The destroy that ends this environment (one that did not fail), if any."""
        return next((d for d in reversed(self.destroys) if not d.failed), None)

    @property
    def workflows(self) -> tuple[WorkflowRecord, ...]:
        return (self.create, *self.changes, *self.destroys)

    @property
    def extends(self) -> tuple[WorkflowRecord, ...]:
        """In the order they were decided."""
        return tuple(r for r in self.changes if r.action == "extend")

    @property
    def deploys(self) -> tuple[WorkflowRecord, ...]:
        """In the order they were decided."""
        return tuple(r for r in self.changes if r.action == "deploy")

    @property
    def latest(self) -> WorkflowRecord:
        """The newest workflow of the chain (what an extend, deploy or destroy records it followed)."""
        return (self.changes or (self.create,))[-1]

    @property
    def deployed(self) -> WorkflowRecord | None:
        """The create or deploy whose service is running now: the newest one that succeeded."""
        done = [r for r in (self.create, *self.changes) if r.action in ("create", "deploy") and r.phase == "Succeeded"]
        return done[-1] if done else None

    @property
    def deploying(self) -> WorkflowRecord | None:
        """A deploy asked for after the one running now (in progress or failed), if any."""
        tried = [r for r in (self.create, *self.changes) if r.action in ("create", "deploy")]
        return tried[-1] if tried and tried[-1] is not self.deployed else None

    @property
    def last_workflow(self) -> WorkflowRecord:
        return self.destroy or self.latest

    def lineage(self) -> Lineage:
        """What a new extend or destroy of this environment records about it."""
        return Lineage(
            owner=self.owner, channel=self.channel, service=self.service, incarnation=self.create.name,
            after=self.latest.name, thread=self.create.thread,
        )  # fmt: skip

    def state(self, now: datetime) -> State:
        destroy = self.destroy
        if destroy is not None:
            return "destroyed" if destroy.phase == "Succeeded" else "destroying"
        if self.create.failed and self.deployed is None:  # a later deploy can mend a create that failed
            return "failed"
        expires_at = self.expires_at
        if expires_at is not None and expires_at <= now:
            return "expired"
        return "live"

    def is_live(self, now: datetime) -> bool:
        """Created (not failed), not destroyed, not yet expired: what counts against a quota."""
        return self.state(now) == "live"


def fold(records: Iterable[WorkflowRecord]) -> dict[str, Environment]:
    """The current incarnation of every environment name in `records`."""
    by_name: dict[str, list[WorkflowRecord]] = defaultdict(list)
    for record in records:
        by_name[record.env_name].append(record)
    found = {}
    for name, group in by_name.items():
        environment = _current(name, group)
        if environment is not None:
            found[name] = environment
    return found


def _current(name: str, records: list[WorkflowRecord]) -> Environment | None:
    creates = [r for r in records if r.action == "create"]
    if not creates:
        return None
    create = _newest_create(creates)
    mine = [r for r in records if r.incarnation == create.name]
    # One chain: an extend that followed a deploy is ordered through that deploy, never by its name.
    changes = _chain(create, [r for r in mine if r.action in ("extend", "deploy")])
    destroys = sorted((r for r in mine if r.action == "destroy"), key=lambda r: (r.created_at, r.name))
    return Environment(name=name, create=create, changes=tuple(changes), destroys=tuple(destroys))


def _newest_create(creates: list[WorkflowRecord]) -> WorkflowRecord:
    """A create names the earlier one it replaced; the one nobody replaced is current."""
    replaced = {c.after for c in creates if c.after}
    heads = [c for c in creates if c.name not in replaced] or creates
    return max(heads, key=lambda c: (c.created_at, c.name))


def _chain(create: WorkflowRecord, extends: list[WorkflowRecord]) -> list[WorkflowRecord]:
    """Order extends and deploys by how many links separate them from the create; time only breaks forks."""
    by_name = {e.name: e for e in extends}
    depth: dict[str, int] = {create.name: 0}

    def depth_of(record: WorkflowRecord, seen: frozenset[str] = frozenset()) -> int:
        if record.name in depth:
            return depth[record.name]
        parent = by_name.get(record.after or "")
        if record.after == create.name or parent is None or record.name in seen:
            depth[record.name] = 1  # a link we can't follow counts as the first step after the create
        else:
            depth[record.name] = depth_of(parent, seen | {record.name}) + 1
        return depth[record.name]

    return sorted(extends, key=lambda e: (depth_of(e), e.created_at, e.name))


class HistoryReader:
    """Reads history for a scope and folds it.

    Views (`list`, `status`) that arrive while an identical read is in flight share its result. A
    decision (quota, ownership) always reads afresh: a read that started before the decision took its
    lock could miss the submission that lock was protecting.
    """

    def __init__(self, orchestrator: EnvironmentOrchestrator) -> None:
        self._orchestrator = orchestrator
        self._guard = threading.Lock()
        self._inflight: dict[Scope, Future[dict[str, Environment]]] = {}

    def environments(self, scope: Scope, *, view: bool = False) -> dict[str, Environment]:
        def read() -> dict[str, Environment]:
            return fold(self._orchestrator.history(scope))

        return self._shared(scope, read) if view else read()

    def environment(self, name: str, *, view: bool = False) -> Environment | None:
        return self.environments(Scope(env_name=name), view=view).get(name)

    def _shared(self, scope: Scope, read: Callable[[], dict[str, Environment]]) -> dict[str, Environment]:
        with self._guard:
            future = self._inflight.get(scope)
            leader = future is None
            if future is None:
                future = self._inflight[scope] = Future()
        if not leader:
            return future.result()
        try:
            future.set_result(read())
        except BaseException as error:
            future.set_exception(error)
        finally:
            with self._guard:
                del self._inflight[scope]
        return future.result()
