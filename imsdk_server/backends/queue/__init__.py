"""Message queue with consumer groups: one interface, an embedded and a Redis Streams implementation.

Access servers publish online/offline events and load reports; location servers and access managers consume
them in consumer groups with acknowledged, at-least-once delivery. See docs/queue.md.
"""

from imsdk_server.backends.queue._base import DEFAULT_MAX_PAYLOAD as DEFAULT_MAX_PAYLOAD
from imsdk_server.backends.queue._base import ConsumerStream as ConsumerStream
from imsdk_server.backends.queue._base import Delivery as Delivery
from imsdk_server.backends.queue._base import GroupStart as GroupStart
from imsdk_server.backends.queue._base import InvalidQueueArgument as InvalidQueueArgument
from imsdk_server.backends.queue._base import Queue as Queue
from imsdk_server.backends.queue._base import QueueBackendError as QueueBackendError
from imsdk_server.backends.queue._base import QueueClosed as QueueClosed
from imsdk_server.backends.queue._base import QueueError as QueueError
from imsdk_server.backends.queue._base import QueueUnavailable as QueueUnavailable
from imsdk_server.backends.queue._memory import ManualClock as ManualClock
from imsdk_server.backends.queue._memory import MemoryQueue as MemoryQueue
from imsdk_server.backends.queue._memory import MemoryQueueHub as MemoryQueueHub
from imsdk_server.backends.queue._redis import RedisQueue as RedisQueue

__all__ = [
    "DEFAULT_MAX_PAYLOAD",
    "ConsumerStream",
    "Delivery",
    "GroupStart",
    "InvalidQueueArgument",
    "ManualClock",
    "MemoryQueue",
    "MemoryQueueHub",
    "Queue",
    "QueueBackendError",
    "QueueClosed",
    "QueueError",
    "QueueUnavailable",
    "RedisQueue",
]
