"""The naive baseline for bench/hot_path.py: the Bolt bot a tutorial would write.

Plain `App`, Bolt's own development server, `ack()` then `argo submit` in the listener, the outcome
posted to response_url with urllib (a new connection each time). No policy, no history, no view: the
least a bot can do per create. Run by hot_path.py as its own process, never by tests.
"""

import json
import os
import subprocess
import sys
import urllib.request

from slack_bolt import Ack, App
from slack_sdk import WebClient


def main() -> int:
    argo = os.environ["ARGO_BIN"]
    client = WebClient(token=os.environ["SLACK_BOT_TOKEN"], base_url=os.environ["SLACK_API_URL"])
    app = App(client=client, signing_secret=os.environ["SLACK_SIGNING_SECRET"])

    @app.command("/env")
    def env(ack: Ack, command: dict[str, str]) -> None:
        ack(f"Checking `{command['text']}`…")
        words = command["text"].split()
        argv = [argo, "submit", "--from", "workflowtemplate/env-create-template", "-p", f"service={words[1]}"]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
        text = f"Submitted {done.stdout.strip()}" if done.returncode == 0 else f"Failed: {done.stderr[:200]}"
        body = json.dumps({"text": text, "response_type": "in_channel"}).encode()
        headers = {"Content-Type": "application/json"}
        request = urllib.request.Request(command["response_url"], data=body, headers=headers)
        with urllib.request.urlopen(request, timeout=10) as response:
            response.read()

    app.start(port=int(sys.argv[1]), http_server_logger_enabled=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
