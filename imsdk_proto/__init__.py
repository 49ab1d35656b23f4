"""The imsdk wire codec: frames, headers, bodies and the message schema. Sans-IO: no sockets, no clocks."""

__all__: list[str] = []
