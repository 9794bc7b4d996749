"""The real Bolt app over real HTTP: signed slash commands in, acks and response_url follow-ups out."""

import re
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

import pytest
from freezegun import freeze_time
from slack_sdk.signature import SignatureVerifier

from slackbot.idempotency import request_key
from tests.conftest import (
    ROOT,
    SIGNING_SECRET,
    HttpBot,
    alive,
    argv_labels,
    argv_params,
    http_request,
    operator_detail,
)
from tests.execution_plane import ARGO_NAMESPACE

FROZEN = "2026-11-28T11:00:00Z"


def test_create_acks_at_once_then_posts_the_workflow_name_in_channel(http_bot: HttpBot, fake_argo) -> None:
    with freeze_time(FROZEN):
        ack, path = http_bot.command("create checkout ttl=4h name=checkout-demo")
        reply = http_bot.reply(path)
    assert ack.status == 200
    assert ack.json()["response_type"] == "ephemeral"
    assert "Checking `create checkout-demo`" in ack.json()["text"]

    (submit,) = fake_argo.submits()
    # The workflow is named after the Slack request (its trigger_id): the API server runs it once.
    request = request_key(f"1337.42.{path.rsplit('/', 1)[1]}")
    name = f"env-create-template-{request}"
    assert submit[:8] == [
        "submit",
        "--from",
        "workflowtemplate/env-create-template",
        "-n",
        ARGO_NAMESPACE,
        "--name",
        name,
        "-p",
    ]
    assert argv_params(submit) == {
        "env_name": "checkout-demo",
        "service": "checkout",
        "expires_at": "2026-11-28T15:00:00Z",
        "requested_by": "U111AAA",
        "slack_channel": "C111AAA",
        # For the execution plane's warnings: lead times in seconds, Extend buttons, creation + lifetime.
        "warn_before": "3600,600",
        "extend_choices": "2h,1d",
        "latest_expiry": "2026-12-12T11:00:00Z",
    }
    assert argv_labels(submit) == {
        "app.kubernetes.io/managed-by": "envbot",
        "envbot.dev/env": "checkout-demo",
        "envbot.dev/action": "create",
        "envbot.dev/service": "checkout",
        "envbot.dev/owner": "U111AAA",
        "envbot.dev/requested-by": "U111AAA",
        "envbot.dev/channel": "C111AAA",
        "envbot.dev/expires": str(int(datetime(2026, 11, 28, 15, tzinfo=UTC).timestamp())),
        "envbot.dev/request": request,
    }
    assert submit[-2:] == ["-o", "name"]

    (workflow,) = fake_argo.workflows()
    assert workflow["metadata"]["name"] == name
    assert reply["response_type"] == "in_channel"
    assert f"`{name}`" in reply["text"]
    assert "`checkout-demo`" in reply["text"] and "`checkout`" in reply["text"]
    epoch = int(datetime(2026, 11, 28, 15, tzinfo=UTC).timestamp())
    assert f"<!date^{epoch}^" in reply["text"]
    assert "|2026-11-28 15:00 UTC>." in reply["text"]  # the date once, localised by Slack (UTC as fallback)
    assert "2026-11-28T15:00:00Z" not in reply["text"]


def test_create_without_name_derives_one_from_the_service(http_bot: HttpBot, fake_argo) -> None:
    with freeze_time(FROZEN):
        _, path = http_bot.command("create payments")
        reply = http_bot.reply(path)
    params = argv_params(fake_argo.submits()[0])
    assert re.fullmatch(r"payments-[a-z0-9]{5}", params["env_name"])
    assert params["expires_at"] == "2026-11-28T15:00:00Z"  # default ttl 4h
    assert params["env_name"] in reply["text"]


