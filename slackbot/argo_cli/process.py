"""Running `argo`: the only place in envbot where a process is started.

argv lists only (never a shell), a minimal environment (no Slack secrets), bounded output, and a
deadline that a child or grandchild holding a pipe open cannot stretch. Every child runs in its own
process group, dies with the bot, and is killed whole on timeout or shutdown.

Dying with the bot is the kernel's parent-death signal (PR_SET_PDEATHSIG), set by util-linux's
`setpriv --pdeathsig KILL`, which then execs argo in place. Setting it from Python between fork and
exec (`preexec_fn`) would force a full fork and run Python in the child: several times the cost of the
vfork that subprocess uses otherwise (docs/adr/0010). Without setpriv, that slow path is the fallback.
"""

import codecs
import contextlib
import ctypes
import errno
import functools
import os
import selectors
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

from slackbot.argo_cli.passthrough import Passthrough

RETAINED_LIMIT = 4 * 1024 * 1024  # submit/get/version output is small; a flood is a fault
STDERR_LIMIT = 64 * 1024
EXIT_GRACE = 0.5  # after argo exits, how long a grandchild may keep its pipes open

# What argo needs: where it is, who it is, how to reach the cluster. Never SLACK_* or envbot's own settings.
_PASSED = frozenset(
    {
        "PATH",
        "HOME",
        "KUBECONFIG",
        "KUBERNETES_SERVICE_HOST",  # in-cluster config
        "KUBERNETES_SERVICE_PORT",
        "SSL_CERT_FILE",
        "SSL_CERT_DIR",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "NO_PROXY",
        "http_proxy",
        "https_proxy",
        "no_proxy",
    }
)
ENVBOT_ARGO_SETTINGS = frozenset({"ARGO_BIN", "ARGO_TIMEOUT", "ARGO_CONCURRENCY", "ARGO_UI_URL", "ARGO_OUTPUT_LIMIT"})


@dataclass(frozen=True)
class Completed:
    returncode: int
    stdout: str
    stderr: str


class OutputTooLarge(Exception):
    """argo printed more than the limit; it was stopped."""


class Interrupted(Exception):
    """envbot was shutting down and stopped this argo call."""


class Runner(Protocol):
    def __call__(
        self, argv: list[str], timeout: float, on_stdout: Callable[[str], None] | None = None
    ) -> Completed: ...


def argo_environment(environ: Mapping[str, str], passthrough: Passthrough | None = None) -> dict[str, str]:
    extra = passthrough or Passthrough()
    env = {
        k: v
        for k, v in environ.items()
        if k in _PASSED
        or (k.startswith("ARGO_") and k not in ENVBOT_ARGO_SETTINGS)
        or extra.allows(k, ENVBOT_ARGO_SETTINGS)
    }
    return env | {"TERM": "dumb"}


class _Children:
    """Process groups still running, so shutdown can end them all."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._groups: set[int] = set()
        self._killed: set[int] = set()

    def add(self, pgid: int) -> None:
        with self._lock:
            self._groups.add(pgid)

    def discard(self, pgid: int) -> bool:
        """Forget a finished child; True if shutdown killed it."""
        with self._lock:
            self._groups.discard(pgid)
            killed = pgid in self._killed
            self._killed.discard(pgid)
            return killed

    def kill_all(self) -> int:
        with self._lock:
            groups, self._groups = self._groups, set()
            self._killed |= groups
        for pgid in groups:
            _kill_group(pgid)
        return len(groups)

    def __len__(self) -> int:
        with self._lock:
            return len(self._groups)


CHILDREN = _Children()


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def _die_with_parent() -> None:
    # The fallback without setpriv: runs in the child between fork and exec.
    if _PRCTL is not None:
        _PRCTL(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


_PRCTL = ctypes.CDLL(None, use_errno=True).prctl if sys.platform == "linux" else None
SETPRIV = shutil.which("setpriv") if sys.platform == "linux" else None
# setpriv execs with execvp: a failed exec reads "setpriv: failed to execute <path>: <strerror>" (C locale:
# argo's environment carries no LANG), and a file the kernel can't run (ENOEXEC) is handed to /bin/sh,
# which complains with "<path>: ..." in its own words. Both exit 126 or 127, and argo itself never
# starts its errors with its own path, so they are turned back into the OSError Popen would have raised.
_SETPRIV_FAILED = "setpriv: failed to execute "
_EXEC_ERRORS = {
    os.strerror(errno.ENOENT): FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT)),
    os.strerror(errno.EACCES): PermissionError(errno.EACCES, os.strerror(errno.EACCES)),
}


def _exec_failure(path: str, result: Completed) -> OSError | None:
    if result.returncode not in (126, 127):
        return None
    first = result.stderr.partition("\n")[0]
    if first.startswith(f"{_SETPRIV_FAILED}{path}: "):
        reason = first.rsplit(": ", 1)[-1]
        known = _EXEC_ERRORS.get(reason)
        return type(known)(known.errno, reason, path) if known else OSError(errno.EIO, reason, path)
    if first.startswith(f"{path}: "):
        return OSError(errno.ENOEXEC, os.strerror(errno.ENOEXEC), path)
    return None


@functools.cache
def _devnull() -> int:
    """argo's stdin: /dev/null, opened once (subprocess.DEVNULL opens it again for every process)."""
    return os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)


