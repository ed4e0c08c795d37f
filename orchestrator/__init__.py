"""podctl: an agentless pod orchestrator (Kubernetes-style pods on plain Linux hosts over SSH)."""

__version__ = "0.1.0"