def test_destroy_by_owner_submits_destroy_template(http_bot: HttpBot, fake_argo) -> None:
    _, created = http_bot.command("create checkout name=checkout-demo")
    http_bot.reply(created)
    ack, path = http_bot.command("destroy checkout-demo")
    reply = http_bot.reply(path)
    assert ack.status == 200 and "Checking `destroy checkout-demo`" in ack.json()["text"]
    destroy = fake_argo.submits()[-1]
    assert destroy[:4] == ["submit", "--from", "workflowtemplate/env-destroy-template", "-n"]
    assert argv_params(destroy) == {"env_name": "checkout-demo", "requested_by": "U111AAA", "slack_channel": "C111AAA"}
    create_name = fake_argo.workflows()[0]["metadata"]["name"]
    labels = argv_labels(destroy)
    assert labels["envbot.dev/action"] == "destroy"
    # The destroy names the create it ends: history is ordered by that fact, not by timestamps.
    assert labels["envbot.dev/create-workflow"] == labels["envbot.dev/after"] == create_name
    assert labels["envbot.dev/owner"] == "U111AAA" and labels["envbot.dev/channel"] == "C111AAA"
    assert reply["response_type"] == "in_channel"
    destroy_workflow = next(w for w in fake_argo.workflows() if "destroy" in w["metadata"]["name"])
    assert destroy_workflow["metadata"]["name"] in reply["text"]


def test_help_and_bad_input_answer_in_the_ack_and_run_nothing(http_bot: HttpBot, fake_argo) -> None:
    cases = {
        "": "envbot* gives you",
        "help": "envbot* gives you",
        "launch checkout": "I don't know the command `launch`",
        # A bare "create" opens the create form instead (tests/test_surfaces.py).
        "create checkout extra": "Unexpected `extra`",
        "create checkout colour=red": "`colour=` is not an option of `create`",
        "create checkout ttl=5m": "between 15m and 7d",
        "create checkout ttl=8d": "between 15m and 7d",
        "create checkout ttl=soon": "is not a duration",
        "create checkout ttl=0m": "`0m` is zero",
        "create checkout ttl 4h": "Did you mean `ttl=4h`?",
        "extend checkout-x ttl=1m": "between 15m and 7d",
        "list nobody": "not something I can list by",
        "create Checkout": "Did you mean `checkout`?",
        "create checkout name=kube-system": "reserved for the cluster",
        "create checkout name=argo": "system or reserved namespace",
        "create checkout;reboot": "`;` is not allowed",
        "create $(id)": "`$` is not allowed",
        "create \u0441heckout": "U+0441",  # Cyrillic es
        "create checkout ttl\u20144h": "U+2014",
        "create " + "a" * 500: "characters long",
        "destroy": "Tell me which environment",
        "destroy default": "system or reserved namespace",
    }
    for text, expected in cases.items():
        ack, _path = http_bot.command(text)
        assert ack.status == 200, text
        body = ack.json()
        assert body["response_type"] == "ephemeral", text
        assert expected in body["text"], (text, body["text"])
        if "gives you" not in expected:  # one line, and where to read more
            assert "\n" not in body["text"] and body["text"].endswith("More in `/env help`."), text
    time.sleep(0.3)
    assert fake_argo.calls() == []
    assert not [r for r in http_bot.slack.received if r.path.startswith("/response/")]


def test_missing_template_is_explained_and_the_bot_keeps_serving(http_bot: HttpBot, fake_argo, caplog) -> None:
    fake_argo.configure(templates_dir="/nonexistent")
    _, path = http_bot.command("create checkout")
    reply = http_bot.reply(path)
    assert reply["response_type"] == "ephemeral"
    assert "Nothing was created. Try again in a few minutes" in reply["text"]
    detail = operator_detail(caplog, reply)
    assert f"WorkflowTemplate env-create-template is not installed in namespace {ARGO_NAMESPACE}" in detail
    assert "Traceback" not in reply["text"]
    fake_argo.configure()
    _, path = http_bot.command("create checkout")
    assert http_bot.reply(path)["response_type"] == "in_channel"


def test_wrong_namespace_reads_as_template_missing(http_bot_factory, fake_argo, caplog) -> None:
    bot = http_bot_factory(argo_namespace="workflows")
    _, path = bot.command("create checkout")
    assert "not installed in namespace workflows" in operator_detail(caplog, bot.reply(path))


