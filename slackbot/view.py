"""The bot's view of envbot's environments, so a create's follow-up waits for its submit alone.

A background refresh reads every envbot workflow (one `argo list`, streamed) every ENV_VIEW_REFRESH
seconds; the bot's own submits are added the moment Argo accepts them. A create decides its friendly
checks (name taken, quotas) from this view instead of reading Argo first. The view is not the
guarantee (the create template is, under its locks); it is a fast answer in the common case:

- **Fail closed.** The view is trusted only while its last good read started less than
  `MAX_AGE_FACTOR` refresh intervals ago. Never loaded, failing, or too old: `snapshot()` is None
  and the caller reads Argo afresh, as before.
- **Never a false refusal.** The view may miss what another replica or an operator did since the
  last refresh, so a refusal decided from it is confirmed by a fresh read before the user sees it.
- **Own submits at once.** A submit is recorded until a refresh that started after it has
  finished (that read includes it), so one replica's quotas are as exact as before.

See docs/adr/0010-one-argo-call-per-create-and-ha.md.
"""

import logging
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime

from slackbot import metrics
from slackbot.errors import EnvbotError
from slackbot.history import Environment, fold
from slackbot.orchestrator import EnvironmentOrchestrator, Scope, Submission, WorkflowRecord
from slackbot.spec import DeployRequest, DestroyRequest, EnvironmentSpec, ExtendRequest

log = logging.getLogger(__name__)

MAX_AGE_FACTOR = 3  # one or two failed refreshes are tolerated; a third makes the view untrusted


class _Known:
    """Every record by environment name (Argo's over ours), each name folded once, and the names each
    owner and channel has now (a name moves when a new incarnation has another owner or channel).
    Changed only under the view's lock."""

    def __init__(self, records: Iterable[WorkflowRecord]) -> None:
        self.records: dict[str, dict[str, WorkflowRecord]] = defaultdict(dict)
        self.envs: dict[str, Environment] = {}
        self.by_owner: dict[str, set[str]] = defaultdict(set)
        self.by_channel: dict[str, set[str]] = defaultdict(set)
        for record in records:
            self.records[record.env_name][record.name] = record
        for name in self.records:
            self._fold(name)

    def add(self, record: WorkflowRecord) -> None:
        """One of our submits; a record Argo already returned for the same workflow is kept."""
        self.records[record.env_name].setdefault(record.name, record)
        self._fold(record.env_name)

    def _fold(self, name: str) -> None:
        env = fold(self.records[name].values()).get(name)
        if env is None:
            return
        before = self.envs.get(name)
        self.envs[name] = env
        _list_under(self.by_owner, name, before.owner if before else None, env.owner)
        _list_under(self.by_channel, name, before.channel if before else None, env.channel)


def _list_under(index: dict[str, set[str]], name: str, was: str | None, now: str | None) -> None:
    if was and was != now:
        index[was].discard(name)
        if not index[was]:
            del index[was]
    if now:
        index[now].add(name)


class Snapshot:
    """Answers from the view, read under its lock (no argo call)."""

    def __init__(self, known: _Known, lock: threading.Lock) -> None:
        self._known = known
        self._lock = lock

    def named(self, name: str) -> Environment | None:
        with self._lock:
            return self._known.envs.get(name)

    def owned_by(self, owner: str) -> dict[str, Environment]:
        with self._lock:
            return self._pick(self._known.by_owner.get(owner, ()))

    def in_channel(self, channel: str) -> dict[str, Environment]:
        with self._lock:
            return self._pick(self._known.by_channel.get(channel, ()))

    def _pick(self, names: Iterable[str]) -> dict[str, Environment]:
        return {name: self._known.envs[name] for name in names}


