"""Server building blocks for imsdk: auth and tokens, access servers and links, presence, message routing,
notifications, configuration/registry, lifecycle and metrics.

Each block runs on anyio's asyncio backend (uvloop when installed) and keeps its protocol and state logic in
a sans-IO core that the thin anyio driver around it feeds with bytes, events and the current time.
"""

from imsdk_server.metrics import Metrics as Metrics

__all__ = ["Metrics"]