def test_invalid_argument_is_reported_by_its_code(http_bot: HttpBot, fake_argo, tmp_path, caplog) -> None:
    templates = tmp_path / "templates"
    shutil.copytree(ROOT / "argo/workflowtemplates", templates)
    text = (ROOT / "argo/workflowtemplates/env-create-template.yaml").read_text()
    (templates / "env-create-template.yaml").write_text(
        text.replace('- name: slack_channel\n        value: ""', "- name: slack_channel\n      - name: team")
    )
    fake_argo.configure(templates_dir=str(templates))
    _, path = http_bot.command("create checkout")
    reply = http_bot.reply(path)
    assert "Argo refused the request as invalid: spec.arguments.team.value or" in operator_detail(caplog, reply)
    assert "Nothing was created." in reply["text"] and reply["response_type"] == "ephemeral"


def test_argo_failures_become_plain_language(http_bot: HttpBot, fake_argo, caplog) -> None:
    expectations = {  # the operator's detail in the log; what happened to the request in the reply
        "empty": ("printed nothing", "it may have been created anyway. Check with `/env status checkout-empty`"),
        "garbage": ("printed output that is not a workflow name", "it may have been created anyway"),
        "unavailable": ("could not reach the cluster", "Nothing was created."),
        "forbidden": ("(RBAC)", "Nothing was created."),
    }
    for mode, (detail, words) in expectations.items():
        fake_argo.configure(modes={"submit": mode})
        _, path = http_bot.command(f"create checkout name=checkout-{mode}")
        reply = http_bot.reply(path)
        assert detail in operator_detail(caplog, reply), mode
        assert words in reply["text"], (mode, reply["text"])
        assert reply["response_type"] == "ephemeral"
        assert "Traceback" not in reply["text"] and "xoxb" not in reply["text"]
        http_bot.slack.received.clear()


def test_missing_argo_binary(http_bot_factory, caplog) -> None:
    bot = http_bot_factory(argo_bin="/nonexistent/argo")
    _, path = bot.command("create checkout")
    reply = bot.reply(path)
    assert "The argo CLI was not found (ARGO_BIN=/nonexistent/argo)" in operator_detail(caplog, reply)


def test_hanging_argo_is_killed_after_the_timeout(http_bot_factory, fake_argo, caplog) -> None:
    bot = http_bot_factory(argo_timeout=1)
    fake_argo.configure(mode="hang")
    ack, path = bot.command("create checkout")
    assert ack.status == 200
    reply = bot.reply(path)
    assert "did not answer within 1 s and was stopped" in operator_detail(caplog, reply)
    # What timed out was a read before any submit: the user hears that nothing was created, not "maybe".
    assert "Nothing was created. Try again in a few minutes" in reply["text"] and "may have" not in reply["text"]
    for pid in fake_argo.pids():
        assert not alive(pid), "the argo process was left running"
    fake_argo.configure()
    _, path = bot.command("create checkout")
    assert bot.reply(path)["response_type"] == "in_channel"


def test_bad_signature_stale_or_missing_headers_get_401_and_run_nothing(http_bot: HttpBot, fake_argo) -> None:
    form, _ = http_bot.command_form("create checkout")
    body = urlencode(form)
    now = int(time.time())
    assert http_bot.post(body, secret="not-the-secret").status == 401
    assert http_bot.post(body, timestamp=str(now - 301)).status == 401
    assert http_bot.post(body, signature="v0=" + "0" * 64).status == 401
    assert http_bot.post(body, headers={"Content-Type": "application/x-www-form-urlencoded"}).status == 401
    stamp = str(now)  # a valid signature of the original body, sent with a tampered body
    good = SignatureVerifier(SIGNING_SECRET).generate_signature(timestamp=stamp, body=body)
    assert http_bot.post(body.replace("checkout", "payments"), timestamp=stamp, signature=good).status == 401
    time.sleep(0.3)
    assert fake_argo.calls() == []


