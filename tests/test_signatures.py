"""Request verification against Slack's own documented example, with the clock pinned by freezegun."""

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from freezegun import freeze_time
from slack_bolt import BoltRequest
from slack_sdk.signature import SignatureVerifier

from slackbot.slack.runtime import Runtime
from tests.conftest import make_settings

# Slack's documented example (slack-bolt-notes.md §3.2).
SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
TIMESTAMP = "1531420618"
BODY = (
    "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V"
    "&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text="
    "&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN"
    "&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"
)
SIGNATURE = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"
SIGNED_AT = datetime.fromtimestamp(int(TIMESTAMP), UTC)


@pytest.fixture
def runtime(fake_argo: Any, fake_slack: Any) -> Any:
    rt = Runtime(make_settings(fake_argo, fake_slack, slack_signing_secret=SECRET), mode="http", port=0)
    yield rt
    rt.stop()


def dispatch(runtime: Runtime, body: str, headers: dict[str, str]) -> int:
    request = BoltRequest(body=body, headers={k: [v] for k, v in headers.items()})
    return runtime.app.dispatch(request).status


def signed(timestamp: str = TIMESTAMP, signature: str = SIGNATURE) -> dict[str, str]:
    return {
        "content-type": "application/x-www-form-urlencoded",
        "x-slack-request-timestamp": timestamp,
        "x-slack-signature": signature,
    }


def test_the_documented_vector_is_what_we_compute() -> None:
    assert SignatureVerifier(SECRET).generate_signature(timestamp=TIMESTAMP, body=BODY) == SIGNATURE
    assert len(BODY.encode()) == 362


def test_the_documented_request_passes_verification(runtime: Runtime) -> None:
    with freeze_time(SIGNED_AT):
        # Verified, then unhandled: the example is for /webhook-collect, which envbot doesn't serve.
        assert dispatch(runtime, BODY, signed()) == 404


def test_the_replay_window_is_five_minutes_either_way(runtime: Runtime) -> None:
    for offset, status in ((-301, 401), (-299, 404), (299, 404), (301, 401)):
        with freeze_time(SIGNED_AT + timedelta(seconds=offset)):
            assert dispatch(runtime, BODY, signed()) == status, offset


def test_replayed_forged_tampered_and_missing_headers_are_refused(runtime: Runtime) -> None:
    with freeze_time(SIGNED_AT + timedelta(seconds=301)):  # outside the ±300 s window
        assert dispatch(runtime, BODY, signed()) == 401
    with freeze_time(SIGNED_AT):
        assert dispatch(runtime, BODY, signed(signature="v0=" + "a" * 64)) == 401
        assert dispatch(runtime, BODY.replace("roadrunner", "coyote"), signed()) == 401
        assert dispatch(runtime, BODY, signed(timestamp="1531420619")) == 401
        assert dispatch(runtime, BODY, {"content-type": "application/x-www-form-urlencoded"}) == 401
        assert dispatch(runtime, BODY, {"x-slack-request-timestamp": TIMESTAMP}) == 401


def test_a_signed_env_command_at_the_pinned_time_is_served(runtime: Runtime, fake_argo: Any) -> None:
    body = BODY.replace("command=%2Fwebhook-collect&text=", "command=%2Fenv&text=help")
    with freeze_time(SIGNED_AT):
        signature = SignatureVerifier(SECRET).generate_signature(timestamp=TIMESTAMP, body=body)
        assert dispatch(runtime, body, signed(signature=signature)) == 200
