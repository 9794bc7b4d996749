"""Keeps each environment's channel message (its *root*, docs/adr/0009) saying the environment's state
when the execution plane doesn't: with notices off (the shipped default, and without a Slack token), nothing
but the bot ever edits the root, so without this it would say "requested" forever.

Who edits the root is decided per workflow by the plane's own mark: once a workflow has ended, the
plane settles its notice and labels the workflow `envbot.dev/notice` (ADR 0005). `skipped` means it
announced nothing (notices off, or nothing it could announce), so the root is the bot's to keep;
`sent`, `pending`, `sending` or `refused` mean the plane posted (or is posting) the notice and updates
the root itself; no label yet means the plane has not decided, and the bot waits. The bot reads that
label in the same `argo list` its view of environments already makes (slackbot/view.py): no argo call
of its own, none on the create path.

- **Only transitions.** After each refresh of the view, every environment whose root is the bot's
  gets the content its state calls for now (ready with URL and buttons, could not be created with the
  step and reason, expiring with buttons once the first warning before expiry is due, expired,
  deleted). Content that this process already wrote is not written again, so an unchanged
  environment costs nothing.
- **Idempotent.** The content is a function of the environment's history alone (no clock but the
  moment its state began), so two replicas write the same bytes, and a repeat is harmless.
- **Bounded.** Updates go out one at a time from one thread: a burst of `BURST`, then one every
  `PACE` seconds; a 429 stops them for Slack's Retry-After. At start-up the bot does not know what it
  wrote before: states that began within `CATCH_UP` are written once more (an identical update at
  most), older ones are taken as written, so a restart with thousands of environments is no storm.
"""

import logging
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from slackbot import metrics
from slackbot.announce import AnnounceFailed, Announcer, MessageRef
from slackbot.history import Environment
from slackbot.orchestrator import WorkflowRecord
from slackbot.redaction import redact
from slackbot.replies import Button, Reply, slack_date

log = logging.getLogger(__name__)

CATCH_UP = timedelta(hours=1)  # at start-up, states that began longer ago are taken as already shown
BURST = 10  # updates sent without pause
PACE = 1.5  # then one every PACE seconds (40 a minute: under chat.update's Tier 3, 50 a minute)
DEFAULT_RETRY_AFTER = 30.0  # a 429 without a readable Retry-After
ENDED = frozenset({"Succeeded", "Failed", "Error"})
BOTS_TO_KEEP = "skipped"  # the plane's notice label when it announced nothing
# Answers worth trying again after the next refresh (an outage). Any other refusal (the message is gone,
# can't be edited, the bot left the channel) won't change by retrying: that content is not sent again.
_RETRY_LATER = frozenset({"unreachable", "ratelimited", "internal_error", "fatal_error", "service_unavailable"})
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")

ButtonsFor = Callable[[str, str, str | None, datetime, datetime, datetime | None], tuple[Button, ...]]


@dataclass(frozen=True)
class Root:
    """What an environment's channel message should say now, and since when that is so."""

    ref: MessageRef
    reply: Reply
    since: datetime

    @property
    def key(self) -> int:
        return hash((self.ref, self.reply))


def root_of(env: Environment, now: datetime, buttons: ButtonsFor) -> Root | None:
    """The root the bot should show for `env`, or None when it is not the bot's to write (no message,
    the plane announces this environment, nothing has ended yet, or it is being destroyed)."""
    create = env.create
    if create.thread is None or env.channel is None:
        return None
    ended = [r for r in env.workflows if r.phase in ENDED]
    if not ended:
        return None
    deciding = max(ended, key=lambda r: (r.finished_at or r.created_at, r.created_at))
    if deciding.notice != BOTS_TO_KEEP:
        return None
    state = env.state(now)
    since = deciding.finished_at or deciding.created_at
    if state == "destroyed" and env.destroy is not None:
        by = f" by <@{env.destroy.requested_by}>" if env.destroy.requested_by else ""
        reply = _reply(f":wastebasket: `{env.name}` was deleted{by}.")
    elif state == "failed":
        reply = _reply(_could_not_create(env))
    elif state == "expired" and env.expires_at is not None:
        since = env.expires_at
        reply = _reply(f":wastebasket: `{env.name}` expired {slack_date(env.expires_at)} and is deleted automatically.")
    elif state == "live" and env.deployed is not None:
        warned = _warned_at(env)
        if warned is not None and warned <= now:
            since, text = max(since, warned), _expiring(env)
        else:
            text = _ready(env, env.deployed)
        reply = _reply(text, buttons(env.name, create.name, env.service, env.created_at, since, env.expires_at))
    else:
        return None
    return Root(ref=MessageRef(channel=env.channel, ts=create.thread), reply=reply, since=since)


def _ready(env: Environment, deployed: WorkflowRecord) -> str:
    owner = f", owner <@{env.owner}>" if env.owner else ""
    text = f":white_check_mark: `{env.name}` is ready (service `{env.service}`{owner})."
    if deployed.version:
        text += f" It runs `{deployed.version}`."
    if deployed.url:
        text += f" Open <{deployed.url}>."
    if env.expires_at is not None:
        text += f"\nExpires {slack_date(env.expires_at)}."
    return text


def _warned_at(env: Environment) -> datetime | None:
    """When the first warning before expiry is due, as the plane computes it (its `effective_leads`):
    each lead of the workflow that set the expiry, at most half the time from then to the expiry, at
    least a minute."""
    expires = env.expires_at
    if expires is None:
        return None
    setter = next((e for e in reversed(env.extends) if not e.failed and e.expires_at is not None), env.create)
    half = (expires - setter.created_at).total_seconds() / 2
    leads = [min(lead, int(half)) if half > 0 else lead for lead in setter.warn_before]
    due = [lead for lead in leads if lead >= 60]
    return expires - timedelta(seconds=max(due)) if due else None