def test_odd_headers_cannot_change_how_a_request_is_handled(http_bot: HttpBot, fake_argo) -> None:
    form, path = http_bot.command_form("create checkout name=odd-headers")
    body = urlencode(form)
    stamp = str(int(time.time()))
    signature = SignatureVerifier(SIGNING_SECRET).generate_signature(timestamp=stamp, body=body)
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Slack-Request-Timestamp": stamp,
        "X-Slack-Signature": signature,
        "X-Slack-Bolt-Lazy-Only": "true",
        "X-Slack-Bolt-Lazy-Function-Name": "env_command",
    }
    ack = http_bot.post(body, headers=headers)
    assert ack.status == 200 and "Checking `create odd-headers`" in ack.json()["text"]
    assert http_bot.reply(path)["response_type"] == "in_channel"
    for stamp in ("soon", "\u00b2", "1" * 4301, "-1", " 12"):
        bad = http_bot.post(body, headers=headers | {"X-Slack-Request-Timestamp": stamp})
        assert bad.status == 401 and "Traceback" not in bad.body


def test_probes_and_unknown_paths(http_bot: HttpBot) -> None:
    health = http_request(f"{http_bot.url}/healthz")
    assert health.status == 200 and health.body == "ok\n"
    unverified = http_request(f"{http_bot.url}/readyz")  # ready only once the templates are verified
    assert unverified.status == 503 and unverified.body == "the WorkflowTemplates have not been verified yet\n"
    http_bot.runtime.verify_records()
    ready = http_request(f"{http_bot.url}/readyz")
    assert ready.status == 200 and ready.body == "ok\n"
    assert http_request(f"{http_bot.url}/nope").status == 404
    assert http_request(f"{http_bot.url}/slack/events").status == 405


def test_readyz_fails_when_argo_is_missing_but_healthz_stays_up(http_bot_factory) -> None:
    bot = http_bot_factory(argo_bin="/nonexistent/argo")
    ready = http_request(f"{bot.url}/readyz")
    assert ready.status == 503 and "argo is not installed" in ready.body and "/nonexistent" not in ready.body
    assert http_request(f"{bot.url}/healthz").status == 200


@pytest.mark.serial
def test_burst_of_slow_commands_every_ack_fast_every_follow_up_delivered(http_bot: HttpBot, fake_argo) -> None:
    http_bot.runtime.verify_records()  # as `envbot serve` does at start-up
    fake_argo.configure(delay=1.5)
    texts = [f"create svc{i} name=env-{i}" for i in range(30)]
    users = [f"U{i:03d}BURST" for i in range(30)]
    with ThreadPoolExecutor(max_workers=30) as pool:
        results = list(pool.map(http_bot.command, texts, users))
    for ack, _ in results:
        assert ack.status == 200
        assert ack.elapsed < 3.0, f"ack took {ack.elapsed:.2f}s"
    for i, (_, path) in enumerate(results):
        reply = http_bot.reply(path, timeout=120)
        assert reply["response_type"] == "in_channel", reply
        assert f"`env-{i}`" in reply["text"]
    assert len(fake_argo.submits()) == 30


def test_expiry_uses_the_moment_the_command_was_handled(http_bot: HttpBot, fake_argo) -> None:
    with freeze_time("2026-12-31T23:30:00Z"):
        _, path = http_bot.command("create checkout ttl=1d12h name=new-year")
        http_bot.reply(path)
    expected = datetime(2026, 12, 31, 23, 30, tzinfo=UTC) + timedelta(days=1, hours=12)
    assert argv_params(fake_argo.submits()[0])["expires_at"] == expected.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_stopping_lets_running_work_finish_within_the_grace(http_bot_factory, fake_argo) -> None:
    bot = http_bot_factory()
    bot.runtime.verify_records()  # as `envbot serve` does at start-up
    fake_argo.configure(delay=1.0)
    ack, path = bot.command("create checkout name=draining")
    assert ack.status == 200
    time.sleep(0.3)  # picked up by a worker
    bot.runtime.stop()  # what SIGTERM does: stop taking commands, finish running work within SHUTDOWN_GRACE
    assert bot.reply(path, timeout=1)["response_type"] == "in_channel"
    with pytest.raises(OSError):  # no longer listening
        http_request(f"{bot.url}/healthz")
