"""envbot: short-lived Kubernetes environments from Slack, submitted as Argo Workflow intent."""

__version__ = "0.1.0"
