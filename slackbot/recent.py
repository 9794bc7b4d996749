"""Keys seen recently, so a replayed request or a double click runs once (bounded: old keys drop out)."""

import threading
import time
from collections import OrderedDict
from collections.abc import Callable


class RecentKeys:
    def __init__(self, window: float, now: Callable[[], float] = time.monotonic) -> None:
        self._window = window
        self._now = now
        self._lock = threading.Lock()
        self._keys: OrderedDict[str, float] = OrderedDict()

    def first(self, key: str) -> bool:
        """True the first time `key` is seen within the window; remembers it."""
        now = self._now()
        with self._lock:
            while self._keys and next(iter(self._keys.values())) < now - self._window:
                self._keys.popitem(last=False)
            if key in self._keys:
                return False
            self._keys[key] = now
            return True

    def forget(self, key: str) -> None:
        with self._lock:
            self._keys.pop(key, None)
