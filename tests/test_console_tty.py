"""The interactive console under a real pseudo-terminal: readline editing and history, Ctrl-C, Ctrl-D, exit."""

import os
import pty
import select
import sys
import time
from pathlib import Path

import pytest

UP = "\x1b[A"


class Terminal:
    def __init__(self, cwd: Path) -> None:
        pid, fd = pty.fork()
        if pid == 0:  # the child: envbot's console, attached to the terminal
            os.chdir(cwd)
            os.execv(sys.executable, [sys.executable, "-m", "slackbot", "console", "--dry-run"])  # noqa: S606 - argv
        self.pid, self.fd = pid, fd
        self.seen = ""

    def read_until(self, text: str, timeout: float = 20) -> str:
        deadline = time.monotonic() + timeout
        while text not in self.seen:
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"never saw {text!r}; got {self.seen[-2000:]!r}"
            ready, _, _ = select.select([self.fd], [], [], remaining)
            if ready:
                try:
                    chunk = os.read(self.fd, 4096)
                except OSError:  # the child closed the terminal
                    chunk = b""
                if not chunk:
                    assert text in self.seen, f"ended before {text!r}; got {self.seen[-2000:]!r}"
                self.seen += chunk.decode(errors="replace")
        found, self.seen = self.seen, self.seen[self.seen.index(text) + len(text) :]
        return found

    def type(self, keys: str) -> None:
        os.write(self.fd, keys.encode())

    def exit_status(self) -> int:
        _, status = os.waitpid(self.pid, 0)
        return os.waitstatus_to_exitcode(status)


@pytest.fixture
def terminal(tmp_path: Path) -> Terminal:
    return Terminal(tmp_path)


def test_history_editing_ctrl_c_and_exit(terminal: Terminal) -> None:
    terminal.read_until("envbot> ")
    terminal.type("create checkout name=tty-1\r")
    terminal.read_until("requested environment `tty-1`")
    terminal.read_until("envbot> ")
    terminal.type(UP + "\r")  # history: the same command again, now refused (the name is taken)
    assert "create checkout name=tty-1" in terminal.read_until("already exists")
    terminal.read_until("envbot> ")
    terminal.type("destroy tty-1\x7f\x7f\x7f\x7f\x7fx\x7f" + "tty-1\r")  # editing: rub out and retype
    terminal.read_until("requested destroy of environment `tty-1`")
    terminal.read_until("envbot> ")
    # Ctrl-C drops the line, no traceback. Typed only once readline has echoed the line back: then it
    # is editing it (not between prompts), whatever the machine's load.
    terminal.type("half a line")
    terminal.read_until("half a line")
    terminal.type("\x03")
    terminal.read_until("^C")
    terminal.read_until("envbot> ")
    terminal.type("exit\r")
    assert terminal.exit_status() == 1  # one command was refused: scripts can tell
    assert "Traceback" not in terminal.seen


def test_ctrl_d_ends_a_clean_session_with_status_0(terminal: Terminal) -> None:
    terminal.read_until("envbot> ")
    terminal.type("help\r")
    terminal.read_until("gives you short-lived")
    terminal.read_until("envbot> ")
    terminal.type("\x04")
    assert terminal.exit_status() == 0
