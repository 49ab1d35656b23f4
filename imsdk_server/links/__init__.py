"""Server-to-server links: hello, ready/not-ready, heartbeats with probes, and the deregistration drain.

See ``docs/links.md``. The sans-IO cores (:class:`FailureDetector`, :class:`LinkCore`) are usable on their own
(the location server watches access servers with the same detector); the anyio layer is :class:`Link` (one
connection) and :class:`LinkHub` (every link of one server).
"""

from imsdk_server.links._core import LinkConfig as LinkConfig
from imsdk_server.links._core import LinkCore as LinkCore
from imsdk_server.links._core import LinkIdentity as LinkIdentity
from imsdk_server.links._core import LinkState as LinkState
from imsdk_server.links._detector import DetectorConfig as DetectorConfig
from imsdk_server.links._detector import FailureDetector as FailureDetector
from imsdk_server.links._detector import Health as Health
from imsdk_server.links._driver import FrameHandler as FrameHandler
from imsdk_server.links._driver import HealthCallback as HealthCallback
from imsdk_server.links._driver import Link as Link
from imsdk_server.links._errors import IllegalTransition as IllegalTransition
from imsdk_server.links._errors import LinkBusy as LinkBusy
from imsdk_server.links._errors import LinkClosed as LinkClosed
from imsdk_server.links._errors import LinkError as LinkError
from imsdk_server.links._errors import LinkNotReady as LinkNotReady
from imsdk_server.links._errors import LinkRejected as LinkRejected
from imsdk_server.links._hub import Deregistrar as Deregistrar
from imsdk_server.links._hub import DrainReport as DrainReport
from imsdk_server.links._hub import LinkHub as LinkHub

__all__ = [
    "Deregistrar",
    "DetectorConfig",
    "DrainReport",
    "FailureDetector",
    "FrameHandler",
    "Health",
    "HealthCallback",
    "IllegalTransition",
    "Link",
    "LinkBusy",
    "LinkClosed",
    "LinkConfig",
    "LinkCore",
    "LinkError",
    "LinkHub",
    "LinkIdentity",
    "LinkNotReady",
    "LinkRejected",
    "LinkState",
]
