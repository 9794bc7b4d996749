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

See docs/adr/0010-one-argo-call-per-create.md.
"""

import logging
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime

from slackbot import metrics
from slackbot.errors import EnvbotError
from slackbot.history import Environment, fold
from slackbot.orchestrator import EnvironmentOrchestrator, Scope, Submission, WorkflowRecord
from slackbot.spec import DestroyRequest, EnvironmentSpec, ExtendRequest

log = logging.getLogger(__name__)

MAX_AGE_FACTOR = 3  # one or two failed refreshes are tolerated; a third makes the view untrusted


@dataclass(frozen=True)
class _Index:
    """Records grouped by environment name, and which names each owner and channel has."""

    by_env: dict[str, tuple[WorkflowRecord, ...]] = field(default_factory=dict)
    by_owner: dict[str, frozenset[str]] = field(default_factory=dict)
    by_channel: dict[str, frozenset[str]] = field(default_factory=dict)

    @staticmethod
    def of(records: Iterable[WorkflowRecord]) -> "_Index":
        by_env: dict[str, list[WorkflowRecord]] = defaultdict(list)
        by_owner: dict[str, set[str]] = defaultdict(set)
        by_channel: dict[str, set[str]] = defaultdict(set)
        for record in records:
            by_env[record.env_name].append(record)
            if record.owner:
                by_owner[record.owner].add(record.env_name)
            if record.channel:
                by_channel[record.channel].add(record.env_name)
        return _Index(
            {name: tuple(group) for name, group in by_env.items()},
            {owner: frozenset(names) for owner, names in by_owner.items()},
            {channel: frozenset(names) for channel, names in by_channel.items()},
        )


class Snapshot:
    """A consistent, read-only moment of the view."""

    def __init__(self, base: _Index, own: tuple[WorkflowRecord, ...]) -> None:
        self._base = base
        self._own = _Index.of(own)

    def named(self, name: str) -> Environment | None:
        known = {r.name: r for r in self._own.by_env.get(name, ())}
        known |= {r.name: r for r in self._base.by_env.get(name, ())}  # Argo's record wins over ours
        return fold(known.values()).get(name) if known else None

    def owned_by(self, owner: str) -> dict[str, Environment]:
        names = self._base.by_owner.get(owner, frozenset()) | self._own.by_owner.get(owner, frozenset())
        return self._pick(names, lambda env: env.owner == owner)

    def in_channel(self, channel: str) -> dict[str, Environment]:
        names = self._base.by_channel.get(channel, frozenset()) | self._own.by_channel.get(channel, frozenset())
        return self._pick(names, lambda env: env.channel == channel)

    def _pick(self, names: Iterable[str], keep: Callable[[Environment], bool]) -> dict[str, Environment]:
        found = {}
        for name in names:
            env = self.named(name)
            if env is not None and keep(env):
                found[name] = env
        return found


class EnvironmentView:
    def __init__(
        self, orchestrator: EnvironmentOrchestrator, refresh: float, now: Callable[[], float] = time.monotonic
    ) -> None:
        self._orchestrator = orchestrator
        self.refresh_interval = refresh
        self._now = now
        self._lock = threading.Lock()
        self._base = _Index()
        self._loaded_at: float | None = None  # when the last good read started
        self._reads_started = 0
        self._own: list[tuple[int, WorkflowRecord]] = []  # (reads started when it was added, record)
        self._stop = threading.Event()
        self._loaded = threading.Event()
        self._thread: threading.Thread | None = None

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
        with self._lock:
            return Snapshot(self._base, tuple(record for _, record in self._own))

    # --- feeding ---------------------------------------------------------------------------------

    def refresh(self) -> None:
        """Read every envbot workflow once. Raises EnvbotError (and keeps the old view) on failure."""
        with self._lock:
            self._reads_started += 1
            started, read_number = self._now(), self._reads_started
        index = _Index.of(self._orchestrator.history(Scope()))
        with self._lock:
            if self._loaded_at is not None and started < self._loaded_at:
                return  # a newer read finished first
            self._base, self._loaded_at = index, started
            self._own = [(n, record) for n, record in self._own if n >= read_number]
        self._loaded.set()

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

    def destroyed(self, request: DestroyRequest, submission: Submission, at: datetime) -> None:
        self._add(submission, _acting("destroy", request.env_name, request.requested_by, request, submission, at))

    def _add(self, submission: Submission, record: WorkflowRecord) -> None:
        if submission.dry_run:
            return
        with self._lock:
            self._own.append((self._reads_started, record))

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
    request: ExtendRequest | DestroyRequest,
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
