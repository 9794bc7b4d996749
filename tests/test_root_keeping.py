"""With notices off (the shipped default), the bot keeps each environment's channel message saying its
state (issue 16, docs/adr/0009): the execution plane's exit handler announces nothing and marks the
workflow `envbot.dev/notice=skipped`; the bot's view (its periodic `argo list`) sees the ended workflow
and its mark, and updates the message in place (chat.update). With notices on, the plane updates it and
the bot stays out.

The real bot over signed HTTP and Socket Mode (and as two `envbot serve` processes), the fake argo as
the store the bot reads, and the real exit handler run against the Kubernetes stand-in holding the same
Workflow object; the mark it writes is copied into the argo store, as the API server would show it.
"""

import copy
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from slackbot.roots import BURST, CATCH_UP, PACE
from tests.conftest import FakeArgo, HttpBot, argv_params
from tests.execution_plane import CREATE, DESTROY, SETTINGS
from tests.fakes.kube_api import FakeKubeApi
from tests.fakes.slack_api import FakeSlack
from tests.replicas import Replica, command_body, signed
from tests.test_notices import Plane
from tests.test_socket_mode import envelope
from tests.test_threads import socket_bot_factory  # noqa: F401 - a fixture this module uses

OWNER, CHANNEL = "U111AAA", "C111AAA"
REFRESH = 0.2  # seconds between the view's reads: short, so the tests wait for state, not time
NOTICE = "envbot.dev/notice"


@pytest.fixture
def plane(api: FakeKubeApi, fake_slack: FakeSlack, tmp_path: Path) -> Plane:
    return Plane(api, fake_slack, tmp_path / "plane")


def served(factory: Any, **overrides: Any) -> HttpBot:
    """A bot as `envbot serve` runs it (templates verified, the view refreshing), with threads on."""
    bot: HttpBot = factory(slack_threads=True, env_view_refresh=REFRESH, **overrides)
    bot.runtime.warm_up()
    assert bot.runtime.bot.services.view.wait_loaded(20)
    return bot


def end(
    fake_argo: FakeArgo,
    plane: Plane,
    name: str,
    phase: str = "Succeeded",
    *,
    notices: str = "off",
    failed_step: str | None = None,
    message: str | None = None,
) -> str:
    """Argo ends workflow `name` and runs its exit handler: the real notice script, with the shipped
    settings (notices off) or notices on, against the same Workflow object. Returns the mark it wrote,
    which from then on is on the workflow the bot lists."""
    fake_argo.set_phase(name, "Running")
    ended = fake_argo.set_phase(name, phase, node_message=message, failed_step=failed_step)
    stored = copy.deepcopy(ended)
    stored["metadata"].pop("resourceVersion", None)
    stored |= {"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow"}
    plane.api.put(stored)
    template = stored["spec"]["workflowTemplateRef"]["name"]
    failures = [{"displayName": failed_step, "templateName": failed_step, "message": message}] if failed_step else None
    settings = SETTINGS if notices == "off" else plane.settings
    plane.exit_handler(template, name, phase, failures, settings=settings)
    marked = plane.get(name)["metadata"]
    mark = str(marked["labels"][NOTICE])
    notes = {k: v for k, v in marked["annotations"].items() if k.startswith("envbot.dev/")}
    fake_argo.mark(name, {NOTICE: mark}, notes)
    return mark


def create(bot: HttpBot, fake_argo: FakeArgo, fake_slack: FakeSlack, name: str) -> tuple[str, dict[str, Any]]:
    """`/env create` over signed HTTP; returns its workflow and the channel message it opened."""
    _, path = bot.command(f"create checkout ttl=1h name={name}", user=OWNER, channel=CHANNEL)
    assert "Its message in this channel" in bot.reply(path)["text"]
    (workflow,) = [w for w in fake_argo.workflows() if w["metadata"]["labels"].get("envbot.dev/env") == name]
    root = next(m for m in fake_slack.posted(CHANNEL) if f"`{name}`" in m["text"] and "thread_ts" not in m)
    return workflow["metadata"]["name"], root


def root_updates(fake_slack: FakeSlack, ts: str) -> list[dict[str, Any]]:
    return [r.body for r in fake_slack.requests("/api/chat.update") if r.body["ts"] == ts]


