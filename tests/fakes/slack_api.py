"""A local stand-in for Slack's Web API and for response_url, recording every request."""

import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs


@dataclass(frozen=True)
class Received:
    path: str
    body: dict[str, Any]
    headers: dict[str, str]
    at: float


class FakeSlack:
    def __init__(self) -> None:
        self.received: list[Received] = []
        self.groups: dict[str, list[str]] = {}
        self.groups_down = False
        self.socket_url = ""
        self.token_valid = True
        self._cond = threading.Condition()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                fake._handle(self)

            def do_POST(self) -> None:
                fake._handle(self)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    @property
    def api_url(self) -> str:
        return f"{self.url}/api/"

    def response_url(self, key: str) -> str:
        return f"{self.url}/response/{key}"

    def start(self) -> "FakeSlack":
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    # --- recording ------------------------------------------------------------------------------

    def requests(self, path: str) -> list[Received]:
        with self._cond:
            return [r for r in self.received if r.path == path]

    def wait_for(self, path: str, count: int = 1, timeout: float = 15) -> list[Received]:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                found = [r for r in self.received if r.path == path]
                if len(found) >= count:
                    return found
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"expected {count} requests to {path}, got {len(found)}")
                self._cond.wait(remaining)

    def everything_sent(self) -> str:
        with self._cond:
            return "\n".join(json.dumps(r.body) + json.dumps(r.headers) for r in self.received)

    # --- answering ------------------------------------------------------------------------------

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        path, _, query = handler.path.partition("?")
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length).decode() if length else query
        body = _decode(raw, handler.headers.get("Content-Type", ""))
        with self._cond:
            self.received.append(Received(path, body, dict(handler.headers), time.monotonic()))
            self._cond.notify_all()
        if path == "/api/usergroups.users.list" and self.groups_down:
            handler.close_connection = True
            handler.connection.close()  # as if Slack were unreachable: no answer at all
            return
        answer = self._answer(path, body)
        data = json.dumps(answer).encode() if isinstance(answer, dict) else answer.encode()
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json" if isinstance(answer, dict) else "text/plain")
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)

    def _answer(self, path: str, body: dict[str, Any]) -> dict[str, Any] | str:
        if path.startswith("/response/"):
            return "ok"
        if path == "/api/auth.test" and not self.token_valid:
            return {"ok": False, "error": "invalid_auth"}
        if path == "/api/auth.test":
            return {"ok": True, "team_id": "T111", "user_id": "UBOT", "bot_id": "B111", "url": "https://x/"}
        if path == "/api/apps.connections.open":
            return {"ok": True, "url": self.socket_url}
        if path == "/api/usergroups.users.list":
            group = body.get("usergroup", "")
            if group not in self.groups:
                return {"ok": False, "error": "no_such_subteam"}
            return {"ok": True, "users": self.groups[group]}
        return {"ok": True}


def _decode(raw: str, content_type: str) -> dict[str, Any]:
    if not raw:
        return {}
    if "json" in content_type:
        return json.loads(raw)
    return {key: values[-1] for key, values in parse_qs(raw).items()}