@functools.lru_cache(maxsize=16)
def _resolve(program: str, search: str) -> str:
    """The absolute path exec would run (as Popen looks it up), or FileNotFoundError as Popen raises it.
    Remembered: a path that later vanishes is reported by setpriv, and forgotten (`_exec_failure`)."""
    found = shutil.which(program, path=search) if os.sep not in program else program
    if found is None:
        raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), program)
    return os.path.abspath(found)


class ProcessRunner:
    """The production Runner. `output_limit` bounds what is read from argo's stdout."""

    def __init__(
        self,
        output_limit: int = 512 * 1024 * 1024,
        environ: Mapping[str, str] | None = None,
        setpriv: str | None = SETPRIV,
        passthrough: Passthrough | None = None,
    ) -> None:
        self.output_limit = output_limit
        self._environ = environ
        self._setpriv = setpriv
        self._passthrough = passthrough
        self._argo_env: dict[str, str] | None = None

    def __call__(self, argv: list[str], timeout: float, on_stdout: Callable[[str], None] | None = None) -> Completed:
        env = self._argo_environment()
        path = _resolve(argv[0], env.get("PATH", os.defpath)) if self._setpriv else argv[0]
        wrapped = [self._setpriv, "--pdeathsig", "KILL", "--", path, *argv[1:]] if self._setpriv else argv
        proc = subprocess.Popen(
            wrapped,
            stdin=_devnull(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            process_group=0,  # its own group, killed whole; unlike preexec_fn, it keeps vfork possible
            env=env,
            preexec_fn=_die_with_parent if self._setpriv is None and _PRCTL is not None else None,
        )
        CHILDREN.add(proc.pid)
        try:
            limit = self.output_limit if on_stdout is not None else min(self.output_limit, RETAINED_LIMIT)
            stdout, stderr = _collect(proc, time.monotonic() + timeout, limit, on_stdout)
        except BaseException:
            _kill_group(proc.pid)
            raise
        finally:
            _close(proc)
            killed = CHILDREN.discard(proc.pid)
        if killed:
            raise Interrupted()
        result = Completed(proc.returncode if proc.returncode is not None else -9, stdout, stderr)
        failure = _exec_failure(path, result) if self._setpriv else None
        if failure is not None:
            _resolve.cache_clear()
            raise failure
        return result

    def _argo_environment(self) -> dict[str, str]:
        # Built at the first call and kept: envbot never changes its own environment after start-up, and
        # filtering every variable (os.environ decodes each one) was a third of a spawn's cost in Python.
        if self._argo_env is None:
            environ = os.environ if self._environ is None else self._environ
            self._argo_env = argo_environment(environ, self._passthrough)
        return self._argo_env


_Selector = getattr(selectors, "PollSelector", selectors.DefaultSelector)


def _collect(
    proc: "subprocess.Popen[bytes]", deadline: float, limit: int, on_stdout: Callable[[str], None] | None
) -> tuple[str, str]:
    assert proc.stdout is not None and proc.stderr is not None
    out, err = proc.stdout.fileno(), proc.stderr.fileno()
    decoders = {fd: codecs.getincrementaldecoder("utf-8")("replace") for fd in (out, err)}
    kept: dict[int, list[str]] = {out: [], err: []}
    sizes = {out: 0, err: 0}
    exited_at: float | None = None
    # poll(), as subprocess's own communicate() uses: no epoll descriptor to create and close per call.
    with _Selector() as selector:
        for fd in (out, err):
            selector.register(fd, selectors.EVENT_READ)
        while selector.get_map():
            now = time.monotonic()
            if now >= deadline:
                _kill_group(proc.pid)
                raise subprocess.TimeoutExpired(proc.args, 0)
            if exited_at is None and proc.poll() is not None:
                exited_at = now
            if exited_at is not None and now - exited_at > EXIT_GRACE:
                _kill_group(proc.pid)  # a grandchild kept the pipes open: argo itself has finished
                break
            for key, _ in selector.select(timeout=min(0.1, deadline - now)):
                chunk = os.read(key.fd, 65536)
                if not chunk:
                    selector.unregister(key.fd)
                    continue
                sizes[key.fd] += len(chunk)
                text = decoders[key.fd].decode(chunk)
                if key.fd == err:
                    if sizes[err] <= STDERR_LIMIT:
                        kept[err].append(text)
                elif sizes[out] > limit:
                    _kill_group(proc.pid)
                    raise OutputTooLarge(f"more than {limit // (1024 * 1024)} MiB")
                elif on_stdout is not None:
                    on_stdout(text)
                else:
                    kept[out].append(text)
    try:
        proc.wait(timeout=max(deadline - time.monotonic(), 0.01))
    except subprocess.TimeoutExpired:
        _kill_group(proc.pid)
        proc.wait()
        raise
    return "".join(kept[out]), "".join(kept[err])[:STDERR_LIMIT]


def _close(proc: "subprocess.Popen[bytes]") -> None:
    for pipe in (proc.stdout, proc.stderr):
        if pipe is not None:
            pipe.close()
    if proc.returncode is None:
        _kill_group(proc.pid)
        proc.wait()