def wait_root(fake_slack: FakeSlack, ts: str, count: int) -> list[dict[str, Any]]:
    """Wait for the state "the message at `ts` was updated `count` times"; return the updates."""
    fake_slack.wait_for("/api/chat.update", count)
    deadline = datetime.now(UTC) + timedelta(seconds=20)
    while len(root_updates(fake_slack, ts)) < count:
        assert datetime.now(UTC) < deadline, root_updates(fake_slack, ts)
        fake_slack.wait_for("/api/chat.update", len(fake_slack.requests("/api/chat.update")) + 1)
    return root_updates(fake_slack, ts)


def settled(bot: HttpBot, refreshes: int = 2) -> None:
    """Wait for the state "the bot read Argo `refreshes` more times and sent everything that made it queue"."""
    roots = bot.runtime.bot.roots
    assert roots is not None
    assert roots.wait_idle(roots.observed + refreshes, 20)


def test_a_failed_create_shows_on_its_message_with_the_reason(
    http_bot_factory: Any, fake_argo: FakeArgo, fake_slack: FakeSlack, plane: Plane
) -> None:
    bot = served(http_bot_factory)
    workflow, root = create(bot, fake_argo, fake_slack, "doomed")
    assert root_updates(fake_slack, root["ts"]) == []  # posted as the announcement: no update of its own
    assert root["text"].startswith(":rocket:")
    reason = "envbot: quota exceeded <for> you & your team\nrequest sent with xoxb-1234-5678-abcdef"
    assert end(fake_argo, plane, workflow, "Failed", failed_step="create", message=reason) == "skipped"
    assert fake_slack.posted(CHANNEL)[1:] == []  # the plane posted nothing: notices are off
    updated = wait_root(fake_slack, root["ts"], 1)[-1]
    (shown,) = fake_slack.posted(CHANNEL)
    assert shown["text"] == updated["text"]
    assert shown["text"].startswith(
        ":x: `doomed` could not be created: step `create` failed: "
        "envbot: quota exceeded &lt;for&gt; you &amp; your team"
    )
    assert "your team request sent with [redacted]\n" in shown["text"]  # one line, and never a token
    assert "`/env status doomed`" in shown["text"] and "`/env create checkout name=doomed`" in shown["text"]
    assert not [b for b in shown["blocks"] if b["type"] == "actions"]  # nothing to extend or destroy
    # Same state, same message: later refreshes write nothing more.
    settled(bot)
    assert len(root_updates(fake_slack, root["ts"])) == 1


def test_a_ready_create_shows_ready_with_its_url_and_buttons_then_deleted(
    http_bot_factory: Any, fake_argo: FakeArgo, fake_slack: FakeSlack, plane: Plane
) -> None:
    fake_argo.configure(outputs={"deploy": {"url": "https://{{workflow.parameters.env_name}}.envs.example.com"}})
    bot = served(http_bot_factory)
    workflow, root = create(bot, fake_argo, fake_slack, "shiny")
    assert end(fake_argo, plane, workflow) == "skipped"
    ready = wait_root(fake_slack, root["ts"], 1)[-1]
    assert ready["text"].startswith(":white_check_mark: `shiny` is ready (service `checkout`, owner <@U111AAA>).")
    assert "Open <https://shiny.envs.example.com>." in ready["text"] and "Expires <!date^" in ready["text"]
    (actions,) = [b for b in ready["blocks"] if b["type"] == "actions"]
    assert [e["text"]["text"] for e in actions["elements"]][-1] == "Destroy"
    # The buttons work: Destroy from the updated message destroys this incarnation.
    _, path = bot.click(fake_slack.posted(CHANNEL)[0], "Destroy", user=OWNER, channel=CHANNEL)
    bot.reply(path)
    (destroy,) = [s for s in fake_argo.submits() if "workflowtemplate/env-destroy-template" in s]
    assert argv_params(destroy)["slack_thread"] == root["ts"]
    (destroy_workflow,) = [
        w["metadata"]["name"] for w in fake_argo.workflows() if w["spec"]["workflowTemplateRef"]["name"] == DESTROY
    ]
    assert end(fake_argo, plane, destroy_workflow) == "skipped"
    deleted = wait_root(fake_slack, root["ts"], 2)[-1]
    assert deleted["text"] == ":wastebasket: `shiny` was deleted by <@U111AAA>."
    assert fake_slack.posted(CHANNEL)[0]["text"] == deleted["text"]
    assert [m for m in fake_slack.posted(CHANNEL) if "thread_ts" not in m] == [fake_slack.posted(CHANNEL)[0]]


