"""A local stand-in for Slack's Web API and for response_url, recording every request.

It answers like Slack: `auth.test` per token (with the `x-oauth-scopes` header), Socket Mode's
`apps.connections.open` only for app-level tokens, `chat.postMessage`/`chat.update` with a `ts`,
and user groups. Faults are injected per path: an HTTP status (429 with Retry-After, 500), or no
answer at all.
"""

import json
import threading
import time
from collections import defaultdict
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

BOT_SCOPES = (
    "commands", "chat:write", "chat:write.public", "usergroups:read", "channels:read", "groups:read", "im:read",
    "mpim:read",
)  # fmt: skip


@dataclass(frozen=True)
class Received:
    path: str
    body: dict[str, Any]
    headers: dict[str, str]
    at: float
    peer: int = 0  # the client's port: the same port for two requests means one kept-alive connection


@dataclass
class _Fault:
    status: int
    retry_after: int | None
    times: int
    error: str | None = None


class FakeSlack:
    def __init__(self) -> None:
        self.received: list[Received] = []
        self.groups: dict[str, list[str]] = {}
        self.groups_down = False
        self.groups_hang = 0.0  # seconds usergroups.users.list takes to answer
        # Private conversations (id -> members). Any other `C…` id answers as a public channel; a `G…` or
        # `D…` id not listed here answers channel_not_found, as for a conversation the bot is not in.
        self.private_channels: dict[str, list[str]] = {}
        self.redirects: dict[str, str] = {}  # path -> Location answered with a 302
        self.socket_url = ""
        self.token_valid = True
        self.scopes: tuple[str, ...] = BOT_SCOPES
        self.bot_user = "UBOT"
        self.messages: dict[str, list[dict[str, Any]]] = defaultdict(list)  # channel -> posted messages
        self._faults: dict[str, list[_Fault]] = defaultdict(list)
        self._ts = 1764320000
        self._cond = threading.Condition()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as Slack's endpoints offer
            disable_nagle_algorithm = True  # headers and body are two writes: no 40 ms delayed-ACK stall between

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

    @property
    def response_prefix(self) -> str:
        return f"{self.url}/response/"

    def response_url(self, key: str) -> str:
        return f"{self.response_prefix}{key}"

    def start(self) -> "FakeSlack":
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def fail(
        self, path: str, status: int, *, times: int = 1, retry_after: int | None = None, error: str | None = None
    ) -> None:
        """The next `times` requests to `path` (e.g. /api/chat.postMessage) get `status`, and post nothing.
        Status 0 means no answer at all (the connection is closed). The body is `{"ok": false, "error": ...}`
        with `error` if given (e.g. status 200 and "channel_not_found"), else ratelimited/fatal_error."""
        with self._cond:
            self._faults[path].append(_Fault(status, retry_after, times, error))

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

    def posted(self, channel: str | None = None) -> list[dict[str, Any]]:
        """Messages Slack accepted (chat.postMessage), in order; chat.update edits them in place."""
        with self._cond:
            if channel is not None:
                return list(self.messages.get(channel, []))
            return [m for messages in self.messages.values() for m in messages]

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
            peer = int(handler.client_address[1])
            self.received.append(Received(path, body, dict(handler.headers), time.monotonic(), peer))
            fault = self._take_fault(path)
            self._cond.notify_all()
        if path in self.redirects:
            self._send(handler, 302, "moved", {"Location": self.redirects[path]})
            return
        if path == "/api/usergroups.users.list" and self.groups_hang:
            time.sleep(self.groups_hang)
        if (path == "/api/usergroups.users.list" and self.groups_down) or (fault and fault.status == 0):
            handler.close_connection = True
            handler.connection.close()  # as if Slack were unreachable: no answer at all
            return
        if fault is not None:
            self._send(
                handler,
                fault.status,
                {"ok": False, "error": fault.error or ("ratelimited" if fault.status == 429 else "fatal_error")},
                {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else {},
            )
            return
        token = handler.headers.get("Authorization", "").removeprefix("Bearer ")
        answer, headers = self._answer(path, body, token)
        self._send(handler, 200, answer, headers)

    def _take_fault(self, path: str) -> _Fault | None:
        queue = self._faults.get(path)
        if not queue:
            return None
        fault = queue[0]
        fault.times -= 1
        if fault.times <= 0:
            queue.pop(0)
        return fault

    def _send(
        self, handler: BaseHTTPRequestHandler, status: int, answer: dict[str, Any] | str, headers: dict[str, str]
    ) -> None:
        data = json.dumps(answer).encode() if isinstance(answer, dict) else answer.encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json" if isinstance(answer, dict) else "text/plain")
        for name, value in headers.items():
            handler.send_header(name, value)
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)

    def _answer(self, path: str, body: dict[str, Any], token: str) -> tuple[dict[str, Any] | str, dict[str, str]]:
        if path.startswith("/response/"):
            return "ok", {}
        if path == "/api/apps.connections.open":
            if not token.startswith("xapp-"):
                return {"ok": False, "error": "not_allowed_token_type"}, {}
            return {"ok": True, "url": self.socket_url or "wss://wss.example.invalid/link/?ticket=t"}, {}
        if not token.startswith("xoxb-") or not self.token_valid:
            return {"ok": False, "error": "not_allowed_token_type" if token.startswith("xapp-") else "invalid_auth"}, {}
        if path == "/api/auth.test":
            answer = {
                "ok": True,
                "team": "Example",
                "team_id": "T111",
                "user_id": self.bot_user,
                "bot_id": "B111",
                "url": "https://example.slack.com/",
            }
            return answer, {"x-oauth-scopes": ",".join(self.scopes)}
        if path == "/api/usergroups.users.list":
            group = body.get("usergroup", "")
            if group not in self.groups:
                return {"ok": False, "error": "no_such_subteam"}, {}
            return {"ok": True, "users": self.groups[group]}, {}
        if path in ("/api/conversations.info", "/api/conversations.members"):
            return self._conversation(path, str(body.get("channel") or "")), {}
        if path == "/api/chat.postMessage":
            return self._post(body), {}
        if path == "/api/chat.update":
            return self._update(body), {}
        if path in ("/api/views.open", "/api/views.publish"):  # recorded; answered with the view and an id
            view = body.get("view")
            view = json.loads(view) if isinstance(view, str) else view
            return {"ok": True, "view": (view or {}) | {"id": f"V{len(self.received):08d}"}}, {}
        if path == "/api/chat.postEphemeral":
            return {"ok": True, "message_ts": f"{self._ts}.000200"}, {}
        return {"ok": True}, {}

    def _conversation(self, path: str, channel: str) -> dict[str, Any]:
        if channel in self.private_channels:
            if path.endswith(".members"):
                return {"ok": True, "members": self.private_channels[channel], "response_metadata": {"next_cursor": ""}}
            return {"ok": True, "channel": {"id": channel, "is_private": True, "is_im": False, "is_mpim": False}}
        if not channel.startswith("C"):
            return {"ok": False, "error": "channel_not_found"}
        if path.endswith(".members"):
            return {"ok": False, "error": "not_in_channel"}
        return {"ok": True, "channel": {"id": channel, "is_private": False, "is_im": False, "is_mpim": False}}

    def _post(self, body: dict[str, Any]) -> dict[str, Any]:
        channel = str(body.get("channel") or "")
        if not channel:
            return {"ok": False, "error": "channel_not_found"}
        with self._cond:
            self._ts += 1
            ts = f"{self._ts}.000100"
            self.messages[channel].append(body | {"ts": ts})
            self._cond.notify_all()
        return {"ok": True, "channel": channel, "ts": ts, "message": {"text": body.get("text", "")}}

    def _update(self, body: dict[str, Any]) -> dict[str, Any]:
        with self._cond:
            for message in self.messages.get(str(body.get("channel")), []):
                if message["ts"] == body.get("ts"):
                    message.update({k: v for k, v in body.items() if k not in ("channel", "ts")})
                    return {"ok": True, "channel": body["channel"], "ts": body["ts"]}
        return {"ok": False, "error": "message_not_found"}


def _decode(raw: str, content_type: str) -> dict[str, Any]:
    if not raw:
        return {}
    if "json" in content_type:
        return json.loads(raw)
    return {key: values[-1] for key, values in parse_qs(raw).items()}
