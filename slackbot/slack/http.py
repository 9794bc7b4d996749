"""The HTTP edge: probes, metrics, and `POST /slack/events` in front of Bolt.

Everything unauthenticated is decided here, cheaply, before Bolt sees it: size (waitress already
refused bodies over the limit before reading them), signature, timestamp, encoding, content type.
Rejections get a 4xx and one short log line without the body.

Bolt's own body parser (`slack_bolt.request.internals.parse_body`, 1.30) treats any form body
containing the substring "payload" as an interactive payload and returns {} when there is no
`payload` field, so `/env create payload-api` (or a channel, user or team named "payload…") became a
404. We parse the body ourselves and hand Bolt the result (`_ParsedRequest`), keeping its raw body
for its own signature check.
"""

import hashlib
import hmac
import json
import logging
import re
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any
from urllib.parse import parse_qsl

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from slack_bolt import App, BoltContext, BoltRequest
from slack_bolt.request.internals import build_context

from slackbot import metrics
from slackbot.recent import RecentKeys
from slackbot.slack.payloads import unreadable
from slackbot.slack.server import MAX_BODY

log = logging.getLogger(__name__)

REPLAY_WINDOW = 300  # Slack's signature window, seconds
_SIGNATURE = re.compile(r"v0=[0-9a-f]{64}")
_TIMESTAMP = re.compile(r"[0-9]{1,12}")

StartResponse = Callable[..., Any]
Probe = Callable[[], tuple[bool, str]]


class _ParsedRequest(BoltRequest):
    """A BoltRequest whose body we parsed; Bolt's raw body stays for its signature check."""

    def __init__(self, raw_body: str, body: dict[str, Any], headers: dict[str, str | Sequence[str]]) -> None:
        super().__init__(body="", headers=headers)
        self.raw_body = raw_body
        self.body = body
        self.context = build_context(BoltContext({}), body)


