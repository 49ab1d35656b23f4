"""The imsdk client SDK: log in, choose an access point, hold the long connection, send and receive.

Runs on anyio, so an app may use it from asyncio or trio.
"""

__all__: list[str] = []
