"""RSS, threads and file descriptors of `envbot serve` (HTTP mode) under hostile and heavy traffic.

Starts the real server as its own process (against the test suite's Slack and argo stand-ins) and
reads its /proc entries while: 2,000 idle connections are held open; five 50 MB unsigned bodies are
sent at once; 10,000 signed commands are sent. Then slow clients (issue 18): 250 connections that
trickle a header byte every half second (from ten addresses) and 300 idle ones (from another), against
envbot as configured and against a naive baseline in the same run (ADR 0003's server: no read
deadline, no per-client limit, 200 connections), timing signed commands and ops-port probes.
Bounded: every phase has a timeout.

    .venv/bin/python bench/edge_resources.py [--idle 2000 --big 5 --commands 10000 --trickling 250 --idle-flood 300]
"""

import argparse
import hashlib
import hmac
import json
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlencode

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.conftest import SIGNING_SECRET, http_request
from tests.fakes.argo_handle import FakeArgo
from tests.fakes.slack_api import FakeSlack
from tests.replicas import serve_environment
from tests.test_slow_clients import Flood


def stats(pid: int) -> dict[str, float]:
    status = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())
    return {
        "rss_mib": round(int(status["VmRSS"].split()[0]) / 1024, 1),
        "peak_rss_mib": round(int(status["VmHWM"].split()[0]) / 1024, 1),
        "threads": int(status["Threads"]),
        "fds": len(os.listdir(f"/proc/{pid}/fd")),
    }


def signed_post(url: str, body: str) -> int:
    stamp = str(int(time.time()))
    digest = hmac.new(SIGNING_SECRET.encode(), f"v0:{stamp}:{body}".encode(), hashlib.sha256).hexdigest()
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Slack-Request-Timestamp": stamp,
        "X-Slack-Signature": f"v0={digest}",
    }
    return http_request(f"{url}/slack/events", body.encode(), headers).status


