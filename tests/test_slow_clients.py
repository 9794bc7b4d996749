"""Issue 18: slow and idle clients can't starve Slack's commands or the probes (the real server, real sockets).

Attackers connect from other loopback addresses (127.0.0.2 and up: all of 127/8 is this host on Linux),
so the per-client limit can tell them from the "Slack" client on 127.0.0.1.
"""

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import HttpBot, http_request

TRICKLE_EVERY = 0.5  # seconds between bytes: never silent long enough for an idle timeout


class Flood:
    """Connections held open from given source addresses; trickling ones send a header byte now and then."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.trickling: list[socket.socket] = []
        self.idle: list[socket.socket] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._trickle, daemon=True)

    def open(self, count: int, source: str, trickle: bool) -> None:
        for _ in range(count):
            conn = socket.socket()
            conn.setblocking(False)
            conn.bind((source, 0))
            conn.connect_ex(("127.0.0.1", self.port))
            with self._lock:
                (self.trickling if trickle else self.idle).append(conn)

    def start(self) -> "Flood":
        self._thread.start()
        return self

    def _trickle(self) -> None:
        started = {}
        while not self._stop.wait(TRICKLE_EVERY):
            with self._lock:
                conns = list(self.trickling)
            for conn in conns:
                head = b"POST /slack/events HTTP/1.1\r\nHost: x\r\n" if conn not in started else b"X"
                with contextlib.suppress(OSError):
                    conn.send(head)
                    started[conn] = True

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        for conn in self.trickling + self.idle:
            conn.close()


@pytest.fixture
def flood() -> Iterator[Any]:
    floods: list[Flood] = []

    def make(port: int) -> Flood:
        floods.append(Flood(port).start())
        return floods[-1]

    yield make
    for f in floods:
        f.close()


def closed_by_server(conn: socket.socket) -> bool:
    try:
        return conn.recv(1) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True  # reset


@pytest.mark.serial
def test_slow_and_idle_floods_starve_neither_commands_nor_probes(http_bot_factory: Any, flood: Any) -> None:
    bot: HttpBot = http_bot_factory(ops_port=0, http_read_deadline=3, http_connections_per_client=32)
    bot.runtime.verify_records()  # as `envbot serve` does at start-up: then it is ready
    assert bot.runtime.ops is not None
    ops = f"http://127.0.0.1:{bot.runtime.ops.port}"
    public = flood(bot.runtime.port)
    for n in range(10):  # 250 trickling connections from ten addresses: each under the per-client limit
        public.open(25, f"127.0.0.{2 + n}", trickle=True)
    public.open(300, "127.0.0.20", trickle=False)  # 300 idle ones from one address: past its limit
    busy_ops = flood(bot.runtime.ops.port)
    busy_ops.open(25, "127.0.0.30", trickle=True)
    deadline = time.monotonic() + 10
    while bot.runtime.server.refused < 100 and time.monotonic() < deadline:
        time.sleep(0.05)  # wait for the server to be in the thick of the flood, not for a time
    assert bot.runtime.server.refused >= 100

    for n in range(3):  # while all of that is held, Slack's commands and the kubelet's probes get through
        ack, _ = bot.command(f"create checkout name=flooded-{n}")
        assert ack.status == 200 and ack.elapsed < 3, ack
        for path in ("/healthz", "/readyz"):
            probe = http_request(f"{ops}{path}")
            assert probe.status == 200 and probe.elapsed < 1, (path, probe)

    # Trickling never counts as idle, yet no request may take longer than the read deadline to arrive.
    deadline = time.monotonic() + 30
    while not all(closed_by_server(c) for c in public.trickling + busy_ops.trickling):
        assert time.monotonic() < deadline, "trickling connections were not closed at the read deadline"
        time.sleep(0.1)
    assert bot.runtime.server.timed_out >= 250  # and on the ops port: 8 held until the deadline, 17 refused
    assert bot.runtime.ops.timed_out >= 8 and bot.runtime.ops.refused >= 17


def test_a_slow_body_is_cut_off_at_the_read_deadline(http_bot_factory: Any) -> None:
    bot: HttpBot = http_bot_factory(http_read_deadline=1)
    with socket.create_connection(("127.0.0.1", bot.runtime.port), timeout=20) as conn:
        conn.sendall(b"POST /slack/events HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n")
        conn.settimeout(0.3)
        while True:  # one body byte at a time, well inside any idle timeout
            try:
                conn.sendall(b"a")
                if conn.recv(1) == b"":
                    break
            except TimeoutError:
                continue
            except OSError:
                break
    assert bot.runtime.server.timed_out == 1


def test_probes_live_only_on_the_ops_port_and_say_no_paths(http_bot_factory: Any, tmp_path: Any) -> None:
    hidden = tmp_path / "secret-place" / "argo"
    bot: HttpBot = http_bot_factory(ops_port=0, argo_bin=str(hidden))
    assert bot.runtime.ops is not None
    for path in ("/healthz", "/readyz", "/metrics"):  # nothing but /slack/events on the Slack-facing port
        assert http_request(f"{bot.url}{path}").status == 404
    ready = http_request(f"http://127.0.0.1:{bot.runtime.ops.port}/readyz")
    assert ready.status == 503 and "argo is not installed" in ready.body
    assert "secret-place" not in ready.body and "ARGO_BIN" not in ready.body
    ack, _ = bot.command("help")
    assert ack.status == 200
