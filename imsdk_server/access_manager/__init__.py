"""The access manager: tracks access servers' load and hands each client its 3 best access points.

Access servers publish load reports on the queue and register in the registry; the manager keeps a table of
those that are registered and reporting (:class:`AccessServerTable`), ranks them for each request by region,
ISP and load (:func:`rank_access_points`) and serves the result over HTTP (:func:`create_access_manager_app`,
run by :func:`serve_access_manager`). See docs/access-manager.md.
"""

# Service, HTTP app and runner
from imsdk_server.access_manager._app import create_access_manager_app as create_access_manager_app
from imsdk_server.access_manager._config import AccessManagerConfig as AccessManagerConfig

# Errors
from imsdk_server.access_manager._errors import AccessManagerError as AccessManagerError
from imsdk_server.access_manager._errors import AdminKeyRejected as AdminKeyRejected
from imsdk_server.access_manager._errors import BadAccessRequest as BadAccessRequest
from imsdk_server.access_manager._errors import BadLoadReport as BadLoadReport
from imsdk_server.access_manager._errors import NoAccessPoints as NoAccessPoints
from imsdk_server.access_manager._errors import TokenRejected as TokenRejected

# Pure ranking and the server table
from imsdk_server.access_manager._ranking import RandomSource as RandomSource
from imsdk_server.access_manager._ranking import RankingPolicy as RankingPolicy
from imsdk_server.access_manager._ranking import ServerStatus as ServerStatus
from imsdk_server.access_manager._ranking import load_of as load_of
from imsdk_server.access_manager._ranking import rank_access_points as rank_access_points
from imsdk_server.access_manager._server import serve_access_manager as serve_access_manager
from imsdk_server.access_manager._service import ACCESS_ROLE as ACCESS_ROLE
from imsdk_server.access_manager._service import AccessManager as AccessManager
from imsdk_server.access_manager._service import BearerVerifier as BearerVerifier
from imsdk_server.access_manager._service import LocalBearerVerifier as LocalBearerVerifier
from imsdk_server.access_manager._service import decode_load_report as decode_load_report
from imsdk_server.access_manager._table import AccessServerTable as AccessServerTable
from imsdk_server.access_manager._table import Forgotten as Forgotten
from imsdk_server.access_manager._table import ServerRow as ServerRow

__all__ = [
    "ACCESS_ROLE",
    "AccessManager",
    "AccessManagerConfig",
    "AccessManagerError",
    "AccessServerTable",
    "AdminKeyRejected",
    "BadAccessRequest",
    "BadLoadReport",
    "BearerVerifier",
    "Forgotten",
    "LocalBearerVerifier",
    "NoAccessPoints",
    "RandomSource",
    "RankingPolicy",
    "ServerRow",
    "ServerStatus",
    "TokenRejected",
    "create_access_manager_app",
    "decode_load_report",
    "load_of",
    "rank_access_points",
    "serve_access_manager",
]
