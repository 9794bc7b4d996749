"""GET /metrics after real commands over HTTP: the counters move by exactly what happened."""

from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import FakeArgo, HttpBot, http_request
from tests.fakes.slack_api import FakeSlack


def scrape(bot: HttpBot) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = http_request(f"{bot.url}/metrics")
    assert response.status == 200 and response.content_type.startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.body)
        for sample in family.samples
    }


def delta(before: dict[Any, float], after: dict[Any, float], name: str, **labels: str) -> float:
    key = (name, tuple(sorted(labels.items())))
    return after.get(key, 0.0) - before.get(key, 0.0)


def test_metrics_move_with_real_commands(
    http_bot_factory: Any, fake_argo: FakeArgo, fake_slack: FakeSlack, tmp_path: Path
) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text("oncall_groups: [S0ONCALL]\n")
    bot = http_bot_factory(envbot_policy=policy)
    bot.runtime.verify_records()
    before = scrape(bot)

    _, created = bot.command("create checkout name=m-1")
    bot.reply(created)
    ack, _ = bot.command("launch x")
    assert "I don't know the command" in ack.json()["text"]
    fake_slack.groups_down = True
    _, refused = bot.command("destroy m-1", user="U0STRANGER")
    bot.reply(refused)
    fake_argo.configure(modes={"submit": "unavailable"})
    _, failed = bot.command("create checkout name=m-2")
    bot.reply(failed)
    fake_slack.fail("/response/cmd-broken", 500)
    form, _ = bot.command_form("help")
    form["response_url"] = fake_slack.response_url("cmd-broken")
    form["text"] = "list"
    bot.post(urlencode(form))
    fake_slack.wait_for("/response/cmd-broken")
    assert bot.runtime.scheduler.wait_idle(10)  # the 500 has come back and been counted

    after = scrape(bot)
    assert delta(before, after, "envbot_commands_total", action="create", outcome="submitted") == 1
    assert delta(before, after, "envbot_commands_total", action="create", outcome="failed") == 1
    assert delta(before, after, "envbot_commands_total", action="unknown", outcome="invalid") == 1
    assert delta(before, after, "envbot_commands_total", action="destroy", outcome="refused") == 1
    assert delta(before, after, "envbot_commands_total", action="list", outcome="answered") == 1
    assert delta(before, after, "envbot_ack_seconds_count") == 5
    assert delta(before, after, "envbot_followup_seconds_count", action="create") == 2
    # Each named create reads the owner's and the name's history, then submits (m-2's submit fails);
    # the destroy reads the name; the list reads the owner's.
    assert delta(before, after, "envbot_argo_call_seconds_count", verb="list") == 6
    assert delta(before, after, "envbot_argo_call_seconds_count", verb="submit") == 2
    assert delta(before, after, "envbot_argo_call_failures_total", verb="submit") == 1
    assert delta(before, after, "envbot_followup_delivery_failures_total") == 1
    assert delta(before, after, "envbot_group_lookups_total", result="miss") == 1
    assert delta(before, after, "envbot_group_lookups_total", result="failure") == 1
    assert after[("envbot_queue_depth", ())] == 0 and after[("envbot_workers_busy", ())] == 0
    assert after[("envbot_build_info", (("version", "0.1.0"),))] == 1