class SlackHttp:
    """The WSGI application `envbot serve` runs."""

    def __init__(
        self,
        app: App | None,
        signing_secret: str,
        live: Probe,
        ready: Probe,
        clock: Callable[[], float] | None = None,
        probes: bool = True,
    ) -> None:
        self._app = app
        self._probes = probes  # False on the Slack-facing port when probes have a port of their own
        self._secret = signing_secret.encode()
        self._live = live
        self._ready = ready
        self._clock = clock or (lambda: time.time())  # looked up per call, so freezegun can pin it
        self._replays = RecentKeys(REPLAY_WINDOW)

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        method, path = environ.get("REQUEST_METHOD", "GET"), environ.get("PATH_INFO", "")
        if not self._probes and path != "/slack/events":
            return _text(start_response, 404, "Not Found\n")
        if method == "GET" and path in ("/healthz", "/readyz"):
            ok, detail = (self._live if path == "/healthz" else self._ready)()
            return _text(start_response, 200 if ok else 503, f"{detail}\n")
        if method == "GET" and path == "/metrics":
            start_response("200 OK", [("Content-Type", CONTENT_TYPE_LATEST)])
            return [generate_latest()]
        if path == "/slack/events" and self._app is not None:
            if method != "POST":
                return _text(start_response, 405, "POST only\n")
            started = time.monotonic()
            try:
                return self._slack(environ, start_response)
            finally:
                metrics.ACK_SECONDS.observe(time.monotonic() - started)
        return _text(start_response, 404, "Not Found\n")

    def _slack(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        length = environ.get("CONTENT_LENGTH") or ""
        if not length.isascii() or not length.isdigit():
            return self._reject(start_response, 411, "no Content-Length")
        if int(length) > MAX_BODY:
            return self._reject(start_response, 413, "body too large")
        raw = environ["wsgi.input"].read(int(length))
        if raw == b"ssl_check=1" or raw.startswith(b"ssl_check=1&token="):
            return _text(start_response, 200, "")  # Slack's certificate probe is unsigned by design
        stamp = environ.get("HTTP_X_SLACK_REQUEST_TIMESTAMP", "")
        signature = environ.get("HTTP_X_SLACK_SIGNATURE", "")
        problem = self._unsigned(raw, stamp, signature)
        if problem is not None:
            return self._reject(start_response, 401, problem, body=b'{"error": "invalid request"}')
        try:
            text = raw.decode("utf-8")
            body = _parse(text, environ.get("CONTENT_TYPE", ""))
        except (ValueError, RecursionError) as error:
            why = "nested too deeply" if isinstance(error, RecursionError) else str(error)
            return self._reject(start_response, 400, f"signed but unreadable body ({why})")
        problem = unreadable(body)
        if problem is not None:
            return self._reject(start_response, 400, f"signed but unreadable body ({problem})")
        if not self._replays.first(signature) or not self._first_event(body):
            metrics.DUPLICATES.inc()
            log.info("ignored a replayed Slack request (seen within %s s)", REPLAY_WINDOW)
            return _text(start_response, 200, "")
        try:
            response = self._app.dispatch(_ParsedRequest(text, body, _headers(environ)))  # type: ignore[union-attr]
        except Exception as error:  # Bolt read a field we did not check; Slack gets a 4xx, the log one line
            return self._reject(start_response, 400, f"signed body Bolt could not read ({type(error).__name__})")
        if response.status >= 500:  # a listener failed before acknowledging; it logged why
            return self._reject(start_response, 400, f"Bolt answered {response.status}")
        headers = [(name, value) for name, values in response.headers.items() for value in values]
        start_response(f"{response.status} {_REASONS.get(response.status, '')}".strip(), headers)
        return [response.body.encode() if isinstance(response.body, str) else response.body]

    def _unsigned(self, raw: bytes, stamp: str, signature: str) -> str | None:
        """Why the request is not Slack's, or None. Constant-time comparison; no body in the answer."""
        if not _TIMESTAMP.fullmatch(stamp) or not _SIGNATURE.fullmatch(signature):
            return "missing or malformed signature headers"
        if abs(self._clock() - int(stamp)) > REPLAY_WINDOW:
            return "stale timestamp"
        expected = "v0=" + hmac.new(self._secret, b"v0:" + stamp.encode() + b":" + raw, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, signature):
            return "bad signature"
        return None

    def _first_event(self, body: dict[str, Any]) -> bool:
        # Events API retries (X-Slack-Retry-Num) are re-signed, so they are recognised by event_id.
        event_id = body.get("event_id")
        return not isinstance(event_id, str) or self._replays.first(f"event:{event_id}")

    def _reject(self, start_response: StartResponse, status: int, why: str, body: bytes = b"") -> Iterable[bytes]:
        log.warning("rejected a request to /slack/events: %s (HTTP %s)", why, status)
        start_response(f"{status} {_REASONS[status]}", [("Content-Type", "application/json")])
        return [body]


def _parse(text: str, content_type: str) -> dict[str, Any]:
    """Slack sends commands and interactions as forms (interactions in a `payload` field), events as JSON."""
    kind = content_type.split(";")[0].strip().lower()
    if kind == "application/json":
        value = json.loads(text)
    elif kind == "application/x-www-form-urlencoded":
        form = dict(parse_qsl(text, keep_blank_values=True, strict_parsing=bool(text)))
        value = json.loads(form["payload"]) if "payload" in form else form
    else:
        raise ValueError(f"content type {kind or 'missing'}")
    if not isinstance(value, dict):
        raise ValueError("not an object")
    return value


def _headers(environ: dict[str, Any]) -> dict[str, str | Sequence[str]]:
    # Bolt honours x-slack-bolt-* headers (meant for its own FaaS self-calls); they are not signed.
    headers: dict[str, str | Sequence[str]] = {
        key[5:].replace("_", "-").lower(): value
        for key, value in environ.items()
        if key.startswith("HTTP_") and not key.startswith("HTTP_X_SLACK_BOLT_")
    }
    if environ.get("CONTENT_TYPE"):
        headers["content-type"] = environ["CONTENT_TYPE"]
    return headers


def _text(start_response: StartResponse, status: int, text: str) -> Iterable[bytes]:
    start_response(f"{status} {_REASONS.get(status, '')}".strip(), [("Content-Type", "text/plain; charset=utf-8")])
    return [text.encode()]


_REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    404: "Not Found",
    405: "Method Not Allowed",
    411: "Length Required",
    413: "Content Too Large",
    500: "Internal Server Error",
    503: "Service Unavailable",
}
