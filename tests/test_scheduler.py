"""The scheduler: one user's burst waits in the queue, not in the workers; stopping is bounded."""

import threading
from collections.abc import Callable

from slackbot.replies import RESTARTING, Reply
from slackbot.scheduler import Scheduler


class Record:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.delivered: dict[str, Reply] = {}
        self.done = threading.Condition(self.lock)

    def deliver(self, name: str) -> Callable[[Reply], None]:
        def deliver(reply: Reply) -> None:
            with self.done:
                self.delivered[name] = reply
                self.done.notify_all()

        return deliver

    def wait(self, name: str, timeout: float = 10) -> Reply:
        with self.done:
            assert self.done.wait_for(lambda: name in self.delivered, timeout), f"{name} never delivered"
            return self.delivered[name]


def test_a_burst_from_one_user_never_holds_the_workers_another_user_needs() -> None:
    scheduler = Scheduler(size=2)
    record = Record()
    release = threading.Event()
    started: list[str] = []

    def blocked(name: str) -> Callable[[], Reply]:
        def work() -> Reply:
            started.append(name)
            release.wait(10)
            return Reply(text=name)

        return work

    for i in range(40):
        assert scheduler.submit(("user:A",), blocked(f"a{i}"), record.deliver(f"a{i}"))
    scheduler.submit(("user:B",), lambda: Reply(text="b"), record.deliver("b"))
    # B finishes while A's first command still holds its turn; A's other 39 wait without a worker.
    assert record.wait("b").text == "b"
    assert started == ["a0"]
    assert scheduler.depth() == (39, 1)
    release.set()
    assert record.wait("a39").text == "a39"
    assert started == [f"a{i}" for i in range(40)]  # in order, one at a time
    scheduler.stop(1)


def test_keys_are_released_and_nothing_remains_held() -> None:
    scheduler = Scheduler(size=3)
    record = Record()
    for i in range(200):
        scheduler.submit((f"user:U{i}", f"env:e{i}"), lambda i=i: Reply(text=str(i)), record.deliver(str(i)))
    record.wait("199")
    assert scheduler.wait_idle(5)
    assert scheduler._held == set()  # keys exist only while held
    scheduler.stop(1)


def test_stop_tells_queued_work_nothing_was_submitted_and_bounds_running_work() -> None:
    scheduler = Scheduler(size=1)
    record = Record()
    hold = threading.Event()
    running = threading.Event()

    def slow() -> Reply:
        running.set()
        hold.wait(10)
        return Reply(text="finished")

    scheduler.submit(("env:x",), slow, record.deliver("running"))
    scheduler.submit(("env:y",), lambda: Reply(text="never"), record.deliver("queued"))
    assert running.wait(5)
    still = scheduler.stop(grace=0.2)
    assert still == 1
    assert record.wait("queued") == RESTARTING
    assert not scheduler.submit((), lambda: Reply(text="late"), record.deliver("late"))
    hold.set()
    assert record.wait("running").text == "finished"
    assert scheduler.wait_idle(5)
