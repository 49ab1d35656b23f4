"""Caches in front of storage: a small :class:`Cache` protocol, an in-process LRU and Redis.

:class:`MemoryCache` is the embedded default (one process, no servers); :class:`RedisCache` is what several
processes share. Both pass the one conformance suite in :mod:`imsdk_server.backends.cache.conformance`.
"""

from imsdk_server.backends.cache._base import Cache as Cache
from imsdk_server.backends.cache._base import CacheUnavailable as CacheUnavailable
from imsdk_server.backends.cache._memory import MemoryCache as MemoryCache
from imsdk_server.backends.cache._redis import RedisCache as RedisCache

__all__ = ["Cache", "CacheUnavailable", "MemoryCache", "RedisCache"]
