"""Issue 18: fairness covers every command. Checked by the order things happen in, never by timings."""

import threading
from collections.abc import Callable
from typing import Any

from slackbot.replies import Reply
from slackbot.scheduler import Scheduler
from tests.conftest import FakeArgo
from tests.fakes.slack_api import FakeSlack


def test_the_scheduler_takes_turns_between_people() -> None:
    scheduler = Scheduler(size=1)
    release = threading.Event()
    started: list[str] = []
    done = threading.Semaphore(0)

    def job(name: str, block: bool = False) -> Callable[[], Reply]:
        def work() -> Reply:
            started.append(name)
            if block:
                release.wait(10)
            return Reply(text=name)

        return work

    assert scheduler.submit(("user:A",), job("A1", block=True), lambda _: done.release())
    for n in range(2, 7):
        assert scheduler.submit(("user:A",), job(f"A{n}"), lambda _: done.release())
    assert scheduler.submit(("user:B", "env:b"), job("B1"), lambda _: done.release())
    assert scheduler.submit(("user:A",), job("A7"), lambda _: done.release())
    release.set()
    for _ in range(8):
        assert done.acquire(timeout=10)
    assert started[:2] == ["A1", "B1"]  # B waited for one of A's jobs, not for all of them
    assert started[2:] == [f"A{n}" for n in range(2, 8)]  # A's own stay in order
    assert scheduler.stop(1) == 0


def test_a_flood_of_list_and_status_delays_another_member_by_one_command(
    http_bot_factory: Any, fake_argo: FakeArgo, fake_slack: FakeSlack
) -> None:
    bot = http_bot_factory(argo_concurrency=1)
    bot.runtime.verify_records()
    _, created = bot.command("create checkout name=flood-target", user="U0OTHER1")
    bot.reply(created)
    fake_argo.configure(delay=0.3)
    flood = [bot.command("list all" if i % 2 else "status flood-target", user="U0FLOODR")[1] for i in range(8)]
    _, other = bot.command("list", user="U0OTHER1")
    other_at = fake_slack.wait_for(other, timeout=60)[0].at
    flood_at = sorted(fake_slack.wait_for(path, timeout=120)[0].at for path in flood)
    assert other_at < flood_at[1]  # only the flood's first command (already running) came before it
