"""Caches in front of storage: a small :class:`Cache` protocol, an in-process map and Redis.

:class:`MemoryCache` is the embedded default (one process, no servers): an LRU, or with ``evict=False`` a
store that refuses new keys with :class:`CacheFull` rather than drop a live one. :class:`RedisCache` is
what several processes share. Both pass the one conformance suite in
:mod:`imsdk_server.backends.cache.conformance`.
"""

from imsdk_server.backends.cache._base import Cache as Cache
from imsdk_server.backends.cache._base import CacheFull as CacheFull
from imsdk_server.backends.cache._base import CacheUnavailable as CacheUnavailable
from imsdk_server.backends.cache._memory import MemoryCache as MemoryCache
from imsdk_server.backends.cache._redis import RedisCache as RedisCache

__all__ = ["Cache", "CacheFull", "CacheUnavailable", "MemoryCache", "RedisCache"]