class EnvironmentView:
    def __init__(
        self, orchestrator: EnvironmentOrchestrator, refresh: float, now: Callable[[], float] = time.monotonic
    ) -> None:
        self._orchestrator = orchestrator
        self.refresh_interval = refresh
        self._now = now
        self._lock = threading.Lock()
        self._known = _Known(())
        self._loaded_at: float | None = None  # when the last good read started
        self._reads_started = 0
        self._own: list[tuple[int, WorkflowRecord]] = []  # (reads started when it was added, record)
        self._stop = threading.Event()
        self._loaded = threading.Event()
        self._thread: threading.Thread | None = None
        self._watchers: list[Callable[[Mapping[str, Environment]], None]] = []

    @property
    def enabled(self) -> bool:
        return self.refresh_interval > 0 and not self._orchestrator.dry_run

    def age(self) -> float:
        """Seconds since the last good read started; infinity if there never was one."""
        loaded = self._loaded_at
        return float("inf") if loaded is None else max(0.0, self._now() - loaded)

    def snapshot(self) -> Snapshot | None:
        """The view, or None when it can't be trusted (then read Argo afresh)."""
        if not self.enabled or self.age() >= MAX_AGE_FACTOR * self.refresh_interval:
            return None
        return Snapshot(self._known, self._lock)

    # --- feeding ---------------------------------------------------------------------------------

    def refresh(self) -> None:
        """Read every envbot workflow once. Raises EnvbotError (and keeps the old view) on failure."""
        with self._lock:
            self._reads_started += 1
            started, read_number = self._now(), self._reads_started
        records = self._orchestrator.history(Scope())
        with self._lock:
            if self._loaded_at is not None and started < self._loaded_at:
                return  # a newer read finished first
            self._own = [(n, record) for n, record in self._own if n >= read_number]
            known = _Known(records)
            for _, record in self._own:
                known.add(record)
            self._known, self._loaded_at = known, started
            envs = dict(known.envs) if self._watchers else {}
        self._loaded.set()
        for watcher in self._watchers:
            try:
                watcher(envs)
            except Exception:  # a watcher's bug must not stop the refresher that creates rely on
                log.exception("a watcher of the view of environments failed")

    def watch(self, watcher: Callable[[Mapping[str, Environment]], None]) -> None:
        """Call `watcher` with every environment after each good read (on the refresher's thread)."""
        self._watchers.append(watcher)

    def wait_loaded(self, timeout: float) -> bool:
        """True once a read has succeeded (for start-up reporting and benchmarks)."""
        return self._loaded.wait(timeout)

    def created(self, spec: EnvironmentSpec, submission: Submission, at: datetime) -> None:
        self._add(
            submission,
            WorkflowRecord(
                name=submission.workflow_name, action="create", env_name=spec.env_name, service=spec.service,
                owner=spec.requested_by, requested_by=spec.requested_by, channel=spec.slack_channel,
                created_at=at, expires_at=spec.expires_at, after=spec.replaces,
            ),
        )  # fmt: skip

    def extended(self, request: ExtendRequest, submission: Submission, at: datetime) -> None:
        self._add(submission, _acting("extend", request.env_name, request.requested_by, request, submission, at))

    def deployed(self, request: DeployRequest, submission: Submission, at: datetime) -> None:
        self._add(submission, _acting("deploy", request.env_name, request.requested_by, request, submission, at))

    def destroyed(self, request: DestroyRequest, submission: Submission, at: datetime) -> None:
        self._add(submission, _acting("destroy", request.env_name, request.requested_by, request, submission, at))

    def _add(self, submission: Submission, record: WorkflowRecord) -> None:
        if submission.dry_run:
            return
        with self._lock:
            self._own.append((self._reads_started, record))
            self._known.add(record)

    # --- the refresher ---------------------------------------------------------------------------

    def start(self) -> None:
        """Refresh now and then every interval, on a thread of its own (if enabled)."""
        if self.enabled and self._thread is None:
            metrics.VIEW_AGE.set_function(self.age)
            self._thread = threading.Thread(target=self._loop, name="envbot-view", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.refresh()
            except EnvbotError as error:
                metrics.VIEW_REFRESH_FAILURES.inc()
                log.warning(
                    "could not refresh the view of environments (creates read Argo afresh once it is %s s old): %s",
                    f"{MAX_AGE_FACTOR * self.refresh_interval:g}",
                    error.user_message,
                )
            self._stop.wait(self.refresh_interval)


def _acting(
    action: str,
    env_name: str,
    requested_by: str | None,
    request: ExtendRequest | DeployRequest | DestroyRequest,
    submission: Submission,
    at: datetime,
) -> WorkflowRecord:
    lineage = request.lineage
    expires_at = request.expires_at if isinstance(request, ExtendRequest) else None
    return WorkflowRecord.model_validate(
        {
            "name": submission.workflow_name, "action": action, "env_name": env_name, "service": lineage.service,
            "owner": lineage.owner, "requested_by": requested_by, "channel": lineage.channel, "created_at": at,
            "expires_at": expires_at, "incarnation": lineage.incarnation, "after": lineage.after,
        }
    )  # fmt: skip
