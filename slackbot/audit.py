"""One structured audit record per decision: JSON lines on stdout and, optionally, a file."""

import json
import sys
import threading
from datetime import datetime
from pathlib import Path
from typing import Literal, TextIO

from pydantic import BaseModel, ConfigDict

from slackbot.clock import rfc3339

Decision = Literal["allowed", "refused", "invalid", "help"]
Outcome = Literal["submitted", "failed", "none"]


class AuditRecord(BaseModel):
    model_config = ConfigDict(frozen=True)
    time: datetime
    user: str
    channel: str | None
    command: str
    action: str | None
    decision: Decision
    reason: str | None = None
    env: str | None = None
    workflow: str | None = None
    outcome: Outcome = "none"
    latency_ms: int

    def to_json(self) -> str:
        fields = self.model_dump(mode="json") | {"time": rfc3339(self.time), "kind": "audit"}
        return json.dumps(fields, sort_keys=True)


class AuditLog:
    """Thread-safe writer; each record is one line, written and flushed whole."""

    def __init__(self, path: Path | None = None, stream: TextIO | None = None) -> None:
        self._stream = stream
        self._path = path
        self._lock = threading.Lock()

    def record(self, entry: AuditRecord) -> None:
        line = entry.to_json() + "\n"
        with self._lock:
            stream = self._stream or sys.stdout
            stream.write(line)
            stream.flush()
            if self._path is not None:
                with self._path.open("a", encoding="utf-8") as handle:
                    handle.write(line)
