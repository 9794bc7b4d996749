"""Runs commands' slow parts (argo calls) on a bounded set of workers, fairly, and stops within a budget.

Each job names the keys it must hold alone (a user's quota, an environment). A job whose keys are
busy waits in the queue, not in a worker, so one user's burst never holds the workers another
user's command needs. Keys exist only while held: nothing grows with the names ever seen.

Among the jobs that may run, the next is taken from the person (a `user:` key) whose last job started
longest ago, oldest first within a person: a flood from one member delays another member's command
by at most one of the flood's own jobs per worker, whatever the command.
"""

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from slackbot import metrics
from slackbot.replies import INTERRUPTED, RESTARTING, Reply

log = logging.getLogger(__name__)

Deliver = Callable[[Reply], object]


@dataclass
class _Job:
    keys: frozenset[str]
    work: Callable[[], Reply]
    deliver: Deliver
    queued_at: float = field(default_factory=time.monotonic)
    settled: bool = False  # its reply (or a word about why there is none) was handed to `deliver`

    @property
    def party(self) -> str | None:
        """Whose job this is (the `user:` key every command holds), for taking turns."""
        return next((key for key in sorted(self.keys) if key.startswith("user:")), None)


class Scheduler:
    def __init__(self, size: int, name: str = "envbot-work") -> None:
        # One lock, two conditions: a new job wakes one idle worker, not all of them (each wake-up is a
        # thread switch and a turn at the GIL); `_cond` wakes those waiting for the queue to drain.
        lock = threading.RLock()
        self._cond = threading.Condition(lock)
        self._work = threading.Condition(lock)
        self._pending: list[_Job] = []
        self._held: set[str] = set()
        self._turns = 0
        self._last_turn: dict[str | None, int] = {}  # parties with jobs queued or running: when they last started
        self._running = 0
        self._active: list[_Job] = []  # running now
        self._accepting = True
        self._threads = [threading.Thread(target=self._loop, name=f"{name}-{i}", daemon=True) for i in range(size)]
        for thread in self._threads:
            thread.start()

    @property
    def accepting(self) -> bool:
        return self._accepting

    def submit(self, keys: tuple[str, ...], work: Callable[[], Reply], deliver: Deliver) -> bool:
        """Queue work; its reply goes to `deliver`. False if the bot is stopping and took nothing."""
        with self._cond:
            if not self._accepting:
                return False
            self._pending.append(_Job(frozenset(keys), work, deliver))
            metrics.QUEUE_DEPTH.set(len(self._pending))
            self._work.notify()
        return True

    def depth(self) -> tuple[int, int]:
        """(queued, running)"""
        with self._cond:
            return len(self._pending), self._running

    def stop(self, grace: float) -> int:
        """Stop taking work; let queued and running jobs finish within `grace` seconds (a rolling update
        loses no accepted command); then tell every job still queued that nothing was submitted.
        Returns how many were still running when the budget ran out."""
        deadline = time.monotonic() + grace
        with self._cond:
            self._accepting = False
            self._work.notify_all()
            while (self._running or self._pending) and time.monotonic() < deadline:
                self._cond.wait(deadline - time.monotonic())
            unstarted, self._pending = self._pending, []
            metrics.QUEUE_DEPTH.set(0)
            self._work.notify_all()
            running = self._running
        for job in unstarted:
            _deliver(job.deliver, RESTARTING)
        return running

    def hurry(self, budget: float, interrupt: Callable[[], object]) -> int:
        """A second signal: stop at once, but tell everyone whose command was taken what happened.

        Queued commands are told nothing was submitted; `interrupt` ends running argo calls, so their
        commands finish with that in their reply; any still running near the end of `budget` seconds
        get INTERRUPTED instead. Deliveries run side by side. Returns how many were still running."""
        with self._cond:
            self._accepting = False
            unstarted, self._pending = self._pending, []
            metrics.QUEUE_DEPTH.set(0)
            self._work.notify_all()
        interrupt()
        started = time.monotonic()
        deadline = started + budget
        senders = [_send(job.deliver, RESTARTING) for job in unstarted]
        with self._cond:
            while self._running and time.monotonic() < deadline - budget / 2:
                self._cond.wait(deadline - budget / 2 - time.monotonic())
            stragglers = [job for job in self._active if not job.settled]
            for job in stragglers:
                job.settled = True
        senders += [_send(job.deliver, INTERRUPTED) for job in stragglers]
        for sender in senders:
            sender.join(max(0.05, deadline - time.monotonic()))
        with self._cond:  # replies the workers are still posting
            settled_running = [job for job in self._active if job not in stragglers]
            while settled_running and time.monotonic() < deadline:
                self._cond.wait(deadline - time.monotonic())
                settled_running = [job for job in self._active if job not in stragglers]
        return len(stragglers)

    def _settle(self, job: _Job) -> bool:
        """True once per job: whoever settles it first delivers."""
        with self._cond:
            first, job.settled = not job.settled, True
            return first

    def wait_idle(self, timeout: float) -> bool:
        """Wait until nothing is queued or running (True), or the timeout passes (False)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while (self._running or self._pending) and time.monotonic() < deadline:
                self._cond.wait(deadline - time.monotonic())
            return not (self._running or self._pending)

    def _loop(self) -> None:
        while True:
            with self._cond:
                job = self._next()
                while job is None:
                    if not self._accepting and not self._pending:
                        return
                    self._work.wait()
                    job = self._next()
                self._held |= job.keys
                self._running += 1
                self._active.append(job)
                metrics.QUEUE_DEPTH.set(len(self._pending))
                metrics.WORKERS_BUSY.set(self._running)
            try:
                reply = job.work()
                if self._settle(job):
                    _deliver(job.deliver, reply)
            finally:
                with self._cond:
                    self._held -= job.keys
                    self._running -= 1
                    self._active.remove(job)
                    metrics.WORKERS_BUSY.set(self._running)
                    if self._pending:  # its keys may free queued jobs; this worker takes one, others the rest
                        self._work.notify_all()
                    self._cond.notify_all()

    def _next(self) -> _Job | None:
        """Of the jobs whose keys are all free, the oldest of the party whose turn came longest ago."""
        best: int | None = None
        for index, job in enumerate(self._pending):
            if job.keys & self._held:
                continue
            if best is None or self._last_turn.get(job.party, -1) < self._last_turn.get(self._pending[best].party, -1):
                best = index
        if best is None:
            return None
        job = self._pending.pop(best)
        self._turns += 1
        self._last_turn[job.party] = self._turns
        waiting = {j.party for j in self._pending} | {job.party}
        self._last_turn = {party: turn for party, turn in self._last_turn.items() if party in waiting}
        return job


def _send(deliver: Deliver, reply: Reply) -> threading.Thread:
    sender = threading.Thread(target=_deliver, args=(deliver, reply), name="envbot-last-word", daemon=True)
    sender.start()
    return sender


def _deliver(deliver: Deliver, reply: Reply) -> None:
    try:
        deliver(reply)
    except Exception as error:  # a lost follow-up must not kill the worker thread
        metrics.DELIVERY_FAILURES.inc()
        log.error("could not deliver a reply: %s", type(error).__name__)
