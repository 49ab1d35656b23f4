"""The access manager: tracks access servers' load and hands each client its 3 best access points."""

from imsdk_server.access_manager._config import AccessManagerConfig as AccessManagerConfig
from imsdk_server.access_manager._errors import AccessManagerError as AccessManagerError
from imsdk_server.access_manager._ranking import RankingPolicy as RankingPolicy
from imsdk_server.access_manager._ranking import ServerStatus as ServerStatus
from imsdk_server.access_manager._ranking import load_of as load_of
from imsdk_server.access_manager._ranking import rank_access_points as rank_access_points
from imsdk_server.access_manager._table import AccessServerTable as AccessServerTable

__all__ = [
    "AccessManagerConfig",
    "AccessManagerError",
    "AccessServerTable",
    "RankingPolicy",
    "ServerStatus",
    "load_of",
    "rank_access_points",
]