def _expiring(env: Environment) -> str:
    expires = f" {slack_date(env.expires_at)}" if env.expires_at is not None else " soon"
    return f":hourglass_flowing_sand: `{env.name}` expires{expires}. Extend it or destroy it with the buttons below."


def _could_not_create(env: Environment) -> str:
    step = env.create.failed_step
    why = f": step `{_plain(step.name, 60)}` failed: {_plain(step.message, 300)}" if step else ""
    service = f" {env.service}" if env.service else " <service>"
    return (
        f":x: `{env.name}` could not be created{why}\n"
        f"See what is left with `/env status {env.name}`, then try again with `/env create{service} name={env.name}`."
    )


def _plain(text: str, limit: int) -> str:
    """Text from the cluster, quoted in mrkdwn: one line, capped, no secrets, nothing Slack would read
    as markup."""
    one_line = _CONTROL.sub(" ", redact(text)).strip()
    capped = one_line if len(one_line) <= limit else one_line[: limit - 1] + "…"
    return capped.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _reply(text: str, buttons: tuple[Button, ...] = ()) -> Reply:
    return Reply(text=text, visibility="in_channel", buttons=buttons)


class RootKeeper:
    """Watches the view's refreshes (`observe`) and sends the roots that changed, paced, on one thread."""

    def __init__(
        self,
        announcer: Announcer,
        buttons: ButtonsFor,
        clock: Callable[[], datetime],
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._announcer = announcer
        self._buttons = buttons
        self._clock = clock
        self._monotonic = monotonic
        self._cond = threading.Condition()
        # What this process last showed, per env: a hash of the message and its content (a few bytes each,
        # however many environments there are; a collision would skip one update until the state changes).
        self._written: dict[str, int] = {}
        self._queue: OrderedDict[str, Root] = OrderedDict()
        self._sending = False
        self._observed = 0
        self._tokens = float(BURST)
        self._filled_at = monotonic()
        self._paused_until = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # --- deciding ---------------------------------------------------------------------------------

    def observe(self, envs: Mapping[str, Environment]) -> None:
        """After a refresh: queue every root whose content differs from what this process last wrote."""
        now = self._clock()
        with self._cond:
            first = self._observed == 0
            for name in [n for n in self._written if n not in envs]:
                del self._written[name]  # its records are gone: nothing to remember
            for name, env in envs.items():
                root = root_of(env, now, self._buttons)
                if root is None or self._written.get(name) == root.key:
                    self._queue.pop(name, None)  # nothing to write, or a waiting update became stale
                    continue
                if first and root.since < now - CATCH_UP:
                    self._written[name] = root.key  # shown long ago, by whoever ran then
                    continue
                self._queue[name] = root  # a newer state replaces one still waiting
            self._observed += 1
            metrics.ROOTS_QUEUED.set(len(self._queue))
            self._cond.notify_all()

    def wait_idle(self, observed: int, timeout: float) -> bool:
        """True once `observed` refreshes were observed and everything they queued was sent (or given up)."""
        deadline = self._monotonic() + timeout
        with self._cond:
            while self._observed < observed or self._queue or self._sending:
                remaining = deadline - self._monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)
        return True

    @property
    def observed(self) -> int:
        with self._cond:
            return self._observed

    # --- sending ----------------------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="envbot-roots", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        with self._cond:
            self._cond.notify_all()

    def _loop(self) -> None:
        while not self._stop.is_set():
            with self._cond:
                while not self._queue and not self._stop.is_set():
                    self._cond.wait()
                if self._stop.is_set():
                    return
            self._stop.wait(self._delay())
            with self._cond:
                if not self._queue or self._stop.is_set():
                    continue
                name, root = self._queue.popitem(last=False)
                self._sending = True
            try:
                written = self._send(name, root)
            finally:
                with self._cond:
                    self._sending = False
                    if written:
                        self._written[name] = root.key
                    metrics.ROOTS_QUEUED.set(len(self._queue))
                    self._cond.notify_all()

    def _delay(self) -> float:
        """Seconds to wait before the next update: a pause for Slack's Retry-After, else the pace."""
        now = self._monotonic()
        self._tokens = min(float(BURST), self._tokens + (now - self._filled_at) / PACE)
        self._filled_at = now
        wait = max(0.0, self._paused_until - now)
        if self._tokens < 1:
            wait = max(wait, (1 - self._tokens) * PACE)
        return wait

    def _send(self, name: str, root: Root) -> bool:
        """True when the root now shows `root` (or never will: retrying would not help)."""
        self._tokens -= 1
        try:
            self._announcer.update(root.ref, root.reply)
        except AnnounceFailed as error:
            metrics.ROOT_UPDATES.labels("failed").inc()
            if error.code == "ratelimited":
                pause = error.retry_after if error.retry_after is not None else DEFAULT_RETRY_AFTER
                self._paused_until = self._monotonic() + pause
                log.warning("Slack rate-limited updates of environments' messages: pausing %g s", pause)
                with self._cond:
                    self._queue.setdefault(name, root)
                    self._queue.move_to_end(name, last=False)  # first again once the pause is over
                return False
            if error.code in _RETRY_LATER:
                log.warning("could not update the message of %s (%s); retried after the next refresh", name, error.code)
                return False
            log.warning("could not update the message of %s: Slack said %s; not retried", name, error.code)
            return True
        metrics.ROOT_UPDATES.labels("sent").inc()
        return True
