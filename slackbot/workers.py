"""A bounded pool for slow work (argo calls), kept apart from the pool that acknowledges Slack."""

import logging
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

from slackbot.replies import Reply

log = logging.getLogger(__name__)

Deliver = Callable[[Reply], None]


class Workers:
    def __init__(self, size: int) -> None:
        self._pool = ThreadPoolExecutor(max_workers=size, thread_name_prefix="envbot-work")

    def submit(self, work: Callable[[], Reply], deliver: Deliver) -> Future[None] | None:
        """Queue work and deliver its reply; None if the bot is shutting down and took nothing."""
        try:
            return self._pool.submit(_run, work, deliver)
        except RuntimeError:
            return None

    def shutdown(self) -> None:
        """Stop taking work and wait for queued work to finish and deliver its replies."""
        self._pool.shutdown(wait=True)


def _run(work: Callable[[], Reply], deliver: Deliver) -> None:
    reply = work()
    try:
        deliver(reply)
    except Exception as error:  # a lost follow-up must not kill the worker thread
        log.error("could not deliver a reply: %s", type(error).__name__)