def test_an_extend_shows_the_new_expiry(
    http_bot_factory: Any, fake_argo: FakeArgo, fake_slack: FakeSlack, plane: Plane
) -> None:
    bot = served(http_bot_factory)
    workflow, root = create(bot, fake_argo, fake_slack, "longer")
    end(fake_argo, plane, workflow)
    ready = wait_root(fake_slack, root["ts"], 1)[-1]["text"]
    _, path = bot.command("extend longer ttl=1d", user=OWNER, channel=CHANNEL)
    assert "posted in the thread of `longer`" in bot.reply(path)["text"]
    (extend,) = [w["metadata"]["name"] for w in fake_argo.workflows() if w["metadata"]["name"] != workflow]
    end(fake_argo, plane, extend)
    extended = wait_root(fake_slack, root["ts"], 2)[-1]["text"]
    (submit,) = [s for s in fake_argo.submits() if "workflowtemplate/env-extend-template" in s]
    expires = datetime.fromisoformat(argv_params(submit)["expires_at"].replace("Z", "+00:00"))
    assert extended.startswith(":white_check_mark: `longer` is ready")
    assert f"Expires <!date^{int(expires.timestamp())}^" in extended and extended != ready


def test_with_notices_on_the_plane_updates_the_message_and_the_bot_does_not(
    http_bot_factory: Any, fake_argo: FakeArgo, fake_slack: FakeSlack, plane: Plane
) -> None:
    bot = served(http_bot_factory)
    workflow, root = create(bot, fake_argo, fake_slack, "announced")
    plane.create(**argv_params(next(s for s in fake_argo.submits() if "workflowtemplate/env-create-template" in s)))
    assert end(fake_argo, plane, workflow, notices="on") == "sent"
    by_plane = root_updates(fake_slack, root["ts"])
    assert len(by_plane) == 1 and by_plane[-1]["text"].startswith(":white_check_mark: `announced` is ready.")
    settled(bot)
    assert root_updates(fake_slack, root["ts"]) == by_plane  # the bot saw the mark `sent` and stayed out


def test_keeping_messages_adds_no_argo_call_to_a_create(
    http_bot_factory: Any, fake_argo: FakeArgo, fake_slack: FakeSlack
) -> None:
    """The keeper reads only what the view already read: a create is still one `argo submit`."""
    bot: HttpBot = http_bot_factory(slack_threads=True, env_view_refresh=600)  # no refresh during the test
    bot.runtime.warm_up()
    assert bot.runtime.bot.services.view.wait_loaded(20) and bot.runtime.bot.roots is not None
    before = len(fake_argo.calls())
    create(bot, fake_argo, fake_slack, "cheap")
    assert [argv[0] for argv in fake_argo.calls()[before:]] == ["submit"]


def test_an_unsettled_notice_is_waited_for(
    http_bot_factory: Any, fake_argo: FakeArgo, fake_slack: FakeSlack, plane: Plane
) -> None:
    """The workflow ended but the plane has not marked it yet (its exit handler still runs): the bot
    does not guess, since with notices on the plane is about to update the message itself."""
    bot = served(http_bot_factory)
    workflow, root = create(bot, fake_argo, fake_slack, "pending")
    fake_argo.set_phase(workflow, "Running")
    fake_argo.set_phase(workflow, "Succeeded")
    settled(bot)
    assert root_updates(fake_slack, root["ts"]) == []


def test_socket_mode_failed_create(
    fake_argo: FakeArgo,
    fake_slack: FakeSlack,
    plane: Plane,
    socket_bot_factory: Any,  # noqa: F811
) -> None:
    runtime, server = socket_bot_factory(slack_threads=True, env_view_refresh=REFRESH)
    runtime.warm_up()
    assert runtime.bot.services.view.wait_loaded(20)
    message = envelope("t-1", "create checkout ttl=2h name=sock-fail", fake_slack.response_url("t1"))
    message["payload"] |= {"user_id": OWNER, "channel_id": CHANNEL}
    server.send(message)
    server.wait_ack("t-1")
    fake_slack.wait_for("/response/t1")
    (root,) = fake_slack.posted(CHANNEL)
    (workflow,) = [w["metadata"]["name"] for w in fake_argo.workflows()]
    end(fake_argo, plane, workflow, "Failed", failed_step="deploy", message="the image was not found")
    failed = wait_root(fake_slack, root["ts"], 1)[-1]
    assert failed["text"].startswith(
        ":x: `sock-fail` could not be created: step `deploy` failed: the image was not found"
    )


