"""Named locks, so a quota check and the submit it allows happen as one step per user and env."""

import threading
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager


class KeyedLocks:
    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[str, threading.Lock] = {}

    @contextmanager
    def hold(self, *keys: str) -> Iterator[None]:
        """Acquire every named lock, always in sorted order so two callers can't deadlock."""
        with ExitStack() as stack:
            for key in sorted(set(keys)):
                with self._guard:
                    lock = self._locks.setdefault(key, threading.Lock())
                stack.enter_context(lock)
            yield
