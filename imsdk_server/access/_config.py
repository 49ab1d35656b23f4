"""Configuration of an access server: one dataclass, a docstring per field."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from imsdk_proto.codes import Biz
from imsdk_server.config import load_config

__all__ = ["AccessConfig"]


@dataclass(slots=True)
class AccessConfig:
    """Everything that shapes an access server's behaviour. Times are in seconds, sizes in bytes."""

    server_id: int
    """This access server's id: stamped as ``access_id`` into every upstream header and told to clients."""

    host: str = "127.0.0.1"
    """Address the listener binds to."""

    port: int = 0
    """TCP port the listener binds to; 0 lets the OS choose (read it back from the server)."""

    advertised_address: str = ""
    """``host:port`` that clients should dial, as published in load reports; defaults to the bound address."""

    certfile: str | None = None
    """PEM certificate chain; when given (with :attr:`keyfile`), the listener speaks TLS."""

    keyfile: str | None = None
    """PEM private key for :attr:`certfile`."""

    handshake_timeout: float = 10.0
    """The first frame must be a complete handshake, and its token verified, this soon after the accept."""

    idle_timeout: float = 300.0
    """A line on which nothing at all (heartbeats included) was received for this long is closed
    (``IDLE_TIMEOUT``). The talk's access servers close lines idle for more than five minutes."""

    heartbeat_interval: float = 60.0
    """Told to the client in the handshake reply: how often it should send a heartbeat."""

    heartbeat_timeout: float | None = None
    """When set, a line that sent no *heartbeat* for this long is closed (``HEARTBEAT_TIMEOUT``) even if
    other frames keep arriving; ``None`` leaves dead-peer detection to :attr:`idle_timeout`."""

    max_frame_size: int = 64 * 1024
    """The largest frame accepted from a client; checked from the preamble before the frame is buffered."""

    send_queue_max_bytes: int = 256 * 1024
    """A connection whose unsent bytes would exceed this is closed as a slow consumer (``SLOW_CONSUMER``)."""

    send_queue_max_frames: int = 1024
    """A connection whose unsent frames would exceed this is closed as a slow consumer."""

    msg_server_biz: int = int(Biz.CHAT)
    """The business whose back-end is named in the handshake reply's ``msg_server_id`` hint: the ready
    back-end that business's frames from the user would go to (0: no hint). With it the client stamps the
    right message-server id on its first chat message instead of learning it from a refusal."""

    backend_send_timeout: float = 5.0
    """The longest an upstream frame waits for a busy back-end to take it. Past it the client gets an error
    frame (``BACKEND_TIMEOUT``) for that frame, and for the frames behind it bound for the same back-end, and
    its line stays up; without a bound a hung back-end would keep that client's reading paused forever."""

    close_grace: float = 1.0
    """How long a closing line may take to flush its last frames (the reason) before the socket is cut."""

    load_report_interval: float = 5.0
    """How often a load report (connections, send-queue depth, CPU) is published on the queue."""

    online_topic: str = "presence.online"
    """Queue topic of online events."""

    offline_topic: str = "presence.offline"
    """Queue topic of offline events."""

    load_topic: str = "load"
    """Queue topic of load reports."""

    region: str = ""
    """Region this server runs in, published in load reports for the access manager's ranking."""

    isp: str = ""
    """Network operator this server is reached through, published in load reports."""

    backlog: int = 4096
    """Listen backlog; large so that a burst of reconnecting clients is not refused."""

    extra: dict[str, Any] = field(default_factory=dict)
    """Free-form settings of embedding applications; the access server ignores them."""

    def __post_init__(self) -> None:
        if self.handshake_timeout <= 0 or self.idle_timeout <= 0 or self.heartbeat_interval <= 0:
            raise ValueError("timeouts and intervals must be positive")
        if self.backend_send_timeout <= 0:
            raise ValueError("backend_send_timeout must be positive")
        if self.heartbeat_timeout is not None and self.heartbeat_timeout <= 0:
            raise ValueError("heartbeat_timeout must be positive or None")
        if self.max_frame_size < 64:
            raise ValueError("max_frame_size is too small to carry a handshake")
        if self.send_queue_max_bytes < self.max_frame_size or self.send_queue_max_frames < 1:
            raise ValueError("the send queue must hold at least one frame of the maximum size")
        if (self.certfile is None) != (self.keyfile is None):
            raise ValueError("certfile and keyfile go together")

    @property
    def tls(self) -> bool:
        """Whether the listener speaks TLS."""
        return self.certfile is not None

    @classmethod
    def from_toml(cls, path: str | Path, **overrides: Any) -> AccessConfig:
        """Load the ``[access]`` table of a TOML file, then apply ``overrides`` (e.g. from the command
        line; ``None`` values are skipped). Unknown keys and wrong types raise
        ``imsdk_server.config.ConfigError``."""
        return load_config(cls, path=path, section="access", overrides=overrides)