@pytest.fixture
def replicas(tmp_path: Path, fake_argo: FakeArgo, fake_slack: FakeSlack) -> Iterator[list[Replica]]:
    env = {"SLACK_THREADS": "true", "ENV_VIEW_REFRESH": str(REFRESH)}
    started = [Replica(tmp_path / f"replica-{i}", fake_argo, fake_slack, **env) for i in range(2)]
    yield started
    for replica in started:
        replica.stop()


def command_on(replica: Replica, fake_slack: FakeSlack, text: str, key: str) -> None:
    """One signed /env command to one replica, and its follow-up delivered."""
    body = command_body(fake_slack, text, key, user=OWNER, channel=CHANNEL)
    assert replica.post(body, signed(body)).status == 200
    fake_slack.wait_for(f"/response/{key}")


def test_two_replicas_write_the_same_state_once_each(
    replicas: list[Replica], fake_argo: FakeArgo, fake_slack: FakeSlack, plane: Plane
) -> None:
    command_on(replicas[0], fake_slack, "create checkout ttl=1h name=twice", "r1")
    (root,) = fake_slack.posted(CHANNEL)
    (workflow,) = [w["metadata"]["name"] for w in fake_argo.workflows()]
    end(fake_argo, plane, workflow, "Failed", failed_step="create", message="namespace quota reached")
    # Each replica sees the transition and writes it once: the same bytes, so nothing conflicts.
    updates = wait_root(fake_slack, root["ts"], 2)
    assert len({(u["text"], str(u["blocks"])) for u in updates}) == 1
    assert updates[0]["text"].startswith(":x: `twice` could not be created: step `create` failed")
    # A restart writes the current state at most once more, identically.
    replicas[1].restart()
    command_on(replicas[1], fake_slack, "create checkout ttl=1h name=after-restart", "r2")
    (later,) = [m for m in fake_slack.posted(CHANNEL) if "`after-restart`" in m["text"]]
    other = next(w["metadata"]["name"] for w in fake_argo.workflows() if w["metadata"]["name"] != workflow)
    end(fake_argo, plane, other, "Failed", failed_step="create", message="again")
    wait_root(fake_slack, later["ts"], 2)  # both replicas (the restarted one too) have read past the restart
    mine = root_updates(fake_slack, root["ts"])
    assert len(mine) == 3 and len({(u["text"], str(u["blocks"])) for u in mine}) == 1


def test_two_replicas_follow_ready_then_deleted_in_order(
    replicas: list[Replica], fake_argo: FakeArgo, fake_slack: FakeSlack, plane: Plane
) -> None:
    command_on(replicas[0], fake_slack, "create checkout ttl=1h name=steady", "s1")
    (root,) = fake_slack.posted(CHANNEL)
    (create_workflow,) = [w["metadata"]["name"] for w in fake_argo.workflows()]
    end(fake_argo, plane, create_workflow)
    wait_root(fake_slack, root["ts"], 2)  # "ready" from each replica
    command_on(replicas[1], fake_slack, "destroy steady", "s2")
    (destroy_workflow,) = [
        w["metadata"]["name"] for w in fake_argo.workflows() if w["metadata"]["name"] != create_workflow
    ]
    end(fake_argo, plane, destroy_workflow)
    texts = [u["text"].split(" ")[0] + " " + u["text"].split(" ")[1] for u in wait_root(fake_slack, root["ts"], 4)]
    assert texts == [":white_check_mark: `steady`"] * 2 + [":wastebasket: `steady`"] * 2
    assert fake_slack.posted(CHANNEL)[0]["text"] == ":wastebasket: `steady` was deleted by <@U111AAA>."


# --- bounded: start-up and Slack's rate limits ---------------------------------------------------------


def test_a_restart_with_many_environments_writes_only_recent_states(
    http_bot_factory: Any, fake_argo: FakeArgo, fake_slack: FakeSlack
) -> None:
    """Hundreds of environments whose state is old: taken as shown (no storm); the few recent ones are
    written once each."""
    now = datetime.now(UTC).replace(microsecond=0)
    old = now - CATCH_UP - timedelta(minutes=5)
    seed_ended(fake_argo, "old", 300, "1764000000", old, "Succeeded")
    seed_ended(fake_argo, "new", 3, "1764100000", now, "Failed")
    bot = served(http_bot_factory)
    settled(bot, 1)
    updates = fake_slack.requests("/api/chat.update")
    assert sorted(u.body["ts"] for u in updates) == [f"1764100000.{i:06d}" for i in range(3)]
    assert all(":x: `new-" in u.body["text"] for u in updates)
    settled(bot)
    assert len(fake_slack.requests("/api/chat.update")) == 3