def big_unsigned(port: int, size: int) -> str:
    with socket.create_connection(("127.0.0.1", port), timeout=60) as conn:
        conn.sendall(
            b"POST /slack/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
            + f"Content-Length: {size}\r\n\r\n".encode()
        )
        try:
            chunk = b"x" * 65536
            for _ in range(size // len(chunk)):
                conn.sendall(chunk)
        except OSError:
            pass  # the server answered and closed before the body was sent: the point
        return conn.recv(64).decode(errors="replace").split("\r\n")[0]


def timed(
    url: str, data: bytes | None = None, headers: dict[str, str] | None = None, limit: float = 5.0
) -> float | None:
    """Seconds to an answer, or None if none came within `limit`."""
    request = urllib.request.Request(url, data=data, headers=headers or {}, method="POST" if data else "GET")
    started = time.monotonic()
    try:
        with urllib.request.urlopen(request, timeout=limit) as response:
            response.read()
    except (OSError, urllib.error.URLError):
        return None
    return round(time.monotonic() - started, 3)


def start_server(env: dict[str, str], port: int, ops_port: int) -> subprocess.Popen[bytes]:
    server = subprocess.Popen(
        [sys.executable, "-m", "slackbot", "serve", "--mode", "http", "--port", str(port)],
        env=env | {"OPS_PORT": str(ops_port)}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while timed(f"http://127.0.0.1:{ops_port}/readyz", limit=1) is None:
        assert time.monotonic() < deadline and server.poll() is None, "server never became ready"
        time.sleep(0.1)
    return server


def slow_clients(env: dict[str, str], slack: FakeSlack, trickling: int, idle: int) -> dict[str, object]:
    """Signed commands and ops probes while slow and idle clients hold connections (3 s and 1 s budgets)."""
    port, ops_port = free_port(), free_port()
    server = start_server(env, port, ops_port)
    try:
        public, busy_ops = Flood(port).start(), Flood(ops_port).start()
        for n in range(10):
            public.open(trickling // 10, f"127.0.0.{2 + n}", trickle=True)
        public.open(idle, "127.0.0.20", trickle=False)
        busy_ops.open(25, "127.0.0.30", trickle=True)
        time.sleep(2)  # let the flood settle in (this is a benchmark, not a test)
        held = stats(server.pid)
        commands, probes = [], []
        for i in range(3):
            form = {"team_id": "T111", "channel_id": "C0BENCH", "user_id": f"U{i:05d}SLOW", "command": "/env",
                    "text": "help", "api_app_id": "A111", "response_url": slack.response_url(f"s{i}"),
                    "trigger_id": f"8.8.{port}.{i}"}  # fmt: skip
            body = urlencode(form)
            stamp = str(int(time.time()))
            digest = hmac.new(SIGNING_SECRET.encode(), f"v0:{stamp}:{body}".encode(), hashlib.sha256).hexdigest()
            headers = {"Content-Type": "application/x-www-form-urlencoded", "X-Slack-Request-Timestamp": stamp,
                       "X-Slack-Signature": f"v0={digest}"}  # fmt: skip
            commands.append(timed(f"http://127.0.0.1:{port}/slack/events", body.encode(), headers, limit=5))
            probes += [timed(f"http://127.0.0.1:{ops_port}{path}", limit=1) for path in ("/healthz", "/readyz")]
        started = time.monotonic()
        closed = 0
        while time.monotonic() - started < 20:
            closed = sum(_closed(c) for c in public.trickling)
            if closed == len(public.trickling):
                break
            time.sleep(0.2)
        public.close()
        busy_ops.close()
        return {
            "commands_seconds": commands,
            "commands_within_3s": sum(c is not None and c < 3 for c in commands),
            "ops_probes_within_1s": f"{sum(p is not None for p in probes)}/{len(probes)}",
            "trickling_closed_by_server_within_20s": f"{closed}/{len(public.trickling)}",
            "server_while_held": held,
        }
    finally:
        server.terminate()
        server.wait(30)


def _closed(conn: socket.socket) -> bool:
    try:
        return conn.recv(1) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--idle", type=int, default=2000)
    parser.add_argument("--big", type=int, default=5)
    parser.add_argument("--big-mb", type=int, default=50)
    parser.add_argument("--commands", type=int, default=10000)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--trickling", type=int, default=250)
    parser.add_argument("--idle-flood", type=int, default=300)
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, args.idle + 512)), hard))

    slack = FakeSlack().start()
    argo = FakeArgo(Path(tempfile.mkdtemp(prefix="envbot-bench-")))
    port, ops_port = free_port(), free_port()
    env = serve_environment(argo.bin, slack, OPS_PORT=str(ops_port), LOG_LEVEL="ERROR")
    server = subprocess.Popen(
        [sys.executable, "-m", "slackbot", "serve", "--mode", "http", "--port", str(port)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    report: dict[str, object] = {
        "settings": {
            "HTTP_THREADS": 16,
            "HTTP_CONNECTION_LIMIT": 1000,
            "HTTP_IDLE_TIMEOUT": 10,
            "HTTP_READ_DEADLINE": 5,
            "HTTP_CONNECTIONS_PER_CLIENT": 64,
        }
    }
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if http_request(f"http://127.0.0.1:{ops_port}/readyz").status == 200:
                    break
            except OSError:
                time.sleep(0.1)
            assert time.monotonic() < deadline, "server never became ready"
        report["idle_server"] = stats(server.pid)

        # All at once and non-blocking: past HTTP_CONNECTION_LIMIT the server stops accepting, so the
        # rest wait in the kernel's queue (or time out) without costing the server anything.
        idle = []
        for _ in range(args.idle):
            conn = socket.socket()
            conn.setblocking(False)
            conn.connect_ex(("127.0.0.1", port))
            idle.append(conn)
        time.sleep(3)
        held = stats(server.pid)
        started = time.monotonic()
        ops_health = http_request(f"http://127.0.0.1:{ops_port}/healthz").status
        ops_seconds = time.monotonic() - started
        report["idle_connections"] = {
            "attempted": len(idle),
            "server_while_held": held,
            "ops_port_healthz": {"status": ops_health, "seconds": round(ops_seconds, 3)},
        }
        for conn in idle:
            conn.close()

        with ThreadPoolExecutor(max_workers=args.big) as pool:
            answers = list(pool.map(lambda _: big_unsigned(port, args.big_mb * 2**20), range(args.big)))
        report["big_unsigned_bodies"] = {"count": args.big, "mb_each": args.big_mb, "answers": sorted(set(answers)),
                                         "server": stats(server.pid)}  # fmt: skip

        def command(i: int) -> int:
            form = {
                "team_id": "T111", "channel_id": "C0BENCH", "user_id": f"U{i % 500:05d}BENCH", "command": "/env",
                "text": "help" if i % 3 else "list nobody", "api_app_id": "A111",
                "response_url": slack.response_url(f"b{i}"), "trigger_id": f"7.7.{i}",
            }  # fmt: skip
            return signed_post(url, urlencode(form))

        started = time.monotonic()
        with ThreadPoolExecutor(max_workers=args.clients) as pool:
            statuses = list(pool.map(command, range(args.commands)))
        report["commands"] = {
            "count": args.commands,
            "non_200": sum(s != 200 for s in statuses),
            "seconds": round(time.monotonic() - started, 1),
            "server": stats(server.pid),
        }
        server.terminate()
        server.wait(30)
        report["slow_clients"] = slow_clients(env, slack, args.trickling, args.idle_flood)
        naive = env | {
            "HTTP_CONNECTION_LIMIT": "200",
            "HTTP_READ_DEADLINE": "120",
            "HTTP_CONNECTIONS_PER_CLIENT": "10000",
        }
        report["slow_clients_naive_baseline"] = slow_clients(naive, slack, args.trickling, args.idle_flood)
    finally:
        if server.poll() is None:
            server.terminate()
            server.wait(30)
        slack.stop()
    print(json.dumps(report, indent=2))
    peaks = [report["idle_connections"]["server_while_held"], report["big_unsigned_bodies"]["server"],  # type: ignore[index]
             report["commands"]["server"]]  # type: ignore[index]  # fmt: skip
    peak = max(p["peak_rss_mib"] for p in peaks)
    return 0 if peak < 120 else 1


if __name__ == "__main__":
    sys.exit(main())
