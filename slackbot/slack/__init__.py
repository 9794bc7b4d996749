"""The Slack edge: Bolt wiring, listeners, HTTP and Socket Mode transports."""