def seed_ended(
    fake_argo: FakeArgo,
    prefix: str,
    n: int,
    thread: str,
    ended_by: datetime,
    phase: str,
    expires: datetime | None = None,
    warn_before: str = "3600,600",
) -> None:
    """`n` environments whose create ended (the last by `ended_by`, a minute apart) and whose notice the
    plane skipped, each with its channel message `<thread>.<i>`, expiring at `expires` (default 3 days
    after `ended_by`)."""

    def params(i: int) -> dict[str, str]:
        return {
            "env_name": f"{prefix}-{i}", "service": "checkout", "requested_by": OWNER, "slack_channel": CHANNEL,
            "expires_at": (expires or ended_by + timedelta(days=3)).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "slack_thread": f"{thread}.{i:06d}", "warn_before": warn_before,
        }  # fmt: skip

    def labels(i: int) -> dict[str, str]:
        return {
            "app.kubernetes.io/managed-by": "envbot", "envbot.dev/env": f"{prefix}-{i}", "envbot.dev/owner": OWNER,
            "envbot.dev/requested-by": OWNER, "envbot.dev/channel": CHANNEL, "envbot.dev/service": "checkout",
            NOTICE: "skipped",
        }  # fmt: skip

    start = ended_by - n * timedelta(minutes=1)
    fake_argo.seed(n, CREATE, params=params, labels=labels, start=start, duration=timedelta(seconds=30), phase=phase)


def test_expiring_and_expired_show_on_the_message(
    http_bot_factory: Any, fake_argo: FakeArgo, fake_slack: FakeSlack
) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    # Ready for two hours; it expires in 5 minutes, so the first warning (an hour before) is due.
    seed_ended(fake_argo, "soon", 1, "1764400000", now - timedelta(hours=2), "Succeeded", now + timedelta(minutes=5))
    # Ready for half an hour; its first warning is due only in an hour.
    seed_ended(fake_argo, "later", 1, "1764450000", now - timedelta(minutes=30), "Succeeded", now + timedelta(hours=2))
    seed_ended(fake_argo, "gone", 1, "1764500000", now - timedelta(hours=2), "Succeeded", now - timedelta(minutes=5))
    bot = served(http_bot_factory)
    settled(bot, 1)
    shown = {u.body["ts"]: u.body for u in fake_slack.requests("/api/chat.update")}
    expiring = shown["1764400000.000000"]
    assert expiring["text"].startswith(":hourglass_flowing_sand: `soon-0` expires <!date^")
    (actions,) = [b for b in expiring["blocks"] if b["type"] == "actions"]
    assert [e["text"]["text"] for e in actions["elements"]] == ["Extend +2h", "Extend +1d", "Destroy"]
    assert shown["1764450000.000000"]["text"].startswith(":white_check_mark: `later-0` is ready")
    assert shown["1764500000.000000"]["text"].startswith(":wastebasket: `gone-0` expired <!date^")
    assert "deleted automatically" in shown["1764500000.000000"]["text"]


def test_updates_are_paced(http_bot_factory: Any, fake_argo: FakeArgo, fake_slack: FakeSlack) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    seed_ended(fake_argo, "paced", BURST + 3, "1764200000", now, "Failed")
    bot = served(http_bot_factory)
    settled(bot, 1)
    at = [u.at for u in fake_slack.requests("/api/chat.update")]
    assert len(at) == BURST + 3
    # A burst, then one every PACE seconds: the k-th update (from 0) comes no sooner than
    # (k + 1 - BURST) x PACE after the first. Lower bounds only: a busy machine is slower, never faster.
    assert all(at[k] - at[0] >= (k + 1 - BURST) * PACE * 0.9 for k in range(BURST, len(at)))


def test_a_429_pauses_updates_for_retry_after(
    http_bot_factory: Any, fake_argo: FakeArgo, fake_slack: FakeSlack
) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    seed_ended(fake_argo, "limited", 2, "1764300000", now, "Failed")
    fake_slack.fail("/api/chat.update", 429, retry_after=4)  # longer than the client waits out by itself
    bot = served(http_bot_factory)
    settled(bot, 1)
    updates = fake_slack.requests("/api/chat.update")
    assert len(updates) == 3  # the refused one again, after the pause; then the other
    assert updates[1].body["ts"] == updates[0].body["ts"] and updates[1].at - updates[0].at >= 4
    assert updates[2].at - updates[0].at >= 4  # nothing went out during the pause
