"""anyio drivers of the client SDK: they run the sans-IO cores over real sockets and timers."""
