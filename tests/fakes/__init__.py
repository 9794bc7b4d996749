"""Test doubles for process and network boundaries only: argo, kubectl, Slack's Web API, WebSockets."""
