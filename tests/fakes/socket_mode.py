"""A minimal RFC 6455 server standing in for Slack's Socket Mode endpoint (stdlib only)."""

import base64
import contextlib
import hashlib
import json
import socket
import struct
import threading
import time
from typing import Any

_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


class FakeSocketMode:
    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.acks: list[dict[str, Any]] = []
        self.ack_times: list[float] = []  # time.monotonic() when each ack frame arrived
        self.clients: list[socket.socket] = []  # open connections, oldest first
        self._next = 0  # round-robin position, as Slack spreads payloads over an app's connections
        self._cond = threading.Condition()
        self._running = True
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.listener.getsockname()[1]}/link/?ticket=t"

    def stop(self) -> None:
        """Go away as Slack does: a close frame (1001, going away) on every connection, then close them."""
        self._running = False
        self.listener.close()
        for client in list(self.clients):
            with contextlib.suppress(OSError):
                client.sendall(_frame(0x8, struct.pack(">H", 1001) + b"going away"))
            client.close()

    def wait_connected(self, timeout: float = 10, count: int = 1) -> None:
        self._wait(lambda: len(self.clients) >= count, timeout, f"fewer than {count} Socket Mode clients connected")

    def send(self, envelope: dict[str, Any]) -> None:
        """Every open connection gets it (a redelivery reaching each replica)."""
        with self._cond:
            for client in self.clients:
                client.sendall(_frame(0x1, json.dumps(envelope).encode()))

    def deliver(self, envelope: dict[str, Any]) -> int:
        """What Slack does with several connections: ONE of them gets it ("each payload may be sent to any
        of the connections"), here round-robin; returns which (its index among the open ones)."""
        with self._cond:
            if not self.clients:
                raise AssertionError("no Socket Mode connection to deliver to")
            index = self._next % len(self.clients)
            self._next += 1
            self.clients[index].sendall(_frame(0x1, json.dumps(envelope).encode()))
            return index

    def wait_ack(self, envelope_id: str, timeout: float = 10) -> dict[str, Any]:
        def found() -> dict[str, Any] | None:
            return next((a for a in self.acks if a.get("envelope_id") == envelope_id), None)

        self._wait(lambda: found() is not None, timeout, f"no ack for {envelope_id}")
        return found()  # type: ignore[return-value]

    def _wait(self, ready: Any, timeout: float, message: str) -> None:
        deadline = time.monotonic() + timeout
        with self._cond:
            while not ready():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(message)
                self._cond.wait(remaining)

    def _accept(self) -> None:
        while self._running:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        request = b""
        while b"\r\n\r\n" not in request:
            request += conn.recv(4096)
        headers = dict(line.split(": ", 1) for line in request.decode().split("\r\n")[1:] if ": " in line)
        key = {k.lower(): v for k, v in headers.items()}["sec-websocket-key"]
        accept = base64.b64encode(hashlib.sha1((key + _GUID).encode()).digest()).decode()  # noqa: S324
        conn.sendall(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Accept: {accept}\r\n\r\n".encode()
        )
        conn.sendall(_frame(0x1, json.dumps({"type": "hello", "num_connections": 1}).encode()))
        with self._cond:
            self.clients.append(conn)
            self._cond.notify_all()
        with contextlib.suppress(OSError, ConnectionError):
            self._read_frames(conn)
        with self._cond:  # closed by the client: Slack stops sending to it
            if conn in self.clients:
                self.clients.remove(conn)
            self._cond.notify_all()

    def _read_frames(self, conn: socket.socket) -> None:
        reader = conn.makefile("rb")
        while True:
            head = reader.read(2)
            if len(head) < 2:
                return
            opcode, length = head[0] & 0x0F, head[1] & 0x7F
            if length == 126:
                length = struct.unpack(">H", reader.read(2))[0]
            elif length == 127:
                length = struct.unpack(">Q", reader.read(8))[0]
            mask = reader.read(4) if head[1] & 0x80 else b"\0\0\0\0"
            payload = bytes(b ^ mask[i % 4] for i, b in enumerate(reader.read(length)))
            if opcode == 0x9:
                with self._cond:  # one writer at a time: a pong must not land inside an envelope's frame
                    conn.sendall(_frame(0xA, payload))
            elif opcode == 0x8:
                return
            elif opcode == 0x1:
                with self._cond:
                    self.acks.append(json.loads(payload))
                    self.ack_times.append(time.monotonic())
                    self._cond.notify_all()


def _frame(opcode: int, payload: bytes) -> bytes:
    head = bytes([0x80 | opcode])
    if len(payload) < 126:
        return head + bytes([len(payload)]) + payload
    if len(payload) < 1 << 16:
        return head + bytes([126]) + struct.pack(">H", len(payload)) + payload
    return head + bytes([127]) + struct.pack(">Q", len(payload)) + payload
