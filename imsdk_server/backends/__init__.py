"""Pluggable backends: each a small typed protocol with an embedded default and a real engine.

============================  ==========================  ==========================================
subpackage                    embedded (one process)      real
============================  ==========================  ==========================================
:mod:`~.backends.registry`    in-process hub              ZooKeeper via kazoo
:mod:`~.backends.queue`       in-process hub              Redis Streams with consumer groups
:mod:`~.backends.cache`       in-process LRU with TTL     Redis
:mod:`~.backends.sql`         SQLite                      MySQL/MariaDB via pymysql
============================  ==========================  ==========================================

Each subpackage ships a ``conformance`` module: the one suite every implementation, including a third
party's, must pass. The real engines' client libraries are imported only when such a backend is created.
"""
